"""The warehouse source against real DuckDB, SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import inspect
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from osemn.config import SourceConfig
from osemn.errors import (
    QueryTimeoutError,
    SourceError,
    SourceUnavailableError,
    UnknownColumnError,
    UnknownTableError,
)
from osemn.sources.errors import map_sqlalchemy_errors
from osemn.sources.warehouse import Warehouse, require_columns
from tests.conftest import MYSQL_URL, PG_URL
from tests.conftest import Warehouse as Scratch

OpenSource = Callable[..., Warehouse]


@pytest.fixture
def open_source(warehouse: Scratch) -> Iterator[OpenSource]:
    """Open ``Warehouse``\\s on the scratch warehouse's URL; closed after the test."""
    opened: list[Warehouse] = []

    def open_(*, engine: sa.Engine | None = None, **config: Any) -> Warehouse:
        if warehouse.dialect == "duckdb" and engine is None:
            # DuckDB refuses a read-only open while the loader's read-write one is alive,
            # and a read-only open of a file that was never written.
            with warehouse.engine.connect():
                pass
            warehouse.engine.dispose()
        source = Warehouse("wh", SourceConfig(url=warehouse.url, **config), engine=engine)
        opened.append(source)
        return source

    yield open_
    for source in opened:
        source.close()


def _orders(scratch: Scratch) -> sa.Table:
    """Create and fill ``Order Lines`` (a name that needs quoting) and a view on it."""
    metadata = sa.MetaData()
    table = sa.Table(
        "Order Lines",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String(40), nullable=False, unique=True),
        sa.Column("shop", sa.Integer),
        sa.Column("line", sa.Integer),
        sa.Column("sku", sa.String(20)),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.UniqueConstraint("shop", "line"),
        sa.Index("ix_sku", "sku", unique=True),
        schema=scratch.schema,
    )
    with scratch.engine.begin() as conn:
        metadata.create_all(conn, tables=[table])
        conn.execute(
            table.insert(),
            [
                {"id": 1, "email": "a@x", "shop": 1, "line": 1, "sku": "s1", "amount": 5},
                {"id": 2, "email": "b@x", "shop": 1, "line": 2, "sku": "s2", "amount": 50},
            ],
        )
        big = sa.select(table.c.id).where(table.c.amount > 10)
        conn.execute(sa.schema.CreateView(big, "big orders", schema=scratch.schema))
    return table


def _slow(dialect: str) -> sa.Select[Any]:
    """A statement that runs far longer than any timeout in these tests."""
    if dialect == "postgresql":
        return sa.select(sa.func.pg_sleep(30))
    if dialect == "mariadb":
        return sa.select(sa.func.sleep(30))
    n = sa.select(sa.literal(1).label("n")).cte("n", recursive=True)
    n = n.union_all(sa.select(n.c.n + 1).where(n.c.n < 10**12))
    return sa.select(sa.func.count()).select_from(n)


# --- reflection ---------------------------------------------------------------


def test_describe_reflects_columns_keys_and_views(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    _orders(warehouse)
    source = open_source()
    assert source.dialect_name in {"duckdb", "sqlite", "postgresql", "mysql", "mariadb"}

    info = source.describe(warehouse.qualified("Order Lines"))

    assert info.columns == ("id", "email", "shop", "line", "sku", "amount")
    assert info.primary_key == ("id",)
    assert set(info.unique_keys) == {("email",), ("shop", "line"), ("sku",)}
    assert not info.is_view
    assert not info.table.c.email.nullable and info.table.c.sku.nullable
    assert isinstance(info.table.c.amount.type, sa.Numeric)
    assert isinstance(info.table.c.shop.type, sa.Integer)
    # The reflected table is usable for queries; its quoted name reaches the server.
    rows = source.execute(sa.select(info.table.c.id).order_by(info.table.c.id))
    assert [row.id for row in rows] == [1, 2]

    view = source.describe(warehouse.qualified("big orders"))
    assert view.is_view and view.columns == ("id",)
    assert [row.id for row in source.execute(sa.select(view.table.c.id))] == [2]


def test_duckdb_reflects_in_one_statement_and_reuses_an_unchanged_reflection(
    duckdb_warehouse: Scratch,
) -> None:
    """An unchanged catalog gives back the same TableInfo; any change is seen at once."""
    wh = duckdb_warehouse
    _orders(wh)
    source = Warehouse("wh", SourceConfig(url=wh.url), engine=wh.engine)
    sent: list[str] = []

    def catalog_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "duckdb_" in statement:
            sent.append(statement)

    sa.event.listen(wh.engine, "after_cursor_execute", catalog_read)
    name = wh.qualified("Order Lines")

    first = source.describe(name)
    again = source.describe(name)

    assert again is first and len(sent) == 2  # one catalog statement per describe
    with wh.engine.begin() as conn:
        conn.exec_driver_sql('ALTER TABLE "Order Lines" ADD COLUMN note VARCHAR')
    added = source.describe(name)
    assert added is not first and added.columns[-1] == "note"
    with wh.engine.begin() as conn:
        conn.exec_driver_sql('CREATE UNIQUE INDEX ix_note ON "Order Lines" (note)')
    indexed = source.describe(name)
    assert indexed is not added and ("note",) in indexed.unique_keys
    assert source.describe(wh.qualified("big orders")).is_view
    assert len(sent) == 5


def test_describe_unknown_table_lists_what_the_schema_has(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    _orders(warehouse)
    source = open_source()

    with pytest.raises(UnknownTableError) as missing:
        source.describe(warehouse.qualified("orders"))
    assert missing.value.source == "wh"
    assert missing.value.available == (
        warehouse.qualified("Order Lines"),
        warehouse.qualified("big orders"),
    )
    assert "Fix `table:`" in str(missing.value)

    with pytest.raises(UnknownTableError) as no_schema:
        source.describe("no_such_schema.orders")
    assert all(name.endswith(".*") for name in no_schema.value.available)
    assert source.up  # a wrong name is not a dead source


def test_require_columns_names_what_the_table_has(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    _orders(warehouse)
    info = open_source().describe(warehouse.qualified("Order Lines"))
    require_columns(info, ["id", "amount"])

    with pytest.raises(UnknownColumnError) as missing:
        require_columns(info, ["id", "amout"])
    assert missing.value.column == "amout"
    assert missing.value.table == warehouse.qualified("Order Lines")
    assert missing.value.available == info.columns


# --- sidecar safety -------------------------------------------------------------


def test_every_statement_starts_with_the_osemn_comment(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    _orders(warehouse)
    source = open_source()
    sent: list[str] = []
    sa.event.listen(source.engine, "after_cursor_execute", lambda *args: sent.append(args[2]))

    info = source.describe(warehouse.qualified("Order Lines"))
    source.execute(sa.select(sa.func.count()).select_from(info.table))

    assert sent, "nothing was sent"
    assert all(statement.startswith("/* osemn */ ") for statement in sent), sent


def test_a_handed_in_engine_is_tagged_once_and_never_disposed(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    _orders(warehouse)
    first = open_source(engine=warehouse.engine)
    second = open_source(engine=warehouse.engine)
    sent: list[str] = []
    sa.event.listen(warehouse.engine, "after_cursor_execute", lambda *args: sent.append(args[2]))

    second.execute(sa.select(sa.literal(1)))
    first.close()
    second.close()

    assert [statement.count("/* osemn */") for statement in sent] == [1]
    pool = warehouse.engine.pool
    assert isinstance(pool, sa.QueuePool) and pool.checkedin() == 1  # it survived close()


def test_writes_through_the_warehouse_engine_fail(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    table = _orders(warehouse)
    source = open_source()
    row = {"id": 3, "email": "c@x", "shop": 2, "line": 1, "sku": "s3", "amount": 1}

    with pytest.raises(sa.exc.DBAPIError), source.engine.begin() as conn:
        conn.execute(table.insert(), row)
    with pytest.raises(SourceError) as through_execute:
        source.execute(table.insert().values(row))
    assert not isinstance(through_execute.value, SourceUnavailableError)

    assert source.execute(sa.select(sa.func.count()).select_from(table))[0][0] == 2


def test_pool_and_semaphore_are_sized_to_max_concurrency(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    source = open_source(max_concurrency=3)
    assert isinstance(source.engine.pool, sa.QueuePool)
    assert source.engine.pool.size() == 3
    assert source.engine.pool.overflow() == -3  # max_overflow=0: nothing beyond the size


def test_concurrency_holds_with_a_handed_in_engine(pg_warehouse: Scratch) -> None:
    big_pool = sa.create_engine(PG_URL, pool_size=6)
    source = Warehouse("pg", SourceConfig(url=PG_URL, max_concurrency=2), engine=big_pool)
    lock = threading.Lock()
    running = [0, 0]  # now, most

    def started(*args: Any) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running)

    def ended(*args: Any) -> None:
        with lock:
            running[0] -= 1

    sa.event.listen(big_pool, "before_cursor_execute", started)
    sa.event.listen(big_pool, "after_cursor_execute", ended)
    seen_by_server: list[str] = []

    def watch_server() -> None:
        # The server sees the tag too: what warehouse owners filter on.
        time.sleep(0.15)
        with pg_warehouse.engine.connect() as conn:
            activity = sa.table("pg_stat_activity", sa.column("query"), sa.column("pid"))
            seen_by_server.extend(
                conn.execute(
                    sa.select(activity.c.query).where(
                        activity.c.query.contains("pg_sleep"),
                        activity.c.pid != sa.func.pg_backend_pid(),
                    )
                ).scalars()
            )

    threads = [
        threading.Thread(target=source.execute, args=(sa.select(sa.func.pg_sleep(0.3)),))
        for _ in range(5)
    ]
    threads.append(threading.Thread(target=watch_server))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        big_pool.dispose()

    assert running == [0, 2]
    assert seen_by_server and all(q.startswith("/* osemn */") for q in seen_by_server)


@pytest.mark.parametrize(
    ("url", "settings", "expected"),
    [
        (
            PG_URL,
            (
                sa.func.current_setting("transaction_read_only"),
                sa.func.current_setting("statement_timeout"),
            ),
            ("on", "1500ms"),
        ),
        (
            MYSQL_URL,
            (
                sa.literal_column("@@session.tx_read_only"),
                sa.literal_column("@@session.max_statement_time"),
            ),
            (1, 1.5),
        ),
    ],
    ids=["postgresql", "mariadb"],
)
def test_server_sessions_are_read_only_with_a_timeout(
    url: str, settings: tuple[sa.ColumnElement[Any], ...], expected: tuple[Any, ...]
) -> None:
    source = Warehouse("db", SourceConfig(url=url, statement_timeout="1500ms"))
    try:
        [row] = source.execute(sa.select(*settings))
    finally:
        source.close()
    assert tuple(row) == expected


# --- timeouts and cancels ---------------------------------------------------------


def test_statement_timeout_cancels_a_slow_statement(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    source = open_source(statement_timeout="1s")
    started = time.monotonic()

    with pytest.raises(QueryTimeoutError) as timeout:
        source.execute(_slow(warehouse.dialect))

    assert 0.9 < time.monotonic() - started < 5
    message = str(timeout.value)
    assert "'wh'" in message and "statement_timeout 1s" in message
    assert "sources.wh.statement_timeout" in message
    assert timeout.value.source == "wh"
    # A timeout is not an outage, and the pool still serves the next statement.
    assert source.up and source.available()
    assert source.execute(sa.select(sa.literal(7)))[0][0] == 7


def test_statement_timeout_on_a_handed_in_engine_cancels_from_a_timer(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    source = open_source(engine=warehouse.engine, statement_timeout="1s")
    started = time.monotonic()

    with pytest.raises(QueryTimeoutError, match="statement_timeout 1s"):
        source.execute(_slow(warehouse.dialect))

    assert time.monotonic() - started < 5
    assert source.execute(sa.select(sa.literal(7)))[0][0] == 7


def test_cancel_all_stops_statements_in_flight(warehouse: Scratch, open_source: OpenSource) -> None:
    source = open_source(statement_timeout="60s")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            source.execute(_slow(warehouse.dialect))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while source.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # let the statement reach the server
    started = time.monotonic()
    source.cancel_all()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    [error] = errors
    assert isinstance(error, QueryTimeoutError) and "shutdown" in str(error)
    assert source.in_flight == 0


# --- outages and backoff ------------------------------------------------------------


def test_an_unreachable_source_is_down_and_backs_off() -> None:
    now = [1000.0]
    password = "s3cr3t-Pa55"
    source = Warehouse(
        "pg",
        SourceConfig(url=f"postgresql+psycopg://osemn:{password}@127.0.0.1:1/test"),
        clock=lambda: now[0],
    )
    attempts: list[object] = []
    sa.event.listen(source.engine, "do_connect", lambda *args: attempts.append(args))
    try:
        with pytest.raises(SourceUnavailableError) as down:
            source.execute(sa.select(sa.literal(1)))
        assert not source.up and not source.available()

        shown = "".join(traceback.format_exception(down.value)) + repr(down.value)
        assert password not in shown
        assert "127.0.0.1:1" in str(down.value) and "***" in str(down.value)

        # While backing off, nothing is sent to the source.
        with pytest.raises(SourceUnavailableError, match="tries it again"):
            source.describe("public.orders")
        assert len(attempts) == 1

        now[0] += 0.74  # the first delay is 0.75s..1s (jitter)
        assert not source.available()
        now[0] += 0.26
        assert source.available()

        with pytest.raises(SourceUnavailableError):
            source.execute(sa.select(sa.literal(1)))
        now[0] += 1.49  # the second delay is 1.5s..2s
        assert not source.available()
        now[0] += 0.51
        assert source.available()

        for _ in range(20):  # exponential, capped at 5 minutes
            now[0] += 300
            with pytest.raises(SourceUnavailableError):
                source.execute(sa.select(sa.literal(1)))
        now[0] += 224
        assert not source.available()
        now[0] += 76
        assert source.available()
    finally:
        source.close()


def test_a_source_that_comes_back_is_up_again(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "late.duckdb"
    source = Warehouse("late", SourceConfig(url=f"duckdb:///{path}"), clock=lambda: now[0])
    try:
        with pytest.raises(SourceUnavailableError):  # read-only open of a missing file
            source.execute(sa.select(sa.literal(1)))
        assert not source.up

        duckdb.connect(str(path)).close()
        now[0] += 1
        assert source.execute(sa.select(sa.literal(1)))[0][0] == 1
        assert source.up and source.available()
    finally:
        source.close()


def test_a_bad_statement_does_not_mark_the_source_down(
    warehouse: Scratch, open_source: OpenSource
) -> None:
    table = _orders(warehouse)
    source = open_source()
    bad = sa.select(sa.func.count()).select_from(table).where(sa.column("no_such_column") > 1)

    with pytest.raises(SourceError) as rejected:
        source.execute(bad)

    assert type(rejected.value) is SourceError
    assert "no_such_column" in str(rejected.value)
    assert source.up and source.available()
    # PostgreSQL aborts the failed transaction; the next statement gets a fresh one.
    assert source.execute(sa.select(sa.func.count()).select_from(table))[0][0] == 2


@pytest.mark.parametrize(
    "url", ["postgresql+pg8000://u:pw@127.0.0.1/db", "nosuchdialect://u:pw@127.0.0.1/db"]
)
def test_a_missing_driver_says_what_to_install(url: str) -> None:
    with pytest.raises(SourceError, match=r"not installed.*pip install") as missing:
        Warehouse("pg", SourceConfig(url=url))
    assert ":pw@" not in str(missing.value)


# --- the error boundary ---------------------------------------------------------------


def _instance(cls: type[sa.exc.SQLAlchemyError]) -> sa.exc.SQLAlchemyError:
    """One instance of any SQLAlchemy exception class, built by its own constructor."""
    driver_error = Exception("driver said no")
    if issubclass(cls, sa.exc.DBAPIError):
        return cls("SELECT 1", None, driver_error)
    if issubclass(cls, sa.exc.StatementError):
        return cls("failed", "SELECT 1", None, driver_error)
    special: dict[type[Any], tuple[Any, ...]] = {
        sa.exc.CircularDependencyError: ("cycle", set(), set()),
        sa.exc.NoReferencedColumnError: ("no column", "t", "c"),
        sa.exc.NoReferencedTableError: ("no table", "t"),
        sa.exc.ObjectNotExecutableError: (object(),),
        sa.exc.UnsupportedCompilationError: (sa.sql.compiler.SQLCompiler, sa.Column),
    }
    return cls(*special.get(cls, ("went wrong",)))


_SQLALCHEMY_ERRORS = sorted(
    (
        cls
        for cls in vars(sa.exc).values()
        if inspect.isclass(cls) and issubclass(cls, sa.exc.SQLAlchemyError)
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", _SQLALCHEMY_ERRORS, ids=lambda cls: cls.__name__)
def test_every_sqlalchemy_error_is_mapped(cls: type[sa.exc.SQLAlchemyError]) -> None:
    with pytest.raises(SourceError) as mapped, map_sqlalchemy_errors("wh"):
        raise _instance(cls)
    assert mapped.value.source == "wh"
    assert mapped.value.__cause__ is None and mapped.value.__suppress_context__


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sa.exc.OperationalError(None, None, Exception("refused")), SourceUnavailableError),
        (
            sa.exc.OperationalError(
                "SELECT 1", None, Exception("gone"), connection_invalidated=True
            ),
            SourceUnavailableError,
        ),
        (sa.exc.InvalidatePoolError("pool"), SourceUnavailableError),
        (
            sa.exc.OperationalError("SELECT 1", None, psycopg.errors.QueryCanceled()),
            QueryTimeoutError,
        ),
        (
            sa.exc.OperationalError("SELECT 1", None, pymysql.err.OperationalError(1969, "t")),
            QueryTimeoutError,
        ),
        (
            sa.exc.OperationalError("SELECT 1", None, pymysql.err.OperationalError(3024, "t")),
            QueryTimeoutError,
        ),
        (sa.exc.DatabaseError("SELECT 1", None, duckdb.InterruptException("i")), QueryTimeoutError),
        (
            sa.exc.OperationalError("SELECT 1", None, sqlite3.OperationalError("interrupted")),
            QueryTimeoutError,
        ),
        (sa.exc.NoSuchTableError("public.orders"), UnknownTableError),
        (sa.exc.ProgrammingError("SELECT x", None, Exception("no column x")), SourceError),
        (sa.exc.TimeoutError("QueuePool limit"), SourceError),
    ],
    ids=lambda value: type(value).__name__,
)
def test_errors_map_to_their_meaning(error: Exception, expected: type[SourceError]) -> None:
    with (
        pytest.raises(SourceError) as mapped,
        map_sqlalchemy_errors("wh", statement_timeout=timedelta(seconds=30)),
    ):
        raise error
    assert type(mapped.value) is expected


def test_mapped_errors_never_show_the_password() -> None:
    url = "postgresql+psycopg://osemn:p%40ss%2Fw0rd@db.internal:5432/wh"
    echoed = Exception("invalid dsn: password=p@ss/w0rd host=db.internal (p%40ss%2Fw0rd)")
    with pytest.raises(SourceUnavailableError) as mapped, map_sqlalchemy_errors("wh", url=url):
        raise sa.exc.OperationalError(None, None, echoed)
    text = str(mapped.value)
    assert "p@ss/w0rd" not in text and "p%40ss%2Fw0rd" not in text
    assert "db.internal:5432" in text


def test_duckdb_memory_is_bounded_and_the_url_can_raise_it(tmp_path: Path) -> None:
    """The embedded engine's buffer pool is the agent's memory: osemn caps it."""
    path = tmp_path / "mem.duckdb"
    creator = sa.create_engine(f"duckdb:///{path}")
    with creator.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    creator.dispose()
    setting = sa.select(sa.func.current_setting("memory_limit"))
    capped = Warehouse("wh", SourceConfig(url=f"duckdb:///{path}"))
    assert capped.execute(setting)[0][0] == "61.0 MiB"
    capped.close()
    raised = Warehouse("wh", SourceConfig(url=f"duckdb:///{path}?memory_limit=1GB"))
    assert raised.execute(setting)[0][0] == "953.6 MiB"
    raised.close()
