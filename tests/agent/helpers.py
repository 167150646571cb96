"""Shared test data: an orders table with known failures, its schema and config."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandera.pandas as pa
import sqlalchemy as sa

from osemn.agent.agent import Agent
from osemn.config import parse_config
from tests.conftest import Warehouse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class FrozenClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def orders_table(metadata: sa.MetaData, schema: str | None) -> sa.Table:
    return sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.Integer, nullable=True),
        sa.Column("amount", sa.Float, nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("email", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=True),
        schema=schema,
    )


def order_rows(start_id: int = 1, *, at: datetime = NOW) -> list[dict[str, Any]]:
    """Ten rows; the comments say which rule each one breaks."""
    t = at.replace(tzinfo=None)
    rows: list[dict[str, Any]] = [
        {"customer_id": 1, "amount": 10.0, "status": "new", "email": "a@x.io"},
        {"customer_id": 2, "amount": 20.0, "status": "paid", "email": "b@x.io"},
        {"customer_id": 3, "amount": -5.0, "status": "paid", "email": "c@x.io"},  # range
        {"customer_id": 4, "amount": 150.0, "status": "shipped", "email": "d@x.io"},  # range
        {"customer_id": None, "amount": 30.0, "status": "new", "email": "e@x.io"},  # cust null
        {"customer_id": 6, "amount": None, "status": "new", "email": "f@x.io"},  # amount null
        {"customer_id": 7, "amount": 40.0, "status": "NEW", "email": "bad"},  # isin, regex
        {"customer_id": 8, "amount": 50.0, "status": "paid ", "email": None},  # isin
        {"customer_id": 9, "amount": 60.0, "status": "lost", "email": "a@x.io"},  # isin, dup
        {"customer_id": 10, "amount": 70.0, "status": "paid", "email": "j@x.io"},
    ]
    for i, row in enumerate(rows):
        row["id"] = start_id + i
        row["created_at"] = t - timedelta(minutes=10 - i)
    return rows


# Exact failing counts of order_rows() under orders_schema().
EXPECTED_FAILED = {
    "id:not_null": 0,
    "customer_id:not_null": 1,
    "amount:not_null": 1,
    "amount:in_range(0, 100)": 2,
    "status:isin(['new', 'paid', 'shipped'])": 3,
    "email:str_matches('^[^@]+@[^@]+$')": 1,
    "email:unique": 2,
    "id:unique": 0,
}


def orders_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "id": pa.Column(int, unique=True),
            "customer_id": pa.Column(int),
            "amount": pa.Column(float, pa.Check.in_range(0, 100)),
            "status": pa.Column(str, pa.Check.isin(["new", "paid", "shipped"]), nullable=True),
            "email": pa.Column(
                str, pa.Check.str_matches("^[^@]+@[^@]+$"), nullable=True, unique=True
            ),
            "created_at": pa.Column("datetime64[ns]"),
        }
    )


def load_orders(wh: Warehouse, rows: list[dict[str, Any]] | None = None) -> sa.Table:
    metadata = sa.MetaData()
    table = orders_table(metadata, wh.schema if wh.dialect != "duckdb" else None)
    metadata.create_all(wh.engine)
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(table), rows if rows is not None else order_rows())
    return table


def write_config(
    tmp_path: Path,
    wh: Warehouse,
    *,
    datasets: str | None = None,
    schema: pa.DataFrameSchema | None = None,
    extra_sources: str = "",
) -> Path:
    (tmp_path / "orders.yaml").write_text((schema or orders_schema()).to_yaml() or "")
    datasets = (
        datasets
        or f"""
  orders:
    source: wh
    table: {wh.qualified("orders")}
    timestamp: created_at
    schema: orders.yaml
    freshness: {{max_age: 15m}}
    volume: {{window: 1h, min_rows: 5}}
    failures: {{sample: 2, mask: [email]}}
"""
    )
    text = f"""
version: 1
agent:
  state: sqlite:///{tmp_path / "state.db"}
  listen: 127.0.0.1:0
sources:
  wh:
    url: {wh.url}
    statement_timeout: 30s
{extra_sources}
datasets:{datasets}
"""
    path = tmp_path / "osemn.yaml"
    path.write_text(text)
    return path


def make_agent(
    path: Path, clock: Callable[[], datetime] | None = None, *, wh: Warehouse | None = None
) -> Agent:
    """An opened agent; a DuckDB warehouse's own engine is shared, as the demo does.

    DuckDB refuses a second in-process connection with another configuration,
    and the test keeps its read-write engine to append rows.
    """
    config = parse_config(path.read_text(), path=str(path))
    engines = {"wh": wh.engine} if wh is not None and wh.dialect == "duckdb" else None
    agent = Agent(config, clock=clock or FrozenClock(), engines=engines)
    agent.open()
    return agent
