"""The batch sources of feature views as osemn warehouses.

A PostgreSQL offline store becomes one ``Warehouse`` on the URL its
``feature_store.yaml`` describes (read-only, time-limited, ``/* osemn */``).
A parquet ``FileSource`` becomes a view of an in-memory DuckDB:
``CREATE VIEW <feature view> AS SELECT * FROM read_parquet(<path>)`` on each
new connection. DuckDB then reflects, scans and aggregates the file like any
table, so the checks, the pandera compiler and the dtype comparison run on it
unchanged, and the file is read at query time, never copied.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from osemn._feast_config import FeastSourceConfig
from osemn.config import SourceConfig
from osemn.errors import SourceError
from osemn.sources import _dialects
from osemn.sources._feast_repo import BatchSourceInfo, FeatureViewInfo
from osemn.sources.warehouse import Warehouse

__all__ = ["OfflineTable", "OfflineWarehouses"]

_DUCKDB_MEMORY = "duckdb:///:memory:"


@dataclass(frozen=True, kw_only=True)
class OfflineTable:
    """Where a view's batch source can be queried: a warehouse and a table or a query.

    ``table`` is what ``warehouse.describe`` takes; a PostgreSQL source defined by
    a ``query`` has ``query`` instead (it cannot be reflected). ``label`` names the
    source in messages: the file path, the table, or ``query``.
    """

    warehouse: Warehouse
    table: str | None
    label: str
    query: str | None = None


class OfflineWarehouses:
    """The warehouses of one Feast repo's batch sources, created on first use.

    Args:
        source: the feature-store source's name in osemn.yaml.
        config: its options (``max_concurrency``, ``statement_timeout``).
        offline_store: the repo's ``offline_store`` config object from Feast.
    """

    def __init__(self, *, source: str, config: FeastSourceConfig, offline_store: Any) -> None:
        self._source = source
        self._config = config
        self._offline_store = offline_store
        self._postgres: Warehouse | None = None
        self._files: dict[tuple[str, str], tuple[Warehouse, sa.Engine]] = {}
        self._lock = threading.Lock()  # checks and probes ask from different threads

    def table(self, view: FeatureViewInfo) -> OfflineTable:
        """The warehouse and table of ``view``'s batch source.

        Raises:
            SourceError: the batch source is of a kind osemn cannot query, or the
                PostgreSQL source's offline store is not PostgreSQL.
        """
        batch = view.batch_source
        with self._lock:
            return self._table(view, batch)

    def _table(self, view: FeatureViewInfo, batch: BatchSourceInfo) -> OfflineTable:
        if batch.type == "file" and batch.path is not None:
            return OfflineTable(
                warehouse=self._file(view.name, batch.path), table=view.name, label=batch.path
            )
        if batch.type == "postgres":
            return OfflineTable(
                warehouse=self._pg(),
                table=batch.table,
                label=batch.table or "query",
                query=batch.query,
            )
        raise SourceError(
            f"source {self._source!r}: feature view {view.name!r} reads from a "
            f"{batch.type}; osemn checks parquet FileSource and PostgreSQLSource batch "
            "sources. Other views of the repo are checked; this one gets only the "
            "materialization check (no entity key can be sampled to probe it).",
            source=self._source,
        )

    def close(self) -> None:
        """Dispose every engine created here."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._postgres is not None:
            self._postgres.close()
        for _, engine in self._files.values():
            engine.dispose()
        self._files.clear()

    def _settings(self, url: str) -> SourceConfig:
        return SourceConfig(
            url=url,
            max_concurrency=self._config.max_concurrency,
            statement_timeout=self._config.statement_timeout,
        )

    def _pg(self) -> Warehouse:
        if self._postgres is None:
            store = self._offline_store
            if getattr(store, "type", None) != "postgres":
                raise SourceError(
                    f"source {self._source!r}: a PostgreSQLSource needs `offline_store: "
                    f"{{type: postgres, ...}}` in feature_store.yaml; it is "
                    f"{getattr(store, 'type', store)!r}.",
                    source=self._source,
                )
            self._postgres = Warehouse(self._source, self._settings(_postgres_url(store)))
        return self._postgres

    def _file(self, view: str, path: str) -> Warehouse:
        # Keyed by path too: a view applied again over another file gets a new view.
        known = self._files.get((view, path))
        if known is None:
            url = sa.make_url(_DUCKDB_MEMORY)
            engine = sa.create_engine(url, connect_args=_dialects.connect_args(url))
            sa.event.listen(engine, "connect", _create_view(engine.dialect, view, path))
            known = (Warehouse(self._source, self._settings(_DUCKDB_MEMORY), engine=engine), engine)
            self._files[(view, path)] = known
        return known[0]


def _postgres_url(store: Any) -> str:
    """The SQLAlchemy URL of Feast's ``PostgreSQLOfflineStoreConfig``.

    Unqualified tables resolve in ``db_schema``, as in Feast's own connections.
    """
    query: dict[str, str] = {"options": f"-csearch_path={store.db_schema}"}
    if store.sslmode:
        query["sslmode"] = store.sslmode
    for key in ("sslkey_path", "sslcert_path", "sslrootcert_path"):
        value = getattr(store, key, None)
        if value:
            query[key.removesuffix("_path")] = value
    url = sa.URL.create(
        "postgresql+psycopg",
        username=store.user,
        password=store.password or None,
        host=store.host,
        port=store.port,
        database=store.database,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def _create_view(dialect: sa.Dialect, view: str, path: str) -> Any:
    """A pool ``connect`` listener that defines the view over the parquet file(s)."""
    location = f"{path.rstrip('/')}/**/*.parquet" if Path(path).is_dir() else path
    scan: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(
        sa.func.read_parquet(sa.literal(location)).table_valued()
    )
    # DDL takes no bound parameters: the path is rendered as a literal by the dialect.
    ddl = str(
        sa.CreateView(scan, view).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    )

    def create(dbapi_connection: Any, connection_record: Any) -> None:
        # Naive parquet timestamps are UTC, as in Feast; DuckDB would take the host's zone.
        dbapi_connection.execute(_dialects.tag("SET TimeZone = 'UTC'"))
        dbapi_connection.execute(_dialects.tag(ddl))

    return create
