"""What each receiver type is sent: deliveries of a notification, and their bodies.

A notification becomes one or more *deliveries* (``plan``), each with its own
stable idempotency key, so the outbox can retry each on its own and a receiver
can drop a repeat. Rendering is pure (``render_*``): the same delivery always
renders to the same bytes, which is why the outbox stores the notification and
renders again on every attempt instead of storing bodies (and the secrets
they carry: signatures, PagerDuty routing keys).

- webhook: Alertmanager's webhook JSON, signed: ``X-Osemn-Signature: sha256=<HMAC>``.
- alertmanager: ``POST /api/v2/alerts`` on every replica, one delivery per URL.
  See: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
- slack: an incoming-webhook message built from blocks.
  See: https://api.slack.com/reference/block-kit/blocks
- pagerduty: Events API v2, one event per alert, ``dedup_key`` = its fingerprint.
  See: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
- file: one JSON line per notification, appended once per key and fsynced.
- openlineage: an OpenLineage event (not a notification), handed to the
  transport openlineage-python was configured with (HTTP, Kafka, file, ...).
  See: https://openlineage.io/docs/client/python#built-in-transport-types
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx

from osemn._slo_config import (
    OPENLINEAGE_RECEIVER,
    AlertmanagerReceiver,
    FileReceiver,
    PagerDutyReceiver,
    ReceiverConfig,
    SlackReceiver,
    WebhookReceiver,
)
from osemn._version import __version__
from osemn.errors import DeliveryAttemptError
from osemn.exporters._http import map_httpx_errors
from osemn.exporters.notification import Notification
from osemn.rules.alerts import Alert, format_time

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient

__all__ = [
    "OPENLINEAGE_RECEIVER",
    "SIGNATURE_HEADER",
    "SLACK_MAX_ALERTS",
    "Delivery",
    "HttpRequest",
    "OpenLineageSink",
    "endpoint",
    "plan",
    "render",
    "render_alertmanager",
    "render_file_line",
    "render_pagerduty",
    "render_slack",
    "render_webhook",
    "send",
    "send_event",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Osemn-Signature"
# Slack allows 50 blocks per message; past a screenful, on-call reads the status page.
SLACK_MAX_ALERTS = 10
# Block Kit limits: a header's plain text, a section's text. PagerDuty's summary limit.
_SLACK_HEADER_CHARS = 150
_SLACK_SECTION_CHARS = 3000
_PAGERDUTY_SUMMARY_CHARS = 1024
# How far back the file receiver looks for a line it may already have written: the
# retried line itself (it was the last one written) plus room for a torn write.
_FILE_TAIL_BYTES = 64 * 1024
_PAGERDUTY_SEVERITY = {"page": "critical", "ticket": "warning"}


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One thing to send for a notification.

    ``target`` tells deliveries of one notification apart: the Alertmanager URL,
    the alert fingerprint for PagerDuty, ``""`` for receivers that get one.
    ``notification`` is what this delivery carries (one alert for PagerDuty).
    """

    key: str
    target: str
    notification: Notification


@dataclass(frozen=True, kw_only=True)
class HttpRequest:
    """A POST to make: the exact body bytes, and the headers that go with them."""

    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class OpenLineageSink:
    """OpenLineage events as an outbox receiver: they wait in the outbox like alerts,
    so an endpoint that is down or slow never holds up a check run.

    ``client`` is an ``openlineage.client.OpenLineageClient``; ``timeout`` bounds
    one attempt (its transport's own retries included) before it may be retried.
    """

    client: OpenLineageClient
    timeout: timedelta = timedelta(seconds=60)
    type: Literal["openlineage"] = "openlineage"


def send_event(sink: OpenLineageSink, document: str) -> None:
    """Make one attempt at an OpenLineage event (its JSON, as enqueued).

    Raises:
        DeliveryAttemptError: the transport failed; always retryable (an endpoint
            that is down, a broker that is away), until the delivery expires.
    """
    from osemn.lineage.emit import not_delivered

    try:
        # Transports serialize with Serde.to_json, which takes the event as a dict too.
        sink.client.transport.emit(cast(Any, json.loads(document)))
    except Exception as exc:  # each transport raises its own errors
        raise DeliveryAttemptError(
            f"OpenLineage event {not_delivered(sink.client, exc)}. It stays in the outbox; "
            "check the OpenLineage transport configuration and that its endpoint is up.",
            receiver=OPENLINEAGE_RECEIVER,
            retryable=True,
        ) from exc


def plan(config: ReceiverConfig, notification: Notification) -> tuple[Delivery, ...]:
    """The deliveries ``notification`` expands into for a receiver of type ``config``."""
    if isinstance(config, AlertmanagerReceiver):
        return tuple(
            Delivery(key=_derived_key(notification.key, url), target=url, notification=notification)
            for url in config.all_urls
        )
    if isinstance(config, PagerDutyReceiver):
        return tuple(
            Delivery(
                key=_derived_key(notification.key, alert.fingerprint),
                target=alert.fingerprint,
                notification=dataclasses.replace(notification, alerts=(alert,)),
            )
            for alert in notification.alerts
        )
    return (Delivery(key=notification.key, target="", notification=notification),)


def endpoint(config: ReceiverConfig | OpenLineageSink, target: str) -> str:
    """Where a delivery goes: deliveries sharing one fail together when it is down."""
    if isinstance(config, OpenLineageSink):
        return OPENLINEAGE_RECEIVER
    if isinstance(config, AlertmanagerReceiver):
        return target
    if isinstance(config, FileReceiver):
        return config.path
    return config.url


def render(config: ReceiverConfig, delivery: Delivery) -> HttpRequest:
    """The request for ``delivery`` to an HTTP receiver.

    Raises:
        TypeError: ``config`` is a file receiver (see ``render_file_line``).
    """
    notification = delivery.notification
    if isinstance(config, WebhookReceiver):
        return render_webhook(config, notification, key=delivery.key)
    if isinstance(config, AlertmanagerReceiver):
        return render_alertmanager(config, notification, url=delivery.target, key=delivery.key)
    if isinstance(config, SlackReceiver):
        return render_slack(config, notification, key=delivery.key)
    if isinstance(config, PagerDutyReceiver):
        (alert,) = notification.alerts
        return render_pagerduty(
            config, alert, key=delivery.key, external_url=notification.external_url
        )
    raise TypeError(f"a {config.type} receiver is not sent over HTTP")


def sign(body: bytes, secret: str) -> str:
    """The ``X-Osemn-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is the signature of exactly ``body`` with ``secret``.

    For receivers written in Python: pass the raw request body (before any JSON
    parsing) and the ``X-Osemn-Signature`` header. The comparison takes the same
    time however much of the signature matches.
    """
    if header is None:
        return False
    return hmac.compare_digest(sign(body, secret).encode("ascii"), header.encode("utf-8"))


def render_webhook(config: WebhookReceiver, notification: Notification, *, key: str) -> HttpRequest:
    """Alertmanager's webhook document (version 4), signed with the receiver's secret."""
    body = _json(notification.to_webhook(max_alerts=config.max_alerts))
    headers = {**_headers(key), SIGNATURE_HEADER: sign(body, config.secret)}
    return HttpRequest(url=config.url, body=body, headers=headers)


def render_alertmanager(
    config: AlertmanagerReceiver, notification: Notification, *, url: str, key: str
) -> HttpRequest:
    """The notification's alerts as Alertmanager's ``postableAlerts``, for the replica at ``url``.

    A firing alert ends at ``created_at + 4 * resend_interval``, as Prometheus
    sets it, so Alertmanager resolves it by itself if osemn stops re-sending.
    """
    expires = notification.created_at + 4 * config.resend_interval
    alerts = []
    for alert in notification.alerts:
        item: dict[str, Any] = {
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "startsAt": format_time(alert.starts_at),
            "endsAt": format_time(alert.ends_at if alert.status == "resolved" else expires),
        }
        if alert.generator_url:  # the API wants a URI here; an empty string is not one
            item["generatorURL"] = alert.generator_url
        alerts.append(item)
    return HttpRequest(
        url=f"{url.rstrip('/')}/api/v2/alerts", body=_json(alerts), headers=_headers(key)
    )


def render_slack(config: SlackReceiver, notification: Notification, *, key: str) -> HttpRequest:
    """An incoming-webhook message: a header, a section per alert (at most ``SLACK_MAX_ALERTS``)."""
    status = notification.status.upper()
    group = " ".join(notification.group_labels.values()) or notification.group_key
    title = f"[{status}:{len(notification.alerts)}] {group}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _SLACK_HEADER_CHARS)}}
    ]
    shown = notification.alerts[:SLACK_MAX_ALERTS]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_alert(a)}} for a in shown
    ]
    context = ["osemn"]
    if len(notification.alerts) > len(shown):
        context.append(f"{len(notification.alerts) - len(shown)} more alerts not shown")
    if notification.external_url:
        context.append(_slack_link(notification.external_url, "status page"))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    first = notification.alerts[0] if notification.alerts else None
    summary = first.annotations.get("summary", "") if first else ""
    doc: dict[str, Any] = {"text": f"{title}: {summary}" if summary else title, "blocks": blocks}
    if config.channel:
        doc["channel"] = config.channel
    return HttpRequest(url=config.url, body=_json(doc), headers=_headers(key))


def render_pagerduty(
    config: PagerDutyReceiver, alert: Alert, *, key: str, external_url: str = ""
) -> HttpRequest:
    """An Events API v2 event: ``trigger`` while firing, ``resolve`` once resolved."""
    labels, annotations = alert.labels, alert.annotations
    firing = alert.status == "firing"
    summary = annotations.get("summary") or f"{alert.name} {_label_text(labels)}".strip()
    payload: dict[str, Any] = {
        "summary": _cut(summary, _PAGERDUTY_SUMMARY_CHARS),
        "source": _host(external_url) or "osemn",
        "severity": _PAGERDUTY_SEVERITY.get(labels.get("severity", ""), "info"),
        "timestamp": format_time(
            alert.starts_at if firing or alert.ends_at is None else alert.ends_at
        ),
        "class": alert.name,
        "custom_details": {"labels": dict(labels), "annotations": dict(annotations)},
    }
    if "dataset" in labels:
        payload["component"] = labels["dataset"]
    if "slo" in labels:
        payload["group"] = labels["slo"]
    links = [
        {"href": href, "text": text}
        for href, text in (
            (annotations.get("runbook_url"), "Runbook"),
            (annotations.get("dashboard_url"), "Dashboard"),
            (alert.generator_url, "osemn"),
        )
        if href
    ]
    doc = {
        "routing_key": config.routing_key,
        "event_action": "trigger" if firing else "resolve",
        "dedup_key": alert.fingerprint,
        "payload": payload,
        "links": links,
        "client": "osemn",
    }
    if external_url:
        doc["client_url"] = external_url
    return HttpRequest(url=config.url, body=_json(doc), headers=_headers(key))


def render_file_line(notification: Notification, *, key: str) -> bytes:
    """The line the file receiver appends: the key and receiver first, then the webhook document."""
    doc = {"idempotency_key": key, "receiver": notification.receiver, **notification.to_webhook()}
    return json.dumps(doc).encode("utf-8") + b"\n"


def send(client: httpx.Client, config: ReceiverConfig, delivery: Delivery) -> None:
    """Make one attempt at ``delivery``.

    Raises:
        DeliveryAttemptError: the attempt failed; ``retryable`` says whether to try again.
    """
    receiver = delivery.notification.receiver
    if isinstance(config, FileReceiver):
        line = render_file_line(delivery.notification, key=delivery.key)
        _append_once(Path(config.path), line, key=delivery.key, receiver=receiver)
        return
    request = render(config, delivery)
    timeout = config.timeout.total_seconds()
    with map_httpx_errors(
        receiver=receiver, url=request.url, timeout=timeout, secrets=_secrets(config)
    ):
        response = client.post(
            request.url,
            content=request.body,
            headers=dict(request.headers),
            timeout=timeout,
            follow_redirects=False,
        )
        response.raise_for_status()


def _append_once(path: Path, line: bytes, *, key: str, receiver: str) -> None:
    """Append ``line`` unless a complete line with ``key`` ends the file already.

    A retry after a crash between the write and the outbox's mark finds its own
    line among the last ones (deliveries to one receiver go one at a time), so
    the tail is enough. A torn last line (crash mid-write) is left as is and the
    new line starts after a newline, so every complete line stays valid JSON.
    """
    prefix = json.dumps({"idempotency_key": key})[:-1].encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+b") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - len(line) - _FILE_TAIL_BYTES))
            tail = file.read()
            if any(done.startswith(prefix) for done in tail.split(b"\n")[:-1]):
                return
            file.write(line if not tail or tail.endswith(b"\n") else b"\n" + line)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        raise DeliveryAttemptError(
            f"receiver {receiver!r}: cannot append to {str(path)!r}: {exc.strerror}; it will "
            "be retried. Check that the path is writable and the disk is not full.",
            receiver=receiver,
            retryable=True,
        ) from None


def _derived_key(key: str, target: str) -> str:
    return hashlib.sha256(f"{key}\x1f{target}".encode()).hexdigest()[:32]


def _headers(key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": f"osemn/{__version__}",
        "Idempotency-Key": key,
    }


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _secrets(config: ReceiverConfig) -> Sequence[str]:
    if isinstance(config, WebhookReceiver):
        return (config.secret,)
    if isinstance(config, PagerDutyReceiver):
        return (config.routing_key,)
    return ()


def _slack_alert(alert: Alert) -> str:
    labels, annotations = alert.labels, alert.annotations
    icon = ":fire:" if alert.status == "firing" else ":white_check_mark:"
    title = annotations.get("summary") or alert.name
    lines = [f"{icon} *{_escape(title)}*"]
    facts = [
        f"*{name}:* `{_escape(labels[key])}`"
        for name, key in (("Severity", "severity"), ("SLO", "slo"), ("Dataset", "dataset"))
        if labels.get(key)
    ]
    if facts:
        lines.append("   ".join(facts))
    links = [
        _slack_link(href, text)
        for href, text in (
            (annotations.get("runbook_url"), "Runbook"),
            (annotations.get("dashboard_url"), "Dashboard"),
        )
        if href
    ]
    if links:
        lines.append(" · ".join(links))
    return _cut("\n".join(lines), _SLACK_SECTION_CHARS)


def _slack_link(url: str, text: str) -> str:
    return f"<{_escape(url)}|{_escape(text)}>"


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label_text(labels: Mapping[str, str]) -> str:
    shown = {k: v for k, v in labels.items() if k != "alertname"}
    return "(" + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) + ")" if shown else ""


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host if url else ""
    except httpx.InvalidURL:
        return ""
