"""Burn-rate tiers and windows, shared by the agent's evaluator and ``osemn rules``.

The tiers are the Google SRE workbook's multiwindow, multi-burn-rate alerts
(with Sloth's 1d/2h ticket tier). Each is defined by the share of the error
budget it lets burn within its long window; the burn-rate factor follows from
the SLO window, so that a 30d SLO gets the familiar 14.4 / 6 / 3 / 1 and a 28d
SLO 13.44 / 5.6 / 2.8 / 0.933.

Data checks run every few minutes, so a short window can hold no event at all
(0/0 is NaN, and NaN never fires): every window is widened to at least two
check intervals. Both the evaluator and the generated rules call
``effective_window``, which is what makes them agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

from osemn._slo_config import SLOConfig
from osemn._units import format_duration
from osemn.config import Config, schedule_interval
from osemn.errors import RuleError

__all__ = [
    "BURN_WINDOWS",
    "TIERS",
    "Tier",
    "absent_window",
    "alert_labels",
    "burn_threshold",
    "check_interval",
    "effective_window",
    "window_label",
]

BURN_WINDOWS: tuple[timedelta, ...] = (
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=3),
)


@dataclass(frozen=True)
class Tier:
    """One multiwindow alert: fires when both windows burn faster than ``factor``."""

    severity: str
    long: timedelta
    short: timedelta
    budget_percent: int  # of the SLO window's budget, burnt within ``long``

    @property
    def name(self) -> str:
        """The ``burnrate_tier`` label, e.g. ``1h-5m``."""
        return f"{window_label(self.long)}-{window_label(self.short)}"

    def factor(self, slo_window: timedelta) -> float:
        """The burn rate that spends ``budget_percent`` of the budget within ``long``."""
        ratio = Fraction(self.budget_percent, 100) * Fraction(
            int(slo_window.total_seconds()), int(self.long.total_seconds())
        )
        return float(ratio)


TIERS: tuple[Tier, ...] = (
    Tier("page", timedelta(hours=1), timedelta(minutes=5), 2),
    Tier("page", timedelta(hours=6), timedelta(minutes=30), 5),
    Tier("ticket", timedelta(days=1), timedelta(hours=2), 10),
    Tier("ticket", timedelta(days=3), timedelta(hours=6), 10),
)


def effective_window(nominal: timedelta, interval: timedelta) -> timedelta:
    """``nominal`` widened to at least two check ``interval``s, in whole seconds."""
    widened = max(nominal, 2 * interval)
    return timedelta(seconds=int(-(-widened.total_seconds() // 1)))


def window_label(window: timedelta) -> str:
    """The label of a nominal window: ``5m``, ``1h``, ``3d``."""
    return format_duration(window)


# --- facts of an SLO that the agent's evaluator and the generated rules share ---


def check_interval(config: Config, slo: SLOConfig) -> timedelta:
    """How often the SLO's dataset, model or feature store is checked (probed): the unit
    of window widening."""
    if slo.model is not None:
        return schedule_interval(config.models[slo.model].schedule)
    if slo.source is not None:  # availability; the config checked it is a Feast source
        return config.feast_sources[slo.source].probe.interval  # one event per probe
    if slo.dataset is None:
        raise RuleError(
            f"SLO {slo.name!r} is about model {slo.model!r}; Prometheus rules cover dataset "
            "SLOs only. Give the SLO a `dataset:`."
        )
    return schedule_interval(config.datasets[slo.dataset].schedule)


def absent_window(config: Config, slo: SLOConfig) -> timedelta:
    """How long the SLI may go without events: ``absent_after``, else 3 checks and >= 1h."""
    if slo.absent_after is not None:
        return slo.absent_after
    return max(3 * check_interval(config, slo), timedelta(hours=1))


def burn_threshold(slo: SLOConfig, tier: Tier) -> float:
    """The error ratio above which both windows of ``tier`` must be.

    The rules write it as ``(factor * (1 - objective))`` with Python's round-trip
    float literals, so PromQL computes this very float64.
    """
    return tier.factor(slo.window) * (1 - slo.objective)


def alert_labels(slo: SLOConfig, severity: str, tier: Tier | None = None) -> dict[str, str]:
    """An SLO alert's labels but ``alertname``: the agent and Prometheus use the same set."""
    labels = {
        **slo.labels,
        "severity": severity,
        "slo": slo.name,
        "dataset": slo.subject,
        "sli": slo.sli,
    }
    if tier is not None:
        labels["burnrate_tier"] = tier.name
    return labels
