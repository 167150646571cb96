"""Retry timing for a part that is down: a source, a feature store."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]

_FIRST_SECONDS = 1.0
_CAP_SECONDS = 300.0
_JITTER = 0.25  # a delay is drawn from [d * (1 - jitter), d]


class Backoff:
    """Exponential backoff with jitter: 1s, 2s, 4s ... capped at 5 minutes."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._random = random.Random()
        self.failures = 0
        self.retry_at: float | None = None

    def failed(self) -> float:
        self.failures += 1
        # The exponent is bounded so that days of failures cannot overflow a float.
        doubling = 2.0 ** min(self.failures - 1, 32)
        ceiling = min(_CAP_SECONDS, _FIRST_SECONDS * doubling)
        delay = ceiling * (1 - _JITTER * self._random.random())
        self.retry_at = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.retry_at = None

    def remaining(self) -> float:
        if self.retry_at is None:
            return 0.0
        return max(0.0, self.retry_at - self._clock())
