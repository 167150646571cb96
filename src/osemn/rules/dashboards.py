"""Grafana dashboards of osemn's metrics: executive, on-call and debug.

Written as Grafana's dashboard JSON model (what Grafana exports and imports),
built with grafana-foundation-sdk, Grafana's own typed builders, so the JSON
follows the schema of the Grafana release the SDK was generated from. The SDK
is imported only when dashboards are built: the agent never pays for it.

Panels query only the agent's own ``osemn_*`` series, never the recording
rules of ``osemn rules``, so the dashboards work on any Prometheus that scrapes
an agent. What the config knows is written into the panels (SLO objectives and
windows, freshness ``max_age``, burn-rate page factors); which datasets and
SLOs are shown is chosen at view time with template variables. Every panel,
target and variable queries the ``$datasource`` variable, so one import serves
any Prometheus.

A dashboard is data (``Dashboard`` of ``Row`` of ``Panel``, in
``_dashboard_spec``), its panels are defined in ``_dashboard_panels``, and
``_render`` here is the one place that speaks the SDK.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osemn.config import Config
from osemn.errors import RuleError
from osemn.rules._dashboard_panels import debug, executive, oncall
from osemn.rules._dashboard_promql import FIRING
from osemn.rules._dashboard_spec import Dashboard, Panel

if TYPE_CHECKING:
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = ["DASHBOARD_UIDS", "DATASOURCE_VARIABLE", "build_dashboards", "write_dashboards"]

DATASOURCE_VARIABLE = "datasource"
# Fixed uids: the links between the three, and an SLO's dashboard_url, stay
# valid across regenerations (Grafana replaces a dashboard of the same uid).
DASHBOARD_UIDS: dict[str, str] = {
    "executive": "osemn-executive",
    "oncall": "osemn-oncall",
    "debug": "osemn-debug",
}


# --- rendering ---------------------------------------------------------------


def _render(uid: str, spec: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard spec."""
    from grafana_foundation_sdk.builders import dashboard as dash
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as model

    ref = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
    board = (
        dash.Dashboard(spec.title)
        .uid(uid)
        .description(spec.description)
        .tags(["osemn"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("osemn")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["osemn"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .annotation(
            dash.AnnotationQuery()
            .name("osemn alerts firing")
            .datasource(ref)
            .enable(True)
            .icon_color("red")
            .expr(FIRING)
        )
        .with_variable(
            dash.DatasourceVariable(DATASOURCE_VARIABLE).label("Prometheus").type("prometheus")
        )
    )
    for name, label, query in spec.variables:
        board.with_variable(
            dash.QueryVariable(name)
            .label(label)
            .query(query)
            .datasource(ref)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
        )
    ids = itertools.count(1)
    for row in spec.rows:
        board.with_row(dash.Row(row.title).id(next(ids)))
        for panel in row.panels:
            board.with_panel(_panel(panel, next(ids), ref))
    model_json: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return model_json


def _panel(spec: Panel, panel_id: int, ref: DataSourceRef) -> Any:
    """A panel builder of the spec's kind, every target on ``$datasource``."""
    from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
    from grafana_foundation_sdk.builders import common as common_builders
    from grafana_foundation_sdk.builders import dashboard as dash
    from grafana_foundation_sdk.builders import prometheus as prom
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as model
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat

    last = common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
    builder: stat.Panel | bargauge.Panel | table.Panel | timeseries.Panel
    if spec.kind == "stat":
        builder = stat.Panel().reduce_options(last).graph_mode(common.BigValueGraphMode.NONE)
    elif spec.kind == "bargauge":
        builder = (
            bargauge.Panel()
            .reduce_options(last)
            .orientation(common.VizOrientation.HORIZONTAL)
            .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        )
    elif spec.kind == "table":
        builder = table.Panel().show_header(True)
    else:
        builder = timeseries.Panel().legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
    builder.id(panel_id).title(spec.title).description(spec.description).datasource(ref)
    builder.unit(spec.unit).span(spec.width).height(spec.height)
    builder.thresholds(
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in spec.steps])
    )
    if spec.min is not None:
        builder.min(spec.min)
    if spec.max is not None:
        builder.max(spec.max)
    for ref_id, query in zip("ABCDEFGH", spec.queries, strict=False):
        target = prom.Dataquery().expr(query.expr).ref_id(ref_id).datasource(ref)
        target.legend_format(query.legend or "__auto")
        if spec.kind == "timeseries":
            target.range()
        else:
            target.instant()
        if spec.kind == "table":
            target.format(PromQueryFormat.TABLE)
        builder.with_target(target)
    return builder


# --- public API --------------------------------------------------------------


def build_dashboards(config: Config) -> dict[str, dict[str, Any]]:
    """The three dashboards of a config as Grafana JSON models.

    Returns:
        ``{"executive": ..., "oncall": ..., "debug": ...}``, each a dashboard
        JSON model ready for Grafana's import or file provisioning.
    """
    return {
        "executive": _render(DASHBOARD_UIDS["executive"], executive(config)),
        "oncall": _render(DASHBOARD_UIDS["oncall"], oncall(config)),
        "debug": _render(DASHBOARD_UIDS["debug"], debug(config)),
    }


def write_dashboards(config: Config, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the three dashboards to ``out_dir/<uid>.json`` (created if missing).

    Returns:
        The paths written, executive first.

    Raises:
        RuleError: when ``out_dir`` cannot be created or written.
    """
    out = Path(out_dir)
    paths: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for key, model_json in build_dashboards(config).items():
            path = out / f"{DASHBOARD_UIDS[key]}.json"
            path.write_text(json.dumps(model_json, indent=2) + "\n", encoding="utf-8")
            paths.append(path)
    except OSError as exc:
        raise RuleError(
            f"cannot write dashboards to {str(out)!r}: {exc.strerror}; "
            "pass a writable directory with -o"
        ) from None
    return paths
