"""Feature views in the lineage scan: each one reads its batch source's node."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from osemn._feast_config import FeastSourceConfig
from osemn.config import parse_config
from osemn.errors import ConfigError
from osemn.lineage.graph import EdgeKind, NodeKind
from osemn.lineage.incidents import failing_datasets
from osemn.lineage.scan import scan_lineage
from osemn.results import Status
from osemn.sources.featurestore import FeatureStoreSource
from osemn.sources.warehouse import Warehouse
from tests.conftest import PG_URL
from tests.featurestore.helpers import NOW, file_repo, postgres_redis_repo
from tests.lineage.helpers import freshness_result


def test_a_view_over_a_warehouse_table_joins_that_tables_node(tmp_path: Path) -> None:
    with postgres_redis_repo(tmp_path) as repo:
        config = parse_config(
            f"""version: 1
sources:
  wh: {{url: "{PG_URL}"}}
  features: {{feast: {repo.repo}}}
datasets:
  drivers: {{source: wh, table: {repo.schema}.drivers}}
lineage: {{query_history: false}}
""",
            path=str(tmp_path / "osemn.yaml"),
        )
        warehouse = Warehouse("wh", config.warehouse_sources["wh"])
        store = repo.source()
        try:
            graph = scan_lineage(
                config, {"wh": warehouse}, feature_stores={"features": store}
            ).graph
        finally:
            warehouse.close()
    table = f"wh/{repo.schema}.drivers"
    view = graph.nodes["features/driver_stats"]
    assert view.kind is NodeKind.MATERIALIZED_VIEW and view.source == "features"
    assert view.columns == ("driver_id", "conv_rate", "trips", "city")
    assert graph.nodes[table].dataset == "drivers"  # the warehouse scan's own node
    assert graph.upstream("features/driver_stats") == [table]
    assert graph.coverage({"drivers": "wh"}) == {"wh": 0.0}  # a table has no upstream
    assert not graph.problems

    # The view is the dataset its results name, so it takes part in incidents.
    assert view.dataset == "driver_stats"
    assert graph.coverage({"driver_stats": "features"}) == {"features": 1.0}
    assert graph.incident_roots(["driver_stats", "drivers"]) == {
        "driver_stats": "drivers",
        "drivers": "drivers",
    }
    # A stale view whose table is no newer: the table is failing (the data never came).
    old = NOW - timedelta(hours=2)
    latest = {
        "driver_stats": [freshness_result("driver_stats", Status.FAIL, old)],
        "drivers": [freshness_result("drivers", Status.PASS, old)],
    }
    assert failing_datasets(latest, graph) == {"driver_stats", "drivers"}


def test_a_parquet_file_is_a_node_of_its_own(tmp_path: Path) -> None:
    file_repo(tmp_path / "repo")
    config = parse_config(
        "version: 1\nsources:\n  files: {feast: repo}\n", path=str(tmp_path / "osemn.yaml")
    )
    store = FeatureStoreSource("files", FeastSourceConfig(feast="repo"), base_dir=config.base_dir)
    try:
        graph = scan_lineage(config, {}, feature_stores={"files": store}).graph
    finally:
        store.close()
    path = str(tmp_path / "repo" / "data" / "drivers.parquet")
    assert graph.nodes[f"file/{path}"].kind is NodeKind.TABLE
    assert graph.upstream("files/driver_stats") == [f"file/{path}"]
    (edge,) = graph.edges
    assert edge.kind is EdgeKind.VIEW


def test_a_model_reads_the_feature_views_it_is_served_from(tmp_path: Path) -> None:
    file_repo(tmp_path / "repo")
    text = f"""version: 1
sources:
  wh: {{url: "duckdb:///{tmp_path / "wh.duckdb"}"}}
  files: {{feast: repo}}
datasets:
  predictions: {{source: wh, table: predictions, timestamp: ts}}
  labels: {{source: wh, table: labels, timestamp: ts}}
models:
  eta:
    predictions: {{dataset: predictions, id: trip_id, prediction: eta}}
    labels: {{dataset: labels, id: trip_id, label: eta}}
    task: regression
    feature_views: [files/driver_stats, files/nope]
"""
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as conn:
        for table in ("predictions", "labels"):
            conn.execute(f"CREATE TABLE {table} (trip_id INT, eta DOUBLE, ts TIMESTAMP)")
    config = parse_config(text, path=str(tmp_path / "osemn.yaml"))
    warehouse = Warehouse("wh", config.warehouse_sources["wh"])
    store = FeatureStoreSource("files", FeastSourceConfig(feast="repo"), base_dir=config.base_dir)
    try:
        graph = scan_lineage(config, {"wh": warehouse}, feature_stores={"files": store}).graph
    finally:
        store.close()
        warehouse.close()
    assert set(graph.upstream("model/eta")) == {
        "files/driver_stats",
        "wh/main.predictions",
        "wh/main.labels",
    }
    assert [p.message for p in graph.problems if p.node == "model/eta"] == [
        "model 'eta': feature view 'files/nope' is not in its Feast registry; check the name "
        "in `feature_views:`"
    ]


def test_a_model_feature_view_must_name_a_feast_source(tmp_path: Path) -> None:
    text = f"""version: 1
sources:
  wh: {{url: "duckdb:///{tmp_path / "wh.duckdb"}"}}
datasets:
  predictions: {{source: wh, table: predictions, timestamp: ts}}
  labels: {{source: wh, table: labels, timestamp: ts}}
models:
  eta:
    predictions: {{dataset: predictions, id: trip_id, prediction: eta}}
    labels: {{dataset: labels, id: trip_id, label: eta}}
    task: regression
    feature_views: [wh/driver_stats]
"""
    with pytest.raises(
        ConfigError, match=r"models\.eta\.feature_views\.0.*<feast source>/<feature"
    ):
        parse_config(text, path=str(tmp_path / "osemn.yaml"))


def test_a_url_without_a_port_is_the_same_database_as_the_default_port() -> None:
    """Feast's offline store and osemn's warehouse may spell one server two ways."""
    from osemn.lineage.feast import _same_database

    pg = {"wh": "postgresql+psycopg://u@db.example:5432/shop"}
    my = {"wh": "mysql+pymysql://u@db.example:3306/shop"}
    assert _same_database(sa.make_url("postgresql+psycopg://x@db.example/shop"), pg) == "wh"
    assert _same_database(sa.make_url("mysql+pymysql://x@db.example/shop"), my) == "wh"
    assert _same_database(sa.make_url("mysql+pymysql://x@db.example:3307/shop"), my) is None
    assert _same_database(sa.make_url("postgresql+psycopg://x@db.example/other"), pg) is None
