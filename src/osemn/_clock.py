"""The wall clock every component takes as an argument (tests pass a frozen one)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """Now, as aware UTC."""
    return datetime.now(UTC)
