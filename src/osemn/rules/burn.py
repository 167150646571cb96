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

from osemn._units import format_duration

__all__ = [
    "BURN_WINDOWS",
    "TIERS",
    "Tier",
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


def effective_window(nominal: timedelta, check_interval: timedelta) -> timedelta:
    """``nominal`` widened to at least two check intervals, in whole seconds."""
    widened = max(nominal, 2 * check_interval)
    return timedelta(seconds=int(-(-widened.total_seconds() // 1)))


def window_label(window: timedelta) -> str:
    """The label of a nominal window: ``5m``, ``1h``, ``3d``."""
    return format_duration(window)
