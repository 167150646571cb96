"""Real Feast repos for the feature-store tests, built in tmp_path and materialized.

Times are relative to the real clock (rounded to the second): Feast serves a
value only while it is younger than the view's TTL by the real clock, so the
frozen clock of the checks stands at ``NOW``, a moment of this test run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import redis
import sqlalchemy as sa
import yaml
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)
from feast.types import Float64, Int64, String

from osemn._feast_config import FeastSourceConfig
from osemn.results import CheckResult
from osemn.sources.featurestore import FeatureStoreSource
from tests.conftest import PG_URL

NOW = datetime.now(UTC).replace(microsecond=0)
TTL = timedelta(days=1)


def project_name() -> str:
    """A Feast project of its own (it prefixes the Redis keys)."""
    return "osemn_feast_" + uuid.uuid4().hex[:10]


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    """Results by check name (one view per repo, so names are unique)."""
    return {r.check: r for r in results}


class FrozenClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def driver_rows() -> pd.DataFrame:
    """Four rows of three drivers; driver 2's conv_rate is null, driver 3's city too.

    Completeness: conv_rate 3/4, trips 4/4, city 3/4. Newest row: NOW - 1h.
    """
    return pd.DataFrame(
        {
            "driver_id": pd.Series([1, 2, 3, 1], dtype="int64"),
            "conv_rate": [0.5, None, 0.25, 0.75],
            "trips": pd.Series([10, 20, 30, 11], dtype="int64"),
            "city": ["Oslo", "Lima", None, "Oslo"],
            "event_timestamp": [NOW - timedelta(hours=h) for h in (5, 4, 3, 1)],
        }
    )


def write_yaml(
    repo: Path, *, project: str, online: dict[str, Any], offline: dict[str, Any]
) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    config = {
        "project": project,
        "registry": str(repo / "registry.db"),
        "provider": "local",
        "online_store": online,
        "offline_store": offline,
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))


def driver_objects(source: Any, *, ttl: timedelta = TTL) -> list[Any]:
    """The ``driver`` entity and the ``driver_stats`` view over ``source``."""
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=ttl,
        schema=[
            Field(name="driver_id", dtype=Int64),
            Field(name="conv_rate", dtype=Float64),
            Field(name="trips", dtype=Int64),
            Field(name="city", dtype=String),
        ],
        source=source,
        online=True,
    )
    return [driver, view]


def file_repo(
    repo: Path,
    *,
    materialize_until: datetime | None = NOW - timedelta(minutes=30),
    rows: pd.DataFrame | None = None,
    field_mapping: dict[str, str] | None = None,
) -> FeatureStore:
    """A repo with a parquet FileSource and the SQLite online store, applied (and materialized).

    ``rows`` default to ``driver_rows()``; ``field_mapping`` is the FileSource's.
    """
    write_yaml(
        repo,
        project=project_name(),
        online={"type": "sqlite", "path": str(repo / "online.db")},
        offline={"type": "file"},
    )
    path = repo / "data" / "drivers.parquet"
    path.parent.mkdir()
    (driver_rows() if rows is None else rows).to_parquet(path)
    store = FeatureStore(repo_path=str(repo))
    source = FileSource(
        path="data/drivers.parquet",
        timestamp_field="event_timestamp",
        field_mapping=field_mapping,
    )
    store.apply(driver_objects(source))
    if materialize_until is not None:
        store.materialize(NOW - TTL, materialize_until)
    return store


def postgres_repo(
    repo: Path, *, schema: str, redis_port: int = 6379, project: str | None = None
) -> FeatureStore:
    """A repo with a PostgreSQLSource (table ``schema.drivers``) and the Redis online store."""
    write_yaml(
        repo,
        project=project or project_name(),
        online={"type": "redis", "connection_string": f"127.0.0.1:{redis_port}"},
        offline={
            "type": "postgres",
            "host": "127.0.0.1",
            "port": 5432,
            "database": "test",
            "db_schema": schema,
            "user": "postgres",
            "password": "",
            "sslmode": "disable",
        },
    )
    store = FeatureStore(repo_path=str(repo))
    source = PostgreSQLSource(
        name="drivers", table=f"{schema}.drivers", timestamp_field="event_timestamp"
    )
    store.apply(driver_objects(source))
    return store


REDIS = "redis://127.0.0.1:6379/0"


class PgRepo:
    """A materialized PostgreSQL + Redis repo, and the sources opened on it."""

    def __init__(self, repo: Path, schema: str, engine: sa.Engine, project: str) -> None:
        self.repo = repo
        self.schema = schema
        self.engine = engine
        self.project = project
        self.opened: list[FeatureStoreSource] = []

    def source(self, **options: Any) -> FeatureStoreSource:
        config = FeastSourceConfig.model_validate({"feast": str(self.repo), **options})
        self.opened.append(FeatureStoreSource("features", config))
        return self.opened[-1]

    def set_redis_port(self, port: int) -> None:
        path = self.repo / "feature_store.yaml"
        config = yaml.safe_load(path.read_text())
        config["online_store"]["connection_string"] = f"127.0.0.1:{port}"
        path.write_text(yaml.safe_dump(config))


@contextmanager
def postgres_redis_repo(tmp_path: Path) -> Iterator[PgRepo]:
    """``driver_rows`` in a PostgreSQL schema of its own, a repo over it, materialized to Redis.

    The schema and the project's Redis keys are deleted afterwards.
    """
    schema = "osemn_feast_" + uuid.uuid4().hex[:10]
    project = project_name()
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    table = sa.Table(
        "drivers",
        sa.MetaData(),
        sa.Column("driver_id", sa.BigInteger),
        sa.Column("conv_rate", sa.Double),
        sa.Column("trips", sa.BigInteger),
        sa.Column("city", sa.Text),
        sa.Column("event_timestamp", sa.TIMESTAMP(timezone=True)),
        schema=schema,
    )
    table.create(engine)
    with engine.begin() as conn:
        rows = driver_rows().astype(object)
        conn.execute(table.insert(), rows.where(rows.notna(), None).to_dict("records"))
    client = redis.Redis.from_url(REDIS)
    try:
        store = postgres_repo(tmp_path / "repo", schema=schema, project=project)
        store.materialize(NOW - timedelta(days=1), NOW - timedelta(minutes=30))
        repo = PgRepo(tmp_path / "repo", schema, engine, project)
        yield repo
        for source in repo.opened:
            source.close()
    finally:
        for key in client.scan_iter(match=b"*" + project.encode()):
            client.delete(key)
        client.close()
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True))
        engine.dispose()
