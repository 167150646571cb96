"""Event times between Python (aware UTC) and warehouse columns (naive or zoned)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import sqlalchemy as sa

__all__ = ["as_utc", "bind_time"]


def bind_time(value: datetime, column: sa.ColumnElement[object]) -> datetime:
    """``value`` as the column compares it: naive UTC for a column without a zone.

    Naive event-time columns are taken to hold UTC, the convention of every
    pipeline that writes them; a zoned column gets the aware value.
    """
    zoned = bool(getattr(column.type, "timezone", False))
    utc = value.astimezone(UTC)
    return utc if zoned else utc.replace(tzinfo=None)


def as_utc(value: object) -> datetime | None:
    """A timestamp read back from the warehouse as aware UTC (None for NULL or non-times)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None
