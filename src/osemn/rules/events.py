"""SLI event history: durable in the state store, summed in memory.

Burn rates need sums over seven windows plus the SLO window for every SLO at
every evaluation. Summing rows in SQL each time would read a month of events
per SLO per cycle; instead each SLO keeps cumulative counts in memory, so a
window's sum is two binary searches. Events older than ``EXACT_FOR`` (the
longest burn window) are kept at hourly resolution: only the SLO window's own
boundary (28d or so) uses them, where an hour is below its precision.

Every hour the compacted series are also saved (``osemn_sli_rollups``), so a
restart reads one row per SLO plus the events since, instead of a month of events.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from osemn.agent._state_schema import _sli_events, _sli_rollups
from osemn.agent.state import StateStore
from osemn.rules.sli import SliEvent

__all__ = ["EXACT_FOR", "SliEventStore", "SliSeries"]

EXACT_FOR = timedelta(days=3, hours=1)  # the 3d burn window, and a margin
_BUCKET = 3600  # seconds: resolution of events older than EXACT_FOR
# A saved series covers events up to a minute ago: an event's time is its run's end,
# written right after, so nothing older can still be on its way to the table.
_ROLLUP_LAG = 60


class SliSeries:
    """Cumulative good/bad counts of one SLO at each event time (unix seconds).

    ``base_*`` are the counts already dropped from the front, so sums over any
    window still inside the kept range stay exact.
    """

    __slots__ = ("_bad", "_base_bad", "_base_good", "_compacted_to", "_good", "_times")

    def __init__(self) -> None:
        self._times = array("q")
        self._good = array("q")
        self._bad = array("q")
        self._base_good = 0
        self._base_bad = 0
        self._compacted_to = 0  # events before this time are hourly

    def add(self, t: int, good: int, bad: int) -> None:
        """Append an event; a time before the last one (clock skew) counts at the last."""
        last_good = self._good[-1] if self._good else self._base_good
        last_bad = self._bad[-1] if self._bad else self._base_bad
        if self._times and t <= self._times[-1]:
            self._good[-1] = last_good + good
            self._bad[-1] = last_bad + bad
            return
        self._times.append(t)
        self._good.append(last_good + good)
        self._bad.append(last_bad + bad)

    def window(self, now: float, seconds: float) -> tuple[int, int]:
        """Good and bad events with ``now - seconds < time <= now``."""
        end = bisect_right(self._times, int(now))
        start = bisect_right(self._times, int(now - seconds))
        if end == 0:
            return 0, 0
        good_start = self._good[start - 1] if start else self._base_good
        bad_start = self._bad[start - 1] if start else self._base_bad
        return self._good[end - 1] - good_start, self._bad[end - 1] - bad_start

    def to_bytes(self, upto: int) -> bytes:
        """The part of the series with times <= ``upto``, for ``from_bytes``."""
        n = bisect_right(self._times, upto)
        head = array("q", (self._base_good, self._base_bad, min(self._compacted_to, upto), n))
        return b"".join(a.tobytes() for a in (head, self._times[:n], self._good[:n], self._bad[:n]))

    @classmethod
    def from_bytes(cls, data: bytes) -> SliSeries:
        values = array("q")
        values.frombytes(data)
        series = cls()
        series._base_good, series._base_bad, series._compacted_to, n = values[:4]
        series._times = values[4 : 4 + n]
        series._good = values[4 + n : 4 + 2 * n]
        series._bad = values[4 + 2 * n : 4 + 3 * n]
        return series

    @property
    def last_time(self) -> int | None:
        return self._times[-1] if self._times else None

    def __len__(self) -> int:
        return len(self._times)

    def compact(self, now: float, keep: float) -> None:
        """Drop events older than ``keep`` seconds and thin those older than EXACT_FOR.

        Cumulative counts make thinning a matter of keeping the last event of
        each hour: every sum over hour-aligned spans stays exact.
        """
        drop_before = int(now - keep)
        exact_from = int(now - EXACT_FOR.total_seconds()) // _BUCKET * _BUCKET
        if self._times and self._times[0] <= drop_before:
            cut = bisect_right(self._times, drop_before)
            self._base_good, self._base_bad = self._good[cut - 1], self._bad[cut - 1]
            del self._times[:cut], self._good[:cut], self._bad[:cut]
        if exact_from <= self._compacted_to:
            return
        stop = bisect_right(self._times, exact_from)
        start = bisect_right(self._times, self._compacted_to)
        keep_idx = [
            i
            for i in range(start, stop)
            if i + 1 >= stop or self._times[i] // _BUCKET != self._times[i + 1] // _BUCKET
        ]
        if len(keep_idx) < stop - start:
            for arr in (self._times, self._good, self._bad):
                kept = array("q", (arr[i] for i in keep_idx))
                arr[start:stop] = kept
        self._compacted_to = exact_from


class SliEventStore:
    """SLI events of every SLO: appended to the state store, mirrored in ``SliSeries``.

    Args:
        state: the opened state store (its ``open`` made the table).
        keep: how long events are kept, per SLO (its window and a margin).
    """

    def __init__(self, state: StateStore, keep: Mapping[str, timedelta]) -> None:
        self._state = state
        self._keep = dict(keep)
        self.series: dict[str, SliSeries] = {name: SliSeries() for name in keep}

    def load(self, now: datetime) -> int:
        """Read the kept history into memory; returns the number of rows read.

        An SLO with a saved series reads it and the events after it. Others read
        their old events already summed per hour by the database, so a month of
        five-minute events reads a few hundred rows per SLO, plus the exact
        events of the last three days.
        """
        if not self._keep:
            return 0
        rows = 0
        saved: dict[str, int] = {}
        r = _sli_rollups.c
        with self._state.begin("read saved SLI series") as conn:
            query = sa.select(r.slo, r.upto, r.series).where(r.slo.in_(list(self._keep)))
            for slo, upto, data in conn.execute(query):
                self.series[slo] = SliSeries.from_bytes(bytes(data))
                saved[slo] = int(upto)
                rows += 1
        if saved:
            rows += self._load_after(saved)
        rest = [name for name in self._keep if name not in saved]
        if rest:
            rows += self._load_events(rest, now)
        for name, series in self.series.items():
            series.compact(now.timestamp(), self._keep[name].total_seconds())
        return rows

    def _load_after(self, saved: Mapping[str, int]) -> int:
        """Events newer than each SLO's saved series."""
        e = _sli_events.c
        stmt = (
            sa.select(e.slo, e.t, e.good, e.bad)
            .where(e.slo.in_(list(saved)), e.t > min(saved.values()))
            .order_by(e.slo, e.t)
        )
        rows = 0
        with self._state.begin("read SLI events") as conn:
            for slo, t, good, bad in conn.execution_options(yield_per=10_000).execute(stmt):
                if t > saved[slo]:
                    self.series[slo].add(int(t), int(good), int(bad))
                    rows += 1
        return rows

    def _load_events(self, names: Sequence[str], now: datetime) -> int:
        """The whole kept history of SLOs without a saved series."""
        e = _sli_events.c
        exact_from = int(now.timestamp() - EXACT_FOR.total_seconds()) // _BUCKET * _BUCKET
        oldest = int(now.timestamp() - max(self._keep[n] for n in names).total_seconds())
        bucket = (e.t // _BUCKET).label("bucket")
        hourly = (
            sa.select(
                e.slo,
                (sa.func.max(e.t)).label("t"),
                sa.func.sum(e.good).label("good"),
                sa.func.sum(e.bad).label("bad"),
            )
            .where(e.slo.in_(names), e.t > oldest, e.t <= exact_from)
            .group_by(e.slo, bucket)
        )
        exact = sa.select(e.slo, e.t, e.good, e.bad).where(e.slo.in_(names), e.t > exact_from)
        rows = 0
        with self._state.begin("read SLI events") as conn:
            for stmt in (hourly.order_by(e.slo, "t"), exact.order_by(e.slo, e.t)):
                for slo, t, good, bad in conn.execution_options(yield_per=10_000).execute(stmt):
                    self.series[slo].add(int(t), int(good), int(bad))
                    rows += 1
        return rows

    def record(self, events: Sequence[SliEvent]) -> None:
        """Write events durably, then add them to the in-memory series.

        Raises:
            StateError: the write failed; the events are not counted in memory either,
                so memory never holds what a restart would lose.
        """
        if not events:
            return
        events = sorted(events, key=lambda ev: ev.at)
        rows = [
            {"slo": ev.slo, "t": int(ev.at.timestamp()), "good": ev.good, "bad": ev.bad}
            for ev in events
        ]
        with self._state.begin("write SLI events") as conn:
            conn.execute(sa.insert(_sli_events), rows)
        for ev in events:
            self.series[ev.slo].add(int(ev.at.timestamp()), ev.good, ev.bad)

    def compact(self, now: datetime) -> None:
        """Thin and drop old events in memory, then save every series for the next start."""
        for name, series in self.series.items():
            series.compact(now.timestamp(), self._keep[name].total_seconds())
        upto = int(now.timestamp()) - _ROLLUP_LAG
        rows = [
            {"slo": name, "upto": upto, "series": series.to_bytes(upto)}
            for name, series in self.series.items()
        ]
        if not rows:
            return
        with self._state.begin("save SLI series") as conn:
            conn.execute(sa.delete(_sli_rollups).where(_sli_rollups.c.slo.in_(list(self.series))))
            conn.execute(sa.insert(_sli_rollups), rows)

    def prune(self, now: datetime, retention: timedelta) -> int:
        """Delete events older than both ``retention`` and every SLO's window."""
        horizon = max([retention, *self._keep.values()])
        cutoff = int((now - horizon).timestamp())
        with self._state.begin("prune SLI events") as conn:
            deleted = conn.execute(sa.delete(_sli_events).where(_sli_events.c.t < cutoff))
            return int(deleted.rowcount)


def series_from(events: Iterable[tuple[int, int, int]]) -> SliSeries:
    """A series from (time, good, bad) triples, for tests and benchmarks."""
    series = SliSeries()
    for t, good, bad in sorted(events):
        series.add(t, good, bad)
    return series
