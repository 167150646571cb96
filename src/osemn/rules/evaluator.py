"""Burn-rate evaluation and the alert lifecycle, inside the agent.

Every ``evaluation_interval`` the agent computes, for each SLO, the error ratio
over the seven burn windows and the SLO window, the burn rates and the budget
left, and moves each alert through Prometheus's lifecycle: a condition that
starts holding makes the alert ``pending``; held for the SLO's ``for`` it is
``firing``; when it stops holding the alert is ``resolved`` with ``endsAt``.

Hysteresis: a firing burn-rate alert stays firing while its short window is
still above the threshold, even if the long window has dropped under it, so
that a flapping long window does not resolve and re-page within minutes
(``osemn rules`` expresses the same with ``ALERTS``).
See: https://sre.google/workbook/alerting-on-slos/ (6: multiwindow, multi-burn-rate).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from osemn._clock import utcnow
from osemn._slo_config import SLOConfig
from osemn._units import format_duration
from osemn.agent._state_schema import _alerts
from osemn.agent.state import StateStore
from osemn.config import Config
from osemn.results import CheckResult
from osemn.rules.alerts import (
    ALERT_ABSENT,
    ALERT_BUDGET_EXHAUSTED,
    ALERT_BURN_RATE,
    Alert,
    AlertState,
    fingerprint,
)
from osemn.rules.burn import (
    BURN_WINDOWS,
    TIERS,
    Tier,
    absent_window,
    alert_labels,
    burn_threshold,
    check_interval,
    effective_window,
    window_label,
)
from osemn.rules.events import SliEventStore
from osemn.rules.sli import SliEvent, sli_event

__all__ = ["SloEvaluator", "SloStatus", "slo_windows"]

_EVENT_MARGIN = timedelta(days=1)  # events kept beyond the SLO window


def slo_windows(config: Config, slo: SLOConfig) -> dict[str, timedelta]:
    """Each nominal burn window's label and the window actually summed (widened)."""
    interval = check_interval(config, slo)
    return {window_label(w): effective_window(w, interval) for w in BURN_WINDOWS}


@dataclass(frozen=True, kw_only=True)
class SloStatus:
    """One SLO at one evaluation. Ratios are NaN where a window holds no event."""

    slo: SLOConfig
    burn_rates: dict[str, float]
    error_ratio: float  # over the SLO window
    budget_remaining: float
    good: int
    bad: int
    last_event: datetime | None

    @property
    def name(self) -> str:
        return self.slo.name


@dataclass
class _Held:
    """An alert's lifecycle state between evaluations."""

    labels: dict[str, str]
    annotations: dict[str, str]
    active_since: datetime
    state: AlertState
    starts_at: datetime | None = None  # when it started firing
    ends_at: datetime | None = None

    def alert(self) -> Alert:
        return Alert(
            labels=self.labels,
            annotations=self.annotations,
            state=self.state,
            starts_at=self.starts_at or self.active_since,
            ends_at=self.ends_at,
        )


@dataclass
class _Prepared:
    slo: SLOConfig
    windows: dict[str, float]  # label -> seconds
    period: float
    absent: timedelta
    tiers: list[tuple[Tier, float, str, str]] = field(default_factory=list)


class SloEvaluator:
    """Records SLI events from dataset runs and evaluates every SLO's burn rates and alerts.

    Args:
        config: the validated config (its ``slos`` and datasets' schedules).
        state: the opened state store, where events and held alerts are kept.
        clock: aware-UTC wall clock (frozen in tests).
    """

    def __init__(
        self,
        config: Config,
        state: StateStore,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self._state = state
        self._clock = clock
        self._slos = {s.name: s for s in config.slo_list}
        self._by_dataset: dict[str, list[SLOConfig]] = {}
        for slo in self._slos.values():
            self._by_dataset.setdefault(slo.subject, []).append(slo)
        self.events = SliEventStore(
            state, {s.name: s.window + _EVENT_MARGIN for s in self._slos.values()}
        )
        self._prepared = [self._prepare(s) for s in self._slos.values()]
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._started = clock()
        self._persisted: list[tuple[object, object]] | None = None
        self.totals: dict[tuple[str, str], int] = {
            (name, outcome): 0 for name in self._slos for outcome in ("good", "bad")
        }

    def _prepare(self, slo: SLOConfig) -> _Prepared:
        windows = {k: v.total_seconds() for k, v in slo_windows(self.config, slo).items()}
        prepared = _Prepared(
            slo=slo,
            windows=windows,
            period=slo.window.total_seconds(),
            absent=absent_window(self.config, slo),
        )
        for tier in TIERS:
            prepared.tiers.append(
                (tier, burn_threshold(slo, tier), window_label(tier.long), window_label(tier.short))
            )
        return prepared

    @property
    def slos(self) -> dict[str, SLOConfig]:
        return dict(self._slos)

    def open(self) -> int:
        """Load the event history and the alerts held before a restart; returns rows read."""
        now = self._clock()
        rows = self.events.load(now)
        with self._state.begin("read held alerts") as conn:
            for (text,) in conn.execute(sa.select(_alerts.c.alert)):
                doc = json.loads(text)
                if doc["labels"].get("slo") not in self._slos:
                    continue  # an SLO removed from the config: its alert ends with it
                held = _Held(
                    labels=doc["labels"],
                    annotations=doc["annotations"],
                    active_since=datetime.fromisoformat(doc["active_since"]),
                    state=AlertState(doc["state"]),
                    starts_at=_time(doc.get("starts_at")),
                )
                self._held[_key(held.labels)] = held
        return rows

    # -- events -----------------------------------------------------------------

    def record(self, results: Sequence[CheckResult]) -> list[SliEvent]:
        """Turn one dataset run's results into SLI events and keep them durably."""
        if not results:
            return []
        events = [
            ev
            for slo in self._by_dataset.get(results[0].dataset, [])
            if (ev := sli_event(slo, results)) is not None
        ]
        self.events.record(events)
        with self._lock:
            for ev in events:
                self.totals[(ev.slo, "good")] += ev.good
                self.totals[(ev.slo, "bad")] += ev.bad
        return events

    # -- evaluation -------------------------------------------------------------

    def evaluate(self) -> tuple[list[SloStatus], list[Alert]]:
        """Burn rates of every SLO now, and every alert that is pending, firing or just resolved.

        Resolved alerts are returned once, at the evaluation that resolved them.
        """
        now = self._clock()
        t = now.timestamp()
        statuses: list[SloStatus] = []
        active: dict[str, tuple[dict[str, str], dict[str, str], bool]] = {}
        for p in self._prepared:
            status, conditions = self._evaluate_one(p, t, now)
            statuses.append(status)
            active.update(conditions)
        with self._lock:
            alerts = self._advance(active, now)
        self._persist(now)
        return statuses, alerts

    def _evaluate_one(
        self, p: _Prepared, t: float, now: datetime
    ) -> tuple[SloStatus, dict[str, tuple[dict[str, str], dict[str, str], bool]]]:
        slo = p.slo
        series = self.events.series[slo.name]
        budget = slo.error_budget
        ratios = {label: _ratio(*series.window(t, secs)) for label, secs in p.windows.items()}
        good, bad = series.window(t, p.period)
        period_ratio = _ratio(good, bad)
        remaining = 1.0 - period_ratio / budget
        burn = {label: r / budget for label, r in ratios.items()}
        out: dict[str, tuple[dict[str, str], dict[str, str], bool]] = {}
        for tier, threshold, long_label, short_label in p.tiers:
            labels = self._labels(slo, ALERT_BURN_RATE, tier.severity, tier)
            key = _key(labels)
            # Compared as error ratios against factor * budget, the very float64 the
            # generated rules compare with, so both fire on the same side of a threshold.
            long_ratio, short_ratio = ratios[long_label], ratios[short_label]
            held = self._held.get(key)
            sticky = (
                held is not None and held.state is AlertState.FIRING and short_ratio > threshold
            )
            holds = (long_ratio > threshold and short_ratio > threshold) or sticky
            long_burn, short_burn = burn[long_label], burn[short_label]
            factor = tier.factor(slo.window)
            summary = (
                f"SLO {slo.name} burns its error budget {_fmt(long_burn)}x too fast "
                f"over {long_label} ({_fmt(short_burn)}x over {short_label})"
            )
            description = (
                f"{slo.sli} SLI of {slo.subject}: at this rate the {format_duration(slo.window)} "
                f"budget ({_pct(budget)} of events) lasts "
                f"{_lasts(slo.window, long_burn)}; threshold {factor:.4g}x."
            )
            out[key] = (labels, self._annotations(slo, summary, description), holds)
        last = series.last_time
        quiet_for = t - (last if last is not None else self._started.timestamp())
        labels = self._labels(slo, ALERT_ABSENT, "ticket")
        out[_key(labels)] = (
            labels,
            self._annotations(
                slo,
                f"SLO {slo.name} has had no SLI events for {format_duration(p.absent)}",
                f"No {slo.sli} event of {slo.subject} since "
                f"{_iso(last) if last is not None else 'the agent started'}: its checks error "
                "or do not run, so the SLO cannot be judged.",
            ),
            quiet_for > p.absent.total_seconds(),
        )
        labels = self._labels(slo, ALERT_BUDGET_EXHAUSTED, "ticket")
        out[_key(labels)] = (
            labels,
            self._annotations(
                slo,
                f"SLO {slo.name} has spent its error budget",
                f"{bad} bad of {good + bad} {slo.sli} events over "
                f"{format_duration(slo.window)}: {_pct(period_ratio)} against a budget of "
                f"{_pct(budget)}.",
            ),
            good + bad > 0 and remaining <= 0,
        )
        status = SloStatus(
            slo=slo,
            burn_rates=burn,
            error_ratio=period_ratio,
            budget_remaining=remaining,
            good=good,
            bad=bad,
            last_event=None if last is None else datetime.fromtimestamp(last, now.tzinfo),
        )
        return status, out

    def _labels(
        self, slo: SLOConfig, alertname: str, severity: str, tier: Tier | None = None
    ) -> dict[str, str]:
        return {"alertname": alertname, **alert_labels(slo, severity, tier)}

    def _annotations(self, slo: SLOConfig, summary: str, description: str) -> dict[str, str]:
        out = {"summary": summary, "description": description}
        if slo.runbook_url:
            out["runbook_url"] = slo.runbook_url
        dashboard = slo.dashboard_url or self.config.alerting.external_url
        if dashboard:
            out["dashboard_url"] = dashboard
        return out

    def _advance(
        self, active: dict[str, tuple[dict[str, str], dict[str, str], bool]], now: datetime
    ) -> list[Alert]:
        out: list[Alert] = []
        for key, (labels, notes, holds) in active.items():
            held = self._held.get(key)
            if holds:
                if held is None:
                    held = _Held(labels, notes, active_since=now, state=AlertState.PENDING)
                    self._held[key] = held
                held.annotations = notes
                slo = self._slos[labels["slo"]]
                if held.state is AlertState.PENDING and now - held.active_since >= slo.for_:
                    held.state, held.starts_at = AlertState.FIRING, now
                out.append(held.alert())
            elif held is not None:
                del self._held[key]
                if held.state is AlertState.FIRING:
                    held.state, held.ends_at, held.annotations = AlertState.RESOLVED, now, notes
                    out.append(held.alert())
        return out

    def _persist(self, now: datetime) -> None:
        """Keep the held alerts' timers in the state store, when they changed."""
        with self._lock:
            held = list(self._held.values())
        rows = [
            {
                "fingerprint": fingerprint(h.labels),
                "alert": json.dumps(
                    {
                        "labels": h.labels,
                        "annotations": h.annotations,
                        "state": h.state.value,
                        "active_since": h.active_since.isoformat(),
                        "starts_at": None if h.starts_at is None else h.starts_at.isoformat(),
                    }
                ),
                "updated_at": now,
            }
            for h in held
        ]
        digest = sorted((r["fingerprint"], r["alert"]) for r in rows)
        if digest == self._persisted:
            return
        with self._state.begin("keep held alerts") as conn:
            conn.execute(sa.delete(_alerts))
            if rows:
                conn.execute(sa.insert(_alerts), rows)
        self._persisted = digest

    def held_alerts(self) -> list[Alert]:
        """Pending and firing alerts now (for ``/api/v1/alerts`` and the status page)."""
        with self._lock:
            return [h.alert() for h in self._held.values()]

    def prune(self, retention: timedelta) -> int:
        now = self._clock()
        self.events.compact(now)
        return self.events.prune(now, retention)


def _key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)


def _ratio(good: int, bad: int) -> float:
    total = good + bad
    return bad / total if total else math.nan


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.4g}%"


def _lasts(window: timedelta, burn: float) -> str:
    if math.isnan(burn) or burn <= 0:
        return "the whole window"
    return format_duration(timedelta(seconds=round(window.total_seconds() / burn / 60) * 60))
