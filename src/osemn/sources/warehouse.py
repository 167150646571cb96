"""A warehouse source: one SQLAlchemy engine, bounded, read-only, time-limited, backed off.

A ``Warehouse`` is what checks talk to: they hand it SQLAlchemy Core statements
and get rows back, or a ``SourceError``. It keeps the sidecar promises of
DESIGN.md: at most ``max_concurrency`` statements in flight, read-only sessions,
``statement_timeout`` enforced by the server or by cancelling, every statement
tagged ``/* osemn */``, and exponential backoff while the source is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect

from osemn._backoff import Backoff
from osemn.config import SourceConfig
from osemn.errors import SourceError, SourceUnavailableError, UnknownColumnError, UnknownTableError
from osemn.sources import _dialects
from osemn.sources.errors import cancelled_error, map_sqlalchemy_errors, timeout_error

__all__ = ["TableInfo", "Warehouse", "require_columns"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_Reason = Literal["timeout", "cancel"]  # why a statement in flight was interrupted


@dataclass(frozen=True, kw_only=True)
class TableInfo:
    """A reflected table or view of a source: its columns, keys and kind."""

    source: str
    name: str  # as configured: ``schema.name`` or ``name``
    table: sa.Table
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...]
    is_view: bool

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in table order."""
        return tuple(column.name for column in self.table.columns)


def require_columns(info: TableInfo, columns: Iterable[str]) -> None:
    """Check that every configured column exists in the reflected table.

    Raises:
        UnknownColumnError: for the first missing column, listing what the table has.
    """
    have = info.columns
    for column in columns:
        if column not in info.table.columns:
            raise UnknownColumnError(
                source=info.source, table=info.name, column=column, available=have
            )


@dataclass(eq=False)
class _InFlight:
    """One statement in flight: the timer that cancels it and why it was cancelled."""

    interrupt: Callable[[], None] | None
    source: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    timer: threading.Timer | None = None
    done: bool = False
    reason: _Reason | None = None

    def fire(self, reason: _Reason) -> None:
        # Under the lock, so that a statement that just finished is never cancelled
        # after its connection went back to the pool.
        with self.lock:
            if self.done:
                return
            # The first reason is the one reported; a second fire interrupts again, in
            # case the first landed before the statement reached the server.
            self.reason = self.reason or reason
            if self.interrupt is None:
                return
            try:
                self.interrupt()
            except Exception as exc:  # the statement thread reports; this thread only logs
                _log.warning("source %r: cancelling a statement failed: %s", self.source, exc)

    def finish(self) -> None:
        with self.lock:
            self.done = True
        if self.timer is not None:
            self.timer.cancel()


class Warehouse:
    """One configured warehouse source.

    Args:
        name: the source's key under ``sources:`` in osemn.yaml.
        config: its ``SourceConfig``.
        engine: an engine to use instead of creating one (the demo's DuckDB).
            It is tagged ``/* osemn */`` but its sessions are left as they are,
            timeouts are enforced by cancelling, and it is never disposed here.
        clock: monotonic seconds, for backoff.

    Raises:
        SourceError: the URL's dialect or driver is not installed.
    """

    def __init__(
        self,
        name: str,
        config: SourceConfig,
        *,
        engine: sa.Engine | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config
        self._url = sa.make_url(config.url)
        self._timeout = config.statement_timeout.total_seconds()
        self._owns_engine = engine is None
        self._connect_args = _dialects.connect_args(self._url)
        self.engine = self._create_engine() if engine is None else engine
        _dialects.tag_statements(self.engine)
        self._server_timeout = self._owns_engine and _dialects.server_enforces_timeout(
            self.dialect_name
        )
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._lock = threading.Lock()
        self._up = False
        self._backoff = Backoff(clock)
        self._last_error = ""
        self._in_flight: set[_InFlight] = set()
        # DuckDB: the last reflection of each table and the catalog rows it came from.
        self._reflected: dict[str, tuple[_dialects.DuckDBCatalog, TableInfo]] = {}

    def _create_engine(self) -> sa.Engine:
        with map_sqlalchemy_errors(self.name, url=self._url):
            try:
                dialect = self._url.get_dialect()
                kwargs: dict[str, Any] = {
                    "hide_parameters": True,
                    "connect_args": self._connect_args,
                }
                # Only a QueuePool takes a size; SQLite's :memory: uses one connection per thread.
                if issubclass(dialect, DefaultDialect) and issubclass(
                    dialect.get_pool_class(self._url), sa.QueuePool
                ):
                    kwargs.update(pool_size=self.config.max_concurrency, max_overflow=0)
                engine = sa.create_engine(self._url, **kwargs)
            except (ImportError, sa.exc.NoSuchModuleError) as exc:
                raise SourceError(
                    f"source {self.name!r}: the SQLAlchemy dialect or driver for "
                    f"{self.config.safe_url} is not installed ({exc}). Install it, e.g. "
                    "pip install 'osemn[postgres]', 'osemn[mysql]' or the dialect's package "
                    "(snowflake-sqlalchemy, trino, ...), or name an installed driver in the URL.",
                    source=self.name,
                ) from None
        sa.event.listen(
            engine, "connect", _dialects.session_listener(engine.dialect.name, self._timeout)
        )
        if engine.dialect.name not in ("postgresql", "mysql", "mariadb", "sqlite", "duckdb"):
            _log.warning(
                "source %r: osemn cannot make %s sessions read-only nor set a server-side "
                "statement_timeout; connect as a read-only role with its own time limit",
                self.name,
                engine.dialect.name,
            )
        return engine

    @property
    def dialect_name(self) -> str:
        """The SQLAlchemy dialect: ``duckdb``, ``sqlite``, ``postgresql``, ``mysql``, ..."""
        return self.engine.dialect.name

    @property
    def up(self) -> bool:
        """True when the source answered its last statement (``osemn_source_up``)."""
        return self._up

    @property
    def in_flight(self) -> int:
        """Statements running now."""
        with self._lock:
            return len(self._in_flight)

    def available(self) -> bool:
        """False while backing off after the source was unreachable."""
        return self._backoff.remaining() <= 0

    def execute(self, statement: sa.Executable) -> list[sa.Row[Any]]:
        """Run one read-only statement in its own transaction and fetch all rows.

        Raises:
            SourceUnavailableError: unreachable, or backing off after it was.
            QueryTimeoutError: past ``statement_timeout``, or cancelled by ``cancel_all``.
            SourceError: the source rejected the statement (the source stays up).
        """
        return self._run(lambda conn: list(conn.execute(statement).fetchall()))

    def describe(self, table: str) -> TableInfo:
        """Reflect a table or view named ``schema.name`` or ``name``.

        Raises:
            UnknownTableError: no such table or view; lists what the schema has.
            SourceUnavailableError, QueryTimeoutError, SourceError: as ``execute``.
        """
        return self._run(lambda conn: self._reflect(conn, table))

    def run(self, work: Callable[[sa.Connection], _T]) -> _T:
        """Run ``work`` on one read-only connection under the source's rules (backoff,
        ``max_concurrency``, ``statement_timeout`` for the whole of it, ``cancel_all``),
        for readers that need several catalog calls, such as the lineage scan.

        Raises:
            SourceUnavailableError, QueryTimeoutError, SourceError: as ``execute``.
        """
        return self._run(work)

    def cancel_all(self) -> None:
        """Cancel every statement in flight; each raises ``QueryTimeoutError`` in its caller."""
        with self._lock:
            running = list(self._in_flight)
        for statement in running:
            statement.fire("cancel")

    def close(self) -> None:
        """Dispose the engine if this Warehouse created it; a handed-in engine stays open."""
        if self._owns_engine:
            self.engine.dispose()

    def __repr__(self) -> str:
        return f"Warehouse({self.name!r}, {self.config.safe_url!r})"

    # --- running statements -------------------------------------------------

    def _run(self, work: Callable[[sa.Connection], _T]) -> _T:
        self._refuse_while_backing_off()
        with self._slots:
            # Checked again: the source may have gone down while this waited for a slot.
            self._refuse_while_backing_off()
            statement: _InFlight | None = None
            try:
                with (
                    map_sqlalchemy_errors(
                        self.name, url=self._url, statement_timeout=self.config.statement_timeout
                    ),
                    self.engine.connect() as conn,
                ):
                    statement = self._watch(conn)
                    try:
                        result = work(conn)
                    finally:
                        self._unwatch(statement, conn)
                    if not conn.invalidated:
                        conn.rollback()
            except SourceError as err:
                if statement is not None and statement.reason == "cancel":
                    self._mark_up()
                    raise cancelled_error(self.name) from None
                if statement is not None and statement.reason == "timeout":
                    self._mark_up()
                    raise timeout_error(self.name, self.config.statement_timeout) from None
                if isinstance(err, SourceUnavailableError):
                    self._mark_down(err)
                else:
                    self._mark_up()  # it answered, with an error about the statement
                raise
        self._mark_up()
        return result

    def _watch(self, conn: sa.Connection) -> _InFlight:
        dbapi_connection = conn.connection.dbapi_connection
        interrupt = _dialects.interrupter(self.engine, dbapi_connection, self._connect_args)
        statement = _InFlight(interrupt=interrupt, source=self.name)
        if self._timeout > 0 and not self._server_timeout:
            statement.timer = threading.Timer(self._timeout, statement.fire, args=("timeout",))
            statement.timer.daemon = True
            statement.timer.name = f"osemn-timeout-{self.name}"
            statement.timer.start()
        with self._lock:
            self._in_flight.add(statement)
        return statement

    def _unwatch(self, statement: _InFlight, conn: sa.Connection) -> None:
        statement.finish()
        with self._lock:
            self._in_flight.discard(statement)
        if statement.reason is not None:
            # A cancel may land just after the statement ended; never reuse such a session.
            conn.invalidate()

    def _refuse_while_backing_off(self) -> None:
        remaining = self._backoff.remaining()
        if remaining > 0:
            raise SourceUnavailableError(
                f"source {self.name!r} is down; osemn tries it again in {remaining:.0f}s. "
                f"Last error: {self._last_error}",
                source=self.name,
            )

    def _mark_down(self, err: SourceUnavailableError) -> None:
        with self._lock:
            self._up = False
            self._last_error = str(err)
            delay = self._backoff.failed()
            failures = self._backoff.failures
        _log.warning(
            "source %r is down (%d failure(s) in a row), next try in %.1fs: %s",
            self.name,
            failures,
            delay,
            err,
        )

    def _mark_up(self) -> None:
        with self._lock:
            was_down = self._backoff.failures > 0
            self._up = True
            self._backoff.succeeded()
        if was_down:
            _log.info("source %r is up again", self.name)

    # --- reflection ---------------------------------------------------------

    def _reflect(self, conn: sa.Connection, name: str) -> TableInfo:
        schema_part, _, table_name = name.rpartition(".")
        schema = schema_part or None
        catalog = None
        if conn.dialect.name == "duckdb":
            # One catalog statement; an unchanged catalog gives back the same TableInfo,
            # so the schema compiled for it and SQLAlchemy's compiled statements are reused.
            catalog = _dialects.duckdb_catalog(conn, schema, table_name)
            with self._lock:
                known = self._reflected.get(name)
            if known is not None and known[0] == catalog:
                return known[1]
        try:
            table, is_view = _dialects.reflect_table(conn, schema, table_name, catalog=catalog)
        except sa.exc.NoSuchTableError:
            raise self._unknown_table(conn, name, schema) from None
        except sa.exc.DBAPIError:
            # SQLite and MySQL fail outright on a schema (database) they do not have.
            if schema is None or schema in _dialects.list_schemas(conn):
                raise
            raise self._unknown_table(conn, name, schema) from None
        unique: dict[tuple[str, ...], None] = {}
        for constraint in table.constraints:
            if isinstance(constraint, sa.UniqueConstraint):
                unique[tuple(column.name for column in constraint.columns)] = None
        for index in table.indexes:
            if index.unique:
                unique[tuple(column.name for column in index.columns)] = None
        info = TableInfo(
            source=self.name,
            name=name,
            table=table,
            primary_key=tuple(column.name for column in table.primary_key.columns),
            unique_keys=tuple(key for key in unique if key),
            is_view=is_view,
        )
        if catalog is not None:
            with self._lock:
                self._reflected[name] = (catalog, info)
        return info

    def _unknown_table(
        self, conn: sa.Connection, name: str, schema: str | None
    ) -> UnknownTableError:
        schemas = _dialects.list_schemas(conn) if schema is not None else []
        if schema is not None and schema not in schemas:
            # The schema itself is wrong: list the schemas, each as "schema.*".
            available = [f"{s}.*" for s in schemas]
        else:
            relations = _dialects.list_relations(conn, schema)
            available = [f"{schema}.{r}" if schema else r for r in relations]
        return UnknownTableError(source=self.name, table=name, available=sorted(available))
