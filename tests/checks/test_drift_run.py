"""The drift check end to end: windows in SQL, stored references, results, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from osemn.results import CheckKind, CheckResult, Status
from tests.agent.helpers import FrozenClock, make_agent
from tests.conftest import Warehouse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def events_table(wh: Warehouse) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table(
        "events",
        metadata,
        sa.Column("ts", sa.DateTime),
        sa.Column("amount", sa.Float),
        sa.Column("steady", sa.Float),
        sa.Column("status", sa.String(20)),
        sa.Column("empty", sa.Float),
        sa.Column("constant", sa.Float),
        schema=wh.schema if wh.dialect != "duckdb" else None,
    )
    metadata.create_all(wh.engine)
    return table


def load_events(
    wh: Warehouse,
    *,
    rows: int,
    start: datetime,
    end: datetime,
    shift: float = 0.0,
    paid_share: float = 0.5,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    seconds = rng.uniform(0, (end - start).total_seconds(), rows)
    statuses = np.where(rng.uniform(size=rows) < paid_share, "paid", "new")
    table = events_table(wh)
    data = [
        {
            "ts": (start + timedelta(seconds=float(s))).replace(tzinfo=None),
            "amount": float(a),
            "steady": float(b),
            "status": str(st),
            "empty": None,
            "constant": 7.0,
        }
        for s, a, b, st in zip(
            seconds,
            rng.normal(100 + shift * 10, 10, rows),
            rng.normal(0, 1, rows),
            statuses,
            strict=True,
        )
    ]
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(table), data)


def config_for(tmp_path: Path, wh: Warehouse, drift: str) -> Path:
    path = tmp_path / "osemn.yaml"
    path.write_text(f"""
version: 1
agent:
  state: sqlite:///{tmp_path / "state.db"}
sources:
  wh:
    url: {wh.url}
datasets:
  events:
    source: wh
    table: {wh.qualified("events")}
    timestamp: ts
    drift:
{drift}
""")
    return path


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check: r for r in results if r.kind is CheckKind.DRIFT}


def count_statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "events" in statement:
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    return seen


DRIFT = """\
      columns: [amount, steady, status]
      reference: {window: 1d, offset: 1h}
      current: {window: 1h}
      min_rows: 500"""


def test_drift_detected_and_reference_reused(duckdb_or_pg: Warehouse, tmp_path: Path) -> None:
    wh = duckdb_or_pg
    load_events(
        wh,
        rows=20_000,
        start=NOW - timedelta(days=1, hours=1),
        end=NOW - timedelta(hours=1),
        seed=1,
    )
    # the last hour: amount shifted by half a std, status 50% -> 70% paid, steady unchanged
    load_events(
        wh, rows=6_000, start=NOW - timedelta(hours=1), end=NOW, shift=0.5, paid_share=0.7, seed=2
    )
    clock = FrozenClock(NOW)
    agent = make_agent(config_for(tmp_path, wh, DRIFT), clock, wh=wh)
    seen = count_statements(agent.warehouses["wh"].engine)
    first = by_check(agent.run_once())
    first_statements = len(seen)
    assert first["amount:drift"].status is Status.FAIL
    assert first["status:drift"].status is Status.FAIL
    assert first["steady:drift"].status is Status.PASS
    share = first["drift_share"]
    assert share.status is Status.FAIL and share.measurement("drift_share") == pytest.approx(2 / 3)
    amount = first["amount:drift"]
    method = amount.details["method"] if amount.details else ""
    assert amount.measurement("drift_score", column="amount", method=method) is not None
    assert amount.details is not None
    ref, cur = amount.details["reference"], amount.details["current"]
    assert sum(ref["counts"]) == amount.details["reference_rows"]
    assert sum(cur["counts"]) == amount.details["current_rows"] == amount.rows
    assert len(ref["counts"]) == len(cur["counts"]) == len(ref["cuts"]) + 1
    # second run within the same refresh period: the reference comes from the state store
    clock.advance(timedelta(minutes=5))
    seen.clear()
    second = by_check(agent.run_once())
    agent.close()
    assert second["amount:drift"].status is Status.FAIL
    # no quantiles and no top-K this time: only the current window's histograms
    assert len(seen) <= first_statements - 3, (first_statements, seen)


def test_seasonal_reference_follows_the_weekly_pattern(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    """Amounts that follow the hour of day: seasonal sees no drift, a rolling day does."""
    wh = duckdb_warehouse
    table = events_table(wh)
    rng = np.random.default_rng(7)
    start = NOW - timedelta(weeks=5)
    data = []
    hour = start
    while hour < NOW:
        base = 200.0 if 9 <= hour.hour < 17 else 50.0
        for s, a in zip(rng.uniform(0, 3600, 120), rng.normal(base, 10, 120), strict=True):
            data.append(
                {
                    "ts": (hour + timedelta(seconds=float(s))).replace(tzinfo=None),
                    "amount": float(a),
                    "steady": 0.0,
                    "status": "x",
                    "empty": None,
                    "constant": 7.0,
                }
            )
        hour += timedelta(hours=1)
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(table), data)
    at = NOW.replace(hour=11)  # a working hour: current window 10:00-11:00
    seasonal = """\
      columns: [amount]
      reference: {seasonal: {period: 1w, cycles: 4}}
      current: {window: 1h}
      min_rows: 50"""
    rolling = seasonal.replace("{seasonal: {period: 1w, cycles: 4}}", "{window: 1d, offset: 1h}")
    results = {}
    for name, drift in (("seasonal", seasonal), ("rolling", rolling)):
        folder = tmp_path / name
        folder.mkdir()
        agent = make_agent(config_for(folder, wh, drift), FrozenClock(at), wh=wh)
        results[name] = by_check(agent.run_once())["amount:drift"]
        agent.close()
    assert results["seasonal"].status is Status.PASS, results["seasonal"]
    assert results["rolling"].status is Status.FAIL, results["rolling"]


def test_bad_columns_are_reported_and_others_still_judged(
    duckdb_or_pg: Warehouse, tmp_path: Path
) -> None:
    wh = duckdb_or_pg
    load_events(
        wh, rows=8_000, start=NOW - timedelta(days=1, hours=1), end=NOW - timedelta(hours=1), seed=3
    )
    load_events(wh, rows=2_000, start=NOW - timedelta(hours=1), end=NOW, seed=4)
    drift = """\
      columns: [amount, nope, empty, constant, status]
      methods: {status: psi}
      reference: {window: 1d, offset: 1h}
      current: {window: 1h}
      min_rows: 500"""
    agent = make_agent(config_for(tmp_path, wh, drift), FrozenClock(NOW), wh=wh)
    results = by_check(agent.run_once())
    agent.close()
    assert results["nope:drift"].status is Status.ERROR
    assert "'nope' does not exist" in (results["nope:drift"].error or "")
    assert results["status:drift"].status is Status.ERROR
    assert "needs a numeric column" in (results["status:drift"].error or "")
    assert results["empty:drift"].status is Status.INSUFFICIENT_DATA
    assert results["empty:drift"].note
    assert results["constant:drift"].status is Status.PASS
    assert results["amount:drift"].status is Status.PASS


def test_empty_window_is_insufficient_data(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    wh = duckdb_warehouse
    load_events(
        wh, rows=5_000, start=NOW - timedelta(days=1, hours=1), end=NOW - timedelta(hours=2), seed=5
    )
    agent = make_agent(config_for(tmp_path, wh, DRIFT), FrozenClock(NOW), wh=wh)
    results = by_check(agent.run_once())
    agent.close()
    for column in ("amount", "steady", "status"):
        result = results[f"{column}:drift"]
        assert result.status is Status.INSUFFICIENT_DATA, result
        assert result.note
    assert results["drift_share"].status is Status.INSUFFICIENT_DATA


def test_drift_metrics_and_json(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    """The drift series of the metrics contract, and the histograms in the JSON document."""
    import json
    import shutil
    import subprocess

    from prometheus_client import generate_latest

    wh = duckdb_warehouse
    load_events(
        wh,
        rows=6_000,
        start=NOW - timedelta(days=1, hours=1),
        end=NOW - timedelta(hours=1),
        seed=11,
    )
    load_events(wh, rows=2_000, start=NOW - timedelta(hours=1), end=NOW, shift=1.0, seed=12)
    agent = make_agent(config_for(tmp_path, wh, DRIFT), FrozenClock(NOW), wh=wh)
    agent.run_once()
    exposition = generate_latest(agent.registry)
    doc = json.loads(json.dumps(agent.results_document()))
    agent.close()
    text = exposition.decode()
    assert 'osemn_drift_detected{column="amount",dataset="events",method="psi"} 1.0' in text
    assert 'osemn_drift_score{column="amount",dataset="events",method="psi"}' in text
    assert 'osemn_drift_pvalue{column="status"' in text
    assert 'osemn_dataset_drift_share{dataset="events"}' in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install -y prometheus"
    lint = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True)
    assert lint.returncode == 0 and not lint.stdout and not lint.stderr, lint
    amount = next(r for r in doc["results"] if r["check"] == "amount:drift")
    assert amount["status"] == "fail" and amount["kind"] == "drift"
    assert len(amount["details"]["reference"]["counts"]) == len(
        amount["details"]["current"]["counts"]
    )
    assert doc["summary"]["fail"] >= 1


def test_a_retyped_column_gets_a_new_reference(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    """status turns numeric: its categorical profile is not reused; amount is untouched."""
    wh = duckdb_warehouse
    load_events(
        wh,
        rows=6_000,
        start=NOW - timedelta(days=1, hours=1),
        end=NOW - timedelta(hours=1),
        seed=21,
    )
    load_events(wh, rows=2_000, start=NOW - timedelta(hours=1), end=NOW, seed=22)
    clock = FrozenClock(NOW)
    agent = make_agent(config_for(tmp_path, wh, DRIFT), clock, wh=wh)
    before = by_check(agent.run_once())
    assert before["status:drift"].details and before["status:drift"].details["method"] != "psi"
    with wh.engine.begin() as conn:
        conn.execute(
            sa.text(
                "ALTER TABLE events ALTER COLUMN status SET DATA TYPE INTEGER "
                "USING CASE status WHEN 'paid' THEN 1 ELSE 0 END"
            )
        )
    clock.advance(timedelta(minutes=1))
    after = by_check(agent.run_once())
    agent.close()
    assert after["amount:drift"].status is Status.PASS
    assert after["status:drift"].status is Status.PASS, after["status:drift"]
    assert after["status:drift"].details and after["status:drift"].details["method"] == "psi"
