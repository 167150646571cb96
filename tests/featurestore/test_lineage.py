"""Feature views in the lineage scan: each one reads its batch source's node."""

from __future__ import annotations

from pathlib import Path

from osemn._feast_config import FeastSourceConfig
from osemn.config import parse_config
from osemn.lineage.graph import EdgeKind, NodeKind
from osemn.lineage.scan import scan_lineage
from osemn.sources.featurestore import FeatureStoreSource
from osemn.sources.warehouse import Warehouse
from tests.conftest import PG_URL
from tests.featurestore.helpers import file_repo, postgres_redis_repo


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
