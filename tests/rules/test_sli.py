"""SLI events from check results, and the in-memory event series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from osemn.config import parse_config
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.rules.events import EXACT_FOR, SliSeries, series_from
from osemn.rules.sli import sli_event

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

CONFIG = parse_config(
    """
version: 1
sources: {w: {url: "duckdb:///unused.duckdb"}}
datasets:
  orders:
    source: w
    table: orders
    timestamp: ts
    schema: s.yaml
    freshness: {max_age: 1h}
    volume: {min_rows: 1}
    drift: {columns: [amount], reference: {window: 1d}, current: {window: 1h}}
slos:
  - {name: fresh, dataset: orders, sli: freshness, objective: 99%}
  - {name: valid, dataset: orders, sli: validity, objective: 99%}
  - {name: complete, dataset: orders, sli: completeness, objective: 99%, columns: [a, b]}
  - {name: vol, dataset: orders, sli: volume, objective: 99%}
  - {name: checks, dataset: orders, sli: checks, objective: 99%}
  - {name: drift, dataset: orders, sli: drift, objective: 99%}
"""
)
SLOS = {s.name: s for s in CONFIG.slo_list}


def _r(kind: CheckKind, check: str, status: Status, **kw: object) -> CheckResult:
    return CheckResult(
        dataset="orders", kind=kind, check=check, status=status, finished_at=NOW, **kw
    )  # type: ignore[arg-type]


RUN = [
    _r(CheckKind.FRESHNESS, "freshness", Status.FAIL),
    _r(CheckKind.VOLUME, "volume", Status.PASS),
    _r(CheckKind.SCHEMA, "a:not_null", Status.FAIL, rows=100, failed_rows=3),
    _r(CheckKind.SCHEMA, "b:ge(0)", Status.ERROR, error="boom"),
    _r(
        CheckKind.SCHEMA,
        "validity",
        Status.FAIL,
        rows=100,
        failed_rows=7,
        measurements=(
            Measurement(name="validity_ratio", value=0.93),
            Measurement(name="completeness_ratio", value=0.97, labels=(("column", "a"),)),
            Measurement(name="completeness_ratio", value=1.0, labels=(("column", "b"),)),
        ),
    ),
    _r(CheckKind.DRIFT, "amount:drift", Status.INSUFFICIENT_DATA),
    _r(CheckKind.DRIFT, "drift_share", Status.PASS, rows=1, failed_rows=0),
]


def test_each_sli_counts_its_own_units() -> None:
    counts = {}
    for name, slo in SLOS.items():
        ev = sli_event(slo, RUN)
        counts[name] = None if ev is None else (ev.good, ev.bad)
    assert counts == {
        "fresh": (0, 1),  # time-sliced: one bad slice
        "valid": (93, 7),  # rows
        "complete": (197, 3),  # cells of a and b
        "vol": (1, 0),
        # volume passes; freshness and not_null fail, ge errors; the validity and drift_share
        # aggregates and insufficient data are not check runs
        "checks": (1, 3),
        "drift": (1, 0),
    }


def test_an_errored_run_gives_no_event() -> None:
    run = [_r(CheckKind.FRESHNESS, "freshness", Status.ERROR, error="source down")]
    assert sli_event(SLOS["fresh"], run) is None
    assert sli_event(SLOS["valid"], run) is None
    ev = sli_event(SLOS["checks"], run)
    assert ev is not None and (ev.good, ev.bad) == (0, 1)


events = st.lists(
    st.tuples(st.integers(0, 5 * 24 * 3600), st.integers(0, 1000), st.integers(0, 1000)),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(events=events, window=st.integers(1, 5 * 24 * 3600), now=st.integers(0, 6 * 24 * 3600))
def test_window_sums_equal_brute_force(
    events: list[tuple[int, int, int]], window: int, now: int
) -> None:
    series = series_from(events)
    expected_good = sum(g for t, g, _ in events if now - window < t <= now)
    expected_bad = sum(b for t, _, b in events if now - window < t <= now)
    assert series.window(now, window) == (expected_good, expected_bad)


@settings(max_examples=200, deadline=None)
@given(events=events, hours=st.integers(1, 5 * 24))
def test_compaction_keeps_recent_sums_exact_and_old_ones_to_the_hour(
    events: list[tuple[int, int, int]], hours: int
) -> None:
    now = 5 * 24 * 3600
    series = series_from(events)
    series.compact(now, keep=10 * 24 * 3600)
    # Windows inside the exact range are exact; hour-aligned windows are exact everywhere.
    exact = int(EXACT_FOR.total_seconds())
    for window in (300, 3600, exact - 3600, hours * 3600):
        start = now - window
        aligned = start % 3600 == 0 or window <= exact - 3600
        if not aligned:
            continue
        expected = (
            sum(g for t, g, _ in events if start < t <= now),
            sum(b for t, _, b in events if start < t <= now),
        )
        assert series.window(now, window) == expected, window
    assert isinstance(series, SliSeries)


def test_dropping_old_events_keeps_window_sums() -> None:
    series = series_from([(t, 1, 0) for t in range(0, 10 * 86400, 600)])
    before = series.window(10 * 86400, 2 * 86400)
    series.compact(10 * 86400, keep=(timedelta(days=4)).total_seconds())
    assert series.window(10 * 86400, 2 * 86400) == before
    assert len(series) < 10 * 144
