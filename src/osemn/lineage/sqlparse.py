"""SQL text to lineage with sqlglot: the tables a query reads and where each column comes from.

The query is parsed in the dialect of its source and qualified against the
warehouse's schema (every column pinned to its table, ``*`` expanded), then
``sqlglot.lineage`` follows each output column down to table columns through
CTEs and subqueries. Columns that only choose rows (join keys, filters,
groupings) are recorded as *indirect*: the OpenLineage column-lineage facet's
``INDIRECT`` transformations. See: https://openlineage.io/docs/spec/facets/dataset-facets/column_lineage_facet
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope
from sqlglot.schema import MappingSchema

from osemn.errors import OsemnError

__all__ = [
    "LineageParseError",
    "ParsedQuery",
    "WarehouseSchema",
    "parse_query",
    "parse_statement",
    "sqlglot_dialect",
]

# schema -> table -> column -> type, the shape sqlglot's MappingSchema takes.
WarehouseSchema = Mapping[str, Mapping[str, Mapping[str, str]]]

# SQLAlchemy dialect names that sqlglot spells differently.
_DIALECTS = {"postgresql": "postgres", "mariadb": "mysql", "mssql": "tsql", "awsathena": "athena"}


class LineageParseError(OsemnError, ValueError):
    """sqlglot could not read a statement; ``node`` names the view or query it came from."""

    def __init__(self, *, node: str, reason: str) -> None:
        self.node = node
        self.reason = reason
        super().__init__(
            f"cannot parse the SQL of {node}: {reason}. Its lineage is skipped (the rest of "
            "the graph is kept); declare it in dbt or simplify the definition."
        )


@dataclass(frozen=True, kw_only=True)
class ParsedQuery:
    """What one statement reads and writes.

    ``tables`` are ``schema.name`` of every table read; ``columns`` maps each
    output column to the ``(table, column)`` pairs its value is computed from;
    ``indirect`` the ``(table, column)`` pairs that choose rows.
    """

    target: str | None
    tables: tuple[str, ...]
    columns: Mapping[str, tuple[tuple[str, str], ...]]
    indirect: tuple[tuple[str, str], ...]


def sqlglot_dialect(sqlalchemy_dialect: str) -> str:
    """The sqlglot dialect of a SQLAlchemy dialect name."""
    return _DIALECTS.get(sqlalchemy_dialect, sqlalchemy_dialect)


def parse_query(
    sql: str,
    *,
    node: str,
    dialect: str,
    schema: WarehouseSchema | MappingSchema,
    default_schema: str | None,
) -> ParsedQuery:
    """Lineage of a SELECT (a view's definition).

    Raises:
        LineageParseError: sqlglot cannot parse or qualify it.
    """
    tree = _parse(sql, node=node, dialect=dialect)
    if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Query):
        tree = tree.expression  # DuckDB and SQLite keep the whole CREATE VIEW statement
    if not isinstance(tree, exp.Query):
        raise LineageParseError(node=node, reason=f"expected a SELECT, found {tree.key.upper()}")
    return _lineage(tree, node=node, dialect=dialect, schema=schema, default_schema=default_schema)


def parse_statement(
    sql: str,
    *,
    node: str,
    dialect: str,
    schema: WarehouseSchema | MappingSchema,
    default_schema: str | None,
    wanted: Callable[[str], bool] = lambda target: True,
) -> ParsedQuery | None:
    """Lineage of a statement that moves data between tables, None for any other.

    Reads ``INSERT ... SELECT``, ``CREATE TABLE ... AS``, ``MERGE`` and
    ``UPDATE ... FROM`` (query history), whose target is the downstream table.
    A statement whose target (``schema.name``) is not ``wanted`` is None before
    it is qualified: a shared server's history writes many tables outside the
    scanned schemas, and those cannot be qualified against them.

    Raises:
        LineageParseError: sqlglot cannot parse or qualify it.
    """
    tree = _parse(sql, node=node, dialect=dialect)
    if isinstance(tree, exp.Insert | exp.Create | exp.Merge | exp.Update):
        target_table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if not isinstance(target_table, exp.Table) or not wanted(
            _table_name(target_table, default_schema)
        ):
            return None
    if isinstance(tree, exp.Insert) and isinstance(tree.expression, exp.Query):
        ctes = tree.args.get("with_")
        if ctes is not None and tree.expression.args.get("with_") is None:
            # WITH x AS (...) INSERT ... SELECT ... FROM x: the CTEs belong to the SELECT.
            tree.expression.set("with_", ctes)
        target = tree.this
        names: list[str] = []
        if isinstance(target, exp.Schema):
            names = [c.name for c in target.expressions]
            target = target.this
        else:  # no column list: the SELECT fills the target's columns in their order
            names = _columns_of(_table_name(target, default_schema), schema, dialect)
        parsed = _lineage(
            tree.expression,
            node=node,
            dialect=dialect,
            schema=schema,
            default_schema=default_schema,
        )
        return _retarget(parsed, _table_name(target, default_schema), names)
    if (
        isinstance(tree, exp.Create)
        and tree.kind == "TABLE"
        and isinstance(tree.expression, exp.Query)
    ):
        parsed = _lineage(
            tree.expression,
            node=node,
            dialect=dialect,
            schema=schema,
            default_schema=default_schema,
        )
        return _retarget(parsed, _table_name(tree.this, default_schema), [])
    if isinstance(tree, exp.Merge):
        target = _table_name(tree.this, default_schema)
        using = tree.args.get("using")
        tables = _tables(using, default_schema) if using is not None else []
        on = tree.args.get("on")
        indirect = _column_refs(on, tree, default_schema) if on is not None else []
        return ParsedQuery(
            target=target,
            tables=tuple(t for t in tables if t != target),
            columns={},
            indirect=tuple(indirect),
        )
    if isinstance(tree, exp.Update) and tree.args.get("from_") is not None:
        target = _table_name(tree.this, default_schema)
        tables = _tables(tree.args["from_"], default_schema)
        return ParsedQuery(
            target=target, tables=tuple(t for t in tables if t != target), columns={}, indirect=()
        )
    return None


def _parse(sql: str, *, node: str, dialect: str) -> exp.Expr:
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except SqlglotError as exc:
        raise LineageParseError(node=node, reason=_first_line(exc)) from None


def _lineage(
    tree: exp.Query,
    *,
    node: str,
    dialect: str,
    schema: WarehouseSchema | MappingSchema,
    default_schema: str | None,
) -> ParsedQuery:
    mapping = (
        schema
        if isinstance(schema, MappingSchema)
        else MappingSchema({k: dict(v) for k, v in schema.items()}, dialect=dialect)
    )
    try:
        qualified = qualify(
            tree,
            schema=mapping,
            dialect=dialect,
            db=default_schema,
            validate_qualify_columns=False,
            identify=False,
        )
        scope = build_scope(qualified)
    except SqlglotError as exc:
        raise LineageParseError(node=node, reason=_first_line(exc)) from None
    if scope is None:
        raise LineageParseError(node=node, reason="no SELECT scope found")
    assert isinstance(qualified, exp.Query)
    tables = _scope_tables(scope, default_schema)
    columns: dict[str, tuple[tuple[str, str], ...]] = {}
    for name in qualified.named_selects:
        try:
            root = lineage(
                name, qualified, schema=mapping, scope=scope, dialect=dialect, copy=False
            )
        except SqlglotError as exc:
            raise LineageParseError(node=node, reason=_first_line(exc)) from None
        assert not isinstance(root, dict)
        pairs: list[tuple[str, str]] = []
        for leaf in root.walk():
            if isinstance(leaf.expression, exp.Table):
                pair = (_table_name(leaf.expression, default_schema), leaf.name.split(".")[-1])
                if pair not in pairs:
                    pairs.append(pair)
        columns[name] = tuple(pairs)
    indirect: list[tuple[str, str]] = []
    for sub in scope.traverse():
        for clause in ("where", "group", "having", "qualify"):
            part = sub.expression.args.get(clause)
            if part is not None:
                indirect.extend(_scope_columns(part, sub, default_schema))
        # find_all: PostgreSQL writes a view's joins in parentheses, nested in FROM.
        for join in sub.expression.find_all(exp.Join):
            on = join.args.get("on")
            if on is not None:
                indirect.extend(_scope_columns(on, sub, default_schema))
    return ParsedQuery(
        target=None,
        tables=tuple(tables),
        columns=columns,
        indirect=tuple(dict.fromkeys(indirect)),
    )


def _columns_of(table: str, schema: WarehouseSchema | MappingSchema, dialect: str) -> list[str]:
    """The columns of ``schema.table`` in their order, or [] when the schema lacks it."""
    owner, _, name = table.rpartition(".")
    if isinstance(schema, MappingSchema):
        try:
            return list(schema.column_names(exp.table_(name, db=owner or None), dialect=dialect))
        except SqlglotError:
            return []
    return list(schema.get(owner, {}).get(name, {}))


def _retarget(parsed: ParsedQuery, target: str, names: list[str]) -> ParsedQuery:
    """The SELECT's lineage as the target's: INSERT's column list renames by position."""
    columns = dict(parsed.columns)
    if names:
        columns = {name: pairs for name, pairs in zip(names, parsed.columns.values(), strict=False)}
    return ParsedQuery(
        target=target,
        tables=tuple(t for t in parsed.tables if t != target),
        columns=columns,
        indirect=parsed.indirect,
    )


def _scope_tables(scope: Scope, default_schema: str | None) -> list[str]:
    out: list[str] = []
    for sub in scope.traverse():
        for source in sub.sources.values():
            if isinstance(source, exp.Table):
                name = _table_name(source, default_schema)
                if name not in out:
                    out.append(name)
    return out


def _scope_columns(
    part: exp.Expr, scope: Scope, default_schema: str | None
) -> list[tuple[str, str]]:
    """Columns of ``part`` that name a table of ``scope`` directly."""
    out: list[tuple[str, str]] = []
    for column in part.find_all(exp.Column):
        source = scope.sources.get(column.table)
        if isinstance(source, exp.Table):
            out.append((_table_name(source, default_schema), column.name))
    return out


def _column_refs(
    part: exp.Expr, statement: exp.Expr, default_schema: str | None
) -> list[tuple[str, str]]:
    """Columns of a MERGE's ON, resolved through the aliases of its tables."""
    aliases = {
        (t.alias_or_name): _table_name(t, default_schema) for t in statement.find_all(exp.Table)
    }
    return [(aliases[c.table], c.name) for c in part.find_all(exp.Column) if c.table in aliases]


def _tables(part: exp.Expr, default_schema: str | None) -> list[str]:
    return list(dict.fromkeys(_table_name(t, default_schema) for t in part.find_all(exp.Table)))


def _table_name(table: exp.Expr, default_schema: str | None) -> str:
    assert isinstance(table, exp.Table), table
    schema = table.db or default_schema
    return f"{schema}.{table.name}" if schema else table.name


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
