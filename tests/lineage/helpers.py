"""Results the lineage tests build by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from osemn.results import CheckKind, CheckResult, Measurement, Status

__all__ = ["NOW", "freshness_result"]

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def freshness_result(dataset: str, status: Status, newest: datetime | None) -> CheckResult:
    """A freshness result of ``dataset`` with its newest row (None: none measured)."""
    measurements = (
        ()
        if newest is None
        else (Measurement(name="newest_row_timestamp_seconds", value=newest.timestamp()),)
    )
    return CheckResult(
        dataset=dataset,
        kind=CheckKind.FRESHNESS,
        check="at:freshness(max_age=15m)",
        status=status,
        finished_at=NOW,
        measurements=measurements,
    )
