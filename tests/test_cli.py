"""The CLI contract: check's exit codes and JSON, validate, and run under SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandera.pandas as pa
import pytest
from click.testing import CliRunner

from osemn.cli import main
from tests.agent.helpers import load_orders, order_rows, write_config
from tests.conftest import Warehouse
from tests.servers import free_port


def clean_rows() -> list[dict[str, object]]:
    rows = order_rows(at=datetime.now(UTC))
    return [r for r in rows if r["id"] in (1, 2, 10)]


def test_check_json_exit_1_on_failures(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    path = write_config(tmp_path, duckdb_warehouse)
    result = CliRunner().invoke(main, ["check", "-c", str(path), "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"results", "summary"}
    by_check = {r["check"]: r for r in doc["results"]}
    in_range = by_check["amount:in_range(0, 100)"]
    assert in_range["status"] == "fail" and in_range["failed_rows"] == 2 and in_range["rows"] == 10
    for key in (
        "dataset",
        "kind",
        "check",
        "status",
        "rows",
        "failed_rows",
        "duration_seconds",
        "measurements",
        "failures",
        "error",
    ):
        assert key in in_range
    assert doc["summary"]["fail"] >= 5 and doc["summary"]["error"] == 0
    assert by_check["validity"]["measurements"]["completeness_ratio"]["email"] == 0.9
    # every result of one dataset run shares that run's duration and end time
    assert len({r["duration_seconds"] for r in doc["results"]}) == 1
    assert len({r["finished_at"] for r in doc["results"]}) == 1


def test_check_exit_0_when_clean(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse, clean_rows())
    duckdb_warehouse.engine.dispose()
    path = write_config(tmp_path, duckdb_warehouse)
    text = (
        path.read_text()
        .replace("min_rows: 5", "min_rows: 1")
        .replace("max_age: 15m", "max_age: 3650d")
    )
    path.write_text(text)
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "DATASET" in result.stdout and "PASS" in result.stdout
    assert result.stdout.rstrip().endswith("0 failed, 0 errored")


def test_check_exit_2_on_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "osemn.yaml"
    path.write_text("version: 1\nsources:\n  wh: {url: 'duckdb:///x.duckdb', colour: red}\n")
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 2
    assert "osemn.yaml:3: sources.wh.colour: unknown key" in result.stderr


def test_check_exit_2_on_bad_schema_file(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    path = write_config(tmp_path, duckdb_warehouse)
    (tmp_path / "orders.yaml").write_text("columns: [this is: not a schema\n")
    result = CliRunner().invoke(main, ["check", "-c", str(path), "--format", "json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    validity = next(r for r in doc["results"] if r["check"] == "validity")
    assert validity["status"] == "error" and "orders.yaml" in validity["error"]
    # freshness and volume of the same dataset still ran
    assert any(r["kind"] == "freshness" and r["status"] != "error" for r in doc["results"])


def test_check_unknown_dataset(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    path = write_config(tmp_path, duckdb_warehouse)
    result = CliRunner().invoke(main, ["check", "-c", str(path), "nope"])
    assert result.exit_code == 2 and "unknown dataset(s) 'nope'" in result.stderr


def test_validate_says_what_would_run(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    path = write_config(tmp_path, duckdb_warehouse)
    result = CliRunner().invoke(main, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "source wh: ok (duckdb)" in result.stdout
    assert "id:unique: proven by constraint (primary key id)" in result.stdout
    assert "email:unique: one grouped statement" in result.stdout
    assert "incremental on created_at (lateness 1h)" in result.stdout


def test_validate_reports_a_dead_source(tmp_path: Path) -> None:
    import sqlalchemy as sa

    wh = Warehouse(
        "postgresql", "postgresql+psycopg://u:pw@127.0.0.1:1/x", sa.create_engine("sqlite://"), None
    )
    path = write_config(tmp_path, wh, datasets=" {}")
    result = CliRunner().invoke(main, ["validate", "-c", str(path)])
    assert result.exit_code == 2
    assert "source wh: ERROR" in result.stdout and ":pw@" not in result.stdout


def test_run_serves_and_exits_0_on_sigterm(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    port = free_port()
    path = write_config(tmp_path, duckdb_warehouse)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "osemn", "run", "-c", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        doc: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                doc = httpx.get(f"http://127.0.0.1:{port}/api/v1/results", timeout=2).json()
                if doc.get("results"):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert doc.get("results"), "the agent never published results"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert (
            'osemn_check_failed_rows{check="amount:in_range(0, 100)",dataset="orders"} 2.0'
            in metrics
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("model", ["tests.test_cli:OrdersModel"])
def test_check_with_dataframe_model(
    model: str, duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    path = write_config(tmp_path, duckdb_warehouse)
    path.write_text(path.read_text().replace("schema: orders.yaml", f"schema: '{model}'"))
    result = CliRunner().invoke(main, ["check", "-c", str(path), "--format", "json"])
    doc = json.loads(result.stdout)
    by_check = {r["check"]: r for r in doc["results"]}
    assert by_check["amount:greater_than_or_equal_to(0)"]["failed_rows"] == 1


class OrdersModel(pa.DataFrameModel):
    amount: float = pa.Field(ge=0, nullable=True)


def test_validate_lists_the_feature_views_of_a_feast_source(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    from tests.featurestore.helpers import file_repo

    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    file_repo(tmp_path / "repo")
    path = write_config(
        tmp_path, duckdb_warehouse, extra_sources="  features: {feast: repo, interval: 10m}\n"
    )
    result = CliRunner().invoke(main, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert f"source features: ok (Feast repo {tmp_path / 'repo'}, feature views: 1)" in (
        result.stdout
    )
    parquet = tmp_path / "repo" / "data" / "drivers.parquet"
    assert (
        f"source features: feature view driver_stats: 3 features, file source {parquet}: "
        "freshness, completeness, dtype, materialization, online parity every 10m; probes of "
        "5 entities every 30s (timeout 2s)"
    ) in result.stdout

    path.write_text(
        path.read_text().replace(
            "interval: 10m}", "interval: 10m, feature_views: {driver_stats: {schema: nope.yaml}}}"
        )
    )
    result = CliRunner().invoke(main, ["validate", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert "source features: ERROR feature view driver_stats: " in result.stdout
    assert "nope.yaml" in result.stdout


def test_lineage_has_the_feature_views(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    from tests.featurestore.helpers import file_repo

    load_orders(duckdb_warehouse)
    duckdb_warehouse.engine.dispose()
    file_repo(tmp_path / "repo")
    path = write_config(tmp_path, duckdb_warehouse, extra_sources="  features: {feast: repo}\n")
    result = CliRunner().invoke(main, ["lineage", "-c", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    nodes = {n["key"]: n for n in json.loads(result.stdout)["nodes"]}
    parquet = f"file/{tmp_path / 'repo' / 'data' / 'drivers.parquet'}"
    assert nodes["features/driver_stats"]["upstream"] == [parquet]
    assert nodes["features/driver_stats"]["kind"] == "materialized_view"
    assert any(n["dataset"] == "orders" for n in nodes.values())  # the warehouse's scan
