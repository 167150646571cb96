"""Dispatcher: Alertmanager's routing, grouping and timers, driven by a frozen clock."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osemn._slo_config import AlertingConfig, RouteConfig
from osemn.errors import ConfigError, DeliveryError, StateError
from osemn.exporters.dispatch import Dispatcher
from osemn.exporters.notification import Notification
from osemn.rules.alerts import Alert, AlertState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIRING, PENDING, RESOLVED = AlertState.FIRING, AlertState.PENDING, AlertState.RESOLVED
WEBHOOK = {"type": "webhook", "url": "http://127.0.0.1:1/hook", "secret": "s3cret"}
ALERTMANAGER = {"type": "alertmanager", "url": "http://127.0.0.1:9093"}


class Clock:
    """Aware UTC that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def alert(
    tier: str,
    state: AlertState = FIRING,
    *,
    slo: str = "orders-fresh",
    severity: str = "page",
    **labels: str,
) -> Alert:
    """An alert told apart by its ``burnrate_tier``; ``ends_at`` left for the dispatcher."""
    return Alert(
        labels={
            "alertname": "OsemnSLOBurnRate",
            "slo": slo,
            "severity": severity,
            "burnrate_tier": tier,
            **labels,
        },
        annotations={"summary": f"{slo} burns its budget", "runbook_url": "https://x/?token=abc"},
        state=state,
        starts_at=T0,
    )


def alerting(**doc: Any) -> AlertingConfig:
    return AlertingConfig.model_validate(doc)


class Harness:
    """A dispatcher with a steppable clock; every flush is recorded with its time."""

    def __init__(self, config: AlertingConfig, *, step: timedelta = timedelta(seconds=10)) -> None:
        self.config = config
        self.clock = Clock()
        self.sent: list[Notification] = []
        self.step = step
        self.dispatcher = Dispatcher(config, self.sent.append, clock=self.clock)

    def at(self, offset: timedelta, alerts: Sequence[Alert] | None = None) -> None:
        """Flush every ``step`` until ``T0 + offset``, then update (if given) and flush."""
        target = T0 + offset
        assert target >= self.clock.now
        while self.clock.now < target:
            self.clock.now = min(self.clock.now + self.step, target)
            if self.clock.now < target:
                self.dispatcher.flush()
        if alerts is not None:
            self.dispatcher.update(alerts)
        self.dispatcher.flush()

    def restart(self) -> None:
        """A new process: a new dispatcher that restores the old one's snapshot."""
        text = self.dispatcher.snapshot()
        self.dispatcher = Dispatcher(self.config, self.sent.append, clock=self.clock)
        self.dispatcher.restore(text)

    def log(self) -> list[tuple[timedelta, str, tuple[tuple[str, str], ...]]]:
        return [
            (
                n.created_at - T0,
                n.receiver,
                tuple((a.labels["burnrate_tier"], a.status) for a in n.alerts),
            )
            for n in self.sent
        ]


def s(seconds: float = 0, *, m: float = 0, h: float = 0) -> timedelta:
    return timedelta(seconds=seconds, minutes=m, hours=h)


# --- grouping timers ---------------------------------------------------------------------------


def test_group_wait_group_interval_repeat_interval_exact_sequence() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}, routes=[{"receiver": "hooks"}]))
    a, b = alert("1h-5m"), alert("6h-30m")
    h.at(s(0), [a])
    h.at(s(60), [a, b])  # joins the group: waits for the next group_interval tick
    h.at(s(m=12), [alert("1h-5m", RESOLVED), b])
    h.at(s(h=4, m=16), [alert("6h-30m", RESOLVED)])  # after the repeat at 4h15m30s
    h.at(s(h=5), [a])  # the group was removed: a new one waits group_wait again
    h.at(s(h=5, m=20))
    assert h.log() == [
        (s(30), "hooks", (("1h-5m", "firing"),)),
        (s(30, m=5), "hooks", (("1h-5m", "firing"), ("6h-30m", "firing"))),
        (s(30, m=15), "hooks", (("1h-5m", "resolved"), ("6h-30m", "firing"))),
        (s(30, m=15, h=4), "hooks", (("6h-30m", "firing"),)),
        (s(30, m=20, h=4), "hooks", (("6h-30m", "resolved"),)),
        (s(30, h=5), "hooks", (("1h-5m", "firing"),)),
    ]
    first = h.sent[0]
    assert first.group_key == '{}/{}:{alertname="OsemnSLOBurnRate", slo="orders-fresh"}'
    assert first.group_labels == {"alertname": "OsemnSLOBurnRate", "slo": "orders-fresh"}
    assert first.created_at == T0 + s(30)
    assert first.external_url == ""
    resolved = h.sent[2].alerts[0]
    assert resolved.ends_at == T0 + s(m=12)  # when the dispatcher learnt of it
    assert h.sent[4].status == "resolved"


def test_timers_fire_at_their_instant_and_stay_on_the_grid() -> None:
    config = alerting(
        receivers={"hooks": WEBHOOK},
        external_url="https://osemn.example/",
        routes=[{"receiver": "hooks", "group_wait": "30s", "group_interval": "5m"}],
    )
    h = Harness(config, step=timedelta(hours=1))
    h.dispatcher.update([alert("1h-5m")])
    h.clock.now = T0 + s(29.999)
    assert h.dispatcher.flush() == 0
    h.clock.now = T0 + s(45)  # a flush loop running late
    assert h.dispatcher.flush() == 1
    h.dispatcher.update([alert("1h-5m"), alert("6h-30m")])
    h.clock.now = T0 + s(329.999)
    assert h.dispatcher.flush() == 0
    h.clock.now = T0 + s(330)  # 30s + 5m, not 45s + 5m
    assert h.dispatcher.flush() == 1
    assert [n.created_at for n in h.sent] == [T0 + s(45), T0 + s(330)]
    assert {n.external_url for n in h.sent} == {"https://osemn.example/"}


def test_an_alert_that_fires_and_resolves_within_group_wait_is_never_sent() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}))
    h.at(s(0), [alert("1h-5m")])
    h.at(s(20), [alert("1h-5m", RESOLVED)])
    h.at(s(m=30))
    assert h.sent == []


def test_a_resolve_the_receiver_never_heard_of_is_not_sent_with_its_group() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}))
    h.at(s(0), [alert("1h-5m")])
    h.at(s(m=1), [alert("1h-5m"), alert("6h-30m")])
    h.at(s(m=2), [alert("1h-5m"), alert("6h-30m", RESOLVED)])  # before the 5m30s tick
    h.at(s(m=20))
    assert h.log() == [(s(30), "hooks", (("1h-5m", "firing"),))]


def test_a_flapping_alert_resolved_and_firing_again_between_ticks_is_not_resolved() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}))
    h.at(s(0), [alert("1h-5m")])
    h.at(s(m=1), [alert("1h-5m", RESOLVED)])
    h.at(s(m=2), [alert("1h-5m")])
    h.at(s(m=20))
    assert h.log() == [(s(30), "hooks", (("1h-5m", "firing"),))]


def test_a_firing_alert_missing_from_the_view_or_pending_again_is_resolved() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}))
    h.at(s(0), [alert("1h-5m"), alert("6h-30m")])
    h.at(s(m=1), [alert("6h-30m")])  # the evaluator forgot 1h-5m
    h.at(s(m=6), [alert("6h-30m", PENDING)])
    h.at(s(m=20), [])
    assert h.log() == [
        (s(30), "hooks", (("1h-5m", "firing"), ("6h-30m", "firing"))),
        (s(30, m=5), "hooks", (("1h-5m", "resolved"), ("6h-30m", "firing"))),
        (s(30, m=10), "hooks", (("6h-30m", "resolved"),)),
    ]
    assert h.sent[1].alerts[0].ends_at == T0 + s(m=1)
    assert h.sent[2].alerts[0].ends_at == T0 + s(m=6)


def test_pending_alerts_are_never_sent() -> None:
    h = Harness(
        alerting(
            receivers={"hooks": WEBHOOK, "am": ALERTMANAGER},
            routes=[
                {"match": {"severity": "page"}, "receiver": "am"},
                {"receiver": "hooks"},
            ],
        )
    )
    pending = [alert("1h-5m", PENDING), alert("1d-2h", PENDING, severity="ticket")]
    for minute in range(0, 60, 5):
        h.at(s(m=minute), pending)
    assert h.sent == []
    assert h.dispatcher.routed() == {"hooks": 0, "am": 0}
    h.at(s(m=60), [alert("1h-5m", PENDING), alert("1d-2h", severity="ticket")])
    h.at(s(m=61), [])  # gone while pending: nothing to resolve
    h.at(s(m=70))
    assert h.log() == [
        (s(30, m=60), "hooks", (("1d-2h", "firing"),)),
        (s(30, m=65), "hooks", (("1d-2h", "resolved"),)),
    ]


def test_enqueue_failure_leaves_the_group_due_for_the_next_flush() -> None:
    clock = Clock()
    sent: list[Notification] = []
    failures = [DeliveryError("outbox is down")]

    def enqueue(notification: Notification) -> None:
        if failures:
            raise failures.pop()
        sent.append(notification)

    dispatcher = Dispatcher(alerting(receivers={"hooks": WEBHOOK}), enqueue, clock=clock)
    dispatcher.update([alert("1h-5m")])
    clock.now = T0 + s(30)
    with pytest.raises(DeliveryError):
        dispatcher.flush()
    clock.now = T0 + s(40)
    assert dispatcher.flush() == 1
    assert [n.created_at for n in sent] == [T0 + s(40)]
    clock.now = T0 + s(m=10)
    assert dispatcher.flush() == 0


# --- routing and grouping ----------------------------------------------------------------------


def test_first_matching_route_wins_with_a_default_last() -> None:
    h = Harness(
        alerting(
            receivers={"pager": WEBHOOK, "tickets": WEBHOOK, "hooks": WEBHOOK},
            routes=[
                {"match": {"severity": "page"}, "receiver": "pager"},
                {"match": {"severity": "page", "team": "data"}, "receiver": "tickets"},
                {"match": {"severity": "ticket"}, "receiver": "tickets"},
                {"receiver": "hooks"},
            ],
        )
    )
    h.at(
        s(0),
        [
            alert("1h-5m", team="data"),
            alert("1d-2h", severity="ticket"),
            alert("absent", severity="info"),
        ],
    )
    assert h.dispatcher.routed() == {"pager": 1, "tickets": 1, "hooks": 1}
    h.at(s(30))
    by_receiver = {n.receiver: n for n in h.sent}
    assert sorted(by_receiver) == ["hooks", "pager", "tickets"]
    assert by_receiver["pager"].alerts[0].labels["burnrate_tier"] == "1h-5m"
    assert by_receiver["pager"].group_key == (
        '{}/{severity="page"}:{alertname="OsemnSLOBurnRate", slo="orders-fresh"}'
    )
    assert by_receiver["tickets"].group_key.startswith('{}/{severity="ticket"}:')
    assert by_receiver["hooks"].group_key.startswith("{}/{}:")
    assert h.dispatcher.unrouted() == 0


def test_continue_sends_an_alert_on_to_later_routes() -> None:
    h = Harness(
        alerting(
            receivers={"pager": WEBHOOK, "am": ALERTMANAGER, "tickets": WEBHOOK, "hooks": WEBHOOK},
            routes=[
                {"match": {"severity": "page"}, "receiver": "pager", "continue": True},
                {"match": {"severity": "page"}, "receiver": "am", "continue": True},
                {"match": {"severity": "page"}, "receiver": "tickets"},
                {"receiver": "hooks"},  # not reached by pages: the route before has no continue
            ],
        )
    )
    h.at(s(0), [alert("1h-5m"), alert("1d-2h", severity="ticket")])
    h.at(s(30))
    assert h.dispatcher.routed() == {"pager": 1, "am": 1, "tickets": 1, "hooks": 1}
    assert sorted((n.receiver, n.group_key) for n in h.sent) == [
        ("am", "{}:{}"),
        ("hooks", '{}/{}:{alertname="OsemnSLOBurnRate", slo="orders-fresh"}'),
        ("pager", '{}/{severity="page"}:{alertname="OsemnSLOBurnRate", slo="orders-fresh"}'),
        ("tickets", '{}/{severity="page"}:{alertname="OsemnSLOBurnRate", slo="orders-fresh"}'),
    ]
    h.at(s(m=1), [alert("1h-5m", RESOLVED), alert("1d-2h", severity="ticket")])
    h.at(s(m=6))
    resolved = [n.receiver for n in h.sent[4:] if n.status == "resolved"]
    assert sorted(set(resolved)) == ["am", "pager", "tickets"]
    assert resolved.count("pager") == resolved.count("tickets") == 1  # am re-sends it


def test_sibling_routes_with_the_same_match_keep_separate_groups() -> None:
    # Alertmanager gives both the same group key; each route still has its own timers.
    h = Harness(
        alerting(
            receivers={"hooks": WEBHOOK},
            routes=[
                {"receiver": "hooks", "continue": True, "group_wait": "10s"},
                {"receiver": "hooks", "group_wait": "1m"},
            ],
        )
    )
    h.at(s(0), [alert("1h-5m")])
    h.at(s(m=2))
    assert [(t, r) for t, r, _ in h.log()] == [(s(10), "hooks"), (s(60), "hooks")]
    assert len({n.group_key for n in h.sent}) == 1
    h.restart()
    h.at(s(m=3), [alert("1h-5m")])
    h.at(s(m=30))
    assert len(h.sent) == 2


def test_route_key_lists_every_matcher_sorted() -> None:
    h = Harness(
        alerting(
            receivers={"pager": WEBHOOK},
            routes=[
                {"match": {"team": "data", "severity": "page"}, "receiver": "pager", "group_by": []}
            ],
        )
    )
    h.at(s(0), [alert("1h-5m", team="data")])
    h.at(s(30))
    assert [n.group_key for n in h.sent] == ['{}/{severity="page",team="data"}:{}']
    assert h.sent[0].group_labels == {}


def test_alerts_are_grouped_by_the_values_of_group_by() -> None:
    h = Harness(
        alerting(
            receivers={"hooks": WEBHOOK}, routes=[{"receiver": "hooks", "group_by": ["dataset"]}]
        )
    )
    h.at(
        s(0),
        [
            alert("1h-5m", slo="orders-fresh", dataset="orders"),
            alert("1h-5m", slo="orders-valid", dataset="orders"),
            alert("1h-5m", slo="payments-fresh", dataset="payments"),
            alert("1h-5m", slo="model-accuracy"),  # no dataset label: the group without it
        ],
    )
    h.at(s(30))
    groups = {n.group_key: [a.labels["slo"] for a in n.alerts] for n in h.sent}
    assert groups == {
        '{}/{}:{dataset="orders"}': ["orders-fresh", "orders-valid"],
        '{}/{}:{dataset="payments"}': ["payments-fresh"],
        "{}/{}:{}": ["model-accuracy"],
    }
    assert {n.group_key: dict(n.group_labels) for n in h.sent}['{}/{}:{dataset="orders"}'] == {
        "dataset": "orders"
    }


def test_group_by_dots_makes_every_alert_its_own_group() -> None:
    h = Harness(
        alerting(receivers={"hooks": WEBHOOK}, routes=[{"receiver": "hooks", "group_by": ["..."]}])
    )
    h.at(s(0), [alert("1h-5m"), alert("6h-30m")])
    h.at(s(30))
    assert len(h.sent) == 2
    assert all(len(n.alerts) == 1 and n.group_labels == n.alerts[0].labels for n in h.sent)


def test_no_routes_and_one_receiver_sends_everything_there() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}))
    h.at(s(0), [alert("1h-5m"), alert("1d-2h", severity="ticket")])
    h.at(s(30))
    assert [n.group_key for n in h.sent] == [
        '{}:{alertname="OsemnSLOBurnRate", slo="orders-fresh"}'
    ]
    assert h.dispatcher.routed() == {"hooks": 2}


def test_unrouted_alerts_are_counted_and_logged_once_without_annotations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(alerting(receivers={"a": WEBHOOK, "b": WEBHOOK}))  # no routes, two receivers
    caplog.set_level(logging.WARNING, logger="osemn.exporters.dispatch")
    for minute in range(5):
        h.at(s(m=minute), [alert("1h-5m"), alert("6h-30m"), alert("1d-2h", PENDING)])
    assert h.dispatcher.unrouted() == 2
    assert h.dispatcher.routed() == {"a": 0, "b": 0}
    assert len(caplog.records) == 2
    assert 'burnrate_tier="1h-5m"' in caplog.records[0].getMessage()
    assert "token" not in caplog.text
    h.at(s(m=6), [alert("6h-30m")])
    assert h.dispatcher.unrouted() == 1
    h.at(s(m=7), [alert("1h-5m"), alert("6h-30m")])  # fires again: logged again
    assert len(caplog.records) == 3
    h.at(s(m=30))
    assert h.sent == []


def test_a_route_to_an_undefined_receiver_is_a_config_error() -> None:
    config = AlertingConfig(receivers={}, routes=(RouteConfig(receiver="oncall"),))
    with pytest.raises(ConfigError, match=r"unknown receiver 'oncall'.*alerting\.receivers"):
        Dispatcher(config, lambda n: None)


# --- receivers of type alertmanager ------------------------------------------------------------


def test_alertmanager_receivers_skip_grouping_and_resend_until_resolved_resend() -> None:
    h = Harness(
        alerting(
            receivers={"am": {**ALERTMANAGER, "resend_interval": "1m", "resolved_resend": "15m"}},
            routes=[{"receiver": "am", "group_wait": "10m"}],  # grouping does not apply
        )
    )
    a, b = alert("1h-5m"), alert("6h-30m", severity="ticket")
    h.at(s(0), [a])
    h.at(s(90), [a, b])
    h.at(s(m=3), [alert("1h-5m", RESOLVED), b])
    h.at(s(m=20), [alert("6h-30m", RESOLVED)])
    h.at(s(m=50))
    f, r = "firing", "resolved"
    expected = [
        (s(0), (("1h-5m", f),)),
        (s(60), (("1h-5m", f),)),
        (s(90), (("1h-5m", f), ("6h-30m", f))),
    ]
    expected += [(s(90, m=1), (("1h-5m", f), ("6h-30m", f)))]
    expected += [(s(m=m), (("1h-5m", r), ("6h-30m", f))) for m in range(3, 19)]  # 3m ... 18m
    expected += [(s(m=19), (("6h-30m", f),))]
    expected += [(s(m=m), (("6h-30m", r),)) for m in range(20, 36)]  # 20m ... 35m, then nothing
    assert [(t, alerts) for t, _, alerts in h.log()] == expected
    assert {(n.receiver, n.group_key) for n in h.sent} == {("am", "{}:{}")}
    assert {tuple(n.group_labels.items()) for n in h.sent} == {()}


def test_alertmanager_resolve_is_sent_once_even_when_the_flush_comes_after_resolved_resend() -> (
    None
):
    h = Harness(alerting(receivers={"am": {**ALERTMANAGER, "resolved_resend": "5m"}}))
    h.at(s(0), [alert("1h-5m")])
    h.dispatcher.update([alert("1h-5m", RESOLVED)])
    h.clock.now = T0 + s(m=20)  # the flush loop was stalled past resolved_resend
    assert h.dispatcher.flush() == 1
    h.clock.now = T0 + s(m=21)
    assert h.dispatcher.flush() == 0
    assert h.log() == [
        (s(0), "am", (("1h-5m", "firing"),)),
        (s(m=20), "am", (("1h-5m", "resolved"),)),
    ]


def test_alertmanager_receiver_next_to_grouped_receiver() -> None:
    h = Harness(
        alerting(
            receivers={"am": ALERTMANAGER, "hooks": WEBHOOK},
            routes=[{"match": {"severity": "page"}, "receiver": "am"}, {"receiver": "hooks"}],
        )
    )
    h.at(s(0), [alert("1h-5m"), alert("1d-2h", severity="ticket")])
    h.at(s(30))
    assert h.log() == [
        (s(0), "am", (("1h-5m", "firing"),)),
        (s(30), "hooks", (("1d-2h", "firing"),)),
    ]
    assert h.dispatcher.routed() == {"am": 1, "hooks": 1}


# --- snapshot and restore ----------------------------------------------------------------------


def test_restart_neither_resends_nor_forgets_a_resolve() -> None:
    config = alerting(
        receivers={
            "am": {**ALERTMANAGER, "resend_interval": "1m", "resolved_resend": "5m"},
            "hooks": WEBHOOK,
        },
        routes=[{"match": {"severity": "page"}, "receiver": "am"}, {"receiver": "hooks"}],
    )
    h = Harness(config)
    page, ticket = alert("1h-5m"), alert("1d-2h", severity="ticket")
    h.at(s(0), [page, ticket])
    h.at(s(m=2, seconds=5))
    before = h.dispatcher.snapshot()
    h.restart()
    assert h.dispatcher.snapshot() == before  # a lossless round trip
    h.at(s(m=2, seconds=10), [page, ticket])  # the new evaluator's first view
    h.at(s(m=12), [alert("1h-5m", RESOLVED), alert("1d-2h", RESOLVED, severity="ticket")])
    h.restart()  # before the resolve went out to hooks
    h.at(s(m=12, seconds=10), [])  # the new evaluator does not remember them
    h.at(s(m=40))
    hooks = [(t, alerts) for t, receiver, alerts in h.log() if receiver == "hooks"]
    assert hooks == [(s(30), (("1d-2h", "firing"),)), (s(30, m=15), (("1d-2h", "resolved"),))]
    am = [(t, alerts) for t, receiver, alerts in h.log() if receiver == "am"]
    assert am == [(s(m=m), (("1h-5m", "firing"),)) for m in range(12)] + [
        (s(m=m), (("1h-5m", "resolved"),)) for m in range(12, 18)
    ]
    assert json.loads(h.dispatcher.snapshot()) == {"version": 1, "groups": [], "alertmanager": []}


def test_restore_drops_groups_whose_route_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(
        alerting(receivers={"hooks": WEBHOOK, "pager": WEBHOOK}, routes=[{"receiver": "hooks"}])
    )
    h.at(s(0), [alert("1h-5m")])
    h.at(s(30))
    text = h.dispatcher.snapshot()
    moved = alerting(receivers={"hooks": WEBHOOK, "pager": WEBHOOK}, routes=[{"receiver": "pager"}])
    dispatcher = Dispatcher(moved, h.sent.append, clock=h.clock)
    with caplog.at_level(logging.WARNING, logger="osemn.exporters.dispatch"):
        dispatcher.restore(text)
    assert "no route sends it there any more" in caplog.text
    dispatcher.update([alert("1h-5m")])
    h.clock.now = T0 + s(60)
    assert dispatcher.flush() == 1  # the new receiver has never heard of it
    assert h.sent[-1].receiver == "pager"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "cannot be read"),
        ('{"version": 2, "groups": [], "alertmanager": []}', "version 2.*Upgrade osemn"),
        ('{"version": 1, "groups": [{"receiver": "hooks"}], "alertmanager": []}', "KeyError"),
        ("[]", "cannot be read"),
    ],
)
def test_a_bad_snapshot_is_a_state_error(text: str, message: str) -> None:
    dispatcher = Dispatcher(alerting(receivers={"hooks": WEBHOOK}), lambda n: None)
    with pytest.raises(StateError, match=message):
        dispatcher.restore(text)


# --- the property ------------------------------------------------------------------------------

PROPERTY_CONFIG = alerting(
    receivers={
        "am": {**ALERTMANAGER, "resend_interval": "1m", "resolved_resend": "5m"},
        "hooks": WEBHOOK,
    },
    routes=[
        {"match": {"severity": "page"}, "receiver": "am", "continue": True},
        {"receiver": "hooks", "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"},
    ],
)
IDS = range(6)


def ident(i: int, state: AlertState) -> Alert:
    return alert(f"t{i}", state, slo=f"slo-{i % 2}", severity="page" if i < 2 else "ticket")


OPS = st.one_of(
    st.tuples(st.sampled_from(["fire", "pend", "resolve", "vanish"]), st.sampled_from(IDS)),
    st.tuples(st.just("restart"), st.just(0)),
)
STEPS = st.lists(st.tuples(st.integers(0, 900), OPS), max_size=40)


def statuses(sent: Iterable[Notification], receiver: str) -> dict[str, list[str]]:
    """Each alert's statuses in the receiver's notifications, in order."""
    seen: dict[str, list[str]] = {}
    for n in sent:
        if n.receiver == receiver:
            for a in n.alerts:
                seen.setdefault(a.labels["burnrate_tier"], []).append(a.status)
    return seen


def collapse(states: list[str]) -> list[str]:
    return [st for i, st in enumerate(states) if i == 0 or st != states[i - 1]]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_every_alert_fired_is_sent_firing_then_resolved_once_and_pending_never(
    steps: list[tuple[int, tuple[str, int]]],
) -> None:
    h = Harness(PROPERTY_CONFIG, step=timedelta(seconds=30))
    state: dict[int, AlertState] = {}
    firing_at_flush: list[set[str]] = []

    def view(resolved: Iterable[int] = ()) -> list[Alert]:
        return [ident(i, st) for i, st in state.items()] + [ident(i, RESOLVED) for i in resolved]

    def settle(seconds: int, resolved: Iterable[int] = ()) -> None:
        h.dispatcher.update(view(resolved))
        mark = len(h.sent)
        h.dispatcher.flush()
        firing = {f"t{i}" for i, st in state.items() if st is FIRING}
        firing_at_flush.extend(firing for _ in h.sent[mark:])
        h.clock.now += timedelta(seconds=seconds)

    for seconds, (op, i) in steps:
        resolved: list[int] = []
        if op == "fire":
            state[i] = FIRING
        elif op == "pend":
            state[i] = PENDING
        elif op == "resolve" and i in state:
            resolved.append(i)
            del state[i]
        elif op == "vanish":
            state.pop(i, None)
        elif op == "restart":
            h.restart()
        settle(seconds, resolved)

    # Whatever fires now is sent firing within group_wait + group_interval.
    for _ in range(13):
        settle(30)
    for receiver in ("am", "hooks"):
        last = {tier: seen[-1] for tier, seen in statuses(h.sent, receiver).items()}
        routed_here = {
            f"t{i}" for i, st in state.items() if st is FIRING and (i < 2 or receiver == "hooks")
        }
        assert all(last.get(tier) == "firing" for tier in routed_here), (receiver, last)

    # Resolve everything: every alert ever sent firing is sent resolved, then all goes quiet.
    gone = [i for i, st in state.items() if st is FIRING]
    state.clear()
    settle(30, gone)
    for _ in range(30):
        settle(30)
    quiet = len(h.sent)
    for _ in range(30):
        settle(30)
    assert len(h.sent) == quiet

    for n, firing in zip(h.sent, firing_at_flush, strict=True):
        for a in n.alerts:
            assert a.state in (FIRING, RESOLVED)  # never pending
            if a.state is FIRING:
                assert a.labels["burnrate_tier"] in firing
    for receiver in ("am", "hooks"):
        for tier, seen in statuses(h.sent, receiver).items():
            episodes = collapse(seen)
            assert episodes[0] == "firing", (receiver, tier, seen)
            assert episodes[-1] == "resolved", (receiver, tier, seen)
            if receiver == "hooks":  # grouped: each resolve exactly once (no re-sends)
                resolved_runs = sum(1 for x in seen if x == "resolved")
                assert resolved_runs == episodes.count("resolved"), (tier, seen)
    by_group: dict[str, list[datetime]] = {}
    for n in h.sent:
        if n.receiver == "hooks":
            by_group.setdefault(n.group_key, []).append(n.created_at)
    for times in by_group.values():
        assert all(b - a >= timedelta(seconds=30) for a, b in itertools.pairwise(times))


def test_notifications_are_stable_for_the_outbox() -> None:
    h = Harness(alerting(receivers={"hooks": WEBHOOK}))
    h.at(s(0), [alert("6h-30m"), alert("1h-5m")])
    h.at(s(30))
    (n,) = h.sent
    assert Notification.from_json(n.to_json()) == n
    assert [a.labels["burnrate_tier"] for a in n.alerts] == ["1h-5m", "6h-30m"]  # sorted by labels
    assert n.to_webhook()["groupKey"] == n.group_key
