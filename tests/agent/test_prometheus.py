"""A real Prometheus (Debian package) scrapes ``osemn run``; the series are queryable."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.helpers import load_orders, order_rows, write_config
from tests.conftest import Warehouse
from tests.test_cli import free_port


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError(
            "prometheus is not installed: apt-get install -y prometheus (README's test command)"
        )
    return binary


@pytest.fixture
def agent_and_prometheus(duckdb_warehouse: Warehouse, tmp_path: Path) -> Iterator[str]:
    load_orders(duckdb_warehouse, order_rows(at=datetime.now(UTC)))
    duckdb_warehouse.engine.dispose()
    agent_port, prom_port = free_port(), free_port()
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
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: osemn
    static_configs:
      - targets: ['127.0.0.1:{agent_port}']
""")
    prom = subprocess.Popen(
        [
            _prometheus_binary(),
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{prom_port}"
    finally:
        for proc in (prom, agent):
            proc.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=40) == 0
        prom.wait(timeout=30)


def query(base: str, promql: str, deadline: float) -> list[dict[str, Any]]:
    """Poll the instant-query API until the expression returns series."""
    while True:
        try:
            body = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
            if body["status"] == "success" and body["data"]["result"]:
                return list(body["data"]["result"])
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never returned {promql!r}")
        time.sleep(0.5)


def test_prometheus_scrapes_the_agent(agent_and_prometheus: str) -> None:
    base = agent_and_prometheus
    deadline = time.monotonic() + 90
    up = query(base, 'up{job="osemn"} == 1', deadline)
    assert up[0]["value"][1] == "1"
    failed = query(base, 'osemn_check_failed_rows{check="amount:in_range(0, 100)"}', deadline)
    assert failed[0]["metric"]["dataset"] == "orders" and failed[0]["value"][1] == "2"
    completeness = query(base, 'osemn_column_completeness_ratio{column="email"}', deadline)
    assert float(completeness[0]["value"][1]) == pytest.approx(0.9)
    validity = query(base, "osemn_dataset_validity_ratio", deadline)
    assert float(validity[0]["value"][1]) == pytest.approx(0.3)
    assert query(base, 'osemn_source_up{source="wh"}', deadline)[0]["value"][1] == "1"
    assert query(base, "osemn_build_info", deadline)[0]["metric"]["version"]
    assert query(base, 'osemn_dataset_rows{window="1h"}', deadline)[0]["value"][1] == "10"
    freshness = query(base, "osemn_dataset_freshness_seconds", deadline)
    assert float(freshness[0]["value"][1]) > 0
    runs = query(base, 'osemn_check_runs_total{check="validity",status="fail"}', deadline)
    assert float(runs[0]["value"][1]) >= 1
    query(base, "osemn_check_duration_seconds_bucket", deadline)
    query(base, 'osemn_check_success{check="id:unique"} == 1', deadline)
    query(base, "osemn_check_last_success_timestamp_seconds", deadline)
