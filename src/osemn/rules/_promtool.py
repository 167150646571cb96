"""The ``promtool test rules`` file of ``osemn rules``: every SLO's alerts, proven.

See :func:`promtool_tests` and docs/rules.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from osemn._slo_config import SLOConfig
from osemn.config import Config
from osemn.rules._prom_rules import (
    METRIC,
    RULE_FILE,
    absent_window,
    alert_annotations,
    alert_labels,
    burn_threshold,
    check_interval,
    eval_interval,
    prom_duration,
    quote,
    ratio_windows,
    series_labels,
)
from osemn.rules.alerts import ALERT_ABSENT, ALERT_BUDGET_EXHAUSTED, ALERT_BURN_RATE
from osemn.rules.burn import TIERS, Tier, effective_window

__all__ = ["promtool_tests"]


def promtool_tests(config: Config, rule_file_name: str = RULE_FILE) -> dict[str, Any]:
    """A ``promtool test rules`` file for the rules of :func:`prometheus_rules`.

    Three cases, each over every SLO at once: a burn faster than the 1h-5m page
    tier from t=0 (every tier below it fires too, and every window holds a value
    even just before a check, where only a widened window still holds events); a
    healthy SLI that then stops (nothing fires, then absent fires
    ``absent_window`` after the last event); no series at all (absent fires).
    Check runs are modelled as counter steps every check interval. promtool's
    cost grows with rules x evaluation steps, so the cases are as short as they
    can be.
    """
    step = _seconds(eval_interval(config))
    plans = [_Plan(config, slo, step) for slo in config.slo_list]
    sample = math.gcd(60, step, *(p.interval for p in plans))
    tests = (
        []
        if not plans
        else [
            _burn_case(plans, step, sample),
            _healthy_then_stalled_case(plans, step, sample),
            _missing_case(plans),
        ]
    )
    return {
        "rule_files": [rule_file_name],
        "evaluation_interval": _dur(step),
        "tests": tests,
    }


class _Plan:
    """One SLO's test timeline, in whole seconds (``step`` is the evaluation interval)."""

    def __init__(self, config: Config, slo: SLOConfig, step: int) -> None:
        self.config, self.slo = config, slo
        self.interval = _seconds(check_interval(config, slo))
        self.absent = _seconds(absent_window(config, slo))
        # A burn from t=0 is first seen at the first evaluation after the first check,
        # and its alerts fire `for` later.
        self.burn_seen = _ceil_to(self.interval, step)
        self.burn_fires = self.burn_seen + _ceil_to(_seconds(slo.for_), step)
        self.burn_gap = self._between_checks(step, self.burn_fires)
        # Healthy, then stalled: events until `stop` (the check a burn is seen after);
        # absent is still quiet at `quiet` (the last event is inside its window) and
        # fires at `stall_fires`.
        self.stop = _ceil_to(self.burn_seen, self.interval)
        self.quiet = _floor_to(self.stop + self.absent - 2 * max(60, step), step)
        self.stall_fires = _ceil_to(self.stop + self.absent, step)

    def _between_checks(self, step: int, after: int) -> int:
        """An evaluation time from ``after`` on that is as far as can be from the last check.

        Only a window widened to two check intervals still holds events there.
        """
        times = range(after, after + self.interval + step, step)
        return max(times, key=lambda t: (t % self.interval, -t))

    def alert(self, name: str, severity: str, tier: Tier | None = None) -> dict[str, Any]:
        return {
            "exp_labels": alert_labels(self.slo, severity, tier),
            "exp_annotations": alert_annotations(self.config, self.slo, name, tier),
        }

    def series(
        self, outcome: str, per_check: int, *, sample: int, end: int, stop: int | None = None
    ) -> dict[str, str]:
        return {
            "series": f"{METRIC}{{slo={quote(self.slo.name)}, outcome={quote(outcome)}}}",
            "values": _steps(per_check, self.interval, sample, end, stop=stop),
        }


def _burn_case(plans: Sequence[_Plan], step: int, sample: int) -> dict[str, Any]:
    marks = {t for p in plans for m in (p.burn_seen, p.burn_fires) for t in (m - step, m)}
    times = sorted({*(t for t in marks if t >= 0), *(p.burn_gap for p in plans)})
    series, tiers, exprs, end = [], {}, [], times[-1] + step
    for p in plans:
        exprs += _burning_exprs(p, p.burn_gap)
        total, page = 1000, burn_threshold(p.slo, TIERS[0])
        # Halfway between the page threshold and 100% errors; all errors when the
        # objective is so low that even those cannot reach it.
        halfway = max(math.floor(page * total) + 1, round((page + 1) / 2 * total))
        bad = total if page >= 1 else min(halfway, total)
        tiers[p.slo.name] = [t for t in TIERS if bad / total > burn_threshold(p.slo, t)]
        series += [
            p.series("good", total - bad, sample=sample, end=end),
            p.series("bad", bad, sample=sample, end=end),
        ]
    checks = []
    for t in times:
        burning = [
            p.alert(ALERT_BURN_RATE, tier.severity, tier)
            for p in plans
            if p.burn_fires <= t
            for tier in tiers[p.slo.name]
        ]
        exhausted = [p.alert(ALERT_BUDGET_EXHAUSTED, "ticket") for p in plans if p.burn_seen <= t]
        checks += [
            _alert_check(t, ALERT_BURN_RATE, burning),
            _alert_check(t, ALERT_BUDGET_EXHAUSTED, exhausted),
        ]
    return {
        "name": "fast burn: every SLO burns faster than its 1h-5m page tier from t=0",
        "interval": _dur(sample),
        "input_series": series,
        "alert_rule_test": checks,
        "promql_expr_test": exprs,
    }


def _healthy_then_stalled_case(plans: Sequence[_Plan], step: int, sample: int) -> dict[str, Any]:
    last = max(p.stall_fires for p in plans)
    series, exprs = [], []
    for p in plans:
        lowest = min(p.slo.error_budget, *(burn_threshold(p.slo, t) for t in TIERS))
        total = math.floor(2 / lowest) + 1  # one bad event a check: half the lowest threshold
        series += [
            p.series("good", total - 1, sample=sample, end=last + step, stop=p.stop),
            p.series("bad", 1, sample=sample, end=last + step, stop=p.stop),
        ]
        query = f"ALERTS{{alertname={quote(ALERT_ABSENT)}, slo={quote(p.slo.name)}}}"
        firing = {
            "alertname": ALERT_ABSENT,
            "alertstate": "firing",
            **alert_labels(p.slo, "ticket"),
        }
        # Where a burn would be seen, the healthy one is not even pending.
        budget = f"ALERTS{{alertname=~{quote(ALERT_BURN_RATE + '|' + ALERT_BUDGET_EXHAUSTED)}, "
        exprs += [
            _expr_check(
                f"absent({budget}slo={quote(p.slo.name)}}})",
                p.burn_seen,
                "",
                {"slo": p.slo.name},
                1,
            ),
            _expr_check(
                f"absent({query})", p.quiet, "", {"alertname": ALERT_ABSENT, "slo": p.slo.name}, 1
            ),
            _expr_check(query, p.stall_fires, "ALERTS", firing, 1),
        ]
    # Burn-rate and budget alerts stay silent after the stop too (no data is NaN).
    calm = sorted({p.stall_fires for p in plans})
    checks = [
        _alert_check(t, name, [])
        for t in calm
        for name in (ALERT_BURN_RATE, ALERT_BUDGET_EXHAUSTED)
    ]
    checks.append(
        _alert_check(last, ALERT_ABSENT, [p.alert(ALERT_ABSENT, "ticket") for p in plans])
    )
    return {
        "name": (
            "healthy, then stalled: every SLO burns at half its lowest threshold (nothing "
            "fires), then its checks stop (absent fires its absent window after the last event)"
        ),
        "interval": _dur(sample),
        "input_series": series,
        "alert_rule_test": checks,
        "promql_expr_test": exprs,
    }


def _burning_exprs(p: _Plan, t: int) -> list[dict[str, Any]]:
    slo = p.slo
    base = series_labels(slo)
    sel = f"{{sloth_id={quote(slo.name)}}}"
    exprs = [
        _expr_check(f"slo:objective:ratio{sel}", t, "slo:objective:ratio", base, slo.objective),
        _expr_check(
            f"slo:error_budget:ratio{sel}", t, "slo:error_budget:ratio", base, slo.error_budget
        ),
        _expr_check(f"slo:period_error_budget_remaining:ratio{sel} < bool 0", t, "", base, 1),
    ]
    # Every window holds events, even just before a check: no NaN (NaN >= 0 is false).
    # And the constants are exact.
    for nominal in ratio_windows(slo):
        effective = effective_window(nominal, check_interval(p.config, slo))
        labels = {
            **base,
            "sloth_window": prom_duration(nominal),
            "osemn_range": prom_duration(effective),
        }
        name = f"slo:sli_error:ratio_rate{prom_duration(nominal)}"
        exprs.append(_expr_check(f"{name}{sel} >= bool 0", t, "", labels, 1))
    return exprs


def _missing_case(plans: Sequence[_Plan]) -> dict[str, Any]:
    # absent_over_time() over a range with no sample is true from the first
    # evaluation: a Prometheus that never saw the series cannot tell "not yet".
    return {
        "name": "missing: no SLI series at all; absent fires for every SLO from the start",
        "input_series": [],
        "alert_rule_test": [
            _alert_check(0, ALERT_ABSENT, [p.alert(ALERT_ABSENT, "ticket") for p in plans])
        ],
    }


def _alert_check(t: int, name: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"eval_time": _dur(t), "alertname": name, "exp_alerts": alerts}


def _expr_check(
    expr: str, t: int, name: str, labels: Mapping[str, str], value: float
) -> dict[str, Any]:
    inner = ", ".join(f"{k}={quote(v)}" for k, v in sorted(labels.items()))
    return {
        "expr": expr,
        "eval_time": _dur(t),
        "exp_samples": [{"labels": f"{name}{{{inner}}}", "value": value}],
    }


def _steps(per_check: int, interval: int, sample: int, end: int, *, stop: int | None = None) -> str:
    """promtool series values: a counter that grows by ``per_check`` at every check.

    Checks run at ``interval``, ``2*interval``, ... up to ``stop``; samples are
    taken every ``sample`` seconds from 0 to ``end``.
    """
    run, samples = interval // sample, end // sample + 1
    checks = samples if stop is None else stop // interval
    if run == 1:
        grow = min(checks, samples - 1)
        flat = samples - 1 - grow
        return f"0+{per_check}x{grow}" + (f" {grow * per_check}+0x{flat - 1}" if flat else "")
    parts, j, k = [], 0, 0
    while j < samples:
        n = samples - j if k >= checks else min(run, samples - j)
        parts.append(f"{k * per_check}+0x{n - 1}")
        j, k = j + n, k + 1
    return " ".join(parts)


def _seconds(value: timedelta) -> int:
    return math.ceil(value.total_seconds())


def _dur(seconds: int) -> str:
    return prom_duration(timedelta(seconds=seconds))


def _ceil_to(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _floor_to(value: int, unit: int) -> int:
    return value // unit * unit
