"""Durations (``30s``, ``5m``, ``1h``, ``7d``, ``1w``) and ratios (``99.5%``, ``0.995``)."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration", "parse_ratio"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse ``30s``/``5m``/``1h``/``7d``/``1w`` (or bare seconds as a number).

    Raises:
        ValueError: with the accepted forms, for pydantic to report.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 5m, 1h, 7d")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"{value!r} is not a duration; use a number and a unit: 30s, 5m, 1h, 7d, 1w")


def format_duration(value: timedelta) -> str:
    """The shortest exact rendering: ``timedelta(hours=1)`` -> ``1h``."""
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_ratio(value: object) -> float:
    """Parse ``99.5%`` or ``0.995`` into a float in [0, 1].

    Raises:
        ValueError: when the value is not a ratio or lies outside [0, 1].
    """
    ratio: float
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            ratio = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage; use e.g. 99.5%") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
    elif isinstance(value, str):
        try:
            ratio = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a ratio; use 99.5% or 0.995") from None
    else:
        raise ValueError(f"{value!r} is not a ratio; use 99.5% or 0.995")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{value!r} is outside 0..1 (0%..100%)")
    return ratio
