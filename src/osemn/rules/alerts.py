"""Alerts in Alertmanager's data model.

An alert is a set of labels (its identity), annotations, and a time range.
``fingerprint`` is Alertmanager's own (64-bit FNV-1a over the sorted label
pairs), so the fingerprint osemn shows, the PagerDuty ``dedup_key`` it sends and
the one Alertmanager's UI shows are the same string.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ALERT_ABSENT",
    "ALERT_BUDGET_EXHAUSTED",
    "ALERT_BURN_RATE",
    "Alert",
    "AlertState",
    "fingerprint",
    "format_time",
]

ALERT_BURN_RATE = "OsemnSLOBurnRate"
ALERT_ABSENT = "OsemnSLIAbsent"
ALERT_BUDGET_EXHAUSTED = "OsemnErrorBudgetExhausted"

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF  # Prometheus's model.SeparatorByte
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: "no end" in Alertmanager's JSON


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set, as 16 hex digits."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def format_time(value: datetime | None) -> str:
    """RFC 3339 in UTC with a Z, as Alertmanager writes times; None is Go's zero time."""
    if value is None:
        return _ZERO_TIME
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertState(enum.StrEnum):
    """Where an alert is in its lifecycle (Prometheus's states, plus resolved)."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One alert at one moment. ``ends_at`` is set once it is resolved."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    state: AlertState
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def status(self) -> str:
        """``firing`` or ``resolved``, the two statuses receivers know."""
        return "resolved" if self.state is AlertState.RESOLVED else "firing"

    def to_webhook(self) -> dict[str, Any]:
        """The alert as one item of Alertmanager's webhook (version 4) ``alerts``."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(self.ends_at),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }

    def to_json(self) -> dict[str, Any]:
        """The alert for ``/api/v1/alerts`` and state: the webhook item plus its state."""
        return {**self.to_webhook(), "state": self.state.value}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Alert:
        ends = doc.get("endsAt")
        return cls(
            labels=dict(doc["labels"]),
            annotations=dict(doc.get("annotations") or {}),
            state=AlertState(doc["state"]),
            starts_at=datetime.fromisoformat(doc["startsAt"]),
            ends_at=None if ends in (None, _ZERO_TIME) else datetime.fromisoformat(ends),
            generator_url=doc.get("generatorURL", ""),
        )
