"""``osemn rules``: the generated Prometheus rules, promtool tests and Alertmanager snippet.

Everything generated goes through the real ``promtool`` and ``amtool`` of
/usr/bin; a missing binary fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osemn.cli import main
from osemn.config import Config, parse_config
from osemn.rules.alerts import ALERT_ABSENT, ALERT_BURN_RATE
from osemn.rules.burn import TIERS
from osemn.rules.prometheus import (
    ALERTMANAGER_FILE,
    RULE_FILE,
    TEST_FILE,
    alertmanager_config,
    burn_threshold,
    prom_duration,
    prometheus_rules,
    promtool_tests,
    to_yaml,
    widened_windows,
)

SLOTH_RECORDS = [
    "slo:sli_error:ratio_rate5m",
    "slo:sli_error:ratio_rate30m",
    "slo:sli_error:ratio_rate1h",
    "slo:sli_error:ratio_rate2h",
    "slo:sli_error:ratio_rate6h",
    "slo:sli_error:ratio_rate1d",
    "slo:sli_error:ratio_rate3d",
]
META_RECORDS = [
    "slo:objective:ratio",
    "slo:error_budget:ratio",
    "slo:time_period:days",
    "slo:current_burn_rate:ratio",
    "slo:period_burn_rate:ratio",
    "slo:period_error_budget_remaining:ratio",
    "sloth_slo_info",
]


def make_config(
    slos: list[dict[str, Any]],
    schedules: dict[str, str] | None = None,
    *,
    evaluation_interval: str = "1m",
    routes: list[dict[str, Any]] | None = None,
    path: str = "osemn.yaml",
) -> Config:
    """A valid config: one dataset per schedule (with a freshness check), and the SLOs."""
    schedules = schedules or {"orders": "every 1m"}
    doc: dict[str, Any] = {
        "version": 1,
        "sources": {"wh": {"url": "sqlite:///unused.db"}},
        "datasets": {
            name: {
                "source": "wh",
                "table": name,
                "timestamp": "created_at",
                "schedule": schedule,
                "freshness": {"max_age": "1h"},
                "schema": "schemas/orders.yaml",
            }
            for name, schedule in schedules.items()
        },
        "slos": slos,
        "alerting": {"evaluation_interval": evaluation_interval},
    }
    if routes:
        doc["alerting"]["receivers"] = {"hook": {"type": "file", "path": "alerts.jsonl"}}
        doc["alerting"]["routes"] = routes
    return parse_config(yaml.safe_dump(doc), path=path, env={})


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, (
        f"{name} is not installed: apt-get install prometheus prometheus-alertmanager"
    )
    return path


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def promtool_passes(config: Config, directory: Path) -> None:
    """Write the three files, then promtool check + test and amtool check-config must pass."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RULE_FILE).write_text(to_yaml(prometheus_rules(config)))
    (directory / TEST_FILE).write_text(to_yaml(promtool_tests(config, RULE_FILE)))
    (directory / ALERTMANAGER_FILE).write_text(to_yaml(alertmanager_config(config)))
    run([tool("promtool"), "check", "rules", RULE_FILE], directory)
    run([tool("promtool"), "test", "rules", TEST_FILE], directory)
    run([tool("amtool"), "check-config", ALERTMANAGER_FILE], directory)


def rules_of(config: Config, slo: str) -> list[dict[str, Any]]:
    (group,) = [g for g in prometheus_rules(config)["groups"] if g["name"] == f"osemn-slo-{slo}"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def record(config: Config, slo: str, name: str) -> dict[str, Any]:
    (rule,) = [r for r in rules_of(config, slo) if r.get("record") == name]
    return rule


def burn_alert(config: Config, slo: str, tier: str) -> dict[str, Any]:
    (rule,) = [
        r
        for r in rules_of(config, slo)
        if r.get("alert") == ALERT_BURN_RATE and r["labels"]["burnrate_tier"] == tier
    ]
    return rule


ORDERS_SLO = {"name": "orders-checks", "dataset": "orders", "sli": "checks", "objective": "99.5%"}


# --- hand-computed values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "factors"),
    [("30d", ["14.4", "6", "3", "1"]), ("28d", ["13.44", "5.6", "2.8", "0.9333333333333333"])],
)
def test_tier_thresholds_scale_with_the_slo_window(window: str, factors: list[str]) -> None:
    config = make_config([{**ORDERS_SLO, "window": window}])
    slo = config.slo_list[0]
    for tier, factor in zip(TIERS, factors, strict=True):
        assert tier.factor(slo.window) == float(factor)
        assert burn_threshold(slo, tier) == float(factor) * (1 - 0.995)
        expr = burn_alert(config, "orders-checks", tier.name)["expr"]
        long, short = prom_duration(tier.long), prom_duration(tier.short)
        threshold = f"({factor} * (1 - 0.995))"
        assert f'slo:sli_error:ratio_rate{long}{{sloth_id="orders-checks"}} > {threshold}' in expr
        assert f'slo:sli_error:ratio_rate{short}{{sloth_id="orders-checks"}} > {threshold}' in expr
    assert [t.name for t in TIERS] == ["1h-5m", "6h-30m", "1d-2h", "3d-6h"]
    assert [t.severity for t in TIERS] == ["page", "page", "ticket", "ticket"]


def test_prometheus_computes_the_same_threshold_float(tmp_path: Path) -> None:
    """PromQL's ``(factor * (1 - objective))`` is bit-for-bit the agent's float."""
    objectives = [0.995, 0.999, 0.9, 0.99999, 0.9137]
    config = make_config(
        [{**ORDERS_SLO, "name": f"s{i}", "objective": o} for i, o in enumerate(objectives)]
    )
    (tmp_path / RULE_FILE).write_text(to_yaml({"groups": []}))
    cases = []
    for slo in config.slo_list:
        for tier in TIERS:
            expr = f"vector({tier.factor(slo.window)!r} * (1 - {slo.objective!r}))"
            value = burn_threshold(slo, tier)
            cases.append({"expr": expr, "eval_time": "0s", "exp_samples": [{"value": value}]})
    doc = {"rule_files": [RULE_FILE], "tests": [{"input_series": [], "promql_expr_test": cases}]}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(doc))
    run([tool("promtool"), "test", "rules", "t.yaml"], tmp_path)


def test_windows_widen_to_two_check_intervals_and_keep_their_names() -> None:
    config = make_config([ORDERS_SLO], {"orders": "every 15m"})
    ranges = {}
    for name in SLOTH_RECORDS:
        rule = record(config, "orders-checks", name)
        ranges[rule["labels"]["sloth_window"]] = rule["labels"]["osemn_range"]
        rng = rule["labels"]["osemn_range"]
        assert rule["expr"] == (
            f'sum(rate(osemn_sli_events_total{{slo="orders-checks", outcome="bad"}}[{rng}]))\n'
            f'/\nsum(rate(osemn_sli_events_total{{slo="orders-checks"}}[{rng}]))'
        )
    assert ranges == {
        "5m": "30m",
        "30m": "30m",
        "1h": "1h",
        "2h": "2h",
        "6h": "6h",
        "1d": "1d",
        "3d": "3d",
    }
    assert widened_windows(config) == [
        ("orders-checks", timedelta(minutes=5), timedelta(minutes=30))
    ]
    page = burn_alert(config, "orders-checks", "1h-5m")
    assert "the last 5m (read over 30m: two check intervals)" in page["annotations"]["description"]


def test_every_minute_widens_nothing() -> None:
    config = make_config([ORDERS_SLO], {"orders": "every 1m"})
    assert widened_windows(config) == []
    assert "[5m]" in record(config, "orders-checks", "slo:sli_error:ratio_rate5m")["expr"]


@pytest.mark.parametrize(
    ("window", "period"), [("30d", "30d"), ("28d", "4w"), ("90d", "90d"), ("2d", "2d")]
)
def test_rule_names_are_sloth_names(window: str, period: str) -> None:
    config = make_config([{**ORDERS_SLO, "window": window, "labels": {"team": "data"}}])
    rules = rules_of(config, "orders-checks")
    records = [r["record"] for r in rules if "record" in r]
    assert records == [*SLOTH_RECORDS, f"slo:sli_error:ratio_rate{period}", *META_RECORDS]
    ident = {"sloth_id": "orders-checks", "sloth_service": "orders", "sloth_slo": "orders-checks"}
    for rule in rules:
        if "record" in rule:
            assert (
                rule["labels"].items() >= {**ident, "slo": "orders-checks", "team": "data"}.items()
            )
            window_label = "sloth_window" in rule["labels"]
            assert window_label == rule["record"].startswith("slo:sli_error:")
    days = float(window.removesuffix("d"))
    assert record(config, "orders-checks", "slo:time_period:days")["expr"] == f"vector({days:g})"


def test_an_slo_window_equal_to_a_burn_window_is_recorded_once() -> None:
    config = make_config([{**ORDERS_SLO, "window": "1d"}])
    records = [r["record"] for r in rules_of(config, "orders-checks") if "record" in r]
    assert records == [*SLOTH_RECORDS, *META_RECORDS]


def test_alert_labels_and_annotations() -> None:
    slo = {
        **ORDERS_SLO,
        "labels": {"team": "data"},
        "runbook_url": "https://runbooks.example.com/orders",
        "for": "5m",
        "window": "30d",
    }
    config = make_config([slo], {"orders": "every 2m"})
    rules = [r for r in rules_of(config, "orders-checks") if "alert" in r]
    assert [(r["alert"], r["labels"]["severity"]) for r in rules] == [
        ("OsemnSLOBurnRate", "page"),
        ("OsemnSLOBurnRate", "page"),
        ("OsemnSLOBurnRate", "ticket"),
        ("OsemnSLOBurnRate", "ticket"),
        ("OsemnSLIAbsent", "ticket"),
        ("OsemnErrorBudgetExhausted", "ticket"),
    ]
    page = rules[0]
    assert page["for"] == "5m"
    assert page["labels"] == {
        "team": "data",
        "severity": "page",
        "slo": "orders-checks",
        "dataset": "orders",
        "sli": "checks",
        "burnrate_tier": "1h-5m",
    }
    assert page["annotations"] == {
        "summary": "SLO orders-checks: error budget burning 14.4x too fast (1h-5m)",
        "description": (
            "The checks SLI of orders burns its error budget faster than 14.4x over both the "
            "last 1h and the last 5m: at this rate 2% of the budget is gone within 1h "
            "(objective 99.5% over 30d)."
        ),
        "runbook_url": "https://runbooks.example.com/orders",
    }
    absent = rules[4]
    assert "for" not in absent and "dashboard_url" not in absent["annotations"]
    assert absent["annotations"]["summary"] == "SLO orders-checks: no SLI events for 1h"
    assert "[1h]" in absent["expr"] and "offset 1h" in absent["expr"]


def test_absent_window_defaults_to_three_checks_and_at_least_an_hour() -> None:
    config = make_config(
        [
            {**ORDERS_SLO, "name": "fast", "dataset": "fast"},
            {**ORDERS_SLO, "name": "slow", "dataset": "slow"},
            {**ORDERS_SLO, "name": "set", "dataset": "slow", "absent_after": "90m"},
        ],
        {"fast": "every 5m", "slow": "every 45m"},
    )
    windows = {}
    for slo in ("fast", "slow", "set"):
        (absent,) = [r for r in rules_of(config, slo) if r.get("alert") == ALERT_ABSENT]
        windows[slo] = absent["annotations"]["summary"].rsplit(" ", 1)[1]
    assert windows == {"fast": "1h", "slow": "2h15m", "set": "1h30m"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=28), "4w"),
        (timedelta(days=30), "30d"),
        (timedelta(days=365), "1y"),
        (timedelta(days=90), "90d"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(seconds=1.5), "1s500ms"),
        (timedelta(0), "0s"),
    ],
)
def test_prom_duration_is_prometheus_format(value: timedelta, text: str) -> None:
    assert prom_duration(value) == text


# --- real promtool and amtool ---------------------------------------------------------------


def test_generated_files_pass_promtool_and_amtool(tmp_path: Path) -> None:
    config = make_config(
        [
            {
                **ORDERS_SLO,
                "window": "30d",
                "labels": {"team": "data", "tier": "gold"},
                "runbook_url": "https://runbooks.example.com/orders",
                "dashboard_url": "https://grafana.example.com/d/osemn",
                # Prometheus expands annotations as templates: this must come out as is.
                "description": "Orders must pass their checks {{ not a template }}.",
                "for": "3m",
            },
            {"name": "orders-fresh", "dataset": "orders", "sli": "freshness", "objective": 0.999},
            {
                "name": "customers-complete",
                "dataset": "customers",
                "sli": "completeness",
                "columns": ["email", "name"],
                "objective": "95%",
                "absent_after": "75m",
            },
        ],
        {"orders": "every 5m", "customers": "*/15 * * * *"},
    )
    promtool_passes(config, tmp_path)


def test_a_config_without_slos_gives_valid_empty_files(tmp_path: Path) -> None:
    config = make_config([])
    assert prometheus_rules(config) == {"groups": []}
    promtool_passes(config, tmp_path)


def test_the_generated_test_catches_unwidened_windows(tmp_path: Path) -> None:
    """The promtool file fails if the 5m window is read over 5m while checks run every 15m."""
    config = make_config([ORDERS_SLO], {"orders": "every 15m"})
    rules = to_yaml(prometheus_rules(config))
    (tmp_path / TEST_FILE).write_text(to_yaml(promtool_tests(config, RULE_FILE)))
    (tmp_path / RULE_FILE).write_text(rules)
    run([tool("promtool"), "test", "rules", TEST_FILE], tmp_path)
    (tmp_path / RULE_FILE).write_text(rules.replace("[30m]", "[5m]"))
    done = subprocess.run(
        [tool("promtool"), "test", "rules", TEST_FILE], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "FAILED" in done.stdout + done.stderr


def _hysteresis_series(minutes: int) -> tuple[str, str]:
    """100 events a minute: 5 minutes all bad, 45 good, 30 at 8% bad, then good again."""
    bad, good, b, g = [0], [0], 0, 0
    for i in range(1, minutes + 1):
        errors = 100 if i <= 5 else 8 if 51 <= i <= 80 else 0
        b, g = b + errors, g + 100 - errors
        bad.append(b)
        good.append(g)
    return " ".join(map(str, good)), " ".join(map(str, bad))


def _hysteresis_test(config: Config, path: Path) -> subprocess.CompletedProcess[str]:
    good, bad = _hysteresis_series(100)
    alerts = 'ALERTS{alertname="OsemnSLOBurnRate", burnrate_tier="1h-5m", alertstate="firing"}'
    labels = (
        'ALERTS{alertname="OsemnSLOBurnRate", alertstate="firing", burnrate_tier="1h-5m", '
        'dataset="orders", severity="page", sli="checks", slo="orders-checks"}'
    )
    firing = [{"labels": labels, "value": 1}]
    quiet = [
        {
            "labels": '{alertname="OsemnSLOBurnRate", alertstate="firing", burnrate_tier="1h-5m"}',
            "value": 1,
        }
    ]
    sel = '{sloth_id="orders-checks"}'
    cases = [
        {"expr": alerts, "eval_time": "55m", "exp_samples": firing},  # long 9.8%, short 8%
        # The spike leaves the 1h window: 6.6% < 7.2%, but the 5m window holds 8% > 7.2%.
        {
            "expr": f"slo:sli_error:ratio_rate1h{sel} < bool 0.072",
            "eval_time": "62m",
            "exp_samples": [
                {
                    "labels": '{dataset="orders", osemn_range="1h", sli="checks", '
                    'slo="orders-checks", sloth_id="orders-checks", sloth_service="orders", '
                    'sloth_slo="orders-checks", sloth_window="1h"}',
                    "value": 1,
                }
            ],
        },
        {"expr": alerts, "eval_time": "62m", "exp_samples": firing},
        {"expr": alerts, "eval_time": "80m", "exp_samples": firing},
        {"expr": f"absent({alerts})", "eval_time": "81m", "exp_samples": quiet},  # short 6.4%
        {"expr": f"absent({alerts})", "eval_time": "54m", "exp_samples": quiet},  # short 6.4%
    ]
    doc = {
        "rule_files": [RULE_FILE],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'osemn_sli_events_total{slo="orders-checks", outcome="good"}',
                        "values": good,
                    },
                    {
                        "series": 'osemn_sli_events_total{slo="orders-checks", outcome="bad"}',
                        "values": bad,
                    },
                ],
                "promql_expr_test": cases,
            }
        ],
    }
    (path / "hysteresis.yaml").write_text(yaml.safe_dump(doc))
    return subprocess.run(
        [tool("promtool"), "test", "rules", "hysteresis.yaml"],
        cwd=path,
        capture_output=True,
        text=True,
    )


def test_a_firing_alert_holds_while_the_short_window_burns(tmp_path: Path) -> None:
    config = make_config([{**ORDERS_SLO, "window": "30d"}])
    doc = prometheus_rules(config)
    (tmp_path / RULE_FILE).write_text(to_yaml(doc))
    done = _hysteresis_test(config, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    # Without the ALERTS clause the page resolves at 62m, when the 1h window drops.
    page = next(r for r in doc["groups"][0]["rules"] if r.get("alert") == ALERT_BURN_RATE)
    primary, _hold = page["expr"].split("\n  or on ()")
    page["expr"] = primary + "\n) / (1 - 0.995)"
    (tmp_path / RULE_FILE).write_text(to_yaml(doc))
    done = _hysteresis_test(config, tmp_path)
    assert done.returncode == 1
    assert "time: 1h2m" in done.stdout + done.stderr


def test_absent_fires_one_window_after_the_last_event(tmp_path: Path) -> None:
    """Flat since start, missing, and restarted at zero without events since."""
    config = make_config(
        [{**ORDERS_SLO, "name": name} for name in ("flat", "missing", "restarted")]
    )
    (tmp_path / RULE_FILE).write_text(to_yaml(prometheus_rules(config)))

    def firing(slo: str) -> list[dict[str, Any]]:
        labels = (
            f'ALERTS{{alertname="OsemnSLIAbsent", alertstate="firing", dataset="orders", '
            f'severity="ticket", sli="checks", slo="{slo}"}}'
        )
        return [{"labels": labels, "value": 1}]

    def quiet(slo: str) -> list[dict[str, Any]]:
        return [{"labels": f'{{alertname="OsemnSLIAbsent", slo="{slo}"}}', "value": 1}]

    def query(slo: str) -> str:
        return f'ALERTS{{alertname="OsemnSLIAbsent", slo="{slo}"}}'

    series = [
        {"series": f'osemn_sli_events_total{{slo="flat", outcome="{o}"}}', "values": "0+0x150"}
        for o in ("good", "bad")
    ] + [
        # Events until 30m, the agent down for 9m, back at 0 from 40m with no event since.
        {
            "series": f'osemn_sli_events_total{{slo="restarted", outcome="{o}"}}',
            "values": f"0+{n}x30 _x9 0+0x110",
        }
        for o, n in (("good", 1), ("bad", 0))
    ]
    cases = [
        {"expr": f"absent({query('flat')})", "eval_time": "59m", "exp_samples": quiet("flat")},
        {"expr": query("flat"), "eval_time": "1h", "exp_samples": firing("flat")},
        {"expr": query("missing"), "eval_time": "0s", "exp_samples": firing("missing")},
        {
            "expr": f"absent({query('restarted')})",
            "eval_time": "89m",
            "exp_samples": quiet("restarted"),
        },
        {"expr": query("restarted"), "eval_time": "90m", "exp_samples": firing("restarted")},
    ]
    doc = {
        "rule_files": [RULE_FILE],
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}],
    }
    (tmp_path / "absent.yaml").write_text(yaml.safe_dump(doc))
    run([tool("promtool"), "test", "rules", "absent.yaml"], tmp_path)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    """One or two SLOs on datasets checked every 1m..1h, evaluated every 1m or 2m.

    (promtool's time grows with evaluation steps: 30s steps would double it.)
    """
    n = draw(st.integers(1, 2))
    schedules = {f"d{i}": f"every {draw(st.integers(1, 60))}m" for i in range(n)}
    slos = []
    for i in range(n):
        slo: dict[str, Any] = {
            "name": f"slo-{i}",
            "dataset": f"d{i}",
            "sli": draw(st.sampled_from(["checks", "freshness", "validity"])),
            "objective": draw(st.floats(0.5, 0.99999)),
            "window": draw(st.sampled_from(["28d", "30d"])),
            "for": draw(st.sampled_from(["0s", "1m", "5m"])),
        }
        if draw(st.booleans()):
            slo["labels"] = {"team": draw(st.sampled_from(["data", "ml"]))}
        if draw(st.booleans()):
            slo["absent_after"] = draw(st.sampled_from(["1h", "2h"]))
        slos.append(slo)
    interval = draw(st.sampled_from(["1m", "2m"]))
    return make_config(slos, schedules, evaluation_interval=interval)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(config=configs())
def test_promtool_tests_pass_for_any_valid_config(config: Config, tmp_path: Path) -> None:
    promtool_passes(config, Path(tempfile.mkdtemp(dir=tmp_path)))


# --- Alertmanager --------------------------------------------------------------------------


def test_alertmanager_routes_pages_and_tickets_and_inhibits(tmp_path: Path) -> None:
    config = make_config(
        [ORDERS_SLO],
        routes=[
            {"match": {"severity": "page"}, "receiver": "hook", "group_wait": "10s"},
            {"receiver": "hook", "repeat_interval": "12h"},
        ],
    )
    doc = alertmanager_config(config)
    (osemn,) = doc["route"]["routes"]
    assert osemn["group_by"] == ["alertname", "slo"]
    assert osemn["matchers"] == ['alertname=~"Osemn.+"']
    page, ticket = osemn["routes"]
    assert (page["receiver"], page["matchers"], page["group_wait"]) == (
        "osemn-page",
        ['severity="page"'],
        "10s",
    )
    assert (ticket["receiver"], ticket["matchers"], ticket["repeat_interval"]) == (
        "osemn-ticket",
        ['severity="ticket"'],
        "12h",
    )
    assert doc["inhibit_rules"][0] == {
        "source_matchers": ['severity="page"'],
        "target_matchers": ['severity="ticket"'],
        "equal": ["slo"],
    }
    (tmp_path / ALERTMANAGER_FILE).write_text(to_yaml(doc))
    out = run([tool("amtool"), "check-config", ALERTMANAGER_FILE], tmp_path)
    assert "SUCCESS" in out and "2 inhibit rules" in out and "3 receivers" in out


# --- CLI ---------------------------------------------------------------------------------


def write_config(tmp_path: Path, slos: list[dict[str, Any]], schedule: str = "every 15m") -> Path:
    path = tmp_path / "osemn.yaml"
    doc = {
        "version": 1,
        "sources": {"wh": {"url": "sqlite:///unused.db"}},
        "datasets": {"orders": {"source": "wh", "table": "orders", "schedule": schedule}},
        "slos": slos,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_cli_rules_prints_rules_that_promtool_accepts(tmp_path: Path) -> None:
    path = write_config(tmp_path, [ORDERS_SLO])
    result = CliRunner().invoke(main, ["rules", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Generated by osemn")
    assert (
        "# SLO orders-checks: the 5m window is read over 30m (two check intervals)" in result.stdout
    )
    assert yaml.safe_load(result.stdout)["groups"][0]["name"] == "osemn-slo-orders-checks"
    (tmp_path / "stdout.yaml").write_text(result.stdout)
    run([tool("promtool"), "check", "rules", "stdout.yaml"], tmp_path)


def test_cli_rules_writes_three_files_that_pass(tmp_path: Path) -> None:
    path = write_config(tmp_path, [ORDERS_SLO])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["rules", "-c", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [
        str(out / n) for n in (RULE_FILE, TEST_FILE, ALERTMANAGER_FILE)
    ]
    run([tool("promtool"), "check", "rules", RULE_FILE], out)
    run([tool("promtool"), "test", "rules", TEST_FILE], out)
    run([tool("amtool"), "check-config", ALERTMANAGER_FILE], out)


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ({**ORDERS_SLO, "dataset": "nope"}, "unknown dataset 'nope'; defined datasets: 'orders'"),
        ({**ORDERS_SLO, "objective": "100%"}, "leaves no usable error budget"),
        ({**ORDERS_SLO, "sli": "speed"}, "slos.0.sli"),
        ({**ORDERS_SLO, "window": "12h"}, "shorter than 1d"),
    ],
)
def test_cli_rules_exits_2_on_a_bad_config(
    tmp_path: Path, slo: dict[str, Any], message: str
) -> None:
    path = write_config(tmp_path, [slo])
    result = CliRunner().invoke(main, ["rules", "-c", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"osemn: {path}:")
    assert message in result.stderr


def test_cli_rules_exits_2_on_a_missing_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["rules", "-c", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "cannot read config" in result.stderr
