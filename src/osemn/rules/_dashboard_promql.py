"""The PromQL and thresholds the dashboard panels take from the config.

What the config knows is written into the queries (freshness ``max_age``, run
schedules) and thresholds (SLO windows' burn-rate page factors).
"""

from __future__ import annotations

import json
from datetime import timedelta

from osemn._units import format_duration
from osemn.config import Config, schedule_interval
from osemn.rules._dashboard_spec import Steps
from osemn.rules.burn import TIERS

__all__ = [
    "DEFAULT_SLO_WINDOW",
    "FIRING",
    "burn_steps",
    "duration",
    "freshness_share",
    "percent",
    "quote",
    "run_window",
    "sli",
]

DEFAULT_SLO_WINDOW = timedelta(days=30)
# The on-call dashboard's table and every dashboard's annotation of firing alerts.
FIRING = "sum by (alertname, severity) (osemn_alerts_firing) > 0"


def quote(value: str) -> str:
    """A PromQL string literal (config names may hold any character)."""
    # PromQL strings take Go's escapes, of which JSON's are a subset; non-ASCII
    # stays literal, since Go rejects the surrogate pairs JSON would write.
    return json.dumps(value, ensure_ascii=False)


def percent(ratio: float) -> str:
    return f"{ratio * 100:.6g}%"


def duration(value: timedelta) -> str:
    """A PromQL duration as users write SLO windows: ``28d``, not ``4w``."""
    days, rest = divmod(value, timedelta(days=1))
    return f"{days}d" if days and not rest else format_duration(value)


def sli(selector: str, window: str) -> str:
    """Good events / all events over ``window``, by SLO, from the raw counter.

    Written as 1 - bad/total so that an SLO with no bad event yet (no series of
    any other outcome than ``good``) reads 1, not "no data".
    """
    total = f"sum by (slo) (increase(osemn_sli_events_total{{{selector}}}[{window}]))"
    bad = total.replace(f"{{{selector}}}", f'{{{selector},outcome!="good"}}')
    return f"1 - (({bad}) or ({total}) * 0) / {total}"


def freshness_share(config: Config) -> str | None:
    """Freshness as a share of each dataset's ``max_age`` (1 = stale), or None."""
    parts = [
        "max by (dataset) (osemn_dataset_freshness_seconds"
        f'{{dataset={quote(name)},dataset=~"$dataset"}}) / {ds.freshness.max_age.total_seconds():g}'
        for name, ds in config.datasets.items()
        if ds.freshness is not None
    ]
    return " or ".join(parts) if parts else None


def run_window(config: Config) -> str:
    """A rate window that holds two runs of every dataset (and at least 1m).

    ``$__rate_interval`` follows the scrape interval, but checks run every few
    minutes: a shorter window holds no run and draws nothing.
    """
    intervals = [schedule_interval(ds.schedule) for ds in config.datasets.values()]
    return duration(max(2 * max(intervals, default=timedelta(0)), timedelta(minutes=1)))


def _page_factor(*windows: timedelta) -> float:
    """The lowest burn rate that pages, over the given SLO windows."""
    return min(t.factor(w) for t in TIERS if t.severity == "page" for w in windows)


def burn_steps(*windows: timedelta) -> Steps:
    return ((None, "green"), (1, "orange"), (round(_page_factor(*windows), 2), "red"))
