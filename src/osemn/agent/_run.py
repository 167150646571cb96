"""What one dataset run accumulates: the window, statements sent, results so far."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from osemn.results import CheckKind, CheckResult, Status

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """One run of one dataset; ``now`` is its start, the instant its windows end at."""

    dataset: str
    source: str
    now: datetime
    send: Callable[[sa.Executable], Sequence[sa.Row[Any]]]
    started: float = field(default_factory=time.perf_counter)
    where: ColumnElement[bool] | None = None
    statements: int = 0
    results: list[CheckResult] = field(default_factory=list)

    def execute(self, statement: sa.Executable) -> Sequence[sa.Row[Any]]:
        """Send one statement to the warehouse, counting it."""
        self.statements += 1
        return self.send(statement)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def add(self, kind: CheckKind, check: str, status: Status, **fields: Any) -> None:
        self.results.append(
            CheckResult(
                dataset=self.dataset,
                source=self.source,
                kind=kind,
                check=check,
                status=status,
                finished_at=self.now,
                **fields,
            )
        )

    def counted(self, kind: CheckKind, check: str, *, failed: int, **fields: Any) -> None:
        """A result that fails exactly when some rows fail."""
        self.add(kind, check, Status.FAIL if failed else Status.PASS, failed_rows=failed, **fields)

    def error(self, kind: CheckKind, check: str, error: str, **fields: Any) -> None:
        self.add(kind, check, Status.ERROR, error=error, **fields)

    def finish(self, finished_at: datetime) -> list[CheckResult]:
        """The results, all stamped with the run's end and its whole duration.

        Checks fused into one scan share one run, so they share its time: a
        per-check share of one statement would be a number without meaning.
        """
        duration = self.elapsed()
        return [
            replace(r, finished_at=finished_at, duration_seconds=duration) for r in self.results
        ]

    def keep(self, result: CheckResult) -> None:
        """Add a result built elsewhere, stamped with this run's source."""
        self.results.append(replace(result, source=self.source))
