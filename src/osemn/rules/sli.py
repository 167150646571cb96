"""SLI events: what one dataset or model run means for each SLO, as good and bad counts.

Event-based SLIs count units of data (validity: rows; completeness: cells;
checks: check runs; drift: drift runs; accuracy: labelled predictions, once,
in the run after their label arrived; latency: predictions served since the
previous run). Time-sliced SLIs (freshness, volume) count one event per
evaluation: good when the dataset met its target then. Availability counts
online-store probes of a feature store: good when the store answered in time
(``checks.featurestore``), bad when it did not; a skipped probe is no event.

A result that could not be judged (``error`` or ``insufficient_data``) gives no
event, so a source that stays down shows up as the SLO's ``absent`` alert rather
than burning or sparing budget; only the ``checks`` SLI, which measures check
runs themselves, counts an errored run as bad.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from osemn._drift_config import DRIFT_SHARE
from osemn._feast_config import PROBE_CHECK
from osemn._model_config import LABELS_CHECK, LATENCY_CHECK
from osemn._slo_config import SLOConfig
from osemn.agent.schema_results import VALIDITY
from osemn.results import CheckKind, CheckResult, Status

__all__ = ["SliEvent", "sli_event"]

_Counter = Callable[[SLOConfig, Sequence[CheckResult]], tuple[int, int] | None]
_AGGREGATES = {(CheckKind.SCHEMA, VALIDITY), (CheckKind.DRIFT, DRIFT_SHARE)}
_JUDGED = (Status.PASS, Status.FAIL)


@dataclass(frozen=True, kw_only=True)
class SliEvent:
    """Good and bad events of one SLO from one run, at the run's end."""

    slo: str
    at: datetime
    good: int
    bad: int


def sli_event(slo: SLOConfig, results: Sequence[CheckResult]) -> SliEvent | None:
    """The SLO's events in one run of its dataset or model, or None when it judged nothing."""
    mine = [r for r in results if r.dataset == slo.subject]
    counts = _COUNTERS[slo.sli](slo, mine)
    if counts is None or counts == (0, 0):
        return None
    at = max(r.finished_at for r in mine)
    return SliEvent(slo=slo.name, at=at, good=counts[0], bad=counts[1])


def _slice(kind: CheckKind) -> _Counter:
    def count(_slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
        judged = [r for r in results if r.kind is kind and r.status in _JUDGED]
        if not judged:
            return None
        ok = all(r.status is Status.PASS for r in judged)
        return (1, 0) if ok else (0, 1)

    return count


def _validity(_slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
    for r in results:
        if (r.kind, r.check) == (CheckKind.SCHEMA, VALIDITY) and r.status in _JUDGED:
            rows, failed = r.rows or 0, r.failed_rows or 0
            return rows - failed, failed
    return None


def _completeness(slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
    for r in results:
        if (r.kind, r.check) != (CheckKind.SCHEMA, VALIDITY) or not r.rows:
            continue
        good = bad = 0
        for column in slo.columns:
            ratio = r.measurement("completeness_ratio", column=column)
            if ratio is None:
                continue
            non_null = round(ratio * r.rows)
            good, bad = good + non_null, bad + r.rows - non_null
        return (good, bad) if good or bad else None
    return None


def _checks(_slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
    runs = [
        r
        for r in results
        if (r.kind, r.check) not in _AGGREGATES and r.status is not Status.INSUFFICIENT_DATA
    ]
    if not runs:
        return None
    good = sum(1 for r in runs if r.status is Status.PASS)
    return good, len(runs) - good


def _drift(_slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
    for r in results:
        if (r.kind, r.check) == (CheckKind.DRIFT, DRIFT_SHARE) and r.status in _JUDGED:
            return (1, 0) if r.status is Status.PASS else (0, 1)
    return None


def _model_events(check: str, sli: str) -> _Counter:
    """Events a model run counted (see ``osemn.checks.model``), whatever its window showed."""

    def count(_slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
        for r in results:
            if (r.kind, r.check) != (CheckKind.MODEL, check) or r.status is Status.ERROR:
                continue
            good = r.measurement(f"{sli}_good_events")
            bad = r.measurement(f"{sli}_bad_events")
            if good is None or bad is None:
                return None
            return int(good), int(bad)
        return None

    return count


def _availability(slo: SLOConfig, results: Sequence[CheckResult]) -> tuple[int, int] | None:
    """One event per probe of the SLO's feature store (one view's, or all of them)."""
    probes = [
        r
        for r in results
        if (r.kind, r.check) == (CheckKind.FEATURESTORE, PROBE_CHECK)
        and r.source == slo.source
        and r.status in _JUDGED
    ]
    if not probes:
        return None
    good = sum(1 for r in probes if r.status is Status.PASS)
    return good, len(probes) - good


_COUNTERS: dict[str, _Counter] = {
    "freshness": _slice(CheckKind.FRESHNESS),
    "volume": _slice(CheckKind.VOLUME),
    "validity": _validity,
    "completeness": _completeness,
    "checks": _checks,
    "drift": _drift,
    "accuracy": _model_events(LABELS_CHECK, "accuracy"),
    "latency": _model_events(LATENCY_CHECK, "latency"),
    "availability": _availability,
}
