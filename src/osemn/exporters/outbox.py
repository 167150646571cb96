"""The durable outbox: notifications wait in the state store until their receiver has them.

``enqueue`` commits a notification's deliveries (``receivers.plan``) to the
``osemn_outbox`` table and returns; it never sends. Deliverer threads, one per
receiver, send what is due, so a receiver that hangs until its timeout only
delays its own deliveries. Each delivery keeps its idempotency key for life:

- an attempt first *claims* its row by moving ``next_attempt_at`` past the
  attempt's timeout and backoff; a process killed mid-send (``kill -9``) leaves
  the row pending, and whoever opens the outbox next sends it again, with the
  same key, once that time has passed;
- connection errors, timeouts, 429 and 5xx are retried with exponential
  backoff and full jitter, honouring ``Retry-After``; other answers fail the
  delivery for good; past ``max_age`` a delivery expires. Each is counted and
  logged, none is dropped silently;
- deliveries to one target (a webhook, one Alertmanager, one PagerDuty alert)
  go in order, one at a time, so a receiver never sees "resolved" before the
  "firing" that preceded it;
- OpenLineage events (``enqueue_event``) are deliveries of receiver
  ``openlineage`` when an ``OpenLineageSink`` is given: the check run that
  emits one only writes a row;
- an Alertmanager delivery supersedes the pending ones of the same group to
  the same URL: each carries the group's whole state, so an Alertmanager down
  for an hour gets one post when it is back, not sixty.

See: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from osemn._clock import utcnow
from osemn._slo_config import AlertmanagerReceiver, ReceiverConfig
from osemn.errors import DeliveryAttemptError, DeliveryError, StateError
from osemn.exporters._http import parse_retry_after
from osemn.exporters._outbox_schema import (
    _PENDING,
    DeliveryStatus,
    _insert_new,
    _older_pending,
    _outbox,
    _supersede,
)
from osemn.exporters.notification import Notification
from osemn.exporters.receivers import (
    OPENLINEAGE_RECEIVER,
    Delivery,
    OpenLineageSink,
    endpoint,
    plan,
    send,
    send_event,
)

__all__ = ["DeliveryStatus", "Outbox"]

logger = logging.getLogger(__name__)

# How long an idle deliverer sleeps before it looks again for rows that another
# process enqueued (agents sharing a state store), and how often housekeeping runs.
_POLL_SECONDS = 5.0
_MIN_WAIT_SECONDS = 0.05
_PASS_LIMIT = 100
_KEYS_LOGGED = 5


class Outbox:
    """Durable, retried, idempotent delivery of notifications to receivers.

    Safe to share between threads: any thread may ``enqueue`` while the
    deliverers run. Rows live in the state store's database (SQLite and
    PostgreSQL are tested); its tables must exist (``StateStore.open()``).

    Args:
        engine: the state store's engine; never disposed here.
        receivers: receiver configs by name (``alerting.receivers``).
        clock: aware-UTC wall clock for due times and ages.
        http: the client to send with; one is made (and closed by ``stop``) if None.
        max_age: a delivery not done this long after it was enqueued expires;
            finished rows are kept as long, so a repeated enqueue stays a no-op.
        backoff_base: the most the first retry waits (full jitter: 0 to this).
        backoff_max: the most any retry waits, whatever the attempt.
        rng: the source of jitter (seed it in tests).
        openlineage: where ``enqueue_event`` events go (receiver ``openlineage``).

    Raises:
        ValueError: a duration is not positive, or ``backoff_max < backoff_base``.
    """

    def __init__(
        self,
        engine: sa.Engine,
        receivers: Mapping[str, ReceiverConfig],
        *,
        clock: Callable[[], datetime] = utcnow,
        http: httpx.Client | None = None,
        max_age: timedelta = timedelta(hours=24),
        backoff_base: timedelta = timedelta(seconds=1),
        backoff_max: timedelta = timedelta(minutes=5),
        rng: random.Random | None = None,
        openlineage: OpenLineageSink | None = None,
    ) -> None:
        if min(max_age, backoff_base) <= timedelta(0) or backoff_max < backoff_base:
            raise ValueError(
                f"max_age={max_age}, backoff_base={backoff_base}, backoff_max={backoff_max}: "
                "use positive durations with backoff_max >= backoff_base"
            )
        self._engine = engine
        self._receivers: dict[str, ReceiverConfig | OpenLineageSink] = dict(receivers)
        if openlineage is not None:
            self._receivers[OPENLINEAGE_RECEIVER] = openlineage
        self._clock = clock
        self._owns_http = http is None
        self._http = httpx.Client() if http is None else http
        self._max_age = max_age
        self._backoff_base = backoff_base.total_seconds()
        self._backoff_max = backoff_max.total_seconds()
        self._rng = random.Random() if rng is None else rng
        self._rng_lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        # One attempt at a time per receiver in this process: deliver_due skips
        # a receiver its deliverer thread is sending to, rather than wait on it.
        self._busy = {name: threading.Lock() for name in self._receivers}
        self._wake = {name: threading.Event() for name in self._receivers}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._housekeeping = threading.Lock()
        self._housekept_at: float | None = None

    def enqueue(self, notification: Notification) -> None:
        """Store ``notification``'s deliveries; committed when this returns, nothing sent.

        Enqueueing a notification already in the outbox (same key) adds nothing.

        Raises:
            DeliveryError: ``notification.receiver`` is not a configured receiver.
            StateError: the database refused the write; nothing was stored.
        """
        name = notification.receiver
        config = self._receivers.get(name)
        if config is None or isinstance(config, OpenLineageSink):
            raise DeliveryError(
                f"a notification is addressed to receiver {name!r}, which is not configured "
                f"(configured: {', '.join(map(repr, self._receivers)) or 'none'}). Route alerts "
                "only to receivers under alerting.receivers."
            )
        now = self._now()
        deliveries = plan(config, notification)
        rows = [_row(config, d, now) for d in deliveries]
        superseded = 0
        with self._guard("enqueue a notification"), self._engine.begin() as conn:
            # The write comes first: a SQLite transaction that read first could not
            # take the write lock once another connection had written meanwhile.
            if rows:
                _insert_new(conn, rows)
            if isinstance(config, AlertmanagerReceiver):
                for delivery in deliveries:
                    superseded += _supersede(
                        conn,
                        receiver=name,
                        target=delivery.target,
                        group_key=notification.group_key,
                        now=now,
                    )
        self._count(name, DeliveryStatus.SUPERSEDED, superseded)
        logger.debug(
            "outbox: enqueued %d deliveries of notification %s to receiver %r (%d superseded)",
            len(rows),
            notification.key,
            name,
            superseded,
        )
        self._wake[name].set()

    def enqueue_event(self, event: Mapping[str, Any]) -> None:
        """Store an OpenLineage event (its JSON document) for the ``openlineage`` receiver.

        Its key is the run id and event type, so enqueueing it again adds nothing.

        Raises:
            DeliveryError: this outbox has no ``OpenLineageSink``.
            StateError: the database refused the write; nothing was stored.
        """
        config = self._receivers.get(OPENLINEAGE_RECEIVER)
        if not isinstance(config, OpenLineageSink):
            raise DeliveryError(
                "an OpenLineage event was enqueued but no OpenLineage transport is configured; "
                "set lineage.openlineage in osemn.yaml or OPENLINEAGE_URL"
            )
        now = self._now()
        run = str(event.get("run", {}).get("runId", ""))
        ident = f"openlineage:{run}:{event.get('eventType', '')}:{event.get('job', {})}"
        row = {
            "idempotency_key": hashlib.sha256(ident.encode()).hexdigest(),
            "receiver": OPENLINEAGE_RECEIVER,
            "receiver_type": config.type,
            "target": "",
            "group_key": run,
            "notification": json.dumps(dict(event), sort_keys=True),  # the event, not an alert
            "status": _PENDING,
            "attempts": 0,
            "enqueued_at": now,
            "notified_at": now,
            "next_attempt_at": now,
        }
        with self._guard("enqueue an OpenLineage event"), self._engine.begin() as conn:
            _insert_new(conn, [row])
        self._wake[OPENLINEAGE_RECEIVER].set()

    def deliver_due(self, *, limit: int = 100, receivers: Sequence[str] | None = None) -> int:
        """Make one pass: attempt the deliveries due now, at most ``limit``; return how many.

        ``receivers`` limits the pass to those receivers (all when None).

        Expires deliveries past ``max_age`` and prunes old finished rows first.
        A receiver that fails an attempt with a retryable error gets no more
        attempts at that endpoint in this pass, so a dead receiver costs one
        timeout per pass; a receiver whose deliverer thread is sending is skipped.

        Raises:
            StateError: the database cannot be read or written.
        """
        self._housekeep(force=True)
        names = (
            self._receivers if receivers is None else [r for r in receivers if r in self._receivers]
        )
        return self._deliver(tuple(names), limit)

    def start(self) -> None:
        """Start a daemon deliverer thread per receiver; ``enqueue`` wakes them.

        Raises:
            RuntimeError: this outbox was stopped; make a new one.
        """
        if self._stopping.is_set():
            raise RuntimeError("this Outbox was stopped; create a new Outbox to deliver again")
        if self._threads:
            return
        for name in self._receivers:
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"osemn-outbox-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the deliverers, waiting up to ``timeout`` seconds for attempts in flight.

        An attempt still in flight is left to finish or to die with the process;
        its delivery stays in the outbox and is sent again by the next outbox.
        """
        self._stopping.set()
        for event in self._wake.values():
            event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            logger.warning(
                "outbox: %s still sending after %.1fs; those deliveries stay in the outbox",
                ", ".join(alive),
                timeout,
            )
        elif self._owns_http:
            self._http.close()

    def pending(self) -> dict[str, int]:
        """Deliveries not yet done, by receiver (every configured receiver, 0 if none).

        Raises:
            StateError: the database cannot be read.
        """
        counts = dict.fromkeys(self._receivers, 0)
        query = (
            sa.select(_outbox.c.receiver, sa.func.count())
            .where(_outbox.c.status == _PENDING)
            .group_by(_outbox.c.receiver)
        )
        with self._guard("count pending deliveries"), self._engine.connect() as conn:
            counts.update({receiver: int(n) for receiver, n in conn.execute(query)})
        return counts

    def counts(self) -> dict[tuple[str, str], int]:
        """``(receiver, status) -> deliveries`` since this outbox was made.

        ``status`` is a ``DeliveryStatus`` value other than ``pending``.
        """
        with self._counts_lock:
            return dict(self._counts)

    def _run(self, name: str) -> None:
        """A deliverer: passes over one receiver until stopped, sleeping while nothing is due."""
        wake = self._wake[name]
        while not self._stopping.is_set():
            wake.clear()
            try:
                self._housekeep()
                if self._deliver((name,), _PASS_LIMIT):
                    continue
                wait = self._idle_seconds(name)
            except Exception:
                # The thread must outlive a database outage or a bug in one delivery;
                # the rows stay pending and are tried again.
                logger.exception(
                    "outbox: delivering to receiver %r failed; trying again in %.0fs",
                    name,
                    _POLL_SECONDS,
                )
                wait = _POLL_SECONDS
            wake.wait(wait)

    def _deliver(self, names: Sequence[str], limit: int) -> int:
        rows = self._due(names, limit)
        by_receiver: dict[str, list[sa.Row[Any]]] = defaultdict(list)
        for row in rows:
            by_receiver[row.receiver].append(row)
        attempted = 0
        for name, receiver_rows in by_receiver.items():
            busy = self._busy[name]
            if not busy.acquire(blocking=False):
                continue
            try:
                attempted += self._deliver_rows(name, receiver_rows)
            finally:
                busy.release()
        return attempted

    def _deliver_rows(self, name: str, rows: Sequence[sa.Row[Any]]) -> int:
        config = self._receivers[name]
        # Endpoints that failed or that another deliverer holds: what follows for
        # them waits for the next pass, which keeps each target's deliveries in order.
        held_back: set[str] = set()
        attempted = 0
        for row in rows:
            misrouted = _misrouted(config, row)
            if misrouted:
                self._finish(row, DeliveryStatus.FAILED, misrouted)
                continue
            where = endpoint(config, row.target)
            if where in held_back:
                continue
            if not self._claim(row, config.timeout):
                held_back.add(where)
                continue
            attempted += 1
            try:
                if isinstance(config, OpenLineageSink):
                    send_event(config, row.notification)
                else:
                    delivery = Delivery(
                        key=row.idempotency_key,
                        target=row.target,
                        notification=Notification.from_json(row.notification),
                    )
                    send(self._http, config, delivery)
            except DeliveryAttemptError as exc:
                if exc.retryable:
                    held_back.add(where)
                    self._retry(row, exc)
                else:
                    self._finish(row, DeliveryStatus.FAILED, str(exc))
            else:
                self._finish(row, DeliveryStatus.SENT, None)
        return attempted

    def _due(self, names: Sequence[str], limit: int) -> list[sa.Row[Any]]:
        """Due deliveries that no older, not yet due delivery to the same target holds back.

        Oldest first: ``_deliver_rows`` keeps that order within a target.
        """
        now = self._now()
        query = (
            sa.select(_outbox)
            .where(_outbox.c.status == _PENDING, _outbox.c.next_attempt_at <= now)
            .where(~_older_pending(due_after=now))
            .where(_outbox.c.receiver.in_(names))
            .order_by(_outbox.c.id)
            .limit(limit)
        )
        with self._guard("read due deliveries"), self._engine.connect() as conn:
            return list(conn.execute(query))

    def _idle_seconds(self, name: str) -> float:
        """How long the deliverer of ``name`` may sleep: until its next due time, at most a poll."""
        # The first pending delivery of each target decides when that target is due.
        query = sa.select(sa.func.min(_outbox.c.next_attempt_at)).where(
            _outbox.c.status == _PENDING, ~_older_pending(), _outbox.c.receiver == name
        )
        with self._guard("read the next due time"), self._engine.connect() as conn:
            due: datetime | None = conn.execute(query).scalar_one_or_none()
        if due is None:
            return _POLL_SECONDS
        # The floor keeps a deliverer from spinning on a delivery that is due but
        # that deliver_due, in another thread, is sending right now.
        return min(_POLL_SECONDS, max(_MIN_WAIT_SECONDS, (due - self._now()).total_seconds()))

    def _claim(self, row: sa.Row[Any], timeout: timedelta) -> bool:
        """Start an attempt: take the row unless another deliverer already did.

        The row becomes due again after the attempt's timeout plus the backoff
        its failure would earn, which is when a crash mid-send gets it re-sent.
        """
        attempt = row.attempts + 1
        lease = self._now() + timeout + timedelta(seconds=self._backoff(attempt))
        claim = (
            sa.update(_outbox)
            .where(
                _outbox.c.id == row.id,
                _outbox.c.status == _PENDING,
                _outbox.c.attempts == row.attempts,
            )
            .values(attempts=attempt, next_attempt_at=lease)
        )
        with self._guard("claim a delivery"), self._engine.begin() as conn:
            return bool(conn.execute(claim).rowcount == 1)

    def _retry(self, row: sa.Row[Any], exc: DeliveryAttemptError) -> None:
        now = self._now()
        attempt = row.attempts + 1
        delay = parse_retry_after(exc.retry_after, now)
        if delay is None:
            delay = timedelta(seconds=self._backoff(attempt))
        update = (
            sa.update(_outbox)
            .where(_outbox.c.id == row.id, _outbox.c.status == _PENDING)
            .values(next_attempt_at=now + delay, last_error=str(exc))
        )
        with self._guard("reschedule a delivery"), self._engine.begin() as conn:
            conn.execute(update)
        self._count(row.receiver, DeliveryStatus.RETRIED)
        logger.warning(
            "outbox: delivery %s to receiver %r failed (attempt %d), next in %.1fs: %s",
            row.idempotency_key,
            row.receiver,
            attempt,
            delay.total_seconds(),
            exc,
        )

    def _finish(self, row: sa.Row[Any], status: DeliveryStatus, error: str | None) -> None:
        update = (
            sa.update(_outbox)
            .where(_outbox.c.id == row.id, _outbox.c.status == _PENDING)
            .values(status=status.value, finished_at=self._now(), last_error=error)
        )
        with self._guard("mark a delivery"), self._engine.begin() as conn:
            done = conn.execute(update).rowcount
        if not done:  # superseded or expired while it was being sent; counted then
            return
        self._count(row.receiver, status)
        if status is DeliveryStatus.FAILED:
            logger.error(
                "outbox: delivery %s to receiver %r failed for good: %s",
                row.idempotency_key,
                row.receiver,
                error,
            )

    def _housekeep(self, *, force: bool = False) -> None:
        """Expire deliveries past ``max_age``, fail those of unknown receivers, prune old rows."""
        if not self._housekeeping.acquire(blocking=False):
            return
        try:
            started = time.monotonic()
            if (
                not force
                and self._housekept_at is not None
                and started - self._housekept_at < _POLL_SECONDS
            ):
                return
            self._housekept_at = started
            now = self._now()
            cutoff = now - self._max_age
            self._end_pending(
                _outbox.c.enqueued_at < cutoff,
                DeliveryStatus.EXPIRED,
                f"not delivered within max_age {self._max_age}",
            )
            self._end_pending(
                _outbox.c.receiver.not_in(list(self._receivers)),
                DeliveryStatus.FAILED,
                "its receiver is no longer configured; add it back under alerting.receivers "
                "to deliver such notifications",
            )
            prune = sa.delete(_outbox).where(
                _outbox.c.status != _PENDING, _outbox.c.finished_at < cutoff
            )
            with self._guard("prune the outbox"), self._engine.begin() as conn:
                conn.execute(prune)
        finally:
            self._housekeeping.release()

    def _end_pending(
        self, condition: sa.ColumnElement[bool], status: DeliveryStatus, reason: str
    ) -> None:
        """End the pending deliveries matching ``condition``, counting and logging them."""
        c = _outbox.c
        found = sa.select(c.id, c.receiver, c.idempotency_key, c.attempts, c.last_error).where(
            c.status == _PENDING, condition
        )
        # Read, then write in a transaction of its own: a SQLite transaction that
        # read first cannot take the write lock after another connection wrote.
        with self._guard(f"find deliveries to mark {status.value}"), self._engine.connect() as conn:
            rows: list[sa.Row[Any]] = list(conn.execute(found))
        if not rows:
            return
        now = self._now()
        ended: dict[str, list[sa.Row[Any]]] = defaultdict(list)
        with self._guard(f"mark deliveries {status.value}"), self._engine.begin() as conn:
            for row in rows:
                update = (
                    sa.update(_outbox)
                    .where(c.id == row.id, c.status == _PENDING)
                    .values(status=status.value, finished_at=now)
                )
                if conn.execute(update).rowcount:
                    ended[row.receiver].append(row)
        for receiver, done in ended.items():
            self._count(receiver, status, len(done))
            keys = ", ".join(r.idempotency_key for r in done[:_KEYS_LOGGED])
            more = f" and {len(done) - _KEYS_LOGGED} more" if len(done) > _KEYS_LOGGED else ""
            logger.error(
                "outbox: %d deliveries to receiver %r %s (%s%s): %s; last error: %s",
                len(done),
                receiver,
                status.value,
                keys,
                more,
                reason,
                done[-1].last_error or "none (never attempted)",
            )

    def _backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: full jitter over a doubling ceiling."""
        ceiling = min(self._backoff_max, self._backoff_base * 2.0 ** min(attempt - 1, 62))
        with self._rng_lock:
            return self._rng.uniform(0.0, ceiling)

    def _count(self, receiver: str, status: DeliveryStatus, n: int = 1) -> None:
        if n:
            with self._counts_lock:
                self._counts[(receiver, status.value)] += n

    def _now(self) -> datetime:
        return self._clock()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """The boundary where database errors become ``StateError``, password hidden."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            url = self._engine.url
            text = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
            reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            if url.password:
                reason = reason.replace(str(url.password), "***")
            raise StateError(
                f"outbox in {url.render_as_string(hide_password=True)}: cannot {action}: "
                f"{reason}. Check that the state store is up and writable; the outbox keeps "
                "what it stored and goes on when it is."
            ) from exc


def _row(config: ReceiverConfig, delivery: Delivery, now: datetime) -> dict[str, Any]:
    notification = delivery.notification
    return {
        "idempotency_key": delivery.key,
        "receiver": notification.receiver,
        "receiver_type": config.type,
        "target": delivery.target,
        "group_key": notification.group_key,
        "notification": notification.to_json(),
        "status": _PENDING,
        "attempts": 0,
        "enqueued_at": now,
        "notified_at": notification.created_at,
        "next_attempt_at": now,
    }


def _misrouted(config: ReceiverConfig | OpenLineageSink, row: sa.Row[Any]) -> str | None:
    """Why a stored delivery no longer fits its receiver's config, if it does not."""
    if row.receiver_type != config.type:
        return (
            f"receiver {row.receiver!r} was a {row.receiver_type} receiver when this was "
            f"enqueued and is a {config.type} receiver now; it will not be sent"
        )
    if isinstance(config, AlertmanagerReceiver) and row.target not in config.all_urls:
        return (
            f"receiver {row.receiver!r} no longer lists the Alertmanager this was enqueued "
            "for; it will not be sent"
        )
    return None
