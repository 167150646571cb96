"""The Prometheus rule file of ``osemn rules`` and the facts it shares with the agent.

See :mod:`osemn.rules.prometheus` (the public face) and docs/rules.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from osemn._slo_config import SLOConfig
from osemn._version import __version__
from osemn.config import Config
from osemn.errors import RuleError
from osemn.rules.alerts import ALERT_ABSENT, ALERT_BUDGET_EXHAUSTED, ALERT_BURN_RATE
from osemn.rules.burn import (
    BURN_WINDOWS,
    TIERS,
    Tier,
    absent_window,
    alert_labels,
    burn_threshold,
    check_interval,
    effective_window,
)

__all__ = [
    "METRIC",
    "RULE_FILE",
    "absent_window",
    "alert_annotations",
    "alert_labels",
    "burn_threshold",
    "check_interval",
    "eval_interval",
    "prom_duration",
    "prometheus_rules",
    "quote",
    "ratio_windows",
    "series_labels",
    "widened_windows",
]

METRIC = "osemn_sli_events_total"
RULE_FILE = "osemn-rules.yaml"

# --- shared facts: the agent's evaluator uses the same ones ------------------------


def alert_annotations(
    config: Config, slo: SLOConfig, alertname: str, tier: Tier | None = None
) -> dict[str, str]:
    """Annotations of an SLO alert (``tier`` for burn-rate alerts).

    They hold no Prometheus template, so the agent can send the very same text.
    """
    goal = f"objective {_percent(slo.objective)} over {prom_duration(slo.window)}"
    if tier is not None:
        factor = _num(round(tier.factor(slo.window), 4))
        notes = {
            "summary": f"SLO {slo.name}: error budget burning {factor}x too fast ({tier.name})",
            "description": (
                f"The {slo.sli} SLI of {slo.subject} burns its error budget faster than "
                f"{factor}x over both {_window_phrase(config, slo, tier.long)} and "
                f"{_window_phrase(config, slo, tier.short)}: at this rate "
                f"{tier.budget_percent}% of the budget is gone within "
                f"{prom_duration(tier.long)} ({goal})."
            ),
        }
    elif alertname == ALERT_ABSENT:
        window = prom_duration(absent_window(config, slo))
        notes = {
            "summary": f"SLO {slo.name}: no SLI events for {window}",
            "description": (
                f"osemn recorded no event of the {slo.sli} SLI of {slo.subject} for {window}: "
                "the agent is down, the dataset's checks do not run, or the metric is not "
                f"scraped. Burn-rate alerts of this SLO cannot fire meanwhile ({goal})."
            ),
        }
    elif alertname == ALERT_BUDGET_EXHAUSTED:
        notes = {
            "summary": f"SLO {slo.name}: error budget exhausted",
            "description": (
                f"The {slo.sli} SLI of {slo.subject} used all of its error budget "
                f"({_percent(slo.error_budget)} of events) in the last "
                f"{prom_duration(slo.window)} ({goal})."
            ),
        }
    else:
        raise RuleError(
            f"{alertname!r} is not an SLO alert without a tier; use {ALERT_ABSENT} or "
            f"{ALERT_BUDGET_EXHAUSTED}, or pass the tier of {ALERT_BURN_RATE}"
        )
    if slo.description:
        notes["description"] += f" {slo.description}"
    if slo.runbook_url:
        notes["runbook_url"] = slo.runbook_url
    if slo.dashboard_url:
        notes["dashboard_url"] = slo.dashboard_url
    return notes


def _window_phrase(config: Config, slo: SLOConfig, nominal: timedelta) -> str:
    effective = effective_window(nominal, check_interval(config, slo))
    if effective == nominal:
        return f"the last {prom_duration(nominal)}"
    return (
        f"the last {prom_duration(nominal)} (read over {prom_duration(effective)}: "
        "two check intervals)"
    )


def widened_windows(config: Config) -> list[tuple[str, timedelta, timedelta]]:
    """``(slo, nominal, effective)`` of every burn window widened by too rare checks.

    A window shorter than two check intervals may hold no event (0/0 is NaN and
    NaN never fires), so its range is widened; the rule keeps its nominal name.
    """
    out = []
    for slo in config.slo_list:
        interval = check_interval(config, slo)
        for nominal in BURN_WINDOWS:
            effective = effective_window(nominal, interval)
            if effective != nominal:
                out.append((slo.name, nominal, effective))
    return out


# --- the rule file ---------------------------------------------------------------


def prometheus_rules(config: Config) -> dict[str, Any]:
    """A Prometheus rule file: one group ``osemn-slo-<name>`` per SLO.

    Raises:
        RuleError: when an SLO cannot be expressed as rules.
    """
    return {"groups": [_group(config, slo) for slo in config.slo_list]}


def series_labels(slo: SLOConfig) -> dict[str, str]:
    """The labels of every series recorded for ``slo`` (Sloth's, osemn's and its own)."""
    return {
        **slo.labels,
        "sloth_id": slo.name,
        "sloth_service": slo.subject,
        "sloth_slo": slo.name,
        "slo": slo.name,
        "dataset": slo.subject,
        "sli": slo.sli,
    }


def _group(config: Config, slo: SLOConfig) -> dict[str, Any]:
    interval = check_interval(config, slo)
    base = series_labels(slo)
    sel = f"{{sloth_id={quote(slo.name)}}}"
    budget = f"(1 - {_num(slo.objective)})"
    rules: list[dict[str, Any]] = []
    for nominal in ratio_windows(slo):
        effective = effective_window(nominal, interval)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{prom_duration(nominal)}",
                "expr": _error_ratio(slo, effective),
                "labels": {
                    **base,
                    "sloth_window": prom_duration(nominal),
                    "osemn_range": prom_duration(effective),
                },
            }
        )
    window_labels = "without (sloth_window, osemn_range)"
    period = f"slo:sli_error:ratio_rate{prom_duration(slo.window)}{sel}"
    rules += [
        {"record": "slo:objective:ratio", "expr": f"vector({_num(slo.objective)})"},
        {"record": "slo:error_budget:ratio", "expr": f"vector{budget}"},
        {
            "record": "slo:time_period:days",
            "expr": f"vector({_num(slo.window / timedelta(days=1))})",
        },
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": f"max {window_labels} (slo:sli_error:ratio_rate5m{sel}) / {budget}",
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"max {window_labels} ({period}) / {budget}",
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{sel}",
        },
        {
            "record": "sloth_slo_info",
            "expr": "vector(1)",
            "labels": {
                **base,
                "sloth_mode": "osemn",
                "sloth_spec": "osemn/v1",
                "sloth_version": __version__,
                "sloth_objective": f"{slo.objective * 100:.10g}",
            },
        },
    ]
    for rule in rules:
        rule.setdefault("labels", dict(base))
    rules += [_burn_alert(config, slo, tier) for tier in TIERS]
    rules += [_absent_alert(config, slo), _exhausted_alert(config, slo)]
    return {
        "name": f"osemn-slo-{slo.name}",
        "interval": prom_duration(eval_interval(config)),
        "rules": rules,
    }


def ratio_windows(slo: SLOConfig) -> tuple[timedelta, ...]:
    """The nominal windows of the ratio rules: the burn windows, then the SLO window.

    An SLO window equal to a burn window (1d, 3d) is the same series: recorded once.
    """
    return (*BURN_WINDOWS, *(() if slo.window in BURN_WINDOWS else (slo.window,)))


def _error_ratio(slo: SLOConfig, window: timedelta) -> str:
    name, rng = quote(slo.name), prom_duration(window)
    return (
        f'sum(rate({METRIC}{{slo={name}, outcome="bad"}}[{rng}]))\n'
        f"/\nsum(rate({METRIC}{{slo={name}}}[{rng}]))"
    )


def _burn_alert(config: Config, slo: SLOConfig, tier: Tier) -> dict[str, Any]:
    sel = f"{{sloth_id={quote(slo.name)}}}"
    threshold = f"({_num(tier.factor(slo.window))} * (1 - {_num(slo.objective)}))"
    long = f"slo:sli_error:ratio_rate{prom_duration(tier.long)}{sel} > {threshold}"
    short = f"slo:sli_error:ratio_rate{prom_duration(tier.short)}{sel} > {threshold}"
    firing = (
        f'ALERTS{{alertname={quote(ALERT_BURN_RATE)}, alertstate="firing", '
        f"slo={quote(slo.name)}, burnrate_tier={quote(tier.name)}}}"
    )
    # Both windows above the threshold fire; a firing alert then holds while the
    # short window stays above it (hysteresis: it resolves on the short window only).
    expr = (
        f"max(\n  (\n    {long}\n    and ignoring (sloth_window, osemn_range)\n    {short}\n  )\n"
        f"  or on ()\n  (\n    {short}\n    and on (slo)\n    {firing}\n  )\n)"
        f" / (1 - {_num(slo.objective)})"
    )
    return _alert(
        ALERT_BURN_RATE,
        expr,
        slo.for_,
        alert_labels(slo, tier.severity, tier),
        alert_annotations(config, slo, ALERT_BURN_RATE, tier),
    )


def _absent_alert(config: Config, slo: SLOConfig) -> dict[str, Any]:
    series = f"{METRIC}{{slo={quote(slo.name)}}}"
    window = prom_duration(absent_window(config, slo))
    # A flat counter only counts once it has been seen for the whole window (its
    # value `offset` ago), else a fresh agent would look silent from its first scrape.
    expr = (
        f"max(\n  (\n    sum(increase({series}[{window}])) == 0\n    and on ()\n"
        f"    count({series} offset {window})\n  )\n  or on ()\n"
        f"  absent_over_time({series}[{window}])\n)"
    )
    return _alert(
        ALERT_ABSENT,
        expr,
        timedelta(0),
        alert_labels(slo, "ticket"),
        alert_annotations(config, slo, ALERT_ABSENT),
    )


def _exhausted_alert(config: Config, slo: SLOConfig) -> dict[str, Any]:
    sel = f"{{sloth_id={quote(slo.name)}}}"
    return _alert(
        ALERT_BUDGET_EXHAUSTED,
        f"max(slo:period_error_budget_remaining:ratio{sel} <= 0)",
        timedelta(0),
        alert_labels(slo, "ticket"),
        alert_annotations(config, slo, ALERT_BUDGET_EXHAUSTED),
    )


def _alert(
    name: str, expr: str, hold: timedelta, labels: dict[str, str], notes: dict[str, str]
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if hold > timedelta(0):
        rule["for"] = prom_duration(hold)
    # Prometheus expands alert labels and annotations as Go templates: user text
    # (descriptions, label values, URLs) must come out as written.
    rule["labels"] = {k: _literal(v) for k, v in labels.items()}
    rule["annotations"] = {k: _literal(v) for k, v in notes.items()}
    return rule


def _literal(text: str) -> str:
    return text.replace("{{", '{{ "{{" }}')


def eval_interval(config: Config) -> timedelta:
    return config.alerting.evaluation_interval


def prom_duration(value: timedelta) -> str:
    """Prometheus's rendering of a duration: ``30d``, ``4w`` (28d), ``1h30m``, ``1y``.

    Years and weeks are used only when exact, as Prometheus (and Sloth) do, so a
    28d SLO's period rule is ``slo:sli_error:ratio_rate4w``.
    """
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, size, exact in (
        ("y", 365 * 86_400_000, True),
        ("w", 7 * 86_400_000, True),
        ("d", 86_400_000, False),
        ("h", 3_600_000, False),
        ("m", 60_000, False),
        ("s", 1000, False),
        ("ms", 1, False),
    ):
        if exact and ms % size:
            continue
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


def _num(value: float) -> str:
    """The shortest literal that parses back to the same float64 (in Python and Go)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.10g}%"


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
