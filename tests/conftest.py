"""Real warehouses for the tests: DuckDB and SQLite files, PostgreSQL and MariaDB servers.

A server that is not running makes its tests error loudly (no skip): the
machine runs PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306, and
`.ci/run` starts them when they are down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("OSEMN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("OSEMN_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")

DIALECTS = ("duckdb", "sqlite", "postgresql", "mariadb")


@dataclass
class Warehouse:
    """A scratch warehouse: ``url`` for osemn, ``engine`` (read-write) to load data.

    ``schema`` is the namespace tables go in (None where the dialect has one
    namespace per file); ``qualified(name)`` is what a dataset's ``table:`` says.
    """

    dialect: str
    url: str
    engine: sa.Engine
    schema: str | None

    def qualified(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name


def _name() -> str:
    return "t_" + uuid.uuid4().hex[:10]


def make_warehouse(dialect: str, tmp_path: Path) -> Iterator[Warehouse]:
    """Create a scratch warehouse of one dialect and drop it afterwards."""
    if dialect == "duckdb":
        url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
        engine = sa.create_engine(url)
        yield Warehouse(dialect, url, engine, "main")
        engine.dispose()
    elif dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'wh.sqlite'}"
        engine = sa.create_engine(url)
        yield Warehouse(dialect, url, engine, None)
        engine.dispose()
    elif dialect == "postgresql":
        schema = _name()
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield Warehouse(dialect, PG_URL, engine, schema)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    elif dialect == "mariadb":
        db = _name()
        admin = sa.create_engine(MYSQL_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{db}`"))
        url = f"{MYSQL_URL}/{db}"
        engine = sa.create_engine(url)
        yield Warehouse(dialect, url, engine, db)
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE `{db}`"))
        admin.dispose()
    else:  # pragma: no cover - a typo in a parametrization
        raise AssertionError(f"unknown dialect {dialect!r}")


@pytest.fixture(params=DIALECTS)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """One scratch warehouse per dialect of the contract suite."""
    yield from make_warehouse(request.param, tmp_path)


@pytest.fixture(params=("duckdb", "postgresql"))
def duckdb_or_pg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """The embedded default and the real server, for tests that need no more."""
    yield from make_warehouse(request.param, tmp_path)


@pytest.fixture
def pg_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    yield from make_warehouse("postgresql", tmp_path)


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    yield from make_warehouse("duckdb", tmp_path)


@pytest.fixture
def pg_state_url() -> Iterator[str]:
    """A PostgreSQL state-store URL in a fresh schema (search_path set in the URL)."""
    schema = _name()
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()
