"""The long-running agent: schedules, no overlapping runs, shutdown within a deadline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa

from osemn.results import Status
from tests.agent.helpers import load_orders, make_agent, write_config
from tests.conftest import Warehouse


def slow_view(wh: Warehouse, seconds_per_row: float) -> str:
    """A view whose every row sleeps: a scan of it is slow without any big table."""
    with wh.engine.begin() as conn:
        conn.execute(
            sa.text(
                f'CREATE VIEW "{wh.schema}".slow_orders AS SELECT o.*, '
                f'pg_sleep({seconds_per_row})::text AS nap FROM "{wh.schema}".orders o'
            )
        )
    return wh.qualified("slow_orders")


def test_sigterm_deadline_cancels_in_flight_queries(
    pg_warehouse: Warehouse, tmp_path: Path
) -> None:
    load_orders(pg_warehouse)
    table = slow_view(pg_warehouse, 2.0)  # 10 rows: a 20 s scan
    datasets = f"""
  slow:
    source: wh
    table: {table}
    schedule: every 1h
    volume: {{min_rows: 1}}
"""
    agent = make_agent(write_config(tmp_path, pg_warehouse, datasets=datasets))
    agent.start(serve=False)
    deadline = time.monotonic() + 10
    while agent._scheduler is not None and agent._scheduler.in_flight == 0:
        assert time.monotonic() < deadline, "the scheduled run never started"
        time.sleep(0.05)
    time.sleep(0.5)  # the scan is now running in PostgreSQL
    started = time.monotonic()
    clean = agent.stop(timeout=1.0)
    elapsed = time.monotonic() - started
    assert clean is False
    assert elapsed < 8, f"stop took {elapsed:.1f}s, the scan was not cancelled"
    results = agent.latest()
    assert results and {r.status for r in results} == {Status.ERROR}
    assert any("shutting down" in (r.error or "") or "cancel" in (r.error or "") for r in results)
    agent.close()


def test_runs_of_one_dataset_never_overlap(pg_warehouse: Warehouse, tmp_path: Path) -> None:
    """A 1 s schedule on a ~3 s scan: runs queue up and coalesce instead of piling up."""
    load_orders(pg_warehouse)
    table = slow_view(pg_warehouse, 0.3)  # 10 rows: a 3 s scan
    datasets = f"""
  slow:
    source: wh
    table: {table}
    schedule: every 1s
    volume: {{min_rows: 1}}
"""
    agent = make_agent(write_config(tmp_path, pg_warehouse, datasets=datasets))
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, agent.warehouses["wh"].in_flight)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    agent.start(serve=False)
    time.sleep(5)
    stop.set()
    watcher.join()
    assert agent.stop(timeout=10) is True
    agent.close()
    assert peak == 1
    runs = agent.state.history("slow", "volume(window=all, min_rows=1)")
    assert 1 <= len(runs) <= 2
    assert all(r.status is Status.PASS for r in runs)
