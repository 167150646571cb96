"""The demo's feature store: a Feast repo over the demo warehouse, fed and materialized live.

A feature pipeline as many teams run one: every ``EXPORT_INTERVAL`` it snapshots
per-entity aggregates of the orders into feature tables of the warehouse (one
row per entity, stamped with the snapshot time) and exports each table to a
parquet file, the batch source (``FileSource``) of a Feast feature view; every
``MATERIALIZE_INTERVAL`` it runs ``materialize_incremental`` into a SQLite
online store. Snapshots keep ``RETENTION`` of history, so the offline store
still holds the rows of the last materialization when the next export lands
(online/offline parity compares with those).

The pipeline runs on the incident generator's thread, through the warehouse's
one read-write engine (DuckDB allows one configuration per file and process).
Feast is imported only when the repo is built: the import takes seconds, and
nothing else of the demo needs it.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from osemn.demo.warehouse import demo_tables, utc_naive
from osemn.errors import ConfigError, SourceError

__all__ = [
    "EXPORT_INTERVAL",
    "FEATURE_SOURCE",
    "FEATURE_TTL",
    "FEATURE_VIEWS",
    "MATERIALIZE_INTERVAL",
    "RETENTION",
    "FeaturePipeline",
    "build_feature_repo",
    "feature_tables",
]

FEATURE_SOURCE = "features"
"""The Feast source's name in the demo's osemn.yaml (``store`` label of its metrics)."""
FEATURE_VIEWS = ("country_stats", "customer_stats")
# A short TTL, so that a materialization stall outlives it within a one-minute demo:
# Feast stops serving values older than the TTL, and osemn's materialization check
# fails once the last materialization is older than it.
FEATURE_TTL = timedelta(seconds=30)
EXPORT_INTERVAL = timedelta(seconds=5)
MATERIALIZE_INTERVAL = timedelta(seconds=10)
RETENTION = timedelta(minutes=10)

_PROJECT = "osemn_demo"
_REPO = "feature_repo"
_DATA = "data"
_CUSTOMER_WINDOW = timedelta(hours=1)
_COUNTRY_WINDOW = timedelta(minutes=5)


def feature_tables() -> tuple[sa.Table, sa.Table]:
    """The ``customer_stats`` and ``country_stats`` snapshot tables of the warehouse.

    ``last_order_at`` is cut to the second: Feast's online store keeps a
    ``UnixTimestamp`` in whole seconds, and parity compares the two.
    """
    metadata = sa.MetaData()
    customer_stats = sa.Table(
        "customer_stats",
        metadata,
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("event_timestamp", sa.DateTime, nullable=False),
        sa.Column("orders_1h", sa.BigInteger, nullable=False),
        sa.Column("amount_1h", sa.Double, nullable=False),
        sa.Column("last_order_at", sa.DateTime),
    )
    country_stats = sa.Table(
        "country_stats",
        metadata,
        sa.Column("country", sa.String, nullable=False),
        sa.Column("event_timestamp", sa.DateTime, nullable=False),
        sa.Column("orders_5m", sa.BigInteger, nullable=False),
        sa.Column("avg_amount_5m", sa.Double),
    )
    return customer_stats, country_stats


class _CopyToParquet(ExecutableDDLElement):
    """``COPY table TO 'path' (FORMAT parquet)``: DuckDB's export, which Core lacks."""

    inherit_cache = False

    def __init__(self, table: sa.Table, path: Path) -> None:
        self.table = table
        self.path = path


@compiles(_CopyToParquet)
def _compile_copy(element: _CopyToParquet, compiler: DDLCompiler, **kw: Any) -> str:
    table = compiler.preparer.format_table(element.table)
    path = compiler.sql_compiler.process(sa.literal(str(element.path)), literal_binds=True)
    return f"COPY {table} TO {path} (FORMAT parquet)"


def _snapshots(now: datetime) -> list[tuple[sa.Table, sa.Select[Any]]]:
    """Each feature table with the SELECT of its snapshot at ``now`` (naive UTC)."""
    customer_stats, country_stats = feature_tables()
    customers, orders = demo_tables()
    c, o = customers.c, orders.c
    recent = o.created_at > now - _CUSTOMER_WINDOW
    per_customer = (
        sa.select(
            c.customer_id,
            sa.literal(now, sa.DateTime).label("event_timestamp"),
            sa.func.count(o.order_id).filter(recent).label("orders_1h"),
            sa.func.coalesce(sa.func.sum(o.amount).filter(recent), 0.0).label("amount_1h"),
            sa.func.date_trunc("second", sa.func.max(o.created_at)).label("last_order_at"),
        )
        .select_from(customers.outerjoin(orders, o.customer_id == c.customer_id))
        .group_by(c.customer_id)
    )
    latest = o.created_at > now - _COUNTRY_WINDOW
    per_country = (
        sa.select(
            c.country,
            sa.literal(now, sa.DateTime).label("event_timestamp"),
            sa.func.count(o.order_id).filter(latest).label("orders_5m"),
            sa.func.avg(o.amount).filter(latest).label("avg_amount_5m"),
        )
        .select_from(customers.outerjoin(orders, o.customer_id == c.customer_id))
        .group_by(c.country)
    )
    return [(customer_stats, per_customer), (country_stats, per_country)]


def _feast_objects(data: Path) -> list[Any]:
    """The entities and feature views of the demo repo (imports Feast)."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String, UnixTimestamp

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    country = Entity(name="country", join_keys=["country"], value_type=ValueType.STRING)

    def source(name: str) -> Any:
        return FileSource(
            name=f"{name}_parquet",
            path=str(data / f"{name}.parquet"),
            timestamp_field="event_timestamp",
        )

    customer_view = FeatureView(
        name="customer_stats",
        entities=[customer],
        ttl=FEATURE_TTL,
        schema=[
            Field(name="customer_id", dtype=Int64),
            Field(name="orders_1h", dtype=Int64),
            Field(name="amount_1h", dtype=Float64),
            Field(name="last_order_at", dtype=UnixTimestamp),
        ],
        source=source("customer_stats"),
        online=True,
    )
    country_view = FeatureView(
        name="country_stats",
        entities=[country],
        ttl=FEATURE_TTL,
        schema=[
            Field(name="country", dtype=String),
            Field(name="orders_5m", dtype=Int64),
            Field(name="avg_amount_5m", dtype=Float64),
        ],
        source=source("country_stats"),
        online=True,
    )
    return [customer, country, customer_view, country_view]


@contextlib.contextmanager
def _feast_call(what: str, repo: Path) -> Iterator[None]:
    """Run a Feast call quietly and translate its failure (the boundary to Feast).

    Feast prints progress to stdout, which would scribble over the demo's status
    table; the demo writes that table to the stream it held before this runs.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except Exception as exc:  # Feast raises its own, pyarrow's, sqlite3's and OS errors
        raise SourceError(
            f"the demo's Feast repo {str(repo)!r}: {what} failed: {type(exc).__name__}: {exc}. "
            "Delete the demo folder and start the demo again.",
            source=FEATURE_SOURCE,
        ) from exc


class FeaturePipeline:
    """Exports the feature tables and materializes the views, each on its own interval.

    Built by ``build_feature_repo``; ``step(now)`` does what is due at ``now``
    (the incident generator calls it every tick, on the demo's clock).

    Args:
        engine: the demo warehouse's read-write engine (not closed here).
        repo: the Feast repo folder.
        store: its applied ``feast.FeatureStore``.
        now: when the repo was built, exported and first materialized.
    """

    def __init__(self, engine: sa.Engine, repo: Path, store: Any, *, now: datetime) -> None:
        self._engine = engine
        self.repo = repo
        self._store = store
        self._export_due = now + EXPORT_INTERVAL
        self._materialize_due = now + MATERIALIZE_INTERVAL
        self.materialized_until = now

    @property
    def store(self) -> Any:
        """The ``feast.FeatureStore`` the pipeline materializes with."""
        return self._store

    def step(self, now: datetime, *, materialize: bool = True) -> None:
        """Export if due; materialize if due and ``materialize`` (False while it stalls).

        Raises:
            SourceError: materialization failed.
            sqlalchemy.exc.SQLAlchemyError: the export failed.
        """
        if now >= self._export_due:
            self.export(now)
            self._export_due = now + EXPORT_INTERVAL
        if materialize and now >= self._materialize_due:
            self.materialize(now)
            self._materialize_due = now + MATERIALIZE_INTERVAL

    def export(self, now: datetime) -> None:
        """Snapshot every feature table at ``now``, drop old snapshots, rewrite the parquet.

        Each file is written beside its target and renamed over it, so Feast and
        osemn never read half a file.
        """
        at = utc_naive(now)
        data = self.repo / _DATA
        with self._engine.begin() as conn:
            for table, snapshot in _snapshots(at):
                conn.execute(table.delete().where(table.c.event_timestamp < at - RETENTION))
                conn.execute(table.insert().from_select(snapshot.selected_columns.keys(), snapshot))
                partial = data / f".{table.name}.parquet.partial"
                conn.execute(_CopyToParquet(table, partial))
                os.replace(partial, data / f"{table.name}.parquet")

    def materialize(self, now: datetime) -> None:
        """``materialize_incremental`` of every view up to ``now``.

        Raises:
            SourceError: Feast failed.
        """
        with _feast_call("materialize_incremental", self.repo):
            self._store.materialize_incremental(end_date=now)
        self.materialized_until = now


def build_feature_repo(
    root: Path, engine: sa.Engine, *, clock: Callable[[], datetime]
) -> FeaturePipeline:
    """Create the Feast repo ``root/feature_repo``, export, apply and materialize once.

    The repo has ``provider: local``, a SQL registry in ``feature_repo/registry.db``
    (SQLite), the file offline store and a SQLite online store at
    ``root/online.db``; an existing repo there is replaced. The first snapshot
    and materialization are taken once Feast is imported (seconds after the
    call), covering the TTL before that instant.

    Args:
        root: the demo's work folder.
        engine: the demo warehouse's read-write engine, already seeded.
        clock: the demo's clock (aware UTC).

    Raises:
        ConfigError: Feast is not installed.
        SourceError: Feast failed to apply or materialize the repo.
    """
    repo = root / _REPO
    (repo / _DATA).mkdir(parents=True, exist_ok=True)
    for stale in (repo / "registry.db", root / "online.db"):
        stale.unlink(missing_ok=True)
    # A SQL registry (in a SQLite file) rather than a registry file: Feast rewrites a
    # registry file in place, which a concurrent reader (the agent) may catch half
    # written. And Feast refuses to serve a view while it is MATERIALIZING unless
    # told to keep serving (feast-dev/feast#6780): every materialization would make
    # the agent's probes see the store down for a moment.
    config = {
        "project": _PROJECT,
        "registry": {
            "registry_type": "sql",
            "path": sa.URL.create("sqlite", database=str(repo / "registry.db")).render_as_string(),
            "cache_ttl_seconds": 0,
            "serve_features_while_materializing": True,
        },
        "provider": "local",
        "online_store": {"type": "sqlite", "path": str(root / "online.db")},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    header = "# osemn demo: customer and country features of the demo warehouse's orders.\n"
    (repo / "feature_store.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    tables = feature_tables()
    with engine.begin() as conn:
        tables[0].metadata.drop_all(conn)
        tables[0].metadata.create_all(conn)
    try:
        from feast import FeatureStore
    except ImportError as exc:
        raise ConfigError(
            f"the demo's feature store needs Feast ({exc}). Install it with: "
            "pip install 'osemn[feast]'",
            key="feast",
        ) from None
    with _feast_call("loading the repo", repo):
        store = FeatureStore(repo_path=str(repo))
    now = clock()
    pipeline = FeaturePipeline(engine, repo, store, now=now)
    pipeline.export(now)
    with _feast_call("apply", repo):
        store.apply(_feast_objects(repo / _DATA))
    with _feast_call("materialize", repo):
        store.materialize(start_date=now - FEATURE_TTL, end_date=now)
    return pipeline
