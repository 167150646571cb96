"""Lineage at scale: a PostgreSQL schema of 2,000 tables and 1,000 views in chains.

Builds (once; reused when present) schema ``osemn_lineage_bench`` with
``--tables`` tables of five columns, a foreign key from every tenth table to
the one before, and ``--views`` views in chains up to ``--depth`` deep (each
view joins the previous link of its chain to a second table, filtering and
grouping, so every view has two upstreams and indirect columns). Then it
times the full scan (``osemn.lineage.scan.scan_lineage``: catalog reads,
sqlglot parsing, column lineage, graph with adjacency and cycle search) and
root finding for an incident at the bottom of the deepest chain with its whole
chain failing. Targets: scan < 30 s, root finding < 10 ms.

    python bench/lineage.py                    # 2,000 tables, 1,000 views, depth 10
    python bench/lineage.py --rebuild --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa

from osemn.config import parse_config
from osemn.lineage.scan import scan_lineage
from osemn.sources.warehouse import Warehouse

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = "osemn_lineage_bench"


def build(engine: sa.Engine, tables: int, views: int, depth: int) -> None:
    """Create the schema: tables t0..tN, views v{chain}_{link} chained ``depth`` deep.

    Statements go in batches of transactions: one transaction holding a lock on
    each of 3,000 new relations runs out of PostgreSQL's lock table.
    """
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    statements: list[str] = []
    for i in range(tables):
        fk = f", parent_id int REFERENCES {SCHEMA}.t{i - 1} (id)" if i % 10 == 9 else ""
        statements.append(
            f"CREATE TABLE {SCHEMA}.t{i} (id int PRIMARY KEY, k int, amount numeric, "
            f"status text, created_at timestamptz{fk})"
        )
    made = 0
    chain = 0
    while made < views:
        previous = f"{SCHEMA}.t{chain % tables}"
        for link in range(1, depth + 1):
            if made == views:
                break
            other = f"{SCHEMA}.t{(chain * 7 + link) % tables}"
            name = f"{SCHEMA}.v{chain}_{link}"
            statements.append(
                f"CREATE VIEW {name} AS SELECT p.id, p.k, sum(o.amount) AS amount, "
                f"max(o.status) AS status, max(p.created_at) AS created_at "
                f"FROM {previous} p JOIN {other} o ON o.k = p.k "
                f"WHERE o.status <> 'void' GROUP BY p.id, p.k"
            )
            previous = name
            made += 1
        chain += 1
    for start in range(0, len(statements), 100):
        with engine.begin() as conn:
            for statement in statements[start : start + 100]:
                conn.execute(sa.text(statement))


def present(engine: sa.Engine, tables: int, views: int) -> bool:
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if SCHEMA not in inspector.get_schema_names():
            return False
        return (
            len(inspector.get_table_names(schema=SCHEMA)) == tables
            and len(inspector.get_view_names(schema=SCHEMA)) == views
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=2000)
    parser.add_argument("--views", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    engine = sa.create_engine(PG_URL)
    if args.rebuild or not present(engine, args.tables, args.views):
        started = time.perf_counter()
        build(engine, args.tables, args.views, args.depth)
        print(
            f"built {args.tables} tables, {args.views} views in "
            f"{time.perf_counter() - started:.1f}s"
        )
    engine.dispose()
    bottom = f"v0_{args.depth}"
    chain = ["t0", *(f"v0_{link}" for link in range(1, args.depth + 1))]
    config = parse_config(
        f'version: 1\nsources: {{wh: {{url: "{PG_URL}"}}}}\n'
        "datasets:\n"
        + "".join(f"  {name}: {{source: wh, table: {SCHEMA}.{name}}}\n" for name in chain)
        + f"lineage: {{schemas: [{SCHEMA}]}}\n"
    )
    scans = []
    graph = None
    for _ in range(args.reps):
        warehouse = Warehouse("wh", config.sources["wh"])
        scan = scan_lineage(config, {"wh": warehouse})
        warehouse.close()
        scans.append(scan.duration_seconds)
        graph = scan.graph
    assert graph is not None
    views_parsed = sum(
        1 for n in graph.nodes.values() if n.kind.value == "view" and graph.upstream(n.key)
    )
    print(
        f"graph: {len(graph.nodes)} nodes, {len(graph.edges)} edges, "
        f"{len(graph.foreign_keys)} foreign keys, {len(graph.columns)} column edges, "
        f"{views_parsed} views parsed, {len(graph.problems)} problems"
    )
    print(
        f"full scan: median {statistics.median(scans):.2f}s, min {min(scans):.2f}s "
        f"over {args.reps} (target < 30 s)"
    )
    failing = list(reversed(chain))  # the whole chain fails; the table is the root
    times = []
    for _ in range(200):
        started = time.perf_counter()
        roots = graph.incident_roots(failing)
        times.append(time.perf_counter() - started)
    assert roots[bottom] == "t0", roots[bottom]
    single = []
    for _ in range(200):
        started = time.perf_counter()
        graph.incident_roots([bottom, "t0"])
        single.append(time.perf_counter() - started)
    print(
        f"root of {bottom} ({args.depth} deep, whole chain failing): median "
        f"{statistics.median(times) * 1000:.3f} ms, max {max(times) * 1000:.3f} ms "
        "(target < 10 ms)"
    )
    print(
        f"root of {bottom} with only it and t0 failing: median "
        f"{statistics.median(single) * 1000:.3f} ms"
    )


if __name__ == "__main__":
    main()
