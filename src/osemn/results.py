"""What a check run produces: statuses, measurements and results.

Results are frozen values shared by the runner, the state store, the metrics
collector, ``/api/v1/results`` and ``osemn check --format json``; their JSON
shape is the contract of DESIGN.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "CheckKind",
    "CheckResult",
    "Measurement",
    "Status",
    "results_document",
]


class Status(enum.StrEnum):
    """Outcome of one check; the value doubles as the ``status`` metric label."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    INSUFFICIENT_DATA = "insufficient_data"  # too few rows to judge: neither pass nor fail


class CheckKind(enum.StrEnum):
    """Kind of check; the value doubles as the ``kind`` metric label."""

    SCHEMA = "schema"
    FRESHNESS = "freshness"
    VOLUME = "volume"
    SCHEMA_CHANGE = "schema_change"
    DRIFT = "drift"
    MODEL = "model"  # ``dataset`` of a model result is the model's name
    # Feature-store checks of a feature view (materialization, online parity,
    # online probes); its batch source's freshness and completeness keep their kinds.
    FEATURESTORE = "featurestore"


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One number a check measured, e.g. ``completeness_ratio{column="email"}``."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """The outcome of one check of one dataset in one run.

    ``duration_seconds`` is the time of the run that produced it: checks fused
    into one scan share it. ``note`` explains how the result was reached when
    that is not a plain SQL count (``proven by constraint``, ``sampled``);
    ``details`` carries what a UI draws (a drift check's two histograms).
    """

    dataset: str
    kind: CheckKind
    check: str
    status: Status
    rows: int | None = None
    failed_rows: int | None = None
    duration_seconds: float = 0.0
    finished_at: datetime
    measurements: tuple[Measurement, ...] = ()
    failures: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    note: str | None = None
    source: str | None = None
    details: Mapping[str, Any] | None = None

    def measurement(self, name: str, **labels: str) -> float | None:
        """The value of measurement ``name`` with exactly these labels, if measured."""
        wanted = tuple(sorted(labels.items()))
        for m in self.measurements:
            if m.name == name and tuple(sorted(m.labels)) == wanted:
                return m.value
        return None

    def to_json(self) -> dict[str, Any]:
        """The result as in DESIGN.md's ``osemn check --format json`` contract."""
        doc: dict[str, Any] = {
            "dataset": self.dataset,
            "kind": self.kind.value,
            "check": self.check,
            "status": self.status.value,
            "rows": self.rows,
            "failed_rows": self.failed_rows,
            "duration_seconds": round(self.duration_seconds, 6),
            "measurements": measurements_json(self.measurements),
            "failures": [dict(f) for f in self.failures],
            "error": self.error,
        }
        if self.note is not None:
            doc["note"] = self.note
        if self.details is not None:
            doc["details"] = dict(self.details)
        doc["finished_at"] = self.finished_at.isoformat()
        return doc


def measurements_json(measurements: Iterable[Measurement]) -> dict[str, Any]:
    """Render measurements as ``{name: value}`` or ``{name: {label_value: value}}``."""
    doc: dict[str, Any] = {}
    for m in measurements:
        if not m.labels:
            doc[m.name] = m.value
        else:
            key = ",".join(v for _, v in m.labels)
            doc.setdefault(m.name, {})[key] = m.value
    return doc


def results_document(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The whole JSON document: ``{"results": [...], "summary": {pass, fail, error}}``."""
    summary = {s.value: 0 for s in Status}
    for r in results:
        summary[r.status.value] += 1
    return {"results": [r.to_json() for r in results], "summary": summary}
