"""Volume: rows in the trailing window (or the table) against min_rows/max_rows."""

from __future__ import annotations

from datetime import datetime

from osemn._units import format_duration
from osemn.config import VolumeConfig
from osemn.results import CheckKind, CheckResult, Measurement, Status

__all__ = ["volume_name", "volume_result"]


def _window_label(config: VolumeConfig) -> str:
    return format_duration(config.window) if config.window is not None else "all"


def volume_name(config: VolumeConfig) -> str:
    """The stable check name, e.g. ``volume(window=1h, min_rows=100)``."""
    parts = [f"window={_window_label(config)}"]
    if config.min_rows is not None:
        parts.append(f"min_rows={config.min_rows}")
    if config.max_rows is not None:
        parts.append(f"max_rows={config.max_rows}")
    return f"volume({', '.join(parts)})"


def volume_result(*, dataset: str, config: VolumeConfig, rows: int, now: datetime) -> CheckResult:
    """Pass when ``min_rows <= rows <= max_rows`` for the bounds that are set."""
    low = config.min_rows is not None and rows < config.min_rows
    high = config.max_rows is not None and rows > config.max_rows
    note = None
    if low:
        note = f"{rows} rows, fewer than min_rows {config.min_rows}"
    elif high:
        note = f"{rows} rows, more than max_rows {config.max_rows}"
    return CheckResult(
        dataset=dataset,
        kind=CheckKind.VOLUME,
        check=volume_name(config),
        status=Status.FAIL if low or high else Status.PASS,
        rows=rows,
        finished_at=now,
        measurements=(
            Measurement(
                name="rows", value=float(rows), labels=(("window", _window_label(config)),)
            ),
        ),
        note=note,
    )
