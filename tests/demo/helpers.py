"""What the demo's tests share: a clock that moves only when the test says so."""

from __future__ import annotations

from datetime import datetime, timedelta


class SteppedClock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
