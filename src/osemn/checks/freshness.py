"""Freshness: the age of the newest row against ``freshness.max_age``."""

from __future__ import annotations

from datetime import datetime

from osemn._units import format_duration
from osemn.config import FreshnessConfig
from osemn.results import CheckKind, CheckResult, Measurement, Status

__all__ = ["freshness_name", "freshness_result"]


def freshness_name(timestamp: str, config: FreshnessConfig) -> str:
    """The stable check name, e.g. ``created_at:freshness(max_age=15m)``."""
    return f"{timestamp}:freshness(max_age={format_duration(config.max_age)})"


def freshness_result(
    *,
    dataset: str,
    timestamp: str,
    config: FreshnessConfig,
    newest: datetime | None,
    now: datetime,
) -> CheckResult:
    """Pass while the newest row is younger than max_age; fail when older or absent.

    ``newest_row_timestamp_seconds`` is kept so that /metrics can report the age
    at scrape time, not the age at the last run.
    """
    name = freshness_name(timestamp, config)
    if newest is None:
        return CheckResult(
            dataset=dataset,
            kind=CheckKind.FRESHNESS,
            check=name,
            status=Status.FAIL,
            rows=0,
            failed_rows=None,
            finished_at=now,
            note=f"no row has a {timestamp!r} value, so the dataset has never been fresh",
        )
    age = max((now - newest).total_seconds(), 0.0)
    return CheckResult(
        dataset=dataset,
        kind=CheckKind.FRESHNESS,
        check=name,
        status=Status.PASS if age <= config.max_age.total_seconds() else Status.FAIL,
        finished_at=now,
        measurements=(
            Measurement(name="freshness_seconds", value=age),
            Measurement(name="newest_row_timestamp_seconds", value=newest.timestamp()),
        ),
    )
