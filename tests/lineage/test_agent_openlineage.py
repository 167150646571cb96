"""The agent's OpenLineage events: a START and COMPLETE per check run and the scan's
edges, through the durable outbox, so a receiver that is down never holds up a check."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.agent.helpers import FrozenClock, load_orders, make_agent, write_config
from tests.conftest import Warehouse
from tests.servers import Answer, HttpReceiver


def _config(tmp_path: Path, wh: Warehouse, transport: str) -> Path:
    path = write_config(tmp_path, wh)
    path.write_text(
        path.read_text()
        + "  v_orders: {source: wh, table: v_orders}\n"
        + f"lineage:\n  openlineage:\n    namespace: dq\n    transport: {transport}\n"
    )
    return path


def _view(wh: Warehouse) -> None:
    with wh.engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW v_orders AS SELECT id, amount FROM orders"))


def test_check_runs_and_the_scan_reach_the_file_transport(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    load_orders(duckdb_warehouse)
    _view(duckdb_warehouse)
    out = tmp_path / "events.jsonl"
    path = _config(
        tmp_path, duckdb_warehouse, f'{{type: file, log_file_path: "{out}", append: true}}'
    )
    agent = make_agent(path, FrozenClock(), wh=duckdb_warehouse)
    try:
        agent.scan_lineage()
        agent.run_dataset("orders")
        assert agent.outbox is not None
        assert not out.exists()  # the run only wrote to the outbox
        assert agent.outbox.deliver_due() == 3
    finally:
        agent.close()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    scan, start, end = events
    assert scan["outputs"][0]["name"] == "main.v_orders"
    assert scan["inputs"][0]["name"] == "main.orders"
    assert set(scan["outputs"][0]["facets"]["columnLineage"]["fields"]) == {"id", "amount"}
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == end["run"]["runId"]
    assert start["job"] == end["job"] == {"namespace": "dq", "name": "check.orders", "facets": {}}
    (dataset,) = end["inputs"]
    assert dataset["namespace"].startswith("duckdb://") and dataset["name"] == "main.orders"
    assertions = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {
        "assertion": "amount:in_range(0, 100)",
        "success": False,
        "column": "amount",
        "params": {},
    } in assertions
    assert dataset["inputFacets"]["dataQualityMetrics"]["rowCount"] == 10
    assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == [
        "id",
        "customer_id",
        "amount",
        "status",
        "email",
        "created_at",
    ]


def test_a_receiver_that_is_down_never_blocks_checks_and_gets_the_events_later(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    load_orders(duckdb_warehouse)
    _view(duckdb_warehouse)
    down = True

    def respond(_n: int, _r: object) -> Answer:
        return Answer(status=503 if down else 201)

    with HttpReceiver(respond) as marquez:
        path = _config(
            tmp_path,
            duckdb_warehouse,
            f'{{type: http, url: "{marquez.url}", endpoint: api/v1/lineage, timeout: 2, '
            "retry: {total: 0}}",
        )
        clock = FrozenClock()
        agent = make_agent(path, clock, wh=duckdb_warehouse)
        try:
            started = time.monotonic()
            agent.run_dataset("orders")
            assert time.monotonic() - started < 5
            assert agent.outbox is not None
            assert agent.outbox.pending()["openlineage"] == 2
            agent.outbox.deliver_due()  # refused with 503: kept, retried later
            assert agent.outbox.pending()["openlineage"] == 2
            assert agent.outbox.counts()[("openlineage", "retried")] == 1
            down = False
            clock.advance(timedelta(minutes=10))
            assert agent.outbox.deliver_due() == 2
            assert agent.outbox.pending()["openlineage"] == 0
        finally:
            agent.close()
        delivered = [r for r in marquez.received if r.status == 201]
    assert [r.path for r in delivered] == ["/api/v1/lineage"] * 2
    assert [r.json()["eventType"] for r in delivered] == ["START", "COMPLETE"]


def test_osemn_check_sends_its_runs_events_before_it_exits(
    tmp_path: Path, duckdb_warehouse: Warehouse
) -> None:
    from click.testing import CliRunner

    from osemn.cli import main

    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    with HttpReceiver() as marquez:
        path = write_config(tmp_path, duckdb_warehouse)
        path.write_text(
            path.read_text()
            + "lineage:\n  openlineage:\n    namespace: dq\n"
            + f'    transport: {{type: http, url: "{marquez.url}", endpoint: api/v1/lineage}}\n'
        )
        result = CliRunner().invoke(main, ["check", "-c", str(path), "orders"])
        assert result.exit_code == 1, result.output  # the orders fixture has failing rows
        received = list(marquez.received)
    assert {r.path for r in received} == {"/api/v1/lineage"}
    events = [r.json() for r in received]
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "check.orders"),
        ("COMPLETE", "check.orders"),
    ]
