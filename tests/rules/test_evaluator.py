"""Burn rates, budgets and the alert lifecycle of the agent's SLO evaluator, on a frozen clock."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from osemn.agent.state import StateStore
from osemn.config import Config, parse_config
from osemn.rules.alerts import ALERT_ABSENT, ALERT_BUDGET_EXHAUSTED, ALERT_BURN_RATE, AlertState
from osemn.rules.evaluator import SloEvaluator
from osemn.rules.sli import SliEvent
from tests.agent.helpers import FrozenClock

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _config(
    *, schedule: str = "every 1m", objective: str = "99%", window: str = "30d", extra: str = ""
) -> Config:
    return parse_config(
        f"""
version: 1
sources: {{w: {{url: "duckdb:///unused.duckdb"}}}}
datasets:
  orders: {{source: w, table: orders, schedule: "{schedule}"}}
slos:
  - {{name: orders-checks, dataset: orders, sli: checks, objective: "{objective}",
      window: {window}{extra}}}
"""
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path, pg_state_url: str) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else pg_state_url


def _evaluator(config: Config, url: str, clock: FrozenClock) -> tuple[SloEvaluator, StateStore]:
    state = StateStore(url, clock=clock)
    state.open()
    evaluator = SloEvaluator(config, state, clock=clock)
    evaluator.open()
    return evaluator, state


def _minutely(end: datetime, minutes: int, good: int, bad: int) -> list[SliEvent]:
    """One event a minute, the last one at ``end``."""
    return [
        SliEvent(slo="orders-checks", at=end - timedelta(minutes=i), good=good, bad=bad)
        for i in range(minutes)
    ]


def _active(alerts: list, state: AlertState = AlertState.FIRING) -> set[tuple[str, str]]:
    return {(a.name, a.labels.get("burnrate_tier", "")) for a in alerts if a.state is state}


def test_burn_rates_budget_and_tiers_match_hand_computed_values(state_url: str) -> None:
    clock = FrozenClock(NOW)
    evaluator, state = _evaluator(_config(), state_url, clock)
    # Three days at a 1% error ratio, the last hour at 20% (100 events a minute).
    evaluator.events.record(_minutely(NOW - timedelta(hours=1), 3 * 24 * 60 - 60, 99, 1))
    evaluator.events.record(_minutely(NOW, 60, 80, 20))

    [status], alerts = evaluator.evaluate()

    budget = 0.01
    expected_ratio = {
        "5m": 0.2,
        "30m": 0.2,
        "1h": 0.2,
        "2h": (60 * 20 + 60 * 1) / (120 * 100),
        "6h": (60 * 20 + 300 * 1) / (360 * 100),
        "1d": (60 * 20 + 1380 * 1) / (1440 * 100),
        "3d": (60 * 20 + 4260 * 1) / (4320 * 100),
    }
    for window, ratio in expected_ratio.items():
        assert status.burn_rates[window] == pytest.approx(ratio / budget, rel=1e-12), window
    assert status.good + status.bad == 4320 * 100
    assert status.budget_remaining == pytest.approx(1 - expected_ratio["3d"] / budget)
    # page 1h/5m: 20 > 14.4 on both; 6h/30m: 4.17 < 6; ticket 1d/2h: 1.79 < 3;
    # ticket 3d/6h: 1.26 > 1 and 4.17 > 1; the 30d budget is overspent.
    assert _active(alerts) == {
        (ALERT_BURN_RATE, "1h-5m"),
        (ALERT_BURN_RATE, "3d-6h"),
        (ALERT_BUDGET_EXHAUSTED, ""),
    }
    page = next(a for a in alerts if a.labels.get("burnrate_tier") == "1h-5m")
    assert dict(page.labels) == {
        "alertname": ALERT_BURN_RATE,
        "slo": "orders-checks",
        "dataset": "orders",
        "sli": "checks",
        "severity": "page",
        "burnrate_tier": "1h-5m",
    }
    assert page.starts_at == NOW and page.ends_at is None
    assert "20x" in page.annotations["summary"]
    state.close()


def test_thresholds_scale_with_the_slo_window(tmp_path: Path) -> None:
    # 28d: the page tier is 2% of budget in 1h = 13.44x. A 14x burn pages at 28d, not at 30d.
    for window, fires in (("28d", True), ("30d", False)):
        clock = FrozenClock(NOW)
        evaluator, state = _evaluator(
            _config(window=window), f"sqlite:///{tmp_path / window}.db", clock
        )
        evaluator.events.record(_minutely(NOW, 60, 86, 14))  # 14% errors: burn 14
        _, alerts = evaluator.evaluate()
        assert ((ALERT_BURN_RATE, "1h-5m") in _active(alerts)) is fires, window
        state.close()


def test_checks_every_15_minutes_never_leave_a_window_empty(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    evaluator, state = _evaluator(
        _config(schedule="every 15m"), f"sqlite:///{tmp_path / 's.db'}", clock
    )
    start = NOW
    for i in range(8):  # two hours of checks, one every 15 minutes, all bad
        evaluator.events.record(
            [SliEvent(slo="orders-checks", at=start + timedelta(minutes=15 * i), good=0, bad=1)]
        )
    for minute in range(15, 120):  # every evaluation a minute apart, after the second check
        clock.now = start + timedelta(minutes=minute)
        [status], alerts = evaluator.evaluate()
        assert not any(math.isnan(v) for v in status.burn_rates.values()), minute
        assert (ALERT_BURN_RATE, "1h-5m") in _active(alerts), minute
    state.close()


def test_pending_firing_resolved_with_for(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    config = _config(extra=", for: 2m")
    evaluator, state = _evaluator(config, f"sqlite:///{tmp_path / 's.db'}", clock)
    evaluator.events.record(_minutely(NOW, 10, 0, 10))
    _, alerts = evaluator.evaluate()
    assert (ALERT_BURN_RATE, "1h-5m") in _active(alerts, AlertState.PENDING)
    assert not _active(alerts) - {(ALERT_BUDGET_EXHAUSTED, "")}
    clock.advance(timedelta(minutes=1))
    evaluator.events.record(_minutely(clock.now, 1, 0, 10))
    _, alerts = evaluator.evaluate()
    assert (ALERT_BURN_RATE, "1h-5m") in _active(alerts, AlertState.PENDING)
    clock.advance(timedelta(minutes=1))
    evaluator.events.record(_minutely(clock.now, 1, 0, 10))
    _, alerts = evaluator.evaluate()
    page = next(a for a in alerts if a.labels.get("burnrate_tier") == "1h-5m")
    assert page.state is AlertState.FIRING and page.starts_at == clock.now
    # One clean minute of heavy traffic brings the 5m burn to 40/1040/0.01 = 3.8x: resolved,
    # once, at that evaluation.
    resolved = []
    first_clean = clock.now + timedelta(minutes=1)
    for _ in range(5):
        clock.advance(timedelta(minutes=1))
        evaluator.events.record(_minutely(clock.now, 1, 1000, 0))
        _, alerts = evaluator.evaluate()
        resolved += [
            a
            for a in alerts
            if a.state is AlertState.RESOLVED and a.labels.get("burnrate_tier") == "1h-5m"
        ]
    assert [(a.labels["burnrate_tier"], a.ends_at) for a in resolved] == [("1h-5m", first_clean)]
    clock.advance(timedelta(minutes=1))
    _, alerts = evaluator.evaluate()
    assert not [a for a in alerts if a.labels.get("burnrate_tier") == "1h-5m"]
    state.close()


def test_a_firing_page_holds_while_the_short_window_burns(tmp_path: Path) -> None:
    """Hysteresis: the long window drops under 14.4x, the short one does not: still firing."""
    clock = FrozenClock(NOW)
    evaluator, state = _evaluator(_config(), f"sqlite:///{tmp_path / 's.db'}", clock)
    t0 = NOW
    events = [SliEvent(slo="orders-checks", at=t0 - timedelta(minutes=58), good=0, bad=10_000)]
    events += _minutely(t0 - timedelta(minutes=5), 52, 100, 0)  # clean until t0-5m
    events += _minutely(t0, 5, 85, 15)  # 15% errors from t0-4m: burn 15 > 14.4
    evaluator.events.record(events)
    _, alerts = evaluator.evaluate()
    assert (ALERT_BURN_RATE, "1h-5m") in _active(alerts)
    for minute in range(1, 6):
        clock.now = t0 + timedelta(minutes=minute)
        evaluator.events.record(_minutely(clock.now, 1, 85, 15))
        [status], alerts = evaluator.evaluate()
        assert (ALERT_BURN_RATE, "1h-5m") in _active(alerts), minute
    assert status.burn_rates["1h"] < 14.4 < status.burn_rates["5m"]
    state.close()


def test_absent_fires_after_quiet_time_and_resolves_on_the_next_event(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    evaluator, state = _evaluator(
        _config(extra=", absent_after: 30m"), f"sqlite:///{tmp_path / 's.db'}", clock
    )
    evaluator.events.record(_minutely(NOW, 1, 10, 0))
    clock.advance(timedelta(minutes=30))
    _, alerts = evaluator.evaluate()
    assert not _active(alerts)
    clock.advance(timedelta(minutes=1))
    _, alerts = evaluator.evaluate()
    assert _active(alerts) == {(ALERT_ABSENT, "")}
    evaluator.events.record(_minutely(clock.now, 1, 10, 0))
    _, alerts = evaluator.evaluate()
    assert [(a.name, a.state) for a in alerts] == [(ALERT_ABSENT, AlertState.RESOLVED)]
    state.close()


def test_restart_reads_history_and_keeps_alert_start(state_url: str) -> None:
    clock = FrozenClock(NOW)
    config = _config()
    evaluator, state = _evaluator(config, state_url, clock)
    # Twenty days of 5-minute events (exercising hourly roll-up of old ones), last hour bad.
    evaluator.events.record(
        [
            SliEvent(slo="orders-checks", at=NOW - timedelta(minutes=5 * i), good=99, bad=1)
            for i in range(12, 20 * 24 * 12)
        ]
    )
    evaluator.events.record(
        [
            SliEvent(slo="orders-checks", at=NOW - timedelta(minutes=5 * i), good=50, bad=50)
            for i in range(12)
        ]
    )
    [before], alerts = evaluator.evaluate()
    page_start = next(a for a in alerts if a.labels.get("burnrate_tier") == "1h-5m").starts_at
    state.close()

    clock.advance(timedelta(minutes=1))
    again, state = _evaluator(config, state_url, clock)
    clock.now = NOW
    [after], alerts = again.evaluate()
    assert after.burn_rates == pytest.approx(before.burn_rates, rel=1e-12)
    assert (after.good, after.bad) == (before.good, before.bad)
    assert (
        next(a for a in alerts if a.labels.get("burnrate_tier") == "1h-5m").starts_at == page_start
    )
    state.close()


def test_a_restart_reads_the_saved_series_and_only_newer_events(state_url: str) -> None:
    clock = FrozenClock(NOW)
    config = _config()
    evaluator, state = _evaluator(config, state_url, clock)
    evaluator.events.record(
        [
            SliEvent(slo="orders-checks", at=NOW - timedelta(minutes=5 * i), good=99, bad=i % 3)
            for i in range(20 * 24 * 12)
        ]
    )
    evaluator.prune(timedelta(days=30))  # the hourly housekeeping saves the series
    for minute in range(1, 31):  # half an hour more, from inside the minute it leaves out
        clock.now = NOW + timedelta(minutes=minute) - timedelta(seconds=90)
        evaluator.events.record(
            [SliEvent(slo="orders-checks", at=clock.now, good=50, bad=minute % 2)]
        )
    clock.now = NOW + timedelta(minutes=30)
    [before], _ = evaluator.evaluate()
    state.close()

    again, state = _evaluator(config, state_url, clock)
    [after], _ = again.evaluate()
    assert after.burn_rates == pytest.approx(before.burn_rates, rel=1e-12)
    assert (after.good, after.bad) == (before.good, before.bad)
    state.close()
    reader = StateStore(state_url, clock=clock)
    reader.open()
    rows = SloEvaluator(config, reader, clock=clock).open()
    assert rows < 40  # one saved series and the events after it, not 5,760 events
    reader.close()
