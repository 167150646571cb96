"""Bounded samples of failing rows, with masked columns replaced by a keyed hash.

Only a failing check costs a sample query. Masked values are hashed with
HMAC-SHA256 under the agent's key before they are stored or shown: equal values
still look equal (so a sample can be joined on), but cannot be read back or
guessed from a dictionary without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["RULE", "failing_rows", "failing_rows_of", "json_value", "mask_rows", "mask_value"]

RULE = "osemn_rule"
"""The column of :func:`failing_rows_of` that says which rule a row breaks (its index)."""


def failing_rows(
    table: sa.Table,
    fails: ColumnElement[bool],
    columns: Sequence[str],
    *,
    limit: int,
    where: ColumnElement[bool] | None,
) -> sa.Select[Any]:
    """Up to ``limit`` rows that break a rule, showing ``columns``."""
    stmt = sa.select(*(table.c[c] for c in columns)).select_from(table).where(fails)
    if where is not None:
        stmt = stmt.where(where)
    return stmt.limit(limit)


def failing_rows_of(
    table: sa.Table,
    rules: Sequence[ColumnElement[bool]],
    columns: Sequence[str],
    *,
    limit: int,
    where: ColumnElement[bool] | None,
) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """Up to ``limit`` rows breaking each of ``rules``, all in one statement.

    Each rule's rows are a bounded subquery tagged with its index in :data:`RULE`
    (``UNION ALL`` of ``SELECT * FROM (... LIMIT n)``, which every dialect
    accepts); ``columns`` are those of every rule, so the branches line up.
    A run with several failing rules pays one round trip instead of one each.
    """
    branches = []
    for i, fails in enumerate(rules):
        rows = failing_rows(table, fails, columns, limit=limit, where=where)
        tagged = rows.add_columns(sa.literal(i, sa.Integer).label(RULE)).subquery(f"r{i}")
        branches.append(sa.select(tagged))
    return branches[0] if len(branches) == 1 else sa.union_all(*branches)


def json_value(value: object) -> object:
    """A warehouse value as JSON can carry it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def mask_value(value: object, key: bytes) -> object:
    """``value`` as its keyed hash: equal values stay equal, the value itself never shows."""
    if value is None:
        return None
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"hmac:{digest[:16]}"


def mask_rows(
    rows: Iterable[Mapping[Any, Any]], *, mask: Iterable[str], key: bytes
) -> tuple[dict[str, object], ...]:
    """Rows as JSON-ready dicts, masked columns replaced by their keyed hash."""
    masked = set(mask)
    return tuple(
        {k: mask_value(v, key) if k in masked else json_value(v) for k, v in row.items()}
        for row in rows
    )
