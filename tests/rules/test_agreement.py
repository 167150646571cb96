"""The agent's evaluator and Prometheus fire the same alerts at the same times.

One SLI event series (a quiet start, a fast burn that pages, recovery, then a
slow burn that opens tickets and spends the budget) goes both to the agent's
evaluator on a frozen clock and, as counter samples, to the rules of
``osemn rules`` under ``promtool test rules``. At every evaluation step the
firing alerts Prometheus reports (``ALERTS``) must be exactly the agent's.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from osemn.agent.state import StateStore
from osemn.config import parse_config
from osemn.rules.alerts import AlertState
from osemn.rules.evaluator import SloEvaluator
from osemn.rules.prometheus import RULE_FILE, prometheus_rules, to_yaml
from osemn.rules.sli import SliEvent
from tests.agent.helpers import FrozenClock

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)

CONFIG = parse_config(
    """
version: 1
sources: {w: {url: "duckdb:///unused.duckdb"}}
datasets:
  orders: {source: w, table: orders, schedule: every 5m}
alerting: {evaluation_interval: 5m}
slos:
  - {name: orders-checks, dataset: orders, sli: checks, objective: 99%, window: 30d}
"""
)


def scenario() -> list[tuple[int, int]]:
    """(good, bad) per 5-minute check, 8 hours."""
    out = []
    for i in range(1, 97):
        minute = 5 * i
        if 120 < minute <= 150:
            out.append((60, 40))  # 40% errors: burn 40, pages
        elif 300 < minute <= 480:
            out.append((95, 5))  # 5% errors: burn 5, tickets
        else:
            out.append((100, 0))
    return out


def _labels_text(labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"ALERTS{{{inner}}}"


def test_agent_and_prometheus_fire_the_same_alerts(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install prometheus"
    events = scenario()

    clock = FrozenClock(T0)
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}", clock=clock)
    state.open()
    evaluator = SloEvaluator(CONFIG, state, clock=clock)
    evaluator.open()
    firing_by_step: list[list[dict[str, str]]] = []
    _, alerts = evaluator.evaluate()
    firing_by_step.append([dict(a.labels) for a in alerts if a.state is AlertState.FIRING])
    for i, (good, bad) in enumerate(events, start=1):
        clock.now = T0 + i * STEP
        evaluator.events.record([SliEvent(slo="orders-checks", at=clock.now, good=good, bad=bad)])
        _, alerts = evaluator.evaluate()
        firing_by_step.append([dict(a.labels) for a in alerts if a.state is AlertState.FIRING])
    state.close()
    fired = {a["burnrate_tier"] for step in firing_by_step for a in step if "burnrate_tier" in a}
    assert fired == {"1h-5m", "6h-30m", "1d-2h", "3d-6h"}  # the scenario exercises every tier
    assert any(a["alertname"] == "OsemnErrorBudgetExhausted" for s in firing_by_step for a in s)
    assert firing_by_step[-1] and not firing_by_step[20]  # quiet before the burn

    good_total = [0]
    bad_total = [0]
    for good, bad in events:
        good_total.append(good_total[-1] + good)
        bad_total.append(bad_total[-1] + bad)
    series = 'osemn_sli_events_total{{slo="orders-checks", outcome="{}"}}'
    tests = [
        {
            "interval": "5m",
            "input_series": [
                {"series": series.format("good"), "values": " ".join(map(str, good_total))},
                {"series": series.format("bad"), "values": " ".join(map(str, bad_total))},
            ],
            "promql_expr_test": [
                {
                    "expr": 'ALERTS{alertstate="firing"}',
                    "eval_time": f"{5 * i}m",
                    "exp_samples": [
                        {"labels": _labels_text({**a, "alertstate": "firing"}), "value": 1}
                        for a in step
                    ],
                }
                for i, step in enumerate(firing_by_step)
            ],
        }
    ]
    (tmp_path / RULE_FILE).write_text(to_yaml(prometheus_rules(CONFIG)))
    test_file = tmp_path / "agreement.test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [RULE_FILE], "evaluation_interval": "5m", "tests": tests},
            sort_keys=False,
        )
    )
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
