"""The lineage scan: warehouses through the SQLAlchemy inspector, dbt, query history, models.

Nothing is instrumented: tables, views, materialized views and foreign keys
come from the inspector (batched ``get_multi_*`` calls, so a schema of
thousands of tables costs a handful of catalog queries), view definitions are
parsed with sqlglot in the source's dialect, and PostgreSQL's
``pg_stat_statements`` adds the tables pipelines write. A source that is down,
a view that does not parse, a manifest that does not load: each is a
``Problem`` of the graph, and the rest is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind
from sqlglot.schema import MappingSchema

from osemn._lineage_config import LineageConfig
from osemn.config import Config
from osemn.errors import ConfigError, SourceError
from osemn.lineage.dbt import read_manifest
from osemn.lineage.graph import (
    ColumnEdge,
    Edge,
    EdgeKind,
    ForeignKey,
    LineageGraph,
    Node,
    NodeKind,
    Problem,
    merge_edges,
)
from osemn.lineage.pg_history import History, read_history
from osemn.lineage.sqlparse import (
    LineageParseError,
    ParsedQuery,
    parse_query,
    parse_statement,
    sqlglot_dialect,
)
from osemn.sources import _dialects
from osemn.sources.warehouse import Warehouse

if TYPE_CHECKING:
    from osemn.sources.featurestore import FeatureStoreSource

__all__ = ["LineageScan", "SourceScan", "scan_lineage", "scan_source"]

log = logging.getLogger(__name__)

_HISTORY = "pg_stat_statements"
# Column types do not change lineage; one type keeps sqlglot from parsing thousands.
_ANY_TYPE = "TEXT"


@dataclass
class SourceScan:
    """What one warehouse holds: nodes keyed ``source/schema.name`` and their edges."""

    source: str
    default_schema: str | None
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    columns: list[ColumnEdge] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def key(self, qualified: str) -> str:
        """The node key of ``schema.name`` (or ``name`` in the default schema)."""
        schema, _, name = qualified.rpartition(".")
        return f"{self.source}/{schema or self.default_schema}.{name}"


@dataclass(frozen=True, kw_only=True)
class LineageScan:
    """A finished scan: the graph and how long it took."""

    graph: LineageGraph
    duration_seconds: float


def scan_lineage(
    config: Config,
    warehouses: Mapping[str, Warehouse],
    *,
    feature_stores: Mapping[str, FeatureStoreSource] | None = None,
) -> LineageScan:
    """Scan every configured warehouse (or those of ``lineage.sources``) into one graph.

    ``feature_stores`` (the opened Feast sources) add their feature views, each
    read from its batch source.
    """
    started = time.perf_counter()
    settings = config.lineage or LineageConfig()
    scans: list[SourceScan] = []
    problems: list[Problem] = []
    for name in settings.sources or tuple(config.warehouse_sources):
        try:
            scans.append(
                scan_source(
                    name,
                    warehouses[name],
                    schemas=_schemas(config, name, settings),
                    history_limit=settings.history_limit if settings.query_history else 0,
                )
            )
        except SourceError as exc:
            log.error("lineage scan of source %s failed: %s", name, exc)
            problems.append(Problem(node=None, message=f"source {name!r} not scanned: {exc}"))
    nodes: dict[str, Node] = {}
    for part in scans:
        nodes.update(part.nodes)
        problems.extend(part.problems)
    edges = [edge for part in scans for edge in part.edges]  # merged once, at the end
    columns = [c for part in scans for c in part.columns]
    _name_datasets(config, scans, nodes, problems)
    edges.extend(_model_edges(config, nodes))
    if feature_stores:
        from osemn.lineage.feast import feast_lineage

        feast = feast_lineage(feature_stores, warehouse_urls=config.warehouse_urls, nodes=nodes)
        nodes.update(feast.nodes)
        edges.extend(feast.edges)
        problems.extend(feast.problems)
        edges.extend(_served_from(config, nodes, problems))
    if settings.dbt_manifest is not None:
        try:
            edges.extend(_dbt_edges(config.base_dir / settings.dbt_manifest, nodes))
        except ConfigError as exc:
            problems.append(Problem(node=None, message=str(exc)))
    by_dataset = {n.dataset: k for k, n in nodes.items() if n.dataset}
    graph = LineageGraph(
        nodes=nodes,
        edges=merge_edges(edges),
        foreign_keys=[f for part in scans for f in part.foreign_keys],
        columns=columns,
        problems=problems,
        roots=frozenset(by_dataset[r] for r in settings.roots if r in by_dataset),
    )
    return LineageScan(graph=graph, duration_seconds=time.perf_counter() - started)


def scan_source(
    name: str, warehouse: Warehouse, *, schemas: Sequence[str], history_limit: int
) -> SourceScan:
    """Tables, views, foreign keys and view / history lineage of one warehouse.

    ``schemas`` empty means the connection's default schema.

    Raises:
        SourceError: the warehouse cannot be reached or its catalog read.
    """
    backend = warehouse.engine.dialect.name
    definitions: dict[str, str] = {}

    def read(conn: sa.Connection) -> tuple[SourceScan, dict[str, Any], History | None]:
        inspector = sa.inspect(conn)
        scan = SourceScan(source=name, default_schema=inspector.default_schema_name)
        tables: dict[str, Any] = {}  # schema -> table -> column -> type, as sqlglot reads it
        default = scan.default_schema or ""
        for schema in dict.fromkeys(s or default for s in schemas or [default]):
            if backend == "duckdb":
                _read_duckdb(conn, scan, schema, tables, definitions)
            else:
                _read_schema(inspector, scan, schema or None, backend, tables, definitions)
        history = (
            read_history(conn, limit=history_limit)
            if (backend == "postgresql" and history_limit)
            else None
        )
        return scan, tables, history

    # Through the warehouse: its backoff, concurrency slots, timeout and cancel apply.
    scan, tables, history = warehouse.run(read)
    mapping = MappingSchema(tables, dialect=sqlglot_dialect(backend), normalize=False)
    for key, sql in definitions.items():
        try:
            parsed = parse_query(
                sql,
                node=key,
                dialect=sqlglot_dialect(backend),
                schema=mapping,
                default_schema=scan.default_schema,
            )
        except LineageParseError as exc:
            scan.problems.append(Problem(node=key, message=str(exc)))
            continue
        _add_parsed(scan, key, parsed, EdgeKind.VIEW, sql)
    if history is not None:
        _add_history(scan, history.statements, history.absent, mapping, backend)
    return scan


def _read_schema(
    inspector: sa.Inspector,
    scan: SourceScan,
    schema: str | None,
    backend: str,
    tables: dict[str, Any],
    definitions: dict[str, str],
) -> None:
    kinds = {n: NodeKind.TABLE for n in inspector.get_table_names(schema=schema)}
    kinds.update({n: NodeKind.VIEW for n in inspector.get_view_names(schema=schema)})
    if backend == "postgresql":
        kinds.update(
            {
                n: NodeKind.MATERIALIZED_VIEW
                for n in inspector.get_materialized_view_names(schema=schema)
            }
        )
    with warnings.catch_warnings():
        # A type SQLAlchemy does not know (lseg, a domain) warns; lineage needs only names.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        columns = _columns(inspector, schema)
    schema_name = schema or scan.default_schema or ""
    for table, cols in columns:
        tables.setdefault(schema_name, {})[table] = {c["name"]: _ANY_TYPE for c in cols}
    for table, kind in kinds.items():
        key = f"{scan.source}/{schema_name}.{table}"
        names = tuple(tables.get(schema_name, {}).get(table, {}))
        scan.nodes[key] = Node(
            key=key, kind=kind, source=scan.source, schema=schema_name, name=table, columns=names
        )
        if kind is not NodeKind.TABLE:
            definition = inspector.get_view_definition(table, schema=schema)
            if definition:
                definitions[key] = str(definition)
    for table, fks in _foreign_keys(inspector, schema):
        for fk in fks:
            parent_schema = fk.get("referred_schema") or schema_name
            scan.foreign_keys.append(
                ForeignKey(
                    child=f"{scan.source}/{schema_name}.{table}",
                    parent=f"{scan.source}/{parent_schema}.{fk['referred_table']}",
                    columns=tuple(fk["constrained_columns"]),
                    referred=tuple(fk["referred_columns"]),
                )
            )


def _read_duckdb(
    conn: sa.Connection,
    scan: SourceScan,
    schema: str,
    tables: dict[str, Any],
    definitions: dict[str, str],
) -> None:
    """DuckDB from its own catalog functions: duckdb-engine reflects through PostgreSQL's
    catalog, which DuckDB only partly has (see ``sources._dialects``)."""
    tables_ = _dialects.duckdb_catalog_table("duckdb_tables", "table_name")
    views = _dialects.duckdb_catalog_table("duckdb_views", "view_name", "sql", "internal")
    cols = _dialects.duckdb_catalog_table(
        "duckdb_columns", "table_name", "column_name", "column_index"
    )
    kinds: dict[str, NodeKind] = {}
    for name in conn.execute(
        sa.select(tables_.c.table_name).where(*_dialects.duckdb_in_schema(tables_, schema))
    ).scalars():
        kinds[name] = NodeKind.TABLE
    for name, sql in conn.execute(
        sa.select(views.c.view_name, views.c.sql).where(
            *_dialects.duckdb_in_schema(views, schema), sa.not_(views.c.internal)
        )
    ):
        kinds[name] = NodeKind.VIEW
        definitions[f"{scan.source}/{schema}.{name}"] = sql
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
        sa.select(cols.c.table_name, cols.c.column_name)
        .where(*_dialects.duckdb_in_schema(cols, schema))
        .order_by(cols.c.table_name, cols.c.column_index)
    ):
        columns.setdefault(table, []).append(column)
    for table, kind in kinds.items():
        names = tuple(columns.get(table, ()))
        tables.setdefault(schema, {})[table] = dict.fromkeys(names, _ANY_TYPE)
        key = f"{scan.source}/{schema}.{table}"
        scan.nodes[key] = Node(
            key=key, kind=kind, source=scan.source, schema=schema, name=table, columns=names
        )


def _columns(inspector: sa.Inspector, schema: str | None) -> list[tuple[str, list[Any]]]:
    """Columns of every table and view: one catalog query where the dialect batches
    reflection (PostgreSQL), one per relation elsewhere (SQLAlchemy falls back itself)."""
    found = inspector.get_multi_columns(schema=schema, kind=ObjectKind.ANY)
    return [(table, list(cols)) for (_, table), cols in found.items()]


def _foreign_keys(inspector: sa.Inspector, schema: str | None) -> list[tuple[str, list[Any]]]:
    try:
        found = inspector.get_multi_foreign_keys(schema=schema)
    except NotImplementedError:  # a dialect without foreign keys
        return []
    return [(table, list(fks)) for (_, table), fks in found.items()]


def _add_parsed(scan: SourceScan, key: str, parsed: ParsedQuery, kind: EdgeKind, sql: str) -> None:
    for table in parsed.tables:
        upstream = scan.key(table)
        if upstream not in scan.nodes:  # outside the scanned schemas: keep it as a leaf
            schema, _, name = table.rpartition(".")
            scan.nodes[upstream] = Node(
                key=upstream,
                kind=NodeKind.TABLE,
                source=scan.source,
                schema=schema or scan.default_schema,
                name=name,
            )
        scan.edges.append(Edge(upstream=upstream, downstream=key, kind=kind, sql=sql))
    for column, pairs in parsed.columns.items():
        for table, upstream_column in pairs:
            scan.columns.append(
                ColumnEdge(
                    upstream=scan.key(table),
                    upstream_column=upstream_column,
                    downstream=key,
                    column=column,
                )
            )
    for table, upstream_column in parsed.indirect:
        scan.columns.append(
            ColumnEdge(
                upstream=scan.key(table),
                upstream_column=upstream_column,
                downstream=key,
                column="",
                indirect=True,
            )
        )


def _add_history(
    scan: SourceScan,
    statements: Iterable[str],
    absent: str | None,
    mapping: MappingSchema,
    backend: str,
) -> None:
    if absent is not None:
        scan.problems.append(Problem(node=None, message=f"source {scan.source!r}: {absent}"))
        return
    unreadable = 0
    for sql in statements:
        try:
            parsed = parse_statement(
                sql,
                node=_HISTORY,
                dialect=sqlglot_dialect(backend),
                schema=mapping,
                default_schema=scan.default_schema,
                wanted=lambda target: scan.key(target) in scan.nodes,
            )
        except LineageParseError:
            unreadable += 1
            continue
        if parsed is None or parsed.target is None:
            continue
        target = scan.key(parsed.target)
        if target not in scan.nodes:
            continue  # written outside the scanned schemas
        _add_parsed(scan, target, parsed, EdgeKind.QUERY, sql)
    if unreadable:
        scan.problems.append(
            Problem(
                node=None,
                message=f"source {scan.source!r}: {unreadable} statement(s) of "
                "pg_stat_statements could not be parsed; their lineage is skipped",
            )
        )


def _schemas(config: Config, source: str, settings: LineageConfig) -> tuple[str, ...]:
    """The schemas to scan: those configured, else the default and the datasets' own."""
    if settings.schemas:
        return settings.schemas
    found = [""]
    for ds in config.datasets.values():
        schema = ds.table.rpartition(".")[0]
        if ds.source == source and schema and schema not in found:
            found.append(schema)
    return tuple(found)


def _name_datasets(
    config: Config, scans: Sequence[SourceScan], nodes: dict[str, Node], problems: list[Problem]
) -> None:
    """Give each node that a config dataset watches that dataset's name."""
    by_source = {s.source: s for s in scans}
    for name, ds in config.datasets.items():
        part = by_source.get(ds.source)
        if part is None:
            continue
        key = part.key(ds.table)
        if key not in nodes:
            lowered = key.lower()
            key = next((k for k in nodes if k.lower() == lowered), key)
        if key not in nodes:
            problems.append(
                Problem(
                    node=key,
                    message=f"dataset {name!r}: table {ds.table!r} "
                    f"was not found by the scan of source {ds.source!r}",
                )
            )
            continue
        nodes[key] = dataclasses.replace(nodes[key], dataset=name)


def _model_edges(config: Config, nodes: dict[str, Node]) -> list[Edge]:
    """Models read their predictions and labels: their metrics are computed from both."""
    by_dataset = {n.dataset: k for k, n in nodes.items() if n.dataset}
    edges: list[Edge] = []
    for name, model in config.models.items():
        key = f"model/{name}"
        nodes[key] = Node(
            key=key, kind=NodeKind.MODEL, source="models", schema=None, name=name, dataset=name
        )
        for ref in (model.predictions.dataset, model.labels.dataset):
            upstream = by_dataset.get(ref)
            if upstream is not None:
                edges.append(Edge(upstream=upstream, downstream=key, kind=EdgeKind.MODEL))
    return edges


def _served_from(config: Config, nodes: Mapping[str, Node], problems: list[Problem]) -> list[Edge]:
    """Models read the feature views they are served from (``models.<name>.feature_views``)."""
    edges: list[Edge] = []
    for name, model in config.models.items():
        for ref in model.feature_views:
            if ref in nodes:
                edges.append(Edge(upstream=ref, downstream=f"model/{name}", kind=EdgeKind.MODEL))
            else:
                problems.append(
                    Problem(
                        node=f"model/{name}",
                        message=f"model {name!r}: feature view {ref!r} is not in its Feast "
                        "registry; check the name in `feature_views:`",
                    )
                )
    return edges


def _dbt_edges(path: Path, nodes: dict[str, Node]) -> list[Edge]:
    """Edges of a dbt manifest, its relations matched to scanned nodes by schema and name."""
    by_relation: dict[str, str] = {}
    for key, node in nodes.items():
        if node.schema is not None:
            by_relation.setdefault(f"{node.schema}.{node.name}".lower(), key)
    ids: dict[str, str] = {}
    manifest = read_manifest(path)
    for entry in manifest:
        relation = f"{entry.schema}.{entry.name}".lower()
        found = by_relation.get(relation)
        key = found if found is not None else f"dbt/{relation}"
        if found is None:
            nodes[key] = Node(
                key=key, kind=NodeKind.DBT_MODEL, source="dbt", schema=entry.schema, name=entry.name
            )
        ids[entry.unique_id] = key
    return [
        Edge(upstream=ids[dep], downstream=ids[entry.unique_id], kind=EdgeKind.DBT, sql=entry.sql)
        for entry in manifest
        for dep in entry.depends_on
        if dep in ids
    ]
