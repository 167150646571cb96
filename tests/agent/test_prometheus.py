"""A real Prometheus (Debian package) scrapes ``osemn run``; the series are queryable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.agent.helpers import load_orders, order_rows, write_config
from tests.conftest import Warehouse
from tests.prometheus_helpers import poll_query, running_prometheus
from tests.servers import free_port


@pytest.fixture
def agent_and_prometheus(duckdb_warehouse: Warehouse, tmp_path: Path) -> Iterator[str]:
    load_orders(duckdb_warehouse, order_rows(at=datetime.now(UTC)))
    duckdb_warehouse.engine.dispose()
    agent_port = free_port()
    path = write_config(tmp_path, duckdb_warehouse)
    path.write_text(
        path.read_text()
        .replace("127.0.0.1:0", f"127.0.0.1:{agent_port}")
        .replace("    source: wh\n", "    source: wh\n    schedule: every 2s\n")
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "osemn", "run", "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with running_prometheus(tmp_path, f"127.0.0.1:{agent_port}") as base:
            yield base
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=40) == 0


def test_prometheus_scrapes_the_agent(agent_and_prometheus: str) -> None:
    base = agent_and_prometheus
    deadline = time.monotonic() + 90
    up = poll_query(base, 'up{job="osemn"} == 1', deadline)
    assert up[0]["value"][1] == "1"
    failed = poll_query(base, 'osemn_check_failed_rows{check="amount:in_range(0, 100)"}', deadline)
    assert failed[0]["metric"]["dataset"] == "orders" and failed[0]["value"][1] == "2"
    completeness = poll_query(base, 'osemn_column_completeness_ratio{column="email"}', deadline)
    assert float(completeness[0]["value"][1]) == pytest.approx(0.9)
    validity = poll_query(base, "osemn_dataset_validity_ratio", deadline)
    assert float(validity[0]["value"][1]) == pytest.approx(0.3)
    assert poll_query(base, 'osemn_source_up{source="wh"}', deadline)[0]["value"][1] == "1"
    assert poll_query(base, "osemn_build_info", deadline)[0]["metric"]["version"]
    assert poll_query(base, 'osemn_dataset_rows{window="1h"}', deadline)[0]["value"][1] == "10"
    freshness = poll_query(base, "osemn_dataset_freshness_seconds", deadline)
    assert float(freshness[0]["value"][1]) > 0
    runs = poll_query(base, 'osemn_check_runs_total{check="validity",status="fail"}', deadline)
    assert float(runs[0]["value"][1]) >= 1
    poll_query(base, "osemn_check_duration_seconds_bucket", deadline)
    poll_query(base, 'osemn_check_success{check="id:unique"} == 1', deadline)
    poll_query(base, "osemn_check_last_success_timestamp_seconds", deadline)
