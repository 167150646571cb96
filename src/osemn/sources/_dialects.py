"""Per-dialect session settings: the ``/* osemn */`` tag, read-only sessions, timeouts, cancels.

What a server can enforce itself is set once per connection, on connect, for
engines osemn creates (an engine handed in belongs to its owner and keeps its
sessions as they are)::

    dialect      read-only                                    statement_timeout
    postgresql   SET SESSION CHARACTERISTICS ... READ ONLY    statement_timeout (ms)
    mariadb      SET SESSION TRANSACTION READ ONLY            max_statement_time (s)
    mysql        SET SESSION TRANSACTION READ ONLY            max_execution_time (ms, SELECTs)
    sqlite       PRAGMA query_only = ON                       interrupt() from a timer
    duckdb       read_only=True when the file is opened       interrupt() from a timer

Where the server cannot (or the engine was handed in) a timer cancels the
statement from another thread: ``interrupt()`` (SQLite, DuckDB), libpq's cancel
request (PostgreSQL), ``KILL QUERY`` on a side connection (MySQL, MariaDB).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

__all__ = [
    "DUCKDB_MEMORY_LIMIT",
    "PREFIX",
    "DuckDBCatalog",
    "connect_args",
    "duckdb_catalog",
    "duckdb_catalog_table",
    "duckdb_in_schema",
    "interrupter",
    "is_timeout",
    "list_relations",
    "list_schemas",
    "reflect_table",
    "server_enforces_timeout",
    "session_listener",
    "tag",
    "tag_statements",
]

PREFIX = "/* osemn */"
"""Starts every statement, so warehouse owners can see, limit and exclude osemn's queries."""

_CONNECT_TIMEOUT_SECONDS = 10
_MYSQL = frozenset({"mysql", "mariadb"})
_SERVER_TIMEOUT = frozenset({"postgresql", *_MYSQL})
# ER_QUERY_INTERRUPTED (KILL QUERY), ER_STATEMENT_TIMEOUT (MariaDB max_statement_time),
# ER_QUERY_TIMEOUT (MySQL max_execution_time).
_MYSQL_INTERRUPTED = frozenset({1317, 1969, 3024})
_PG_QUERY_CANCELED = "57014"  # statement_timeout and cancel requests alike


def tag(statement: str) -> str:
    """``statement`` with the osemn comment in front, exactly once."""
    return statement if statement.startswith(PREFIX) else f"{PREFIX} {statement}"


def _tag_cursor_execute(
    conn: sa.Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    return tag(statement), parameters


def tag_statements(engine: sa.Engine) -> None:
    """Make every statement ``engine`` sends start with ``/* osemn */``; safe to call twice."""
    if not event.contains(engine, "before_cursor_execute", _tag_cursor_execute):
        event.listen(engine, "before_cursor_execute", _tag_cursor_execute, retval=True)


DUCKDB_MEMORY_LIMIT = "64MB"


def connect_args(url: sa.URL) -> dict[str, Any]:
    """DBAPI ``connect()`` arguments for an engine osemn creates itself."""
    backend = url.get_backend_name()
    if backend == "duckdb":
        # DuckDB scans inside the agent's process, so its buffer pool is the agent's
        # memory: bound it (a URL's ?memory_limit=... overrides) so that memory stays
        # flat in table size; DuckDB spills larger aggregations to disk.
        config = {"memory_limit": DUCKDB_MEMORY_LIMIT}
        in_memory = url.database in (None, "", ":memory:")
        return {"config": config} if in_memory else {"read_only": True, "config": config}
    if backend in ("postgresql", *_MYSQL) and "connect_timeout" not in url.query:
        # A blackholed host must not hold a concurrency slot for minutes.
        return {"connect_timeout": _CONNECT_TIMEOUT_SECONDS}
    return {}


def server_enforces_timeout(dialect_name: str) -> bool:
    """True when ``session_listener`` sets a server-side statement timeout for this dialect."""
    return dialect_name in _SERVER_TIMEOUT


def session_listener(dialect_name: str, timeout_seconds: float) -> Callable[[Any, Any], None]:
    """A pool ``connect`` listener that makes each new session read-only and time-limited."""

    def configure(dbapi_connection: Any, connection_record: Any) -> None:
        if dialect_name not in _SESSION_SETTINGS:
            return  # DuckDB is read-only through connect_args(); others are not known
        cursor = dbapi_connection.cursor()
        try:
            _SESSION_SETTINGS[dialect_name](cursor, timeout_seconds)
        finally:
            cursor.close()
        # PostgreSQL's SET is transactional: without a commit the pool's
        # reset-on-return rollback would undo it.
        dbapi_connection.commit()

    return configure


def _postgresql(cursor: Any, timeout_seconds: float) -> None:
    if timeout_seconds > 0:
        # set_config() takes a bound parameter where SET cannot.
        cursor.execute(
            tag("SELECT set_config('statement_timeout', %s, false)"),
            (str(max(1, round(timeout_seconds * 1000))),),
        )
    cursor.execute(tag("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))


def _mysql(cursor: Any, timeout_seconds: float) -> None:
    if timeout_seconds > 0:
        # The URL says mysql:// for both servers; only the server knows which it is.
        cursor.execute(tag("SELECT VERSION()"))
        version = str(cursor.fetchone()[0])
        if "mariadb" in version.lower():
            cursor.execute(tag("SET SESSION max_statement_time = %s"), (timeout_seconds,))
        else:
            ms = max(1, round(timeout_seconds * 1000))
            cursor.execute(tag("SET SESSION max_execution_time = %s"), (ms,))
    cursor.execute(tag("SET SESSION TRANSACTION READ ONLY"))


def _sqlite(cursor: Any, timeout_seconds: float) -> None:
    cursor.execute(tag("PRAGMA query_only = ON"))


_SESSION_SETTINGS: dict[str, Callable[[Any, float], None]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
    "mariadb": _mysql,
    "sqlite": _sqlite,
}


def interrupter(
    engine: sa.Engine, dbapi_connection: Any, extra_connect_args: dict[str, Any]
) -> Callable[[], None] | None:
    """A function that cancels the statement running on ``dbapi_connection``, if the driver can.

    It is called from another thread while the statement runs.
    """
    if engine.dialect.name in _MYSQL:
        thread_id = getattr(dbapi_connection, "thread_id", None)
        if thread_id is None:
            return None
        server_thread = int(thread_id() if callable(thread_id) else thread_id)

        def kill_query() -> None:
            _kill_query(engine, server_thread, extra_connect_args)

        return kill_query
    # sqlite3 and duckdb: interrupt(); psycopg: cancel_safe(); psycopg2 and others: cancel().
    for method in ("interrupt", "cancel_safe", "cancel"):
        function = getattr(dbapi_connection, method, None)
        if callable(function):
            return function  # type: ignore[no-any-return]
    return None


def _kill_query(engine: sa.Engine, server_thread: int, extra_connect_args: dict[str, Any]) -> None:
    # A side connection outside the pool: the pool may be exhausted by the very
    # statements being cancelled.
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    side = engine.dialect.connect(*cargs, **{**cparams, **extra_connect_args})
    try:
        cursor = side.cursor()
        try:
            cursor.execute(tag("KILL QUERY %s"), (server_thread,))
        finally:
            cursor.close()
    finally:
        side.close()


def is_timeout(error: BaseException | None) -> bool:
    """True when a DBAPI error says the statement was cancelled or ran out of time."""
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if sqlstate == _PG_QUERY_CANCELED:
        return True
    args = getattr(error, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_INTERRUPTED:
        return True
    if type(error).__name__ == "InterruptException":  # duckdb
        return True
    return type(error).__module__ == "sqlite3" and str(error) == "interrupted"


# --- reflection -----------------------------------------------------------------
# duckdb-engine reflects through PostgreSQL's catalog queries, which SQLAlchemy 2.1
# extended with pg_collation and regclass casts that DuckDB lacks; so DuckDB is read
# from its own catalog functions (duckdb_columns(), duckdb_constraints(), ...).


def reflect_table(
    conn: sa.Connection, schema: str | None, name: str, *, catalog: DuckDBCatalog | None = None
) -> tuple[sa.Table, bool]:
    """Reflect a table or view; returns it and whether it is a view.

    ``catalog``: what :func:`duckdb_catalog` already read for it (DuckDB only).

    Raises:
        sqlalchemy.exc.NoSuchTableError: no table or view of that name.
    """
    if conn.dialect.name != "duckdb":
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
        return table, name in sa.inspect(conn).get_view_names(schema=schema)
    if catalog is None:
        catalog = duckdb_catalog(conn, schema, name)
    return _duckdb_table(conn.dialect, schema, name, catalog)


def list_relations(conn: sa.Connection, schema: str | None) -> list[str]:
    """Names of the tables and views in ``schema`` (the default one when None)."""
    if conn.dialect.name != "duckdb":
        inspector = sa.inspect(conn)
        return [
            *inspector.get_table_names(schema=schema),
            *inspector.get_view_names(schema=schema),
        ]
    relations: list[str] = []
    for function, column in (("duckdb_tables", "table_name"), ("duckdb_views", "view_name")):
        catalog = duckdb_catalog_table(function, column, "internal")
        relations.extend(
            conn.execute(
                sa.select(catalog.c[column]).where(
                    *duckdb_in_schema(catalog, schema), sa.not_(catalog.c.internal)
                )
            ).scalars()
        )
    return relations


def list_schemas(conn: sa.Connection) -> list[str]:
    """Names of the schemas (databases, for MySQL) the source has."""
    if conn.dialect.name != "duckdb":
        return list(sa.inspect(conn).get_schema_names())
    # Not filtered on ``internal``: DuckDB flags its ``main`` schema internal.
    catalog = duckdb_catalog_table("duckdb_schemas")
    return list(
        conn.execute(
            sa.select(catalog.c.schema_name).where(
                catalog.c.database_name == sa.func.current_database()
            )
        ).scalars()
    )


def duckdb_catalog_table(function: str, *columns: str) -> sa.TableValuedAlias:
    """One of DuckDB's catalog functions (``duckdb_tables()``...) as a table with ``columns``."""
    table_function: Any = getattr(sa.func, function)()
    alias: sa.TableValuedAlias = table_function.table_valued(
        "database_name", "schema_name", *columns
    )
    return alias


def duckdb_in_schema(catalog: sa.TableValuedAlias, schema: str | None) -> tuple[Any, ...]:
    """The conditions of a catalog table's rows in ``schema`` of the open database."""
    return (
        catalog.c.database_name == sa.func.current_database(),
        catalog.c.schema_name == (schema if schema is not None else sa.func.current_schema()),
    )


DuckDBCatalog = tuple[tuple[Any, ...], ...]
"""Catalog rows of one DuckDB relation: (kind, index, name, type, nullable, key columns)."""


def duckdb_catalog(conn: sa.Connection, schema: str | None, name: str) -> DuckDBCatalog:
    """Everything reflection reads about one DuckDB relation, in one statement.

    Columns, PRIMARY KEY and UNIQUE constraints, whether it is a view, unique
    indexes: one round trip instead of four, and a value that compares equal as
    long as the catalog did not change (the warehouse reuses its reflection then).
    """
    columns = duckdb_catalog_table(
        "duckdb_columns", "table_name", "column_name", "column_index", "data_type", "is_nullable"
    )
    constraints = duckdb_catalog_table(
        "duckdb_constraints",
        "table_name",
        "constraint_index",
        "constraint_type",
        "constraint_column_names",
    )
    views = duckdb_catalog_table("duckdb_views", "view_name")
    indexes = duckdb_catalog_table("duckdb_indexes", "table_name", "is_unique", "expressions")
    text, flag = sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.Boolean)
    keys = sa.cast(sa.null(), sa.ARRAY(sa.String))
    stmt = sa.union_all(
        sa.select(
            sa.literal("column"),
            columns.c.column_index,
            columns.c.column_name,
            columns.c.data_type,
            columns.c.is_nullable,
            keys,
        ).where(*duckdb_in_schema(columns, schema), columns.c.table_name == name),
        sa.select(
            sa.literal("key"),
            constraints.c.constraint_index,
            constraints.c.constraint_type,
            text,
            flag,
            constraints.c.constraint_column_names,
        ).where(
            *duckdb_in_schema(constraints, schema),
            constraints.c.table_name == name,
            constraints.c.constraint_type.in_(("PRIMARY KEY", "UNIQUE")),
        ),
        sa.select(sa.literal("view"), sa.literal(0), views.c.view_name, text, flag, keys).where(
            *duckdb_in_schema(views, schema), views.c.view_name == name
        ),
        sa.select(
            sa.literal("index"), sa.literal(0), indexes.c.expressions, text, flag, keys
        ).where(
            *duckdb_in_schema(indexes, schema), indexes.c.table_name == name, indexes.c.is_unique
        ),
    )
    rows = conn.execute(stmt).all()
    return tuple(sorted((tuple(_hashable(v) for v in row) for row in rows), key=_catalog_order))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _catalog_order(row: tuple[Any, ...]) -> tuple[str, int, str]:
    return str(row[0]), int(row[1]), str(row[2])


def _duckdb_table(
    dialect: sa.Dialect, schema: str | None, name: str, catalog: DuckDBCatalog
) -> tuple[sa.Table, bool]:
    rows = [(r[2], r[3], r[4]) for r in catalog if r[0] == "column"]
    if not rows:
        raise sa.exc.NoSuchTableError(f"{schema}.{name}" if schema else name)
    keys = [(r[2], list(r[5])) for r in catalog if r[0] == "key"]
    is_view = any(r[0] == "view" for r in catalog)
    names = {column for column, _, _ in rows}
    index_keys = [
        ("UNIQUE", key)
        for key in (_duckdb_index_columns(r[2], names) for r in catalog if r[0] == "index")
        if key
    ]
    table = sa.Table(
        name,
        sa.MetaData(),
        *(
            sa.Column(column, _duckdb_type(dialect, data_type), nullable=bool(nullable))
            for column, data_type, nullable in rows
        ),
        *(
            sa.PrimaryKeyConstraint(*cols) if kind == "PRIMARY KEY" else sa.UniqueConstraint(*cols)
            for kind, cols in [*keys, *index_keys]
        ),
        schema=schema,
    )
    return table, is_view


def _duckdb_index_columns(expressions: str, columns: set[str]) -> tuple[str, ...]:
    # duckdb_indexes().expressions renders a list as text: [x, '"Y y"', '((z + 1))'].
    # A key counts only when every item is a plain column; expression indexes are no key.
    inner = expressions.strip().removeprefix("[").removesuffix("]")
    key = []
    for item in inner.split(", "):
        name = item.strip()
        if len(name) >= 2 and name[0] == name[-1] == "'":
            name = name[1:-1]
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('""', '"')
        if name not in columns:
            return ()
        key.append(name)
    return tuple(key)


_DUCKDB_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "double": sa.Double,
    "decimal": sa.Numeric,
    "blob": sa.LargeBinary,
    "bit": sa.String,
    "timestamp with time zone": lambda: sa.TIMESTAMP(timezone=True),
    "timestamptz": lambda: sa.TIMESTAMP(timezone=True),
    "timestamptz_ns": lambda: sa.TIMESTAMP(timezone=True),
    "time with time zone": lambda: sa.TIME(timezone=True),
    "interval": sa.Interval,
}
_DECIMAL = re.compile(r"^(?:decimal|numeric)\((\d+),\s*(\d+)\)$")


def _duckdb_type(dialect: sa.Dialect, data_type: str) -> sa.types.TypeEngine[Any]:
    text = data_type.strip().lower()
    list_of = re.fullmatch(r"(.+)\[\d*\]", text)
    if list_of:
        return sa.ARRAY(_duckdb_type(dialect, list_of.group(1)))
    decimal = _DECIMAL.match(text)
    if decimal:
        return sa.Numeric(int(decimal.group(1)), int(decimal.group(2)))
    known = _DUCKDB_TYPES.get(text) or getattr(dialect, "ischema_names", {}).get(text)
    # STRUCT, MAP, UNION, ENUM ...: no SQLAlchemy type; checks treat them as opaque.
    return known() if known is not None else sa.types.NullType()
