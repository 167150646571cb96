"""The demo's pipeline: a thread that appends orders and breaks them on a timeline.

The generator is the pipeline being watched, so it writes with its own SQL
through the shared engine. Its incidents are the ones an on-call engineer
meets: a null burst, out-of-range values, a distribution shift that every
schema rule lets through (amounts tripled, mostly cancelled or refunded
orders: only the drift checks see it), a stalled feed, and an upstream
migration that retypes a column (``orders.status`` becomes INTEGER codes via
``ALTER TABLE ... SET DATA TYPE ... USING``, which DuckDB allows on a table
with a primary key as long as the column itself is not indexed) and later
restores it. Beside the orders it serves a churn model: predictions logged at
once, labels landing now or up to a minute later, and an accuracy decay where
outcomes stop matching the scores. Given the demo's feature pipeline, it also
drives that (exports and materializations into the Feast online store), and a
materialization stall where the exports go on but nothing reaches the online
store for longer than the feature views' TTL.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from osemn.demo.features import FEATURE_TTL, MATERIALIZE_INTERVAL, FeaturePipeline
from osemn.demo.warehouse import (
    CHECK_INTERVAL,
    DRIFT_CURRENT_WINDOW,
    FRESHNESS_MAX_AGE,
    STATUSES,
    demo_tables,
    label_delay,
    model_tables,
    order_amount,
    order_status,
    prediction_row,
    utc_naive,
)
from osemn.errors import ConfigError, SourceError

__all__ = [
    "MIN_DURATION",
    "SHIFTED_STATUSES",
    "SHIFT_FACTOR",
    "STATUS_CODES",
    "Incident",
    "IncidentGenerator",
    "IncidentKind",
    "Timeline",
]

logger = logging.getLogger(__name__)

STATUS_CODES = {status: code for code, status in enumerate(STATUSES, start=1)}
"""What the "migration" turns ``orders.status`` into while the column is retyped."""

SHIFT_FACTOR = 3.0
"""New orders' amounts are multiplied by this during a distribution shift."""
SHIFTED_STATUSES = ("cancelled", "refunded")
"""The statuses most orders take during a distribution shift."""
_SHIFTED_WEIGHTS = tuple(45 if s in SHIFTED_STATUSES else 5 for s in STATUSES)
_MAX_AMOUNT = 10_000.0  # the schema's in_range bound: a shift is drift, never a schema failure

# A stall must outlast freshness.max_age plus two check intervals, so that at
# least one scheduled freshness check sees the feed as stale.
_STALL = (FRESHNESS_MAX_AGE + 2 * CHECK_INTERVAL + timedelta(seconds=1)).total_seconds()
_MIN_INCIDENT = 6.0  # longer than one check interval: some check always lands inside
# One bad row fails validity, but a shift is seen only once shifted rows fill about
# half of the drift window, and a check must land after that.
_MIN_SHIFT = (DRIFT_CURRENT_WINDOW / 2 + CHECK_INTERVAL + timedelta(seconds=1)).total_seconds()
_LEAD = 1.0  # healthy seconds before the first incident
_MIN_RETYPE = 3 * CHECK_INTERVAL.total_seconds()  # a retype is seen only while it lasts
# A materialization stall must outlast the TTL plus a check interval: right after a
# materialization the lag is 0, and a check must land once it is past the TTL. One
# materialization interval more keeps it failing for a few checks. After the stall,
# the next tick materializes and a check must land before the demo ends.
_MATERIALIZATION_STALL = (
    FEATURE_TTL + CHECK_INTERVAL + MATERIALIZE_INTERVAL + timedelta(seconds=1)
).total_seconds()
_MATERIALIZATION_RECOVERY = (2 * CHECK_INTERVAL + timedelta(seconds=1)).total_seconds()
MIN_DURATION = max(
    _LEAD + 2 * _MIN_INCIDENT + _MIN_SHIFT + _STALL,
    _LEAD + _MATERIALIZATION_STALL + _MATERIALIZATION_RECOVERY,
)
"""The shortest ``--duration`` (seconds) that shows every incident (60)."""


class IncidentKind(enum.StrEnum):
    """What goes wrong; the value is how the status table and logs name it."""

    NULL_BURST = "null_burst"
    OUT_OF_RANGE = "out_of_range"
    STALLED_FEED = "stalled_feed"
    COLUMN_RETYPED = "column_retyped"
    DISTRIBUTION_SHIFT = "distribution_shift"
    ACCURACY_DECAY = "accuracy_decay"
    MATERIALIZATION_STALL = "materialization_stall"

    @property
    def description(self) -> str:
        """One line for the status header."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    IncidentKind.NULL_BURST: "null burst: new orders arrive with email NULL",
    IncidentKind.OUT_OF_RANGE: "out-of-range amounts: new orders with negative or huge amount",
    IncidentKind.STALLED_FEED: (
        f"stalled feed: no new orders for longer than freshness max_age "
        f"{FRESHNESS_MAX_AGE.total_seconds():g}s"
    ),
    IncidentKind.COLUMN_RETYPED: "column retyped: orders.status migrated to INTEGER codes",
    IncidentKind.DISTRIBUTION_SHIFT: (
        f"distribution shift: new orders' amounts x{SHIFT_FACTOR:g}, mostly "
        f"{' or '.join(SHIFTED_STATUSES)} (every schema rule still passes)"
    ),
    IncidentKind.ACCURACY_DECAY: (
        "accuracy decay: churn outcomes stop matching the model's scores (seen as labels land)"
    ),
    IncidentKind.MATERIALIZATION_STALL: (
        f"materialization stall: exports go on, the Feast online store is not updated "
        f"for longer than the views' TTL {FEATURE_TTL.total_seconds():g}s"
    ),
}


class Incident(NamedTuple):
    """One incident: active from ``start`` to ``end`` seconds after the generator starts."""

    start: float
    end: float
    kind: IncidentKind


@dataclass(frozen=True)
class Timeline:
    """Incidents in time; with a ``period`` the timeline repeats (the endless demo)."""

    incidents: tuple[Incident, ...]
    period: float | None = None

    @classmethod
    def of(
        cls, items: Iterable[tuple[float, float, str]], *, period: float | None = None
    ) -> Timeline:
        """A timeline from ``(start, end, kind)`` tuples, e.g. ``(2, 4, "null_burst")``.

        Raises:
            ConfigError: for an unknown kind, an empty or negative span, or an
                incident that does not fit in ``period``.
        """
        incidents = []
        for start, end, kind in items:
            try:
                known = IncidentKind(kind)
            except ValueError:
                valid = ", ".join(k.value for k in IncidentKind)
                raise ConfigError(
                    f"unknown incident {kind!r}; use one of {valid}", key="timeline"
                ) from None
            if not 0 <= start < end:
                raise ConfigError(
                    f"incident {kind!r} spans {start!r}..{end!r}; it needs 0 <= start < end",
                    key="timeline",
                )
            if period is not None and end > period:
                raise ConfigError(
                    f"incident {kind!r} ends at {end!r}s, after the period {period!r}s; "
                    "lengthen the period or end it earlier",
                    key="timeline",
                )
            incidents.append(Incident(float(start), float(end), known))
        return cls(tuple(sorted(incidents)), period)

    @classmethod
    def for_duration(cls, duration: float | None) -> Timeline:
        """Every incident fitted into ``duration`` seconds, or an endless cycle for None.

        Raises:
            ConfigError: when the duration is shorter than ``MIN_DURATION``.
        """
        if duration is None or duration >= (_ENDLESS.period or 0.0):
            return _ENDLESS
        if duration < MIN_DURATION:
            raise ConfigError(
                f"--duration {duration:g} is too short to show every incident; use "
                f"--duration {MIN_DURATION:g} or more, or leave it out to run until Ctrl-C",
                key="duration",
            )
        # The stall goes last, where its length is free. Before it, each in a slot of
        # its minimum length plus a third of the spare time: the null burst, the
        # shift, then out-of-range amounts (after the shift, so the drift they cause
        # is not taken for the shift's). A retype needs no rows: it opens the stall.
        # The model's accuracy decay touches no order, so it shares the shift's slot; a
        # materialization stall touches none either, and ends in time to show recovery.
        stall_start = duration - _STALL
        spare = (duration - MIN_DURATION) / 3
        burst_slot, shift_slot = _MIN_INCIDENT + spare, _MIN_SHIFT + spare
        burst = max(_MIN_INCIDENT, 0.6 * burst_slot)  # the rest of a slot is recovery
        shift = max(_MIN_SHIFT, 0.6 * shift_slot)
        nulls = _LEAD
        shifted = nulls + burst_slot
        out_of_range = shifted + shift_slot
        retype_end = min(duration, stall_start + max(burst, _MIN_RETYPE))
        unmaterialized = duration - _MATERIALIZATION_RECOVERY - _MATERIALIZATION_STALL
        return cls.of(
            [
                (nulls, nulls + burst, IncidentKind.NULL_BURST.value),
                (shifted, shifted + shift, IncidentKind.DISTRIBUTION_SHIFT.value),
                (shifted, shifted + shift, IncidentKind.ACCURACY_DECAY.value),
                (out_of_range, out_of_range + burst, IncidentKind.OUT_OF_RANGE.value),
                (stall_start, retype_end, IncidentKind.COLUMN_RETYPED.value),
                (stall_start, duration, IncidentKind.STALLED_FEED.value),
                (
                    unmaterialized,
                    unmaterialized + _MATERIALIZATION_STALL,
                    IncidentKind.MATERIALIZATION_STALL.value,
                ),
            ]
        )

    def active(self, offset: float) -> tuple[Incident, ...]:
        """The incidents active ``offset`` seconds after the start (wrapped by the period)."""
        if offset < 0:
            return ()
        if self.period:
            offset %= self.period
        return tuple(i for i in self.incidents if i.start <= offset < i.end)


# The endless demo: each incident, then enough healthy time for checks to recover
# (shifted and out-of-range rows leave the 30s drift window 30s after they stop;
# a materialization resumes within a tick of the stall's end).
_ENDLESS = Timeline.of(
    [
        (20, 50, IncidentKind.NULL_BURST.value),
        (70, 100, IncidentKind.DISTRIBUTION_SHIFT.value),
        (100, 125, IncidentKind.ACCURACY_DECAY.value),
        (130, 160, IncidentKind.OUT_OF_RANGE.value),
        (190, 220, IncidentKind.COLUMN_RETYPED.value),
        (240, 240 + max(_STALL, 45), IncidentKind.STALLED_FEED.value),
        (300, 300 + max(_MATERIALIZATION_STALL, 45), IncidentKind.MATERIALIZATION_STALL.value),
    ],
    period=370,
)


class _AlterColumnType(ExecutableDDLElement):
    """``ALTER TABLE t ALTER COLUMN c SET DATA TYPE type USING expr``.

    SQLAlchemy Core has no ALTER COLUMN; this compiles one the way Core compiles
    DDL, with identifiers quoted by the dialect's preparer.
    """

    inherit_cache = False

    def __init__(self, column: sa.Column[Any], type_: TypeEngine[Any], using: ColumnElement[Any]):
        self.column = column
        self.type_ = type_
        self.using = using


@compiles(_AlterColumnType)
def _compile_alter(element: _AlterColumnType, compiler: DDLCompiler, **kw: Any) -> str:
    table = compiler.preparer.format_table(element.column.table)
    column = compiler.preparer.format_column(element.column)
    type_ = compiler.dialect.type_compiler_instance.process(element.type_)
    using = compiler.sql_compiler.process(element.using, literal_binds=True)
    return f"ALTER TABLE {table} ALTER COLUMN {column} SET DATA TYPE {type_} USING {using}"


class IncidentGenerator:
    """Appends a few orders every ``tick`` seconds and plays the incident timeline.

    ``step()`` does one tick synchronously (what the thread runs); ``start()``
    and ``stop()`` run it in the background. Offsets in the timeline count from
    the first tick (or ``start()``), on the injected clock.

    Args:
        engine: the demo warehouse's read-write engine (not closed here).
        clock: returns now; also the ``created_at`` of new orders.
        timeline: the incidents; ``Timeline.for_duration(None)`` (endless) if omitted.
        tick: seconds between ticks of the background thread.
        seed: seed of the random orders, for a reproducible demo.
        features: the demo's feature pipeline (``build_feature_repo``), stepped every
            tick and held back from materializing during a materialization stall.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Callable[[], datetime],
        timeline: Timeline | None = None,
        tick: float = 1.0,
        seed: int = 1,
        features: FeaturePipeline | None = None,
    ) -> None:
        self._engine = engine
        self._features = features
        self._clock = clock
        self._timeline = timeline if timeline is not None else Timeline.for_duration(None)
        self._tick = tick
        self._rng = random.Random(seed)
        self._customers, self._orders = demo_tables()
        self._predictions, self._labels = model_tables()
        self._next_request = 0
        self._due: list[tuple[datetime, dict[str, Any]]] = []  # labels yet to land
        self._origin: datetime | None = None
        self._emails: list[tuple[int, str]] = []
        self._next_id = 0
        self._retyped = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def timeline(self) -> Timeline:
        return self._timeline

    @property
    def incidents(self) -> tuple[Incident, ...]:
        """The incidents of one round of the timeline, in order of start."""
        return self._timeline.incidents

    @property
    def started_at(self) -> datetime | None:
        """The instant offsets count from, once the generator ran."""
        return self._origin

    def current_incident(self, now: datetime) -> str | None:
        """What is going wrong at ``now`` in words, or None while the feed is healthy."""
        if self._origin is None:
            return None
        active = self._timeline.active((now - self._origin).total_seconds())
        return "; ".join(i.kind.description for i in active) or None

    def start(self) -> None:
        """Run ticks in a background thread until ``stop()``; a second call does nothing."""
        if self._thread is not None:
            return
        if self._origin is None:
            self._origin = self._clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="osemn-demo-incidents", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (within one statement), restoring a retyped column first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def step(self) -> int:
        """One tick: apply the incidents active now, append orders, feed the feature store.

        Returns the orders added.

        Raises:
            SourceError: the feature pipeline's materialization failed.
        """
        now = self._clock()
        if self._origin is None:
            self._origin = now
        active = {i.kind for i in self._timeline.active((now - self._origin).total_seconds())}
        self._set_retyped(IncidentKind.COLUMN_RETYPED in active)
        added = 0 if IncidentKind.STALLED_FEED in active else self._append(now, active)
        if self._features is not None:
            stalled = IncidentKind.MATERIALIZATION_STALL in active
            self._features.step(now, materialize=not stalled)
        return added

    def _append(self, now: datetime, active: set[IncidentKind]) -> int:
        with self._engine.begin() as conn:
            if not self._emails:
                self._load(conn)
            rows = self._new_orders(utc_naive(now), active)
            conn.execute(sa.insert(self._orders), rows)
            self._serve(conn, utc_naive(now), decayed=IncidentKind.ACCURACY_DECAY in active)
        self._next_id += len(rows)
        return len(rows)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.step()
                except (SQLAlchemyError, SourceError) as exc:
                    # A conflict with the agent's read or a hiccup of the file (or of
                    # Feast) must not end the demo: the next tick tries again.
                    logger.warning("demo generator tick failed, retrying next tick: %s", exc)
                self._stop.wait(self._tick)
        finally:
            try:
                self._set_retyped(False)
            except SQLAlchemyError as exc:
                logger.warning("could not restore orders.status to VARCHAR: %s", exc)

    def _load(self, conn: sa.Connection) -> None:
        c, o = self._customers.c, self._orders.c
        self._emails = [
            (int(cid), str(email))
            for cid, email in conn.execute(
                sa.select(c.customer_id, c.email).order_by(c.customer_id)
            )
        ]
        self._next_id = int(conn.execute(sa.select(sa.func.max(o.order_id))).scalar() or 0) + 1
        rid = self._predictions.c.request_id
        self._next_request = int(conn.execute(sa.select(sa.func.max(rid))).scalar() or 0) + 1

    def _serve(self, conn: sa.Connection, now: datetime, *, decayed: bool) -> None:
        """Log a prediction per new order and land the labels that are due."""
        served = []
        for _ in range(self._rng.randint(1, 4)):
            prediction, label = prediction_row(self._rng, self._next_request, now, decayed=decayed)
            self._next_request += 1
            served.append(prediction)
            landed = now + timedelta(seconds=label_delay(self._rng))
            self._due.append((landed, label))
        conn.execute(sa.insert(self._predictions), served)
        ready = [{**label, "labelled_at": at} for at, label in self._due if at <= now]
        self._due = [(at, label) for at, label in self._due if at > now]
        if ready:
            conn.execute(sa.insert(self._labels), ready)

    def _new_orders(self, now: datetime, active: set[IncidentKind]) -> list[dict[str, Any]]:
        rows = []
        for i in range(self._rng.randint(1, 4)):
            customer_id, email = self._rng.choice(self._emails)
            amount = order_amount(self._rng)
            status = order_status(self._rng)
            if IncidentKind.DISTRIBUTION_SHIFT in active:
                amount = min(round(amount * SHIFT_FACTOR, 2), _MAX_AMOUNT)
                status = self._rng.choices(STATUSES, weights=_SHIFTED_WEIGHTS)[0]
            if IncidentKind.OUT_OF_RANGE in active:
                amount = -amount if i % 2 == 0 else round(amount * 1000 + 10_000, 2)
            rows.append(
                {
                    "order_id": self._next_id + i,
                    "customer_id": customer_id,
                    "amount": amount,
                    "status": STATUS_CODES[status] if self._retyped else status,
                    "email": None if IncidentKind.NULL_BURST in active else email,
                    "created_at": now,
                }
            )
        return rows

    def _set_retyped(self, retyped: bool) -> None:
        if retyped == self._retyped:
            return
        status = self._orders.c.status
        statement = (
            _AlterColumnType(status, sa.Integer(), sa.case(STATUS_CODES, value=status))
            if retyped
            else _AlterColumnType(
                status, sa.String(), sa.case({v: k for k, v in STATUS_CODES.items()}, value=status)
            )
        )
        with self._engine.begin() as conn:
            conn.execute(statement)
        self._retyped = retyped
        logger.info("orders.status is now %s", "INTEGER codes" if retyped else "VARCHAR")
