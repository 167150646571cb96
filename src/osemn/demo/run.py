"""``osemn demo``: the demo warehouse, its feature store, the incident generator and
the agent, in one process.

DuckDB lets one process write a database file and refuses a second connection
with another configuration in the same process, so the demo opens the warehouse
once, read-write, and hands that engine to both the generator (the pipeline
being watched) and the agent (which sends it nothing but SELECTs). The Feast
repo's feature tables are snapshotted and exported through that engine too, on
the generator's thread.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TextIO

from osemn._clock import utcnow
from osemn.agent.agent import Agent
from osemn.config import parse_config
from osemn.demo.features import FEATURE_SOURCE, build_feature_repo
from osemn.demo.incidents import IncidentGenerator, Timeline
from osemn.demo.status import render_status
from osemn.demo.warehouse import DEMO_SCHEMA_DIR, create_demo_warehouse, demo_config_text

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
PLAIN_REFRESH_SECONDS = 5.0  # when stdout is not a terminal, print a table now and then


def run_demo(
    *,
    duration: float | None,
    listen: str,
    workdir: Path | None,
    color: bool,
    alertmanager: str | None = None,
) -> None:
    """Create the demo warehouse and feature repo, start generator and agent, show status.

    Alerts go to ``alerts.jsonl`` in the work folder and, given ``alertmanager``
    (a URL), to that Alertmanager as well.

    Raises:
        ConfigError: for a duration too short to show every incident.
        SourceError: Feast could not apply or materialize the demo's feature repo.
    """
    timeline = Timeline.for_duration(duration)
    # Feast prints while it materializes, on the generator's thread, by swapping
    # sys.stdout for a moment: the status table goes to the stream held here.
    out = sys.stdout
    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="osemn-demo-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    warehouse_path = root / "demo.duckdb"
    warehouse_path.unlink(missing_ok=True)
    (root / "state.db").unlink(missing_ok=True)
    engine = create_demo_warehouse(warehouse_path, clock=utcnow)
    _say(out, "osemn demo: building the Feast feature repo (importing Feast takes seconds)\n")
    # Feast logs each registry refresh at INFO: several a second here, drowning the demo's own.
    logging.getLogger("feast").setLevel(logging.WARNING)
    features = build_feature_repo(root, engine, clock=utcnow)
    config_path = root / "osemn.yaml"
    alerts_path = root / "alerts.jsonl"
    alerts_path.unlink(missing_ok=True)
    config_path.write_text(
        demo_config_text(
            warehouse_path,
            f"sqlite:///{root / 'state.db'}",
            listen,
            DEMO_SCHEMA_DIR,
            alerts_path=alerts_path,
            alertmanager=alertmanager,
            feature_repo=features.repo,
        )
    )
    config = parse_config(config_path.read_text(), path=str(config_path))
    agent = Agent(config, engines={"warehouse": engine})
    generator = IncidentGenerator(engine, clock=utcnow, timeline=timeline, features=features)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tty = out.isatty()
    try:
        agent.open()
        generator.start()
        agent.start()
        _say(
            out,
            f"osemn demo: warehouse {warehouse_path}, feature repo {features.repo}, "
            f"config {config_path}\n"
            f"metrics on http://{config.agent.host}:{agent.port}/metrics, "
            f"status page on http://{config.agent.host}:{agent.port}/\n"
            f"alerts to {alerts_path}" + (f" and {alertmanager}" if alertmanager else "") + "\n",
        )
        started = utcnow()
        last_plain = 0.0
        while not done.wait(REFRESH_SECONDS):
            now = utcnow()
            elapsed = (now - started).total_seconds()
            if duration is not None and elapsed >= duration:
                break
            if tty:
                width = shutil.get_terminal_size((100, 40)).columns
                table = render_status(
                    agent.latest(),
                    now=now,
                    incident=generator.current_incident(now),
                    width=width,
                    color=color,
                    slos=agent.slo_document(),
                    feature_stores=(FEATURE_SOURCE,),
                )
                _say(out, "\x1b[H\x1b[2J" + table + "\n")
            elif elapsed - last_plain >= PLAIN_REFRESH_SECONDS:
                last_plain = elapsed
                _say(out, _plain(agent, generator, now) + "\n")
    finally:
        generator.stop()
        agent.stop(timeout=10)
        now = utcnow()
        _say(out, _plain(agent, generator, now) + "\n")
        agent.close()
        engine.dispose()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _plain(agent: Agent, generator: IncidentGenerator, now: datetime) -> str:
    return render_status(
        agent.latest(),
        now=now,
        incident=generator.current_incident(now),
        width=120,
        color=False,
        slos=agent.slo_document(),
        feature_stores=(FEATURE_SOURCE,),
    )


def _say(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()
