"""The ``osemn`` command: run, check, validate, demo, rules, dashboards, slo export, lineage.

Exit codes of ``osemn check``: 0 every check passed, 1 a check failed, 2 a
check errored or the config is bad. Heavy imports stay inside the commands so
that ``osemn --help`` and a bad config answer fast.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from osemn._version import __version__
from osemn.errors import ConfigError, OsemnError
from osemn.results import CheckResult, Status

if TYPE_CHECKING:
    from osemn.agent.agent import Agent
    from osemn.config import Config
    from osemn.sources.featurestore import FeatureStoreSource

__all__ = ["main"]

log = logging.getLogger("osemn")

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # APScheduler logs every job start at INFO: one line per dataset run is noise.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))


def _load(path: str) -> Config:
    from osemn.config import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default="osemn.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="osemn.yaml to use.",
)


@click.group()
@click.version_option(__version__, prog_name="osemn")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """osemn: data-quality checks in your warehouse, as Prometheus metrics."""
    _setup_logging(log_level)


# -- check ----------------------------------------------------------------------


def _exit_code(results: Sequence[CheckResult]) -> int:
    statuses = {r.status for r in results}
    if Status.ERROR in statuses:
        return EXIT_ERROR
    if Status.FAIL in statuses:
        return EXIT_FAIL
    return EXIT_PASS


def format_table(results: Sequence[CheckResult]) -> str:
    """Results as a readable fixed-width table with a summary line."""
    header = ("DATASET", "KIND", "CHECK", "STATUS", "ROWS", "FAILED", "SECONDS", "DETAIL")
    rows = []
    for r in results:
        detail = r.error or r.note or ""
        rows.append(
            (
                r.dataset,
                r.kind.value,
                r.check,
                r.status.value.upper(),
                "" if r.rows is None else str(r.rows),
                "" if r.failed_rows is None else str(r.failed_rows),
                f"{r.duration_seconds:.3f}",
                detail.splitlines()[0][:120] if detail else "",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    widths[-1] = len(header[-1])
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    summary = (
        f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
        f"{counts[Status.ERROR]} errored"
    )
    if counts[Status.INSUFFICIENT_DATA]:
        summary += f", {counts[Status.INSUFFICIENT_DATA]} with insufficient data"
    lines.append("\n" + summary)
    return "\n".join(lines)


@main.command()
@config_option
@click.argument("datasets", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--full", is_flag=True, help="Scan whole tables, ignoring watermarks.")
def check(config_path: str, datasets: tuple[str, ...], fmt: str, full: bool) -> None:
    """Run the checks once and exit: 0 pass, 1 a check failed, 2 error or bad config."""
    from osemn.agent.agent import Agent
    from osemn.results import results_document

    config = _load(config_path)
    agent = Agent(config, record_sli=False)  # a one-off run does not count against SLOs
    try:
        agent.open()
        results = agent.run_once(datasets or None, full=full)
        agent.send_lineage_events()
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        agent.close()
    if fmt == "json":
        click.echo(json.dumps(results_document(results), indent=2))
    else:
        click.echo(format_table(results))
    sys.exit(_exit_code(results))


# -- validate ---------------------------------------------------------------------


@main.command()
@config_option
def validate(config_path: str) -> None:
    """Validate config and schemas, connect to every source, say what would run."""
    from osemn.agent.agent import Agent, validate_sources

    config = _load(config_path)
    agent = Agent(config)
    problems = 0
    try:
        agent.open()
        click.echo(f"config {config_path}: ok (version 1, {len(config.datasets)} datasets)")
        for name, error in validate_sources(agent):
            if error is None:
                click.echo(f"source {name}: ok ({agent.warehouses[name].dialect_name})")
            else:
                problems += 1
                click.echo(f"source {name}: ERROR {error}")
        for name, store in agent.feature_stores.items():
            plan = store.plan()
            if plan.error is None:
                click.echo(
                    f"source {name}: ok (Feast repo {store.config.repo_path(config.base_dir)}, "
                    f"feature views: {len(plan.views)})"
                )
            for line in store.describe_plan(plan):
                click.echo(f"source {name}: {line}")
                problems += line.startswith("ERROR")
        for name, runner in agent.runners.items():
            for line in runner.describe_plan():
                click.echo(f"dataset {name}: {line}")
                problems += line.startswith("ERROR")
        for line in _describe_slos(config):
            click.echo(line)
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        agent.close()
    sys.exit(EXIT_ERROR if problems else EXIT_PASS)


def _describe_slos(config: Config) -> list[str]:
    """What ``validate`` says of SLOs and alerting: objectives, widened windows, routes."""
    from osemn.rules.burn import absent_window
    from osemn.rules.prometheus import prom_duration, widened_windows

    lines = [
        f"slo {s.name}: {s.sli} of {s.subject}, objective {100 * s.objective:g}% over "
        f"{prom_duration(s.window)}, absent after {prom_duration(absent_window(config, s))}"
        for s in config.slo_list
    ]
    lines += [
        f"slo {name}: the {prom_duration(nominal)} burn window is widened to "
        f"{prom_duration(effective)} (two check intervals), so it never holds no event"
        for name, nominal, effective in widened_windows(config)
    ]
    for name, receiver in config.alerting.receivers.items():
        lines.append(f"receiver {name}: {receiver.type}")
    for i, route in enumerate(config.alerting.routes):
        match = ", ".join(f"{k}={v}" for k, v in route.match.items()) or "every alert"
        lines.append(f"route {i}: {match} -> {route.receiver}")
    return lines


# -- run ----------------------------------------------------------------------------


def _serve_until_signal(agent: Agent, *, duration: float | None = None) -> None:
    """Block until SIGTERM/SIGINT (or ``duration`` seconds), then stop the agent."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("received %s: finishing runs in flight", signal.Signals(signum).name)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not agent.wait(duration):
        agent.stop()


@main.command()
@config_option
def run(config_path: str) -> None:
    """Run the agent: schedule every check, serve /metrics, until SIGTERM."""
    from osemn.agent.agent import Agent

    config = _load(config_path)
    agent = Agent(config)
    try:
        agent.open()
        agent.start()
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        agent.close()
        sys.exit(EXIT_ERROR)
    log.info(
        "osemn %s: %d datasets, serving on http://%s:%s",
        __version__,
        len(agent.runners),
        config.agent.host,
        agent.port,
    )
    try:
        _serve_until_signal(agent)
    finally:
        agent.close()
    sys.exit(EXIT_PASS)


# -- demo ---------------------------------------------------------------------------


@main.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option(
    "--listen", default="127.0.0.1:9108", show_default=True, help="host:port to serve on."
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the demo warehouse and state (a temporary folder by default).",
)
@click.option("--no-color", is_flag=True, help="Plain text status table.")
@click.option(
    "--alertmanager",
    metavar="URL",
    default=None,
    help="Also send the demo's alerts to this Alertmanager (e.g. http://127.0.0.1:9093).",
)
def demo(
    duration: float | None,
    listen: str,
    workdir: Path | None,
    no_color: bool,
    alertmanager: str | None,
) -> None:
    """The embedded demo: a DuckDB warehouse with live incidents and the agent on it."""
    from osemn.demo.run import run_demo

    try:
        run_demo(
            duration=duration,
            listen=listen,
            workdir=workdir,
            color=not no_color,
            alertmanager=alertmanager,
        )
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)


# -- rules ----------------------------------------------------------------------------


@main.command()
@config_option
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the rules, their promtool tests and an Alertmanager snippet into this folder.",
)
def rules(config_path: str, out_dir: Path | None) -> None:
    """Prometheus recording and alerting rules for the SLOs (stdout, or files with -o)."""
    from osemn.rules import prometheus as prom

    config = _load(config_path)
    try:
        notes = [f"Generated by osemn {__version__} from {config_path}; do not edit by hand."]
        notes += [
            f"SLO {slo}: the {prom.prom_duration(nominal)} window is read over "
            f"{prom.prom_duration(effective)} (two check intervals)"
            for slo, nominal, effective in prom.widened_windows(config)
        ]
        files = {
            prom.RULE_FILE: prom.to_yaml(prom.prometheus_rules(config), comments=notes),
            prom.TEST_FILE: prom.to_yaml(
                prom.promtool_tests(config, prom.RULE_FILE), comments=notes[:1]
            ),
            prom.ALERTMANAGER_FILE: prom.to_yaml(
                prom.alertmanager_config(config), comments=notes[:1]
            ),
        }
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    if out_dir is None:
        click.echo(files[prom.RULE_FILE], nl=False)
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out_dir / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"osemn: cannot write {out_dir}: {exc.strerror}; check the -o folder", err=True)
        sys.exit(EXIT_ERROR)
    for name in files:
        click.echo(str(out_dir / name))


# -- lineage --------------------------------------------------------------------------


@main.command()
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "dot", "openlineage"]),
    default="json",
    show_default=True,
    help="json: the graph; dot: Graphviz; openlineage: RunEvents (one JSON per line), "
    "also sent to the configured OpenLineage transport.",
)
def lineage(config_path: str, fmt: str) -> None:
    """Scan lineage (views, foreign keys, dbt, query history, models) and print it."""
    from osemn._clock import utcnow
    from osemn.lineage.scan import scan_lineage
    from osemn.sources.warehouse import Warehouse

    config = _load(config_path)
    warehouses: dict[str, Warehouse] = {}
    stores: dict[str, FeatureStoreSource] = {}
    try:
        warehouses = {name: Warehouse(name, src) for name, src in config.warehouse_sources.items()}
        stores = _open_feature_stores(config)
        graph = scan_lineage(config, warehouses, feature_stores=stores).graph
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        for warehouse in warehouses.values():
            warehouse.close()
        for store in stores.values():
            store.close()
    for problem in graph.problems:
        click.echo(f"osemn: lineage: {problem.message}", err=True)
    if fmt == "json":
        click.echo(json.dumps(graph.to_json(), indent=2))
    elif fmt == "dot":
        click.echo(graph.to_dot(), nl=False)
    else:
        from osemn.lineage.emit import emit, openlineage_client
        from osemn.lineage.openlineage import scan_events, to_json

        settings = config.lineage.openlineage if config.lineage is not None else None
        events = scan_events(
            graph,
            urls=config.warehouse_urls,
            namespace=config.openlineage_namespace,
            at=utcnow(),
        )
        for event in events:
            click.echo(to_json(event))
        client = openlineage_client(settings)
        if client is not None:
            try:
                emit(client, events)
            except OsemnError as exc:
                click.echo(f"osemn: {exc}", err=True)
                sys.exit(EXIT_ERROR)


def _open_feature_stores(config: Config) -> dict[str, FeatureStoreSource]:
    """The Feast repos of the config; one that does not load is left out of lineage."""
    if not config.feast_sources:
        return {}
    from osemn.sources.featurestore import FeatureStoreSource

    stores: dict[str, FeatureStoreSource] = {}
    for name, src in config.feast_sources.items():
        try:
            stores[name] = FeatureStoreSource(name, src, base_dir=config.base_dir)
        except OsemnError as exc:
            click.echo(f"osemn: lineage: source {name!r} not scanned: {exc}", err=True)
    return stores


# -- dashboards -----------------------------------------------------------------------


@main.command()
@config_option
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for osemn-executive.json, osemn-oncall.json, osemn-debug.json.",
)
def dashboards(config_path: str, out_dir: Path) -> None:
    """Grafana dashboards (executive, on-call, debug) as JSON."""
    from osemn.rules.dashboards import write_dashboards

    config = _load(config_path)
    try:
        paths = write_dashboards(config, out_dir)
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    for path in paths:
        click.echo(str(path))


# -- slo ------------------------------------------------------------------------------


@main.group()
def slo() -> None:
    """SLOs: export them as OpenSLO v1."""


@slo.command("export")
@config_option
@click.option(
    "-o",
    "--output",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the OpenSLO YAML to this file instead of stdout.",
)
def slo_export(config_path: str, out_file: Path | None) -> None:
    """Write the SLOs of the config as OpenSLO v1 documents."""
    from osemn.rules.burn import check_interval
    from osemn.rules.openslo import export_openslo

    config = _load(config_path)
    intervals = {s.name: check_interval(config, s) for s in config.slo_list}
    try:
        text = export_openslo(config.slo_list, check_intervals=intervals)
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    if out_file is None:
        click.echo(text, nl=False)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"osemn: cannot write {out_file}: {exc.strerror}; check the -o path", err=True)
        sys.exit(EXIT_ERROR)
