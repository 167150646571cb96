"""The ``osemn`` command: run, check, validate, demo.

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
    agent = Agent(config)
    try:
        agent.open()
        results = agent.run_once(datasets or None, full=full)
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
        for name, runner in agent.runners.items():
            for line in runner.describe_plan():
                click.echo(f"dataset {name}: {line}")
                problems += line.startswith("ERROR")
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    finally:
        agent.close()
    sys.exit(EXIT_ERROR if problems else EXIT_PASS)


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
def demo(duration: float | None, listen: str, workdir: Path | None, no_color: bool) -> None:
    """The embedded demo: a DuckDB warehouse with live incidents and the agent on it."""
    from osemn.demo.run import run_demo

    try:
        run_demo(duration=duration, listen=listen, workdir=workdir, color=not no_color)
    except OsemnError as exc:
        click.echo(f"osemn: {exc}", err=True)
        sys.exit(EXIT_ERROR)
