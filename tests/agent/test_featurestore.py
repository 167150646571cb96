"""The agent with a Feast source beside a warehouse: check, /metrics over HTTP, SLIs, outages.

Real repos from ``tests.featurestore.helpers``: a parquet file with the SQLite
online store, and a PostgreSQL table with the Redis online store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandera.pandas as pa
import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osemn._feast_config import FeastSourceConfig
from osemn.agent._featurestore import StoreJobs
from osemn.agent.agent import Agent
from osemn.agent.state import StateStore
from osemn.cli import main
from osemn.config import parse_config
from osemn.results import Status
from tests.agent.helpers import load_orders, order_rows, write_config
from tests.conftest import Warehouse
from tests.exporters.test_metrics import promtool_check
from tests.featurestore.helpers import file_repo, postgres_redis_repo
from tests.servers import free_port

Samples = dict[str, list[tuple[dict[str, str], float]]]
FEAST = """\
  features:
    feast: {repo}
    probe: {{interval: 1s, timeout: 2s}}
"""
AVAILABILITY = """
slos:
  - {name: features-up, sli: availability, source: features, objective: 99%, window: 1d}
  - name: drivers-up
    sli: availability
    source: features
    feature_view: driver_stats
    objective: 99%
    window: 1d
"""


def feast_config(tmp_path: Path, wh: Warehouse, repo: str, extra: str = "") -> Path:
    """The orders dataset on ``wh`` and a Feast source ``features`` on ``repo``."""
    load_orders(wh, order_rows(at=datetime.now(UTC)))
    wh.engine.dispose()  # DuckDB: the agent opens the file with its own configuration
    path = write_config(tmp_path, wh, extra_sources=FEAST.format(repo=repo))
    path.write_text(path.read_text() + extra)
    return path


@pytest.fixture
def running() -> Iterator[Callable[[Path], Agent]]:
    """Start an agent (HTTP on a free port, every schedule) on a config; stop it after."""
    agents: list[Agent] = []

    def start(path: Path) -> Agent:
        config = parse_config(path.read_text(), path=str(path))
        agent = Agent(config)
        agents.append(agent)
        agent.open()
        agent.start()
        return agent

    yield start
    for agent in agents:
        agent.stop(timeout=10)
        agent.close()


def scrape_until(agent: Agent, done: Callable[[Samples], bool]) -> str:
    """GET /metrics until ``done(samples by name)`` holds (30s at most); the last body."""
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(f"http://127.0.0.1:{agent.port}/metrics", timeout=5).text
        samples: Samples = {}
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                samples.setdefault(s.name, []).append((s.labels, s.value))
        if done(samples):
            return body
        assert time.monotonic() < deadline, f"metrics never complete:\n{body}"
        time.sleep(0.3)


def slos_until(agent: Agent, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Evaluate and GET /api/v1/slos until ``done`` holds for every SLO (30s at most).

    A probe is in the metrics a moment before its SLI event is recorded.
    """
    deadline = time.monotonic() + 30
    while True:
        agent.evaluate_slos()
        doc = httpx.get(f"http://127.0.0.1:{agent.port}/api/v1/slos", timeout=5).json()
        by_name = {s["slo"]: s for s in doc["slos"]}
        if all(done(s) for s in by_name.values()) or time.monotonic() > deadline:
            return by_name
        time.sleep(0.3)


def test_check_json_has_the_feature_store_results(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    file_repo(tmp_path / "repo")
    schema = pa.DataFrameSchema({"trips": pa.Column(int, pa.Check.ge(11))})
    (tmp_path / "drivers.yaml").write_text(schema.to_yaml() or "")
    path = feast_config(tmp_path, duckdb_warehouse, "repo")  # relative to osemn.yaml's folder
    path.write_text(
        path.read_text().replace(
            "    feast: repo\n",
            "    feast: repo\n    feature_views: {driver_stats: {schema: drivers.yaml}}\n",
        )
    )
    result = CliRunner().invoke(main, ["check", "-c", str(path), "--format", "json"])
    assert result.exit_code == 1, result.output  # orders has failing rows; the views pass
    doc = json.loads(result.stdout)
    views = {(r["kind"], r["check"]): r for r in doc["results"] if r["dataset"] == "driver_stats"}
    assert views[("featurestore", "materialization:freshness(max_age=1d)")]["status"] == "pass"
    assert views[("featurestore", "online_store:available")]["status"] == "pass"
    assert views[("featurestore", "trips:online_parity(tolerance=0)")]["status"] == "pass"
    fresh = views[("freshness", "event_timestamp:freshness(max_age=1d)")]
    assert fresh["status"] == "pass" and fresh["measurements"]["freshness_seconds"] > 0
    conv = views[("schema", "conv_rate:completeness(min=0)")]
    assert conv["measurements"]["completeness_ratio"] == {"conv_rate": 0.75}
    # The view's pandera schema runs fused on the parquet file: trips 10 breaks ge(11).
    trips = views[("schema", "trips:greater_than_or_equal_to(11)")]
    assert (trips["status"], trips["rows"], trips["failed_rows"]) == ("fail", 4, 1)
    assert {r["dataset"] for r in doc["results"]} == {"orders", "driver_stats"}


def test_running_agent_exports_feature_store_metrics_and_availability_events(
    duckdb_warehouse: Warehouse, tmp_path: Path, running: Callable[[Path], Agent]
) -> None:
    file_repo(tmp_path / "repo")
    path = feast_config(tmp_path, duckdb_warehouse, str(tmp_path / "repo"), AVAILABILITY)
    agent = running(path)

    def complete(samples: Samples) -> bool:
        up = samples.get("osemn_featurestore_up", [])
        counts = samples.get("osemn_featurestore_request_seconds_count", [])
        return (
            any(v == 1 for _, v in up)
            and any(v >= 2 for _, v in counts)
            and "osemn_dataset_freshness_seconds" in samples
            and any(lb.get("dataset") == "orders" for lb, _ in samples["osemn_check_runs_total"])
        )

    body = scrape_until(agent, complete)
    assert 'osemn_featurestore_up{feature_view="driver_stats",store="features"} 1.0' in body
    assert 'osemn_source_up{source="features"} 1.0' in body
    assert 'osemn_dataset_freshness_seconds{dataset="driver_stats"}' in body
    assert 'osemn_column_completeness_ratio{column="conv_rate",dataset="driver_stats"} 0.75' in body
    assert 'osemn_featurestore_parity_mismatch_ratio{feature="trips"' in body
    assert 'osemn_check_duration_seconds_count{dataset="driver_stats",kind="featurestore"}' in body
    done = promtool_check(body.encode())
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

    # Probes go on every second: each one is an event of both SLOs.
    by_name = slos_until(agent, lambda s: s["good"] >= 2)
    assert by_name["features-up"]["dataset"] == "features"
    assert by_name["drivers-up"]["dataset"] == "driver_stats"
    for name in ("features-up", "drivers-up"):
        assert by_name[name]["good"] >= 2 and by_name[name]["bad"] == 0
    results = httpx.get(f"http://127.0.0.1:{agent.port}/api/v1/results", timeout=5).json()
    checks = {(r["dataset"], r["check"]) for r in results["results"]}
    assert ("driver_stats", "online_store:available") in checks
    assert ("driver_stats", "materialization:freshness(max_age=1d)") in checks
    page = httpx.get(f"http://127.0.0.1:{agent.port}/", timeout=5).text
    assert "online_store:available" in page and "driver_stats" in page


def test_redis_on_a_wrong_port_is_down_while_the_warehouse_runs(
    duckdb_warehouse: Warehouse, tmp_path: Path, running: Callable[[Path], Agent]
) -> None:
    with postgres_redis_repo(tmp_path) as repo:
        repo.set_redis_port(free_port())
        path = feast_config(tmp_path, duckdb_warehouse, str(repo.repo), AVAILABILITY)
        path.write_text(path.read_text().replace("timeout: 2s", "timeout: 1s"))
        agent = running(path)

        def complete(samples: Samples) -> bool:
            down = [v for _, v in samples.get("osemn_featurestore_up", [])] == [0.0]
            runs = samples.get("osemn_check_runs_total", [])
            orders = any(lb["dataset"] == "orders" and v >= 1 for lb, v in runs)
            return down and orders

        body = scrape_until(agent, complete)
        slo = slos_until(agent, lambda s: s["bad"] >= 1)["drivers-up"]
        agent.stop(timeout=10)  # before the repo's schema and Redis keys are dropped
    assert 'osemn_featurestore_probes_total{feature_view="driver_stats",outcome="down"' in body
    assert 'osemn_source_up{source="wh"} 1.0' in body
    assert 'osemn_check_success{check="id:unique",dataset="orders"} 1.0' in body
    # The offline checks on PostgreSQL go on: the batch source is up, only Redis is not.
    fresh = [
        r
        for r in agent.latest()
        if r.dataset == "driver_stats" and r.check == "event_timestamp:freshness(max_age=1d)"
    ]
    assert fresh and fresh[0].status is Status.PASS
    assert slo["bad"] >= 1 and slo["good"] == 0


def test_a_missing_repo_is_a_down_source_named_by_validate_and_check(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    path = feast_config(tmp_path, duckdb_warehouse, "no_such_repo")
    result = CliRunner().invoke(main, ["validate", "-c", str(path)])
    assert result.exit_code == 2, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("source features:"))
    assert "ERROR" in line and str(tmp_path / "no_such_repo") in line and "`feast:`" in line
    assert "source wh: ok (duckdb)" in result.stdout

    result = CliRunner().invoke(main, ["check", "-c", str(path), "--format", "json"])
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    (load,) = [r for r in doc["results"] if r["dataset"] == "features"]
    assert (load["kind"], load["check"], load["status"]) == ("featurestore", "repo:load", "error")
    assert str(tmp_path / "no_such_repo") in load["error"]
    assert any(r["dataset"] == "orders" and r["status"] == "pass" for r in doc["results"])


def test_a_repo_that_fails_to_load_backs_off_and_loads_once_it_exists(tmp_path: Path) -> None:
    seconds = [0.0]
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    state.open()
    store = StoreJobs(
        "features",
        FeastSourceConfig(feast="repo"),
        base_dir=tmp_path,
        state=state,
        clock=lambda: datetime.now(UTC),
        mask_key=b"k" * 32,
        monotonic=lambda: seconds[0],
    )
    try:
        (first,) = store.run_checks()
        assert (first.check, first.status) == ("repo:load", Status.ERROR)
        assert "does not exist" in (first.error or "") and not store.up
        file_repo(tmp_path / "repo")
        (second,) = store.run_checks()  # within the backoff: not tried again
        assert "loads its Feast repo again in" in (second.error or "")
        assert store.probe() == []
        seconds[0] += 2.0  # the first backoff is at most 1s
        results = store.run_checks()
        assert {r.dataset for r in results} == {"driver_stats"} and store.up
        (probe,) = store.probe()
        assert probe.feature_view == "driver_stats" and probe.good == 1
    finally:
        store.close()
        state.close()


def test_a_repo_that_does_not_load_is_a_down_source_and_the_warehouse_goes_on(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    path = feast_config(tmp_path, duckdb_warehouse, "no_such_repo")
    agent = Agent(parse_config(path.read_text(), path=str(path)))
    agent.open()
    try:
        results = agent.run_once()
        assert agent.ready() == (True, "ready")
    finally:
        agent.close()
    body = generate_latest(agent.registry).decode()
    assert 'osemn_source_up{source="features"} 0.0' in body
    assert 'osemn_source_up{source="wh"} 1.0' in body
    assert 'osemn_check_runs_total{check="repo:load",dataset="features",status="error"} 1.0' in (
        body
    )
    assert {r.dataset for r in results if r.status is Status.PASS} == {"orders"}
