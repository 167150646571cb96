"""The outbox on real SQLite files and a real PostgreSQL, delivering to real HTTP servers.

The durability tests run a real process that is killed with SIGKILL between
enqueue and delivery, and while a receiver holds its request.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from osemn._clock import utcnow
from osemn._slo_config import (
    AlertmanagerReceiver,
    FileReceiver,
    PagerDutyReceiver,
    WebhookReceiver,
)
from osemn.agent._state_schema import _create_engine, _metadata
from osemn.errors import DeliveryError
from osemn.exporters._outbox_schema import _outbox
from osemn.exporters.notification import Notification
from osemn.exporters.outbox import Outbox
from tests.exporters.test_receivers import NOW, SECRET, make_alert, make_notification
from tests.servers import Answer, HttpReceiver, Received, free_port

TINY: dict[str, Any] = {
    "backoff_base": timedelta(milliseconds=1),
    "backoff_max": timedelta(milliseconds=5),
}


# Tests whose SQL is the same as in a test that runs on both dialects.
SQLITE_ONLY = pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)


class FrozenClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class CeilingRandom(random.Random):
    """Jitter that always takes the top of its range, so backoff ceilings show."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'osemn-state.db'}"
    url: str = request.getfixturevalue("pg_state_url")
    return url


@pytest.fixture
def engine(state_url: str) -> Iterator[sa.Engine]:
    made = _create_engine(state_url)
    _metadata.create_all(made)
    yield made
    made.dispose()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_outbox(
    engine: sa.Engine, http: httpx.Client, clock: FrozenClock
) -> Iterator[Callable[..., Outbox]]:
    made: list[Outbox] = []

    def make(receivers: dict[str, Any], **options: Any) -> Outbox:
        options = {"clock": clock, "http": http, **TINY, **options}
        outbox = Outbox(engine, receivers, **options)
        made.append(outbox)
        return outbox

    yield make
    for outbox in made:
        outbox.stop()


def webhook(url: str, **fields: Any) -> WebhookReceiver:
    return WebhookReceiver(type="webhook", url=url, secret=SECRET, **fields)


def rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(_outbox).order_by(_outbox.c.id))]


def deliver_until_empty(outbox: Outbox, clock: FrozenClock, *, passes: int = 50) -> int:
    attempted = 0
    for _ in range(passes):
        attempted += outbox.deliver_due()
        if not any(outbox.pending().values()):
            return attempted
        clock.advance(timedelta(seconds=1))
    raise AssertionError(f"still pending after {passes} passes: {outbox.pending()}")


def test_enqueue_commits_and_never_sends(
    make_outbox: Callable[..., Outbox], engine: sa.Engine
) -> None:
    with HttpReceiver() as server:
        outbox = make_outbox({"hook": webhook(server.url)})
        notification = make_notification()
        outbox.enqueue(notification)
        outbox.enqueue(notification)  # the same notification again: a no-op

        assert server.received == []
        assert outbox.pending() == {"hook": 1}
        (row,) = rows(engine)
        assert (row["idempotency_key"], row["status"], row["attempts"]) == (
            notification.key,
            "pending",
            0,
        )
        assert Notification.from_json(row["notification"]) == notification
        assert row["next_attempt_at"] == NOW

        assert outbox.deliver_due() == 1
        assert outbox.deliver_due() == 0
    assert server.keys() == [notification.key]
    assert outbox.pending() == {"hook": 0}
    assert outbox.counts() == {("hook", "sent"): 1}


def test_a_flaky_receiver_gets_every_notification_once_in_order(
    make_outbox: Callable[..., Outbox], clock: FrozenClock
) -> None:
    with HttpReceiver(lambda n, _r: Answer(500 if n <= 3 else 200)) as server:
        outbox = make_outbox({"hook": webhook(server.url)})
        sent = [make_notification(created_at=NOW + timedelta(minutes=i)) for i in range(5)]
        for notification in sent:
            outbox.enqueue(notification)
        deliver_until_empty(outbox, clock)

    keys = [n.key for n in sent]
    # The first one is retried until it gets through; the others wait their turn.
    assert [r.key for r in server.received] == [keys[0]] * 4 + keys[1:]
    assert server.keys(200) == keys
    first = server.received[:4]
    assert len({r.body for r in first}) == 1
    assert len({r.headers["x-osemn-signature"] for r in first}) == 1
    assert outbox.pending() == {"hook": 0}
    assert outbox.counts() == {("hook", "retried"): 3, ("hook", "sent"): 5}


@SQLITE_ONLY
def test_a_400_fails_for_good_and_does_not_block_the_next(
    make_outbox: Callable[..., Outbox], engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with HttpReceiver(lambda n, _r: Answer(400 if n == 1 else 200, body=b"bad payload")) as server:
        outbox = make_outbox({"hook": webhook(f"{server.url}/hook/PATHTOKEN")})
        bad, good = make_notification(), make_notification(created_at=NOW + timedelta(minutes=1))
        outbox.enqueue(bad)
        outbox.enqueue(good)
        with caplog.at_level(logging.ERROR, "osemn.exporters.outbox"):
            assert outbox.deliver_due() == 2
            assert outbox.deliver_due() == 0

    assert [r.key for r in server.received] == [bad.key, good.key]
    assert outbox.counts() == {("hook", "failed"): 1, ("hook", "sent"): 1}
    assert [r["status"] for r in rows(engine)] == ["failed", "sent"]
    assert "answered 400 Bad Request: 'bad payload'" in rows(engine)[0]["last_error"]
    (record,) = caplog.records
    assert bad.key in record.getMessage() and "failed for good" in record.getMessage()
    assert "PATHTOKEN" not in caplog.text and SECRET not in caplog.text


@SQLITE_ONLY
def test_retry_after_is_honoured(make_outbox: Callable[..., Outbox], clock: FrozenClock) -> None:
    answers = {1: Answer(429, {"Retry-After": "30"})}
    with HttpReceiver(lambda n, _r: answers.get(n, Answer())) as server:
        outbox = make_outbox({"hook": webhook(server.url)})
        outbox.enqueue(make_notification())
        assert outbox.deliver_due() == 1
        clock.advance(timedelta(seconds=29))
        assert outbox.deliver_due() == 0
        clock.advance(timedelta(seconds=1))
        assert outbox.deliver_due() == 1
    assert [r.status for r in server.received] == [429, 200]


@SQLITE_ONLY
def test_backoff_doubles_up_to_its_ceiling(
    make_outbox: Callable[..., Outbox], engine: sa.Engine, clock: FrozenClock
) -> None:
    with HttpReceiver(lambda _n, _r: Answer(503)) as server:
        outbox = make_outbox(
            {"hook": webhook(server.url)},
            backoff_base=timedelta(seconds=1),
            backoff_max=timedelta(seconds=8),
            rng=CeilingRandom(),
        )
        outbox.enqueue(make_notification())
        delays = []
        for _ in range(6):
            assert outbox.deliver_due() == 1
            (row,) = rows(engine)
            delays.append((row["next_attempt_at"] - clock.now).total_seconds())
            clock.now = row["next_attempt_at"]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert outbox.counts() == {("hook", "retried"): 6}
    assert outbox.pending() == {"hook": 1}


@SQLITE_ONLY
def test_a_timeout_is_retried_without_blocking_enqueue_or_other_receivers(
    engine: sa.Engine, http: httpx.Client
) -> None:
    hang_first = {1: Answer(delay=3.0)}  # longer than the receiver's 2s timeout
    with (
        HttpReceiver(lambda n, _r: hang_first.get(n, Answer())) as slow,
        HttpReceiver() as fast,
    ):
        receivers = {"slow": webhook(slow.url, timeout="2s"), "fast": webhook(fast.url)}
        outbox = Outbox(engine, receivers, http=http, **TINY)
        outbox.start()
        try:
            first, second = (
                make_notification("slow"),
                make_notification("slow", created_at=NOW + timedelta(minutes=1)),
            )
            outbox.enqueue(first)
            _wait_for(lambda: len(slow.received) == 1)  # its deliverer now waits on it
            started = time.monotonic()
            outbox.enqueue(second)
            for i in range(5):
                outbox.enqueue(make_notification("fast", created_at=NOW + timedelta(minutes=i)))
            enqueued_in = time.monotonic() - started
            _wait_for(lambda: len(fast.keys()) == 5)
            fast_done_in = time.monotonic() - started
            _wait_for(lambda: outbox.pending() == {"slow": 0, "fast": 0})
        finally:
            outbox.stop()

    assert enqueued_in < 1.0
    assert fast_done_in < 1.8  # before the hung attempt even gave up
    assert slow.keys() == [first.key, first.key, second.key]  # in order, after the retry
    assert outbox.counts() == {("slow", "retried"): 1, ("slow", "sent"): 2, ("fast", "sent"): 5}


def test_the_newest_alertmanager_state_supersedes_older_pending_ones(
    make_outbox: Callable[..., Outbox], engine: sa.Engine, clock: FrozenClock
) -> None:
    down = {1: Answer(503), 2: Answer(503)}
    with HttpReceiver(lambda n, _r: down.get(n, Answer())) as one, HttpReceiver() as two:
        config = AlertmanagerReceiver(type="alertmanager", urls=(one.url, two.url))
        outbox = make_outbox({"am": config})
        # One group changes state every minute while Alertmanager is away.
        states = [
            make_notification(
                "am",
                alerts=(make_alert(resolved=i % 2 == 1),),
                created_at=NOW + timedelta(minutes=i),
            )
            for i in range(20)
        ]
        outbox.enqueue(states[0])
        assert outbox.deliver_due() == 2  # `one` answers 503, `two` takes it
        for state in states[1:]:
            outbox.enqueue(state)
        other_group = make_notification("am", group="orders-valid", created_at=NOW)
        outbox.enqueue(other_group)
        assert outbox.pending() == {"am": 4}  # the newest state and the other group, per URL
        deliver_until_empty(outbox, clock)

    newest = states[-1]
    assert [r.status for r in one.received] == [503, 503, 200, 200]
    assert [r.json()[0]["endsAt"] for r in one.received[2:3]] == [
        newest.to_webhook()["alerts"][0]["endsAt"]
    ]
    assert len(two.received) == 3
    assert {r.body for r in one.received[2:]} == {r.body for r in two.received[1:]}
    assert outbox.counts() == {
        ("am", "sent"): 5,
        ("am", "superseded"): 19 * 2 - 1,
        ("am", "retried"): 2,
    }
    statuses = [r["status"] for r in rows(engine)]
    assert statuses.count("superseded") == 19 * 2 - 1 and statuses.count("sent") == 5


@SQLITE_ONLY
def test_one_pagerduty_event_per_alert(
    make_outbox: Callable[..., Outbox], clock: FrozenClock
) -> None:
    alerts = (make_alert(), make_alert("orders-valid", resolved=True))
    with HttpReceiver(lambda _n, _r: Answer(202)) as server:
        config = PagerDutyReceiver(
            type="pagerduty", routing_key="KEY", url=f"{server.url}/v2/enqueue"
        )
        outbox = make_outbox({"pd": config})
        outbox.enqueue(make_notification("pd", alerts=alerts))
        assert outbox.pending() == {"pd": 2}
        assert outbox.deliver_due() == 2  # two alerts are two targets: both go in one pass
    events = [(r.json()["event_action"], r.json()["dedup_key"]) for r in server.received]
    assert events == [("trigger", alerts[0].fingerprint), ("resolve", alerts[1].fingerprint)]
    assert outbox.counts() == {("pd", "sent"): 2}


@SQLITE_ONLY
def test_file_receiver_through_the_outbox(
    make_outbox: Callable[..., Outbox], tmp_path: Path
) -> None:
    path = tmp_path / "osemn.jsonl"
    outbox = make_outbox({"log": FileReceiver(type="file", path=str(path))})
    first, second = (
        make_notification("log"),
        make_notification("log", created_at=NOW + timedelta(minutes=1)),
    )
    outbox.enqueue(first)
    outbox.enqueue(second)
    assert outbox.deliver_due() == 2
    assert outbox.deliver_due() == 0
    assert [json.loads(line)["idempotency_key"] for line in path.read_text().splitlines()] == [
        first.key,
        second.key,
    ]
    assert outbox.counts() == {("log", "sent"): 2}


def test_an_undeliverable_notification_expires_loudly(
    make_outbox: Callable[..., Outbox],
    engine: sa.Engine,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = make_outbox(
        {"hook": webhook(f"http://127.0.0.1:{free_port()}/")}, max_age=timedelta(hours=1)
    )
    notification = make_notification()
    outbox.enqueue(notification)
    assert outbox.deliver_due() == 1  # connection refused: retried
    clock.advance(timedelta(minutes=59))
    with caplog.at_level(logging.WARNING, "osemn.exporters.outbox"):
        caplog.clear()
        outbox.deliver_due()
        assert [r.levelname for r in caplog.records] == ["WARNING"]  # retried, not yet expired
        caplog.clear()
        clock.advance(timedelta(minutes=1, seconds=1))
        assert outbox.deliver_due() == 0
    (record,) = caplog.records
    assert notification.key in record.getMessage() and "expired" in record.getMessage()
    assert "cannot reach http://127.0.0.1" in record.getMessage()
    assert outbox.pending() == {"hook": 0}
    assert outbox.counts()[("hook", "expired")] == 1
    assert rows(engine)[0]["status"] == "expired"

    clock.advance(timedelta(hours=1, seconds=1))  # finished rows are kept max_age, then pruned
    outbox.deliver_due()
    assert rows(engine) == []


@SQLITE_ONLY
def test_a_notification_for_an_unknown_receiver_is_refused(
    make_outbox: Callable[..., Outbox],
) -> None:
    outbox = make_outbox({"hook": webhook("http://127.0.0.1:9/")})
    with pytest.raises(
        DeliveryError, match=r"receiver 'pager', which is not configured \(configured: 'hook'\)"
    ):
        outbox.enqueue(make_notification("pager"))


def test_deliveries_of_a_receiver_no_longer_configured_fail_loudly(
    make_outbox: Callable[..., Outbox], engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    make_outbox({"old": webhook("http://127.0.0.1:9/")}).enqueue(make_notification("old"))
    am = AlertmanagerReceiver(type="alertmanager", url="http://127.0.0.1:9/")
    make_outbox({"am": am}).enqueue(make_notification("am"))

    renamed = make_outbox(
        {"am": AlertmanagerReceiver(type="alertmanager", url="http://127.0.0.1:10/")}
    )
    with caplog.at_level(logging.ERROR, "osemn.exporters.outbox"):
        assert renamed.deliver_due() == 0
    assert [r["status"] for r in rows(engine)] == ["failed", "failed"]
    assert renamed.counts() == {("old", "failed"): 1, ("am", "failed"): 1}
    assert (
        "no longer configured" in caplog.text and "no longer lists the Alertmanager" in caplog.text
    )


def test_threads_enqueue_while_the_deliverer_runs(engine: sa.Engine, http: httpx.Client) -> None:
    with HttpReceiver() as server:
        outbox = Outbox(engine, {"hook": webhook(server.url)}, http=http, **TINY)
        outbox.start()
        expected: list[str] = []
        lock = threading.Lock()

        def producer(i: int) -> None:
            for j in range(5):
                notification = make_notification(created_at=NOW + timedelta(minutes=i, seconds=j))
                outbox.enqueue(notification)
                with lock:
                    expected.append(notification.key)

        try:
            threads = [threading.Thread(target=producer, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            _wait_for(lambda: len(server.received) == 20)
        finally:
            outbox.stop()
    assert sorted(server.keys()) == sorted(expected)
    assert outbox.pending() == {"hook": 0}
    assert outbox.counts() == {("hook", "sent"): 20}


# --- kill -9 ------------------------------------------------------------------------

_SCRIPT = """
import os, signal, sys
from datetime import timedelta
from osemn._slo_config import WebhookReceiver
from osemn.agent._state_schema import _create_engine
from osemn.exporters.notification import Notification
from osemn.exporters.outbox import Outbox

state_url, hook_url, secret, mode = sys.argv[1:5]
hook = WebhookReceiver(type="webhook", url=hook_url, secret=secret, timeout="5s")
outbox = Outbox(_create_engine(state_url), {"hook": hook}, backoff_base=timedelta(milliseconds=1))
outbox.enqueue(Notification.from_json(sys.stdin.read()))
if mode == "before-send":
    os.kill(os.getpid(), signal.SIGKILL)
outbox.deliver_due()  # the receiver kills this process while holding the request
print("survived", flush=True)
"""


def _run_and_kill(state_url: str, hook_url: str, notification: Notification, mode: str) -> None:
    process = subprocess.run(
        [sys.executable, "-c", _SCRIPT, state_url, hook_url, SECRET, mode],
        input=notification.to_json(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert "survived" not in process.stdout


def test_a_process_killed_before_delivery_leaves_it_for_the_next(
    state_url: str, engine: sa.Engine, http: httpx.Client
) -> None:
    notification = make_notification(created_at=utcnow())
    with HttpReceiver() as server:
        _run_and_kill(state_url, server.url, notification, "before-send")
        assert server.received == []

        outbox = Outbox(engine, {"hook": webhook(server.url)}, http=http)
        assert outbox.pending() == {"hook": 1}
        assert outbox.deliver_due() == 1
        assert outbox.deliver_due() == 0

    (got,) = server.received
    assert got.key == notification.key
    assert got.json() == notification.to_webhook()
    assert outbox.pending() == {"hook": 0}


def test_a_process_killed_while_sending_sends_again_with_the_same_key(
    state_url: str, engine: sa.Engine, http: httpx.Client
) -> None:
    notification = make_notification(created_at=utcnow())
    victim: list[int] = []

    def kill_the_sender(n: int, _request: Received) -> Answer:
        if n == 1:  # got the request; the sender dies before it hears back
            (pid,) = victim
            os.kill(pid, signal.SIGKILL)
            return Answer(delay=0.2)
        return Answer()

    with HttpReceiver(kill_the_sender) as server:
        process = _start_sender(state_url, server.url, notification)
        victim.append(process.pid)
        process.stdin.write(notification.to_json())  # type: ignore[union-attr]
        process.stdin.close()  # type: ignore[union-attr]
        assert process.wait(60) == -signal.SIGKILL
        assert len(server.received) == 1

        # The row was claimed for timeout + backoff; a clock past that sends it again.
        later = FrozenClock(utcnow() + timedelta(seconds=6))
        outbox = Outbox(engine, {"hook": webhook(server.url)}, http=http, clock=later)
        assert outbox.pending() == {"hook": 1}
        assert outbox.deliver_due() == 1
        assert outbox.deliver_due() == 0

    first, again = server.received
    assert first.key == again.key == notification.key
    assert first.body == again.body
    assert first.headers["x-osemn-signature"] == again.headers["x-osemn-signature"]
    assert server.keys(200) == [notification.key, notification.key]  # one key: a receiver keeps one
    assert outbox.pending() == {"hook": 0}
    assert outbox.counts() == {("hook", "sent"): 1}


def _start_sender(
    state_url: str, hook_url: str, notification: Notification
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, state_url, hook_url, SECRET, "during-send"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)
