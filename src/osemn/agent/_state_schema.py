"""The state store's tables, time type, engine set-up and portable upsert.

Kept apart from ``state.py`` so that the store's behaviour reads on its own;
``schema_version`` in ``osemn_meta`` versions everything defined here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from osemn.errors import StateError

__all__ = [
    "_OPEN_LOCK_KEY",
    "_VERSION_KEY",
    "_alerts",
    "_create_engine",
    "_latest",
    "_lineage",
    "_measurements",
    "_meta",
    "_metadata",
    "_profiles",
    "_results",
    "_sli_events",
    "_sli_rollups",
    "_snapshots",
    "_stored_version",
    "_update_then_insert",
    "_upsert",
    "_watermarks",
]

# Writers from the agent's threads wait this long for SQLite's single write lock
# instead of failing with "database is locked"; WAL lets readers go on meanwhile.
# See: https://www.sqlite.org/wal.html and https://www.sqlite.org/pragma.html#pragma_busy_timeout
_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout = 15000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
)
# libpq waits for the OS TCP timeout (minutes) by default; /readyz must answer sooner.
_PG_CONNECT_TIMEOUT_SECONDS = 10
# pg_advisory_xact_lock key ("osemn_st") serializing open() of agents sharing a database.
_OPEN_LOCK_KEY = int.from_bytes(b"osemn_st", "big")
_VERSION_KEY = "schema_version"


class _UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every dialect."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(sa.DateTime(timezone=dialect.name == "postgresql"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_metadata = sa.MetaData()
# SQLite autoincrements only a column declared exactly INTEGER PRIMARY KEY.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_meta = sa.Table(
    "osemn_meta",
    _metadata,
    sa.Column("key", sa.String(), primary_key=True),
    sa.Column("value", sa.String(), nullable=False),
)
_results = sa.Table(
    "osemn_results",
    _metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),  # CheckKind's value: the enum may grow
    sa.Column("check", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("rows", sa.BigInteger()),
    sa.Column("failed_rows", sa.BigInteger()),
    sa.Column("duration_seconds", sa.Double(), nullable=False),
    sa.Column("finished_at", _UtcDateTime(), nullable=False),
    sa.Column("failures", sa.Text(), nullable=False),  # JSON list of objects
    sa.Column("details", sa.Text(), nullable=True),  # JSON object (e.g. drift histograms)
    sa.Column("error", sa.Text()),
    sa.Column("note", sa.Text()),
    sa.Column("source", sa.String()),
    sa.Index("osemn_results_dataset_check_time", "dataset", "check", "finished_at"),
    sa.Index("osemn_results_time", "finished_at"),
)
_measurements = sa.Table(
    "osemn_measurements",
    _metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("result_id", _Id, sa.ForeignKey(_results.c.id), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("dataset", sa.String(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("labels", sa.Text(), nullable=False),  # JSON list of [name, value] pairs
    sa.Column("value", sa.Double()),  # NULL is NaN: SQLite stores NaN as NULL
    sa.Column("measured_at", _UtcDateTime(), nullable=False),
    sa.Index("osemn_measurements_name_dataset_time", "name", "dataset", "measured_at"),
    sa.Index("osemn_measurements_result", "result_id"),
)
_latest = sa.Table(
    "osemn_latest",
    _metadata,
    sa.Column("dataset", sa.String(), primary_key=True),
    sa.Column("kind", sa.String(), primary_key=True),
    sa.Column("check", sa.String(), primary_key=True),
    sa.Column("result_id", _Id, sa.ForeignKey(_results.c.id), nullable=False),
    sa.Column("finished_at", _UtcDateTime(), nullable=False),
)
_watermarks = sa.Table(
    "osemn_watermarks",
    _metadata,
    sa.Column("dataset", sa.String(), primary_key=True),
    sa.Column("value", _UtcDateTime(), nullable=False),
    sa.Column("updated_at", _UtcDateTime(), nullable=False),
)
_snapshots = sa.Table(
    "osemn_schema_snapshots",
    _metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(), nullable=False),
    sa.Column("taken_at", _UtcDateTime(), nullable=False),
    sa.Column("columns", sa.Text(), nullable=False),  # JSON object column -> type
    sa.Index("osemn_schema_snapshots_dataset", "dataset", "id"),
    sa.Index("osemn_schema_snapshots_time", "taken_at"),
)


_profiles = sa.Table(
    "osemn_reference_profiles",
    _metadata,
    sa.Column("dataset", sa.String(), primary_key=True),
    sa.Column("column", sa.String(), primary_key=True),
    sa.Column("key", sa.Text(), nullable=False),  # the windows and settings it was built for
    sa.Column("profile", sa.Text(), nullable=False),  # JSON
    sa.Column("built_at", _UtcDateTime(), nullable=False),
)


_sli_events = sa.Table(
    "osemn_sli_events",
    _metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("slo", sa.String(), nullable=False),
    # Unix seconds: integer division buckets it the same way on every dialect.
    sa.Column("t", sa.BigInteger(), nullable=False),
    sa.Column("good", sa.BigInteger(), nullable=False),
    sa.Column("bad", sa.BigInteger(), nullable=False),
    # Covering: loading history sums good/bad per SLO and hour from the index alone.
    sa.Index("osemn_sli_events_slo_t", "slo", "t", "good", "bad"),
    sa.Index("osemn_sli_events_t", "t"),
)
_sli_rollups = sa.Table(
    "osemn_sli_rollups",
    _metadata,
    sa.Column("slo", sa.String(), primary_key=True),
    sa.Column("upto", sa.BigInteger(), nullable=False),  # covers events with t <= upto
    sa.Column("series", sa.LargeBinary(), nullable=False),  # SliSeries.to_bytes()
)
_alerts = sa.Table(
    "osemn_alerts",
    _metadata,
    sa.Column("fingerprint", sa.String(), primary_key=True),
    sa.Column("alert", sa.Text(), nullable=False),  # JSON: Alert.to_json() and its timers
    sa.Column("updated_at", _UtcDateTime(), nullable=False),
)


_lineage = sa.Table(
    "osemn_lineage_graphs",
    _metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("scanned_at", _UtcDateTime(), nullable=False),
    sa.Column("duration_seconds", sa.Double(), nullable=False),
    sa.Column("graph", sa.Text(), nullable=False),  # JSON: LineageGraph.to_json()
)


def _create_engine(url: str) -> sa.Engine:
    """An engine for ``url``: WAL and a busy timeout on SQLite, a connect timeout on libpq."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        # from None: SQLAlchemy 2.0's parse error repeats the URL, password included.
        raise StateError(
            "agent.state is not a SQLAlchemy URL; use e.g. sqlite:///osemn-state.db or "
            "postgresql+psycopg://user@host/db"
        ) from None
    safe = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed)
            sa.event.listen(engine, "connect", _configure_sqlite)
            return engine
        connect_args: dict[str, Any] = {}
        if (
            parsed.get_backend_name() == "postgresql"
            and parsed.get_driver_name() in ("psycopg", "psycopg2")
            and "connect_timeout" not in parsed.query
        ):
            connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_SECONDS
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StateError(
            f"state store {safe}: cannot create an engine: {exc}. Install the driver "
            "(pip install 'osemn[postgres]' for PostgreSQL) or fix agent.state."
        ) from exc


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _stored_version(conn: sa.Connection) -> int | None:
    if not sa.inspect(conn).has_table(_meta.name):
        return None
    value = conn.execute(
        sa.select(_meta.c.value).where(_meta.c.key == _VERSION_KEY)
    ).scalar_one_or_none()
    return None if value is None else int(value)


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    key: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    guard: sa.ColumnElement[bool] | None = None,
) -> None:
    """Insert a row or update the one with the same ``key`` (only where ``guard`` holds)."""
    row = {**key, **values}
    if conn.dialect.name == "postgresql":
        conn.execute(
            postgresql.insert(table)
            .values(row)
            .on_conflict_do_update(index_elements=list(key), set_=dict(values), where=guard)
        )
    elif conn.dialect.name == "sqlite":
        conn.execute(
            sqlite.insert(table)
            .values(row)
            .on_conflict_do_update(index_elements=list(key), set_=dict(values), where=guard)
        )
    else:
        _update_then_insert(conn, table, key, values, guard=guard)


def _update_then_insert(
    conn: sa.Connection,
    table: sa.Table,
    key: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    guard: sa.ColumnElement[bool] | None = None,
) -> None:
    """The portable upsert for dialects without ``ON CONFLICT``."""
    match = sa.and_(*(table.c[name] == value for name, value in key.items()))
    update = sa.update(table).where(match if guard is None else sa.and_(match, guard))
    if conn.execute(update.values(dict(values))).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(table).values({**key, **values}))
    except sa.exc.IntegrityError:
        # The row exists: the guard kept it, or a concurrent writer just inserted it.
        conn.execute(update.values(dict(values)))
