"""The Prometheus view of SLOs, alerts and notification delivery (DESIGN.md, Metrics contract).

A custom collector like ``MetricsCollector``: the agent hands it each
evaluation's statuses and alerts, and reads the SLI event totals and the
outbox's counts at scrape time, so a scrape never waits on the state store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from osemn.rules.alerts import (
    ALERT_ABSENT,
    ALERT_BUDGET_EXHAUSTED,
    ALERT_BURN_RATE,
    Alert,
    AlertState,
)
from osemn.rules.burn import BURN_WINDOWS, window_label
from osemn.rules.evaluator import SloStatus

__all__ = ["SloCollector"]

_SEVERITIES = ("page", "ticket")
_ALERT_NAMES = (ALERT_BURN_RATE, ALERT_ABSENT, ALERT_BUDGET_EXHAUSTED)


class SloCollector:
    """Renders ``osemn_sli_events_total``, burn rates, budgets, alerts and delivery health.

    Args:
        totals: SLI events by (slo, outcome) since the process started.
        pending: pending outbox deliveries by receiver.
        delivered: deliveries by (receiver, status) since the process started.
    """

    def __init__(
        self,
        *,
        totals: Callable[[], Mapping[tuple[str, str], int]],
        pending: Callable[[], Mapping[str, int]] = dict,
        delivered: Callable[[], Mapping[tuple[str, str], int]] = dict,
    ) -> None:
        self._totals = totals
        self._pending = pending
        self._delivered = delivered
        self._statuses: list[SloStatus] = []
        self._alerts: list[Alert] = []
        self._lock = threading.Lock()

    def update(self, statuses: Sequence[SloStatus], alerts: Sequence[Alert]) -> None:
        with self._lock:
            self._statuses = list(statuses)
            self._alerts = [a for a in alerts if a.state is not AlertState.RESOLVED]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            statuses, alerts = list(self._statuses), list(self._alerts)
        events = CounterMetricFamily(
            "osemn_sli_events",
            "SLI events by outcome (good/bad): the input of burn-rate rules.",
            labels=("slo", "outcome"),
        )
        for (slo, outcome), value in sorted(self._totals().items()):
            events.add_metric((slo, outcome), value)
        yield events

        burn = GaugeMetricFamily(
            "osemn_slo_burn_rate",
            "Error ratio over the window divided by the error budget (1 - objective); "
            "NaN while the window holds no event.",
            labels=("slo", "window"),
        )
        budget = GaugeMetricFamily(
            "osemn_slo_error_budget_remaining_ratio",
            "Share of the SLO window's error budget left (1 = untouched, <= 0 = spent).",
            labels=("slo",),
        )
        objective = GaugeMetricFamily(
            "osemn_slo_objective_ratio",
            "The SLO's objective (share of good events), for dashboards.",
            labels=("slo",),
        )
        for status in statuses:
            for window in BURN_WINDOWS:
                label = window_label(window)
                burn.add_metric((status.name, label), status.burn_rates[label])
            budget.add_metric((status.name,), status.budget_remaining)
            objective.add_metric((status.name,), status.slo.objective)
        yield burn
        yield budget
        yield objective

        firing = GaugeMetricFamily(
            "osemn_alerts_firing",
            "Alerts firing now, by name and severity.",
            labels=("alertname", "severity"),
        )
        counts = {(name, sev): 0 for name in _ALERT_NAMES for sev in _SEVERITIES}
        for alert in alerts:
            if alert.state is AlertState.FIRING:
                key = (alert.name, alert.labels.get("severity", ""))
                counts[key] = counts.get(key, 0) + 1
        for key, value in sorted(counts.items()):
            firing.add_metric(key, value)
        yield firing

        pending = GaugeMetricFamily(
            "osemn_outbox_pending",
            "Notifications written to the outbox and not yet delivered, by receiver.",
            labels=("receiver",),
        )
        for receiver, value in sorted(self._pending().items()):
            pending.add_metric((receiver,), value)
        yield pending
        delivered = CounterMetricFamily(
            "osemn_notifications",
            "Notification deliveries by receiver and outcome "
            "(sent, retried, failed, expired, superseded).",
            labels=("receiver", "status"),
        )
        for (receiver, outcome), value in sorted(self._delivered().items()):
            delivered.add_metric((receiver, outcome), value)
        yield delivered
