"""When checks run: APScheduler 3 jobs, one per dataset, never overlapping.

Each job has ``max_instances=1`` (a slow run is never joined by the next one),
``coalesce=True`` (runs missed while the process was busy or asleep collapse
into one), and jitter (hundreds of datasets on ``every 5m`` do not hit the
warehouse in the same second). Per-source concurrency is held by the source's
semaphore; the worker pool only bounds threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from osemn.config import Schedule

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """Runs registered callables on their schedules and tracks runs in flight."""

    def __init__(self, *, max_workers: int, jitter: timedelta) -> None:
        self._jitter = int(jitter.total_seconds()) or None
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max_workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._in_flight = 0
        self._idle = threading.Condition()

    def add(self, job_id: str, schedule: Schedule, func: Callable[[], object]) -> None:
        """Schedule ``func``; an interval job also runs once right away."""
        trigger: IntervalTrigger | CronTrigger
        first: datetime | None = None
        if schedule.interval is not None:
            trigger = IntervalTrigger(
                seconds=schedule.interval.total_seconds(), jitter=self._jitter, timezone=UTC
            )
            first = datetime.now(UTC)
        else:
            assert schedule.cron is not None
            trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
            trigger.jitter = self._jitter
        self._scheduler.add_job(
            self._tracked(job_id, func), trigger, id=job_id, name=job_id, next_run_time=first
        )

    def _tracked(self, job_id: str, func: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with self._idle:
                self._in_flight += 1
            try:
                func()
            except Exception:  # the job callables report their own errors; this is a last net
                log.exception("job %s failed", job_id)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

        return run

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def start(self) -> None:
        self._scheduler.start()

    def stop_scheduling(self) -> None:
        """Start no new runs; runs in flight go on."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in flight; False when ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)
