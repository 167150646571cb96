"""A notification: a group of alerts bound for one receiver, as the outbox keeps it.

The idempotency ``key`` is fixed when the notification is created and stored with
it, so every retry of the same notification carries the same key, and a repeat
sent later (``repeat_interval``) carries a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from osemn.rules.alerts import Alert, format_time

__all__ = ["Notification"]


@dataclass(frozen=True, kw_only=True)
class Notification:
    """Alerts of one group (one route's ``group_by`` values) for one receiver."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    created_at: datetime
    external_url: str = ""

    @property
    def status(self) -> str:
        """``firing`` when any alert fires, else ``resolved`` (Alertmanager's rule)."""
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def key(self) -> str:
        """The idempotency key: this group, these alert states, this creation time."""
        parts = [self.receiver, self.group_key, format_time(self.created_at)]
        parts += sorted(f"{a.fingerprint}:{a.status}" for a in self.alerts)
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])

    def to_webhook(self, *, max_alerts: int = 0) -> dict[str, Any]:
        """Alertmanager's webhook document (version 4), alerts truncated to ``max_alerts``."""
        alerts = list(self.alerts)
        truncated = max(0, len(alerts) - max_alerts) if max_alerts else 0
        if truncated:
            alerts = alerts[:max_alerts]
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": truncated,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": dict(self.group_labels),
            "commonLabels": self.common_labels(),
            "commonAnnotations": self.common_annotations(),
            "externalURL": self.external_url,
            "alerts": [a.to_webhook() for a in alerts],
        }

    def to_json(self) -> str:
        """The notification as stored in the outbox (round-trips with ``from_json``)."""
        return json.dumps(
            {
                "receiver": self.receiver,
                "group_key": self.group_key,
                "group_labels": dict(self.group_labels),
                "alerts": [a.to_json() for a in self.alerts],
                "created_at": self.created_at.isoformat(),
                "external_url": self.external_url,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Notification:
        doc = json.loads(text)
        return cls(
            receiver=doc["receiver"],
            group_key=doc["group_key"],
            group_labels=doc["group_labels"],
            alerts=tuple(Alert.from_json(a) for a in doc["alerts"]),
            created_at=datetime.fromisoformat(doc["created_at"]),
            external_url=doc.get("external_url", ""),
        )


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}
