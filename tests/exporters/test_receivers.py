"""Receivers against real HTTP servers, a real Alertmanager and real files.

The HTTP receiver and Alertmanager come from ``tests/servers.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from osemn import DeliveryError
from osemn._slo_config import (
    AlertmanagerReceiver,
    FileReceiver,
    PagerDutyReceiver,
    SlackReceiver,
    WebhookReceiver,
)
from osemn._version import __version__
from osemn.errors import DeliveryAttemptError
from osemn.exporters._http import (
    map_httpx_errors,
    origin,
    parse_retry_after,
)
from osemn.exporters.notification import Notification
from osemn.exporters.receivers import (
    SLACK_MAX_ALERTS,
    Delivery,
    plan,
    render_alertmanager,
    render_file_line,
    send,
    sign,
    verify_signature,
)
from osemn.rules.alerts import Alert, AlertState
from tests.servers import Answer, HttpReceiver, free_port, start_alertmanager

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "hook-secret-value"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"


def make_alert(
    slo: str = "orders-fresh",
    *,
    severity: str = "page",
    resolved: bool = False,
    starts_at: datetime = NOW - timedelta(minutes=10),
    **annotations: str,
) -> Alert:
    return Alert(
        labels={
            "alertname": "OsemnSLOBurnRate",
            "slo": slo,
            "dataset": "orders",
            "severity": severity,
            "burnrate_tier": "fast",
            "sli": "freshness",
        },
        annotations={
            "summary": f"{slo} is burning its error budget",
            "runbook_url": "https://runbooks.example.com/orders-fresh",
            **annotations,
        },
        state=AlertState.RESOLVED if resolved else AlertState.FIRING,
        starts_at=starts_at,
        ends_at=NOW - timedelta(minutes=1) if resolved else None,
        generator_url="http://osemn.example.com:9108/alerts",
    )


def make_notification(
    receiver: str = "hook",
    *,
    alerts: tuple[Alert, ...] | None = None,
    created_at: datetime = NOW,
    group: str = "orders-fresh",
) -> Notification:
    return Notification(
        receiver=receiver,
        group_key=f'{{}}:{{alertname="OsemnSLOBurnRate", slo="{group}"}}',
        group_labels={"alertname": "OsemnSLOBurnRate", "slo": group},
        alerts=alerts if alerts is not None else (make_alert(group),),
        created_at=created_at,
        external_url="http://osemn.example.com:9108",
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _send_one(client: httpx.Client, config: Any, notification: Notification) -> None:
    for delivery in plan(config, notification):
        send(client, config, delivery)


# --- webhook -----------------------------------------------------------------


def test_webhook_is_signed_over_the_exact_body(http: httpx.Client) -> None:
    notification = make_notification(
        alerts=(make_alert(), make_alert("orders-valid"), make_alert("orders-x"))
    )
    with HttpReceiver() as server:
        config = WebhookReceiver(
            type="webhook", url=f"{server.url}/hook", secret=SECRET, max_alerts=2
        )
        _send_one(http, config, notification)

    (got,) = server.received
    assert got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == f"osemn/{__version__}"
    assert got.key == notification.key
    assert verify_signature(got.body, got.headers["x-osemn-signature"], SECRET)
    assert not verify_signature(got.body, got.headers["x-osemn-signature"], "other-secret")
    assert not verify_signature(got.body + b" ", got.headers["x-osemn-signature"], SECRET)
    assert not verify_signature(got.body, None, SECRET)
    assert got.json() == notification.to_webhook(max_alerts=2)
    assert got.json()["truncatedAlerts"] == 1


@given(
    body=st.binary(max_size=200), secret=st.text(min_size=1, max_size=40), flip=st.integers(0, 63)
)
def test_signature_verifies_only_its_body_and_secret(body: bytes, secret: str, flip: int) -> None:
    header = sign(body, secret)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(body, header, secret)
    assert not verify_signature(body + b"\x00", header, secret)
    assert not verify_signature(body, header, secret + "x")
    digits = list(header)
    digits[7 + flip] = "0" if digits[7 + flip] != "0" else "1"
    assert not verify_signature(body, "".join(digits), secret)
    assert not verify_signature(body, header.replace("sha256=", "sha1="), secret)


# --- alertmanager --------------------------------------------------------------


def test_alertmanager_gets_postable_alerts_on_every_replica(http: httpx.Client) -> None:
    firing, resolved = make_alert(), make_alert("orders-valid", resolved=True)
    notification = make_notification("am", alerts=(firing, resolved))
    with HttpReceiver() as one, HttpReceiver() as two:
        config = AlertmanagerReceiver(
            type="alertmanager",
            url=one.url,
            urls=(f"{two.url}/prefix/", one.url),
            resend_interval="2m",
        )
        deliveries = plan(config, notification)
        for delivery in deliveries:
            send(http, config, delivery)

    assert [d.target for d in deliveries] == [one.url, f"{two.url}/prefix/"]
    assert len({d.key for d in deliveries}) == 2
    assert [r.path for r in one.received + two.received] == [
        "/api/v2/alerts",
        "/prefix/api/v2/alerts",
    ]
    expected = [
        {
            "labels": dict(firing.labels),
            "annotations": dict(firing.annotations),
            "startsAt": "2026-03-01T11:50:00Z",
            "endsAt": "2026-03-01T12:08:00Z",  # created_at + 4 * resend_interval
            "generatorURL": "http://osemn.example.com:9108/alerts",
        },
        {
            "labels": dict(resolved.labels),
            "annotations": dict(resolved.annotations),
            "startsAt": "2026-03-01T11:50:00Z",
            "endsAt": "2026-03-01T11:59:00Z",
            "generatorURL": "http://osemn.example.com:9108/alerts",
        },
    ]
    assert one.received[0].json() == expected
    assert two.received[0].json() == expected


def test_alertmanager_omits_an_empty_generator_url() -> None:
    alert = Alert(labels={"alertname": "A"}, state=AlertState.FIRING, starts_at=NOW)
    config = AlertmanagerReceiver(type="alertmanager", url="http://am:9093")
    request = render_alertmanager(
        config, make_notification("am", alerts=(alert,)), url="http://am:9093", key="k"
    )
    assert json.loads(request.body) == [
        {
            "labels": {"alertname": "A"},
            "annotations": {},
            "startsAt": "2026-03-01T12:00:00Z",
            "endsAt": "2026-03-01T12:04:00Z",
        }
    ]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager (Debian's prometheus-alertmanager) on a free port."""
    config = 'route: {receiver: "null"}\nreceivers: [{name: "null"}]\n'
    with start_alertmanager(tmp_path, config) as url:
        yield url


def test_a_real_alertmanager_accepts_firing_then_resolved(
    alertmanager: str, http: httpx.Client
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    firing = make_alert(starts_at=now - timedelta(minutes=5))
    config = AlertmanagerReceiver(type="alertmanager", url=alertmanager, resend_interval="1m")
    _send_one(http, config, make_notification("am", alerts=(firing,), created_at=now))

    (active,) = http.get(f"{alertmanager}/api/v2/alerts").json()
    assert active["labels"] == dict(firing.labels)
    assert active["annotations"] == dict(firing.annotations)
    assert active["fingerprint"] == firing.fingerprint
    assert active["status"]["state"] == "active"
    assert datetime.fromisoformat(active["endsAt"]) == now + timedelta(minutes=4)

    resolved = Alert(
        labels=firing.labels,
        annotations=firing.annotations,
        state=AlertState.RESOLVED,
        starts_at=firing.starts_at,
        ends_at=now - timedelta(seconds=1),
        generator_url=firing.generator_url,
    )
    _send_one(http, config, make_notification("am", alerts=(resolved,), created_at=now))
    assert http.get(f"{alertmanager}/api/v2/alerts").json() == []


# --- slack ---------------------------------------------------------------------


def test_slack_message_as_received(http: httpx.Client) -> None:
    alerts = (
        make_alert(),
        make_alert("orders-valid", severity="ticket", resolved=True, summary="a < b & c"),
    )
    notification = make_notification("chat", alerts=alerts)
    with HttpReceiver() as server:
        config = SlackReceiver(
            type="slack", url=f"{server.url}/services/T0/B0/XYZ", channel="#oncall"
        )
        _send_one(http, config, notification)

    (got,) = server.received
    assert got.path == "/services/T0/B0/XYZ"
    assert got.key == notification.key
    assert got.json() == {
        "text": "[FIRING:2] OsemnSLOBurnRate orders-fresh: "
        "orders-fresh is burning its error budget",
        "channel": "#oncall",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": "[FIRING:2] OsemnSLOBurnRate orders-fresh"},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":fire: *orders-fresh is burning its error budget*\n"
                    "*Severity:* `page`   *SLO:* `orders-fresh`   *Dataset:* `orders`\n"
                    "<https://runbooks.example.com/orders-fresh|Runbook>",
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":white_check_mark: *a &lt; b &amp; c*\n"
                    "*Severity:* `ticket`   *SLO:* `orders-valid`   *Dataset:* `orders`\n"
                    "<https://runbooks.example.com/orders-fresh|Runbook>",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "osemn · <http://osemn.example.com:9108|status page>",
                    }
                ],
            },
        ],
    }


def test_slack_shows_a_bounded_number_of_alerts(http: httpx.Client) -> None:
    alerts = tuple(make_alert(f"slo-{i}") for i in range(SLACK_MAX_ALERTS + 3))
    with HttpReceiver() as server:
        config = SlackReceiver(type="slack", url=server.url)
        _send_one(http, config, make_notification("chat", alerts=alerts))

    blocks = server.received[0].json()["blocks"]
    assert [b["type"] for b in blocks] == ["header"] + ["section"] * SLACK_MAX_ALERTS + ["context"]
    assert blocks[-1]["elements"][0]["text"] == (
        "osemn · 3 more alerts not shown · <http://osemn.example.com:9108|status page>"
    )
    assert "channel" not in server.received[0].json()


# --- pagerduty -----------------------------------------------------------------


def test_pagerduty_events_as_received(http: httpx.Client) -> None:
    firing = make_alert(dashboard_url="https://grafana.example.com/d/x")
    resolved = make_alert("orders-valid", severity="ticket", resolved=True)
    other = make_alert("orders-x", severity="none")
    notification = make_notification("pd", alerts=(firing, resolved, other))
    with HttpReceiver(lambda _n, _r: Answer(202)) as server:
        config = PagerDutyReceiver(
            type="pagerduty", routing_key=ROUTING_KEY, url=f"{server.url}/v2/enqueue"
        )
        deliveries = plan(config, notification)
        for delivery in deliveries:
            send(http, config, delivery)

    assert [d.target for d in deliveries] == [
        firing.fingerprint,
        resolved.fingerprint,
        other.fingerprint,
    ]
    assert len({d.key for d in deliveries}) == 3
    assert [r.key for r in server.received] == [d.key for d in deliveries]
    first, second, third = (r.json() for r in server.received)
    assert first == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": firing.fingerprint,
        "payload": {
            "summary": "orders-fresh is burning its error budget",
            "source": "osemn.example.com",
            "severity": "critical",
            "timestamp": "2026-03-01T11:50:00Z",
            "component": "orders",
            "group": "orders-fresh",
            "class": "OsemnSLOBurnRate",
            "custom_details": {
                "labels": dict(firing.labels),
                "annotations": dict(firing.annotations),
            },
        },
        "links": [
            {"href": "https://runbooks.example.com/orders-fresh", "text": "Runbook"},
            {"href": "https://grafana.example.com/d/x", "text": "Dashboard"},
            {"href": "http://osemn.example.com:9108/alerts", "text": "osemn"},
        ],
        "client": "osemn",
        "client_url": "http://osemn.example.com:9108",
    }
    assert (second["event_action"], second["dedup_key"]) == ("resolve", resolved.fingerprint)
    assert (second["payload"]["severity"], second["payload"]["timestamp"]) == (
        "warning",
        "2026-03-01T11:59:00Z",
    )
    assert (third["event_action"], third["payload"]["severity"]) == ("trigger", "info")


# --- file ----------------------------------------------------------------------


def test_file_receiver_appends_each_key_once(tmp_path: Path, http: httpx.Client) -> None:
    path = tmp_path / "alerts" / "osemn.jsonl"
    config = FileReceiver(type="file", path=str(path))
    first, second = (
        make_notification("log"),
        make_notification("log", created_at=NOW + timedelta(minutes=5)),
    )
    for notification in (first, second, second, first):  # a retry after a crash repeats one
        _send_one(http, config, notification)

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"idempotency_key": first.key, "receiver": "log", **first.to_webhook()},
        {"idempotency_key": second.key, "receiver": "log", **second.to_webhook()},
    ]
    assert path.read_bytes().endswith(b"\n")


def test_file_receiver_starts_a_new_line_after_a_torn_write(
    tmp_path: Path, http: httpx.Client
) -> None:
    path = tmp_path / "osemn.jsonl"
    notification = make_notification("log")
    line = render_file_line(notification, key=notification.key)
    path.write_bytes(line[:40])  # killed mid-write: the key is there, the line is not

    _send_one(http, FileReceiver(type="file", path=str(path)), notification)

    assert path.read_bytes() == line[:40] + b"\n" + line


def test_file_receiver_that_cannot_write_is_retryable(tmp_path: Path, http: httpx.Client) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = FileReceiver(type="file", path=str(blocker / "osemn.jsonl"))
    with pytest.raises(DeliveryAttemptError) as caught:
        _send_one(http, config, make_notification("log"))
    assert caught.value.retryable
    assert isinstance(caught.value, DeliveryError)


# --- the httpx boundary ----------------------------------------------------------

_SECRET_URL = "https://hooks.example.com/services/T0/B0/TOKEN123?sig=QUERYSECRET"
_REQUEST = httpx.Request("POST", _SECRET_URL)
# Every httpx exception and what an attempt that raised it becomes.
_MAPPED: dict[type[Exception], bool] = {
    httpx.ConnectError: True,
    httpx.ReadError: True,
    httpx.WriteError: True,
    httpx.CloseError: True,
    httpx.NetworkError: True,
    httpx.ConnectTimeout: True,
    httpx.ReadTimeout: True,
    httpx.WriteTimeout: True,
    httpx.PoolTimeout: True,
    httpx.TimeoutException: True,
    httpx.RemoteProtocolError: True,
    httpx.ProtocolError: True,
    httpx.ProxyError: True,
    httpx.TransportError: True,
    httpx.RequestError: True,
    httpx.HTTPError: True,
    httpx.LocalProtocolError: False,
    httpx.UnsupportedProtocol: False,
    httpx.InvalidURL: False,
    httpx.DecodingError: False,
    httpx.TooManyRedirects: False,
}
# Misuse of httpx, i.e. a bug in osemn: these must surface, not become a retry.
_NOT_MAPPED = {
    httpx.CookieConflict,
    httpx.StreamError,
    httpx.StreamClosed,
    httpx.StreamConsumed,
    httpx.RequestNotRead,
    httpx.ResponseNotRead,
}


def test_every_httpx_exception_is_mapped_or_deliberately_not() -> None:
    exported = {
        getattr(httpx, name)
        for name in httpx.__all__
        if isinstance(getattr(httpx, name), type) and issubclass(getattr(httpx, name), Exception)
    }
    assert exported == set(_MAPPED) | _NOT_MAPPED | {httpx.HTTPStatusError}
    for exc_type, retryable in _MAPPED.items():
        message = f"failed on {_SECRET_URL}"
        exc = (
            exc_type(message, request=_REQUEST)
            if issubclass(exc_type, httpx.RequestError)
            else exc_type(message)
        )
        with (
            pytest.raises(DeliveryAttemptError) as caught,
            map_httpx_errors(receiver="r", url=_SECRET_URL, timeout=2),
        ):
            raise exc
        assert caught.value.retryable is retryable, exc_type
        assert "TOKEN123" not in str(caught.value) and "QUERYSECRET" not in str(caught.value)
        assert "https://hooks.example.com" in str(caught.value)
    for bug in _NOT_MAPPED:
        with pytest.raises(bug), map_httpx_errors(receiver="r", url=_SECRET_URL, timeout=2):
            raise bug("misuse") if bug in (httpx.CookieConflict, httpx.StreamError) else bug()


@given(status=st.integers(300, 599))
def test_status_mapping(status: int) -> None:
    response = httpx.Response(status, request=_REQUEST, headers={"Retry-After": "7"})
    with (
        pytest.raises(DeliveryAttemptError) as caught,
        map_httpx_errors(receiver="r", url=_SECRET_URL, timeout=2),
    ):
        response.raise_for_status()
    assert caught.value.status == status
    assert caught.value.retryable is (status in (408, 425, 429) or status >= 500)
    assert caught.value.retry_after == "7"


def test_error_messages_never_show_secrets(http: httpx.Client) -> None:
    """A receiver that echoes the request back in a 400 still leaks nothing to the log."""
    with HttpReceiver(lambda _n, r: Answer(400, body=r.body + r.path.encode())) as server:
        config = PagerDutyReceiver(
            type="pagerduty", routing_key=ROUTING_KEY, url=f"{server.url}/v2/enqueue/SECRETPATH"
        )
        with pytest.raises(DeliveryAttemptError) as caught:
            _send_one(http, config, make_notification("pd"))
    message = str(caught.value)
    assert not caught.value.retryable
    assert ROUTING_KEY not in message and "SECRETPATH" not in message
    assert message.startswith(f"receiver 'pd': {server.url} answered 400 Bad Request: ")
    assert message.endswith(
        "it will not be retried. Check the receiver's `url:` and credentials, and what it expects."
    )


def test_a_refused_connection_is_retryable(http: httpx.Client) -> None:
    config = WebhookReceiver(type="webhook", url=f"http://127.0.0.1:{free_port()}/h", secret=SECRET)
    with pytest.raises(DeliveryAttemptError) as caught:
        _send_one(http, config, make_notification())
    assert caught.value.retryable and caught.value.status is None


def test_a_redirect_is_not_followed(http: httpx.Client) -> None:
    with HttpReceiver(
        lambda _n, _r: Answer(301, {"Location": "http://elsewhere.invalid/"})
    ) as server:
        config = WebhookReceiver(type="webhook", url=server.url, secret=SECRET)
        with pytest.raises(DeliveryAttemptError) as caught:
            _send_one(http, config, make_notification())
    assert (caught.value.status, caught.value.retryable) == (301, False)
    assert len(server.received) == 1


def test_parse_retry_after() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("120", NOW) == timedelta(seconds=120)
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", NOW) == timedelta(seconds=30)
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", NOW) == timedelta(0)
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("-5", NOW) is None


def test_origin_hides_path_and_query() -> None:
    assert origin(_SECRET_URL) == "https://hooks.example.com"
    assert origin("http://127.0.0.1:9093/am") == "http://127.0.0.1:9093"


def test_plan_keys_are_stable_and_distinct() -> None:
    notification = make_notification("am")
    am = AlertmanagerReceiver(type="alertmanager", urls=("http://a:9093", "http://b:9093"))
    webhook = WebhookReceiver(type="webhook", url="http://h/", secret=SECRET)
    assert plan(am, notification) == plan(am, make_notification("am"))
    assert plan(webhook, notification) == (
        Delivery(key=notification.key, target="", notification=notification),
    )
    keys = {d.key for d in plan(am, notification)} | {notification.key}
    assert len(keys) == 3
