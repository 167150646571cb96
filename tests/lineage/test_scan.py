"""The lineage scan against real warehouses: PostgreSQL (views, materialized views,
foreign keys, a view sqlglot cannot read, dbt) and DuckDB."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from osemn.agent.agent import Agent
from osemn.agent.server import AgentServer
from osemn.config import Config, parse_config
from osemn.lineage.graph import EdgeKind, NodeKind
from osemn.lineage.scan import scan_lineage
from osemn.sources.warehouse import Warehouse
from tests.conftest import PG_URL

_DDL = """
CREATE TABLE {s}.customers (id int PRIMARY KEY, name text);
CREATE TABLE {s}.orders (id int PRIMARY KEY, customer_id int REFERENCES {s}.customers (id),
                         amount numeric, created_at timestamp);
CREATE TABLE {s}.predictions (request_id int, p float, at timestamp);
CREATE TABLE {s}.labels (request_id int, churned boolean, at timestamp);
CREATE TABLE {s}.segs (seg lseg);
CREATE VIEW {s}.big_orders AS SELECT o.id, o.amount, c.name FROM {s}.orders o
    JOIN {s}.customers c ON c.id = o.customer_id WHERE o.amount > 100;
CREATE VIEW {s}.big_names AS SELECT name, count(*) AS n FROM {s}.big_orders GROUP BY name;
CREATE MATERIALIZED VIEW {s}.daily AS SELECT date_trunc('day', created_at) AS day,
    sum(amount) AS total FROM {s}.orders GROUP BY 1;
CREATE VIEW {s}.seg_lengths AS SELECT @-@ seg AS len FROM {s}.segs;
"""


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = f"osemn_lineage_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        for statement in _DDL.format(s=schema).split(";"):
            if statement.strip():
                conn.execute(sa.text(statement))
    yield schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _config(schema: str, tmp_path: Path, extra: str = "") -> Config:
    text = f"""
version: 1
agent: {{state: "sqlite:///{tmp_path / "state.db"}", listen: "127.0.0.1:0"}}
sources: {{wh: {{url: "{PG_URL}"}}}}
datasets:
  orders: {{source: wh, table: {schema}.orders, timestamp: created_at}}
  customers: {{source: wh, table: {schema}.customers}}
  big_names: {{source: wh, table: {schema}.big_names}}
  predictions: {{source: wh, table: {schema}.predictions, timestamp: at}}
  labels: {{source: wh, table: {schema}.labels, timestamp: at}}
models:
  churn:
    predictions: {{dataset: predictions, id: request_id, score: p}}
    labels: {{dataset: labels, id: request_id, label: churned}}
    task: binary
lineage:
  roots: [customers]
{extra}
"""
    path = tmp_path / "osemn.yaml"
    path.write_text(text)
    return parse_config(text, path=str(path))


def _scan(config: Config):  # type: ignore[no-untyped-def]
    warehouses = {n: Warehouse(n, s) for n, s in config.sources.items()}
    try:
        return scan_lineage(config, warehouses).graph
    finally:
        for w in warehouses.values():
            w.close()


def test_postgres_tables_views_foreign_keys_and_columns(pg_schema: str, tmp_path: Path) -> None:
    graph = _scan(_config(pg_schema, tmp_path))
    key = f"wh/{pg_schema}."
    kinds = {k.removeprefix(key): n.kind for k, n in graph.nodes.items() if k.startswith(key)}
    assert kinds["orders"] is NodeKind.TABLE
    assert kinds["big_orders"] is NodeKind.VIEW
    assert kinds["daily"] is NodeKind.MATERIALIZED_VIEW
    assert sorted(graph.upstream(key + "big_orders")) == [key + "customers", key + "orders"]
    assert graph.upstream(key + "big_names") == [key + "big_orders"]
    assert graph.upstream(key + "daily") == [key + "orders"]
    # A foreign key is a relationship, not a data flow.
    (fk,) = graph.foreign_keys
    assert (fk.child, fk.parent, fk.columns) == (
        key + "orders",
        key + "customers",
        ("customer_id",),
    )
    assert key + "customers" not in graph.upstream(key + "orders")
    # Column lineage, nested views expanded down to tables; join and filter columns indirect.
    assert graph.column_origins(key + "big_names", "name") == [(key + "customers", "name")]
    indirect = {
        (c.upstream, c.upstream_column)
        for c in graph.columns
        if c.downstream == key + "big_orders" and c.indirect
    }
    assert indirect == {
        (key + "orders", "amount"),
        (key + "orders", "customer_id"),
        (key + "customers", "id"),
    }
    # Datasets carry their config names; the model reads predictions and labels.
    assert graph.key_of("big_names") == key + "big_names"
    assert sorted(graph.upstream("model/churn")) == [key + "labels", key + "predictions"]
    assert all(e.kind is EdgeKind.MODEL for e in graph.edges if e.downstream == "model/churn")
    assert graph.incident_roots(["big_names", "orders"]) == {
        "big_names": "orders",
        "orders": "orders",
    }


def test_a_view_sqlglot_cannot_read_is_reported_and_the_rest_kept(
    pg_schema: str, tmp_path: Path
) -> None:
    graph = _scan(_config(pg_schema, tmp_path))
    broken = f"wh/{pg_schema}.seg_lengths"
    assert broken in graph.nodes
    assert graph.upstream(broken) == []
    (problem,) = [p for p in graph.problems if p.node == broken]
    assert "cannot parse the SQL of" in problem.message
    assert len(graph.upstream(f"wh/{pg_schema}.big_names")) == 1


def test_query_history_gives_the_tables_pipelines_write(pg_schema: str, tmp_path: Path) -> None:
    # .ci/run preloads pg_stat_statements (shared_preload_libraries) on this server.
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
        conn.execute(
            sa.text(f"CREATE TABLE {pg_schema}.order_totals (customer_id int, total numeric)")
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {pg_schema}.order_totals SELECT customer_id, sum(amount) "
                f"FROM {pg_schema}.orders WHERE amount > 0 GROUP BY customer_id"
            )
        )
        # osemn's own statements only read, and are never taken as lineage.
        conn.execute(sa.text(f"/* osemn */ SELECT count(*) FROM {pg_schema}.orders"))
    engine.dispose()

    graph = _scan(_config(pg_schema, tmp_path))

    totals, orders = f"wh/{pg_schema}.order_totals", f"wh/{pg_schema}.orders"
    edges = {(e.upstream, e.downstream): e.kind for e in graph.edges}
    assert edges[(orders, totals)] is EdgeKind.QUERY
    # History was read (the fixture's `@-@` view, which sqlglot cannot parse, is in it too).
    assert not any(
        "not installed" in p.message or "cannot be read" in p.message for p in graph.problems
    )


def test_query_history_absent_is_said_and_the_scan_goes_on(tmp_path: Path) -> None:
    # Database `postgres` has no pg_stat_statements extension created in it.
    url = PG_URL.rsplit("/", 1)[0] + "/postgres"
    path = tmp_path / "osemn.yaml"
    path.write_text(
        f"""
version: 1
agent: {{state: "sqlite:///{tmp_path / "state.db"}", listen: "127.0.0.1:0"}}
sources: {{wh: {{url: "{url}"}}}}
datasets: {{}}
lineage: {{}}
"""
    )
    graph = _scan(parse_config(path.read_text(), path=str(path)))
    assert any("pg_stat_statements is not installed" in p.message for p in graph.problems)


def test_dbt_manifest_edges_and_a_declared_cycle(pg_schema: str, tmp_path: Path) -> None:
    def entry(uid: str, schema: str, name: str, deps: list[str]) -> dict[str, object]:
        kind = uid.split(".")[0]
        return {
            "unique_id": uid,
            "resource_type": kind,
            "schema": schema,
            "name": name,
            "depends_on": {"nodes": deps},
        }

    manifest = {
        "nodes": {
            "model.p.enriched": entry(
                "model.p.enriched",
                "analytics",
                "enriched",
                ["source.p.raw.orders", "model.p.looped"],
            ),
            "model.p.looped": entry("model.p.looped", "analytics", "looped", ["model.p.enriched"]),
        },
        "sources": {
            "source.p.raw.orders": {
                **entry("source.p.raw.orders", pg_schema, "orders", []),
                "identifier": "orders",
            }
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    graph = _scan(_config(pg_schema, tmp_path, "  dbt_manifest: manifest.json"))
    assert graph.upstream("dbt/analytics.enriched") == [
        f"wh/{pg_schema}.orders",
        "dbt/analytics.looped",
    ]
    assert graph.cycles == [["dbt/analytics.enriched", "dbt/analytics.looped"]]
    assert any("lineage cycle" in p.message for p in graph.problems)


def test_a_bad_dbt_manifest_is_a_problem_not_a_crash(pg_schema: str, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    graph = _scan(_config(pg_schema, tmp_path, "  dbt_manifest: manifest.json"))
    assert any("dbt manifest is not JSON" in p.message for p in graph.problems)
    assert graph.upstream(f"wh/{pg_schema}.daily")


def test_duckdb_views(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INT, kind TEXT)"))
        conn.execute(
            sa.text("CREATE VIEW kinds AS SELECT kind, count(*) AS n FROM events GROUP BY kind")
        )
    engine.dispose()
    config = parse_config(
        f'version: 1\nsources: {{d: {{url: "{url}"}}}}\n'
        "datasets: {kinds: {source: d, table: kinds}}\nlineage: {}\n"
    )
    graph = _scan(config)
    assert graph.upstream("d/main.kinds") == ["d/main.events"]
    assert graph.coverage({"kinds": "d"}) == {"d": 1.0}


def test_the_agent_keeps_serves_and_measures_the_graph(pg_schema: str, tmp_path: Path) -> None:
    config = _config(pg_schema, tmp_path)
    registry = CollectorRegistry()
    agent = Agent(config, registry=registry)
    agent.open()
    try:
        graph = agent.scan_lineage()
        metrics = generate_latest(registry).decode()
        # orders has no upstream, customers is a declared root, big_names has one;
        # predictions and labels have none: 2 of 5 covered.
        assert 'osemn_lineage_coverage_ratio{source="wh"} 0.4' in metrics
        server = AgentServer(
            host="127.0.0.1",
            port=0,
            registry=registry,
            ready=agent.ready,
            results=agent.results_document,
            lineage=agent.lineage_document,
        )
        server.start()
        try:
            doc = httpx.get(f"http://127.0.0.1:{server.port}/api/v1/lineage").json()
        finally:
            server.stop()
        assert doc["graph"] == graph.to_json()
        assert doc["scanned_at"] is not None
    finally:
        agent.close()
    again = Agent(config, registry=CollectorRegistry())
    again.open()  # a restart serves the kept graph before its first scan
    try:
        assert again.lineage is not None
        assert again.lineage.to_json() == graph.to_json()
    finally:
        again.close()


def test_the_agent_scans_on_its_own_schedule(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INT)"))
        conn.execute(sa.text("CREATE VIEW recent AS SELECT id FROM events WHERE id > 10"))
    engine.dispose()
    config = parse_config(
        f'version: 1\nagent: {{state: "sqlite:///{tmp_path / "state.db"}"}}\n'
        f'sources: {{d: {{url: "{url}"}}}}\n'
        "datasets: {recent: {source: d, table: recent, schedule: every 1h}}\n"
        "lineage: {schedule: every 1h}\n"
    )
    agent = Agent(config, registry=CollectorRegistry())
    agent.open()
    try:
        agent.start(serve=False)  # an interval schedule runs once right away
        deadline = time.monotonic() + 20
        while agent.lineage is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.lineage is not None
        assert agent.lineage.upstream("d/main.recent") == ["d/main.events"]
    finally:
        agent.stop(timeout=5)
        agent.close()
