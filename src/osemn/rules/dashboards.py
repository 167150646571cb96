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

A dashboard is data (``_Dashboard`` of ``_Row`` of ``_Panel``); ``_render`` is
the one place that speaks the SDK.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from osemn._units import format_duration
from osemn.config import Config, SLOConfig, schedule_interval
from osemn.errors import RuleError
from osemn.rules.burn import TIERS

if TYPE_CHECKING:
    from grafana_foundation_sdk.models.dashboard import DataSourceRef
    from typing_extensions import Unpack

__all__ = ["DASHBOARD_UIDS", "DATASOURCE_VARIABLE", "build_dashboards", "write_dashboards"]

DATASOURCE_VARIABLE = "datasource"
# Fixed uids: the links between the three, and an SLO's dashboard_url, stay
# valid across regenerations (Grafana replaces a dashboard of the same uid).
DASHBOARD_UIDS: dict[str, str] = {
    "executive": "osemn-executive",
    "oncall": "osemn-oncall",
    "debug": "osemn-debug",
}

_DEFAULT_SLO_WINDOW = timedelta(days=30)
_BY = re.compile(r"\bby \(([^)]*)\)")
_FIRING = "sum by (alertname, severity) (osemn_alerts_firing) > 0"

_Steps = tuple[tuple[float | None, str], ...]
_NEUTRAL: _Steps = ((None, "blue"),)
_BAD_WHEN_ANY: _Steps = ((None, "green"), (1, "red"))
_BUDGET: _Steps = ((None, "red"), (0, "orange"), (0.25, "green"))
_RATIO: _Steps = ((None, "red"), (0.9, "orange"), (0.99, "green"))


@dataclass(frozen=True)
class _Query:
    expr: str
    legend: str


@dataclass(frozen=True, kw_only=True)
class _Panel:
    """One panel; stat, bar gauge and table panels query instants, time series ranges."""

    kind: Literal["stat", "timeseries", "bargauge", "table"]
    title: str
    description: str
    queries: tuple[_Query, ...]
    unit: str = "short"
    width: int = 8
    height: int = 8
    steps: _Steps = _NEUTRAL
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class _Row:
    title: str
    panels: tuple[_Panel, ...]


@dataclass(frozen=True, kw_only=True)
class _Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[tuple[str, str, str], ...]  # name, label, label_values(...) query
    rows: tuple[_Row, ...]


class _Style(TypedDict, total=False):
    unit: str
    width: int
    height: int
    steps: _Steps
    min: float
    max: float


def _query(expr: str | _Query) -> _Query:
    """A query whose legend names the labels of its first ``by (...)``, ``le`` left out."""
    if isinstance(expr, _Query):
        return expr
    match = _BY.search(expr)
    labels = [s.strip() for s in match.group(1).split(",")] if match else []
    return _Query(expr, " ".join(f"{{{{{label}}}}}" for label in labels if label != "le"))


def _stat(title: str, description: str, expr: str, **style: Unpack[_Style]) -> _Panel:
    """A single number; by default a count on the "Now" strip, green at 0, red from 1."""
    merged: _Style = {"steps": _BAD_WHEN_ANY, "width": 4, "height": 4}
    merged.update(style)
    q = (_Query(expr, ""),)
    return _Panel(kind="stat", title=title, description=description, queries=q, **merged)


def _series(title: str, description: str, *exprs: str | _Query, **style: Unpack[_Style]) -> _Panel:
    q = tuple(map(_query, exprs))
    return _Panel(kind="timeseries", title=title, description=description, queries=q, **style)


def _bars(title: str, description: str, expr: str, **style: Unpack[_Style]) -> _Panel:
    q = (_query(expr),)
    return _Panel(kind="bargauge", title=title, description=description, queries=q, **style)


def _table(title: str, description: str, expr: str, **style: Unpack[_Style]) -> _Panel:
    q = (_query(expr),)
    return _Panel(kind="table", title=title, description=description, queries=q, **style)


def _q(value: str) -> str:
    """A PromQL string literal (config names may hold any character)."""
    # PromQL strings take Go's escapes, of which JSON's are a subset; non-ASCII
    # stays literal, since Go rejects the surrogate pairs JSON would write.
    return json.dumps(value, ensure_ascii=False)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.6g}%"


def _duration(value: timedelta) -> str:
    """A PromQL duration as users write SLO windows: ``28d``, not ``4w``."""
    days, rest = divmod(value, timedelta(days=1))
    return f"{days}d" if days and not rest else format_duration(value)


# --- PromQL and thresholds from the config -------------------------------------


def _sli(selector: str, window: str) -> str:
    """Good events / all events over ``window``, by SLO, from the raw counter.

    Written as 1 - bad/total so that an SLO with no bad event yet (no series of
    any other outcome than ``good``) reads 1, not "no data".
    """
    total = f"sum by (slo) (increase(osemn_sli_events_total{{{selector}}}[{window}]))"
    bad = total.replace(f"{{{selector}}}", f'{{{selector},outcome!="good"}}')
    return f"1 - (({bad}) or ({total}) * 0) / {total}"


def _freshness_share(config: Config) -> str | None:
    """Freshness as a share of each dataset's ``max_age`` (1 = stale), or None."""
    parts = [
        "max by (dataset) (osemn_dataset_freshness_seconds"
        f'{{dataset={_q(name)},dataset=~"$dataset"}}) / {ds.freshness.max_age.total_seconds():g}'
        for name, ds in config.datasets.items()
        if ds.freshness is not None
    ]
    return " or ".join(parts) if parts else None


def _run_window(config: Config) -> str:
    """A rate window that holds two runs of every dataset (and at least 1m).

    ``$__rate_interval`` follows the scrape interval, but checks run every few
    minutes: a shorter window holds no run and draws nothing.
    """
    intervals = [schedule_interval(ds.schedule) for ds in config.datasets.values()]
    return _duration(max(2 * max(intervals, default=timedelta(0)), timedelta(minutes=1)))


def _page_factor(*windows: timedelta) -> float:
    """The lowest burn rate that pages, over the given SLO windows."""
    return min(t.factor(w) for t in TIERS if t.severity == "page" for w in windows)


def _burn_steps(*windows: timedelta) -> _Steps:
    return ((None, "green"), (1, "orange"), (round(_page_factor(*windows), 2), "red"))


# --- the three dashboards ------------------------------------------------------


def _executive(config: Config) -> _Dashboard:
    budget = 'min by (slo) (osemn_slo_error_budget_remaining_ratio{slo=~"$slo"})'
    rows = [
        _Row(
            "SLOs",
            (
                _stat(
                    "SLOs within budget",
                    "SLOs with error budget left in their window.",
                    f"count({budget} > 0) or vector(0)",
                    steps=_NEUTRAL,
                ),
                _stat(
                    "SLOs out of budget",
                    "SLOs whose budget is spent: the objective is missed.",
                    f"count({budget} <= 0) or vector(0)",
                ),
                _bars(
                    "Error budget remaining",
                    "Share of each SLO's error budget left in its window (the agent's evaluation).",
                    budget,
                    unit="percentunit",
                    steps=_BUDGET,
                    max=1,
                    width=16,
                    height=4,
                ),
                _series(
                    "Error budget remaining over time",
                    "How fast each SLO spends its budget.",
                    budget,
                    unit="percentunit",
                    max=1,
                    width=24,
                    height=7,
                ),
            ),
        ),
    ]
    rows.extend(_slo_row(config, slo) for slo in config.slo_list)
    return _Dashboard(
        uid=DASHBOARD_UIDS["executive"],
        title="osemn / Executive: SLOs",
        description="Data SLOs: are they met, and how much error budget is left.",
        variables=(("slo", "SLO", "label_values(osemn_sli_events_total, slo)"),),
        rows=tuple(rows),
    )


def _slo_row(config: Config, slo: SLOConfig) -> _Row:
    """One SLO's panels, with its objective, window and page factor written in."""
    name, window = _q(slo.name), _duration(slo.window)
    ds = config.datasets.get(slo.subject)
    interval = schedule_interval(ds.schedule) if ds is not None else timedelta(0)
    recent = _duration(max(timedelta(hours=1), 2 * interval))
    return _Row(
        f"{slo.name}: {slo.sli} of {slo.subject}, {_pct(slo.objective)} over {window}",
        (
            _stat(
                f"SLI over {window}",
                f"Good events / all events over the SLO window; green from the objective "
                f"{_pct(slo.objective)}.",
                _sli(f"slo={name}", window),
                unit="percentunit",
                steps=((None, "red"), (slo.objective, "green")),
                width=5,
                height=6,
            ),
            _stat(
                "Error budget remaining",
                f"Share of the {window} budget ({_pct(slo.error_budget)} of events) left.",
                f"min(osemn_slo_error_budget_remaining_ratio{{slo={name}}})",
                unit="percentunit",
                steps=_BUDGET,
                width=5,
                height=6,
            ),
            _series(
                f"SLI over {recent} vs objective",
                f"The SLI over a sliding {recent} (at least two check runs) against the objective.",
                _Query(_sli(f"slo={name}", recent), "SLI"),
                _Query(f"vector({slo.objective!r})", "objective"),
                unit="percentunit",
                width=9,
                height=6,
            ),
            _bars(
                "Burn rate by window",
                f"Error ratio / error budget: 1 spends the budget exactly in {window}; red "
                "from the page factor.",
                f"max by (window) (osemn_slo_burn_rate{{slo={name}}})",
                steps=_burn_steps(slo.window),
                width=5,
                height=6,
            ),
        ),
    )


def _oncall(config: Config) -> _Dashboard:
    ds = 'dataset=~"$dataset"'
    burn = 'osemn_slo_burn_rate{slo=~"$slo"'
    fresh = _freshness_share(config)
    window = _run_window(config)
    now = [
        _stat(
            "Alerts firing",
            "Alerts the agent has firing now, pages and tickets.",
            "sum(osemn_alerts_firing) or vector(0)",
        ),
        _stat(
            "Failing checks",
            "Checks whose last run did not pass (failed, errored or lacked data).",
            f"count(max by (dataset, check) (osemn_check_success{{{ds}}}) == 0) or vector(0)",
        ),
        _stat(
            "Sources down",
            "Sources whose last query failed: their checks are errors, not failures.",
            "count(max by (source) (osemn_source_up) == 0) or vector(0)",
        ),
        _stat(
            "Notifications pending",
            "Alerts in the outbox not yet delivered (a receiver is slow or down).",
            "sum(osemn_outbox_pending) or vector(0)",
        ),
    ]
    data = [
        _series(
            "Freshness",
            "Age of the newest row of each dataset; it grows between runs "
            "and while a source cannot be read.",
            f"max by (dataset) (osemn_dataset_freshness_seconds{{{ds}}})",
            unit="s",
        ),
        _table(
            "Failed rows of failing checks",
            "Rows that broke each failing check in its "
            "last run (an errored check has no row count: see the runs table).",
            f"max by (dataset, check) (osemn_check_failed_rows{{{ds}}}) and on (dataset, "
            f"check) (max by (dataset, check) (osemn_check_success{{{ds}}}) == 0)",
        ),
    ]
    if fresh is not None:
        now.append(
            _stat(
                "Stale datasets",
                "Datasets whose newest row is older than their freshness.max_age.",
                f"count(({fresh}) > 1) or vector(0)",
            )
        )
        data.insert(
            0,
            _bars(
                "Freshness, share of max_age",
                "Age of the newest row / the dataset's freshness.max_age: red from 100% (stale).",
                fresh,
                unit="percentunit",
                min=0,
                steps=((None, "green"), (0.8, "orange"), (1, "red")),
            ),
        )
    windows = [slo.window for slo in config.slo_list] or [_DEFAULT_SLO_WINDOW]
    return _Dashboard(
        uid=DASHBOARD_UIDS["oncall"],
        title="osemn / On-call",
        description="What burns now: SLO burn rates, firing alerts, stale data, failing checks.",
        variables=(
            ("dataset", "Dataset", "label_values(osemn_check_runs_total, dataset)"),
            ("slo", "SLO", "label_values(osemn_sli_events_total, slo)"),
        ),
        rows=(
            _Row("Now", tuple(now)),
            _Row(
                "SLO burn rates",
                (
                    _bars(
                        "Burn rate now",
                        "Error ratio / error budget per SLO and window: orange "
                        "above 1 (the budget will not last), red from the page factor.",
                        f"max by (slo, window) ({burn}}})",
                        steps=_burn_steps(*windows),
                    ),
                    _series(
                        "Burn rate, page windows",
                        "The windows of the page alerts: 1h with 5m, 6h with 30m.",
                        f'max by (slo, window) ({burn},window=~"5m|30m|1h|6h"}})',
                    ),
                    _series(
                        "Burn rate, ticket windows",
                        "The windows of the ticket alerts: 1d with 2h, 3d with 6h.",
                        f'max by (slo, window) ({burn},window=~"2h|6h|1d|3d"}})',
                    ),
                ),
            ),
            _Row(
                "Alerts and delivery",
                (
                    _table(
                        "Firing alerts",
                        "Alerts firing now by name and severity.",
                        _FIRING,
                    ),
                    _series(
                        "Notifications",
                        "Notifications by receiver and delivery status.",
                        "sum by (receiver, status) "
                        "(increase(osemn_notifications_total[$__rate_interval]))",
                    ),
                    _series(
                        "Outbox pending",
                        "Notifications waiting for delivery, by receiver.",
                        "sum by (receiver) (osemn_outbox_pending)",
                    ),
                ),
            ),
            _Row(
                "Data",
                (
                    *data,
                    _table(
                        f"Runs that failed or errored ({window})",
                        "Failed: the data broke the "
                        "rule. Errored: osemn could not evaluate the check (source down, "
                        "timeout, bad schema).",
                        "sum by (dataset, check, status) (increase("
                        f'osemn_check_runs_total{{{ds},status=~"fail|error"}}[{window}])) > 0',
                        width=24,
                    ),
                ),
            ),
        ),
    )


def _debug(config: Config) -> _Dashboard:
    col = 'dataset=~"$dataset",column=~"$column"'
    kind = 'dataset=~"$dataset",kind=~"$kind"'
    window = _run_window(config)
    hist = "osemn_check_duration_seconds"
    return _Dashboard(
        uid=DASHBOARD_UIDS["debug"],
        title="osemn / Debug",
        description="Why a dataset is unhealthy: columns, drift, check runs and sources.",
        variables=(
            ("dataset", "Dataset", "label_values(osemn_check_runs_total, dataset)"),
            (
                "column",
                "Column",
                'label_values({__name__=~"osemn_column_completeness_ratio|'
                'osemn_drift_score",dataset=~"$dataset"}, column)',
            ),
            ("kind", "Check kind", f'label_values({hist}_count{{dataset=~"$dataset"}}, kind)'),
            ("source", "Source", "label_values(osemn_source_up, source)"),
        ),
        rows=(
            _Row(
                "Completeness and validity",
                (
                    _series(
                        "Column completeness",
                        "Share of non-null values of each column in each run.",
                        f"min by (dataset, column) (osemn_column_completeness_ratio{{{col}}})",
                        width=12,
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                    _bars(
                        "Column completeness, last run",
                        "The least complete columns stand out.",
                        f"min by (dataset, column) (osemn_column_completeness_ratio{{{col}}})",
                        width=6,
                        steps=_RATIO,
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                    _series(
                        "Validity",
                        "Share of rows passing every schema check.",
                        'min by (dataset) (osemn_dataset_validity_ratio{dataset=~"$dataset"})',
                        width=6,
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                ),
            ),
            _Row(
                "Drift",
                (
                    _series(
                        "Drift score",
                        "Effect size of each column's drift from its reference "
                        "(by method: PSI, Jensen-Shannon, Hellinger, Wasserstein, KS D).",
                        f"max by (dataset, column, method) (osemn_drift_score{{{col}}})",
                        width=10,
                    ),
                    _series(
                        "Drift p-value",
                        "p-value of the drift test before the FDR correction; "
                        "alert on drift detected, not on this.",
                        f"min by (dataset, column, method) (osemn_drift_pvalue{{{col}}})",
                        width=6,
                    ),
                    _bars(
                        "Drifted share of columns",
                        "Share of each dataset's judged drift columns that drifted.",
                        'max by (dataset) (osemn_dataset_drift_share{dataset=~"$dataset"})',
                        width=4,
                        steps=((None, "green"), (0.01, "orange"), (0.5, "red")),
                        unit="percentunit",
                        min=0,
                        max=1,
                    ),
                    _table(
                        "Columns drifted",
                        "Columns the last drift run found drifted.",
                        f"max by (dataset, column, method) (osemn_drift_detected{{{col}}}) == 1",
                        width=4,
                    ),
                ),
            ),
            _Row(
                "Check runs",
                (
                    _series(
                        f"Check duration p95 ({window})",
                        "95th percentile of run time by "
                        "dataset and kind (checks fused into one scan share one observation).",
                        "histogram_quantile(0.95, sum by (dataset, kind, le) "
                        f"(rate({hist}_bucket{{{kind}}}[{window}])))",
                        unit="s",
                    ),
                    _series(
                        f"Mean check duration ({window})",
                        "Mean run time by dataset and kind.",
                        f"sum by (dataset, kind) (rate({hist}_sum{{{kind}}}[{window}])) / "
                        f"sum by (dataset, kind) (rate({hist}_count{{{kind}}}[{window}]))",
                        unit="s",
                    ),
                    _bars(
                        "Time since last run",
                        "Since each kind of check last finished: a stuck "
                        "schedule shows here first.",
                        "time() - max by (dataset, kind) "
                        f"(osemn_check_last_run_timestamp_seconds{{{kind}}})",
                        unit="s",
                    ),
                    _series(
                        f"Check runs by status ({window})",
                        "Runs by outcome: pass, fail, error, insufficient_data.",
                        "sum by (dataset, status) (increase("
                        f'osemn_check_runs_total{{dataset=~"$dataset"}}[{window}]))',
                        width=12,
                    ),
                    _series(
                        "Rows in the volume window",
                        "Rows each dataset had in its volume window at each run.",
                        'max by (dataset, window) (osemn_dataset_rows{dataset=~"$dataset"})',
                        width=12,
                    ),
                ),
            ),
            _Row(
                "Sources and agents",
                (
                    _series(
                        "Source up",
                        "1 while the source answers osemn's queries, 0 after a failure.",
                        'min by (source) (osemn_source_up{source=~"$source"})',
                        steps=((None, "red"), (1, "green")),
                        min=0,
                        max=1,
                        width=16,
                    ),
                    _table(
                        "Agents by version",
                        "How many agents run each osemn version.",
                        "count by (version) (osemn_build_info)",
                    ),
                ),
            ),
        ),
    )


# --- rendering ---------------------------------------------------------------


def _render(spec: _Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard spec."""
    from grafana_foundation_sdk.builders import dashboard as dash
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as model

    ref = model.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
    board = (
        dash.Dashboard(spec.title)
        .uid(spec.uid)
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
            .expr(_FIRING)
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


def _panel(spec: _Panel, panel_id: int, ref: DataSourceRef) -> Any:
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
        "executive": _render(_executive(config)),
        "oncall": _render(_oncall(config)),
        "debug": _render(_debug(config)),
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
