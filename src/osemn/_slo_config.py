"""The ``slos`` and ``alerting`` sections of osemn.yaml.

Kept apart from ``config.py`` so that module stays readable; ``config`` re-exports
these models and checks their cross-references (datasets, receivers).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from osemn._units import parse_duration, parse_ratio

__all__ = [
    "OPENLINEAGE_RECEIVER",
    "SLI_KINDS",
    "TIME_SLICED_SLIS",
    "AlertingConfig",
    "AlertmanagerReceiver",
    "FileReceiver",
    "PagerDutyReceiver",
    "ReceiverConfig",
    "RouteConfig",
    "SLOConfig",
    "SlackReceiver",
    "WebhookReceiver",
]

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

OPENLINEAGE_RECEIVER = "openlineage"
"""The outbox's receiver of OpenLineage events: no alert receiver may take its name."""
Ratio = Annotated[float, BeforeValidator(parse_ratio)]

SliKind = Literal[
    "freshness",
    "validity",
    "completeness",
    "volume",
    "checks",
    "drift",
    "accuracy",
    "latency",
    "availability",
]
SLI_KINDS: tuple[str, ...] = SliKind.__args__  # type: ignore[attr-defined]
# One event per evaluation: good when the dataset met its target at that time.
TIME_SLICED_SLIS = frozenset({"freshness", "volume"})

# Prometheus label values may hold anything, but SLO names also become rule and
# file names; keep them to what every consumer (Sloth, OpenSLO, Grafana) accepts.
_SLO_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SLOConfig(_Model):
    """One SLO: an SLI of a dataset, an objective over a rolling window.

    ``availability`` is about a Feast ``source`` (and optionally one of its
    ``feature_view``): each online-store probe is one event, good when answered.

    ``absent_after``: how long the SLI may go without events before the
    ``absent`` alert fires (default: three check intervals, at least 1h).
    ``for_``: how long a burn-rate condition must hold before its alert fires
    (``pending`` until then), as Prometheus's ``for``.
    """

    name: str
    dataset: str | None = None
    model: str | None = None
    source: str | None = None
    feature_view: str | None = None
    sli: SliKind
    objective: Ratio
    window: Duration = timedelta(days=28)
    columns: tuple[str, ...] = ()
    description: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None
    absent_after: Duration | None = None
    for_: Duration = Field(default=timedelta(0), alias="for")
    labels: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SLO_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid SLO name; use lower-case letters, digits and '-' "
                "(at most 63), e.g. orders-fresh"
            )
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(
                f"objective {value:.6g} leaves no usable error budget; use a value strictly "
                "between 0% and 100%, e.g. 99.5%"
            )
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError(
                "an SLO window shorter than 1d cannot hold the 1d and 3d burn windows; "
                "use e.g. 28d or 30d"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {"alertname", "slo", "dataset", "severity", "burnrate_tier", "sli"}
        for key in value:
            if not _LABEL_NAME.match(key) or key.startswith("__"):
                raise ValueError(
                    f"{key!r} is not a Prometheus label name; use [a-zA-Z_][a-zA-Z0-9_]*"
                )
            if key in reserved:
                raise ValueError(f"label {key!r} is set by osemn; choose another name")
        return value

    @model_validator(mode="after")
    def _subject(self) -> SLOConfig:
        if self.sli in ("accuracy", "latency"):
            if self.model is None:
                raise ValueError(f"sli {self.sli} needs `model:` (a model of the models section)")
        elif self.sli == "availability":
            if self.source is None or self.dataset is not None or self.model is not None:
                raise ValueError(
                    "sli availability needs `source:` (a Feast source of the sources section) "
                    "and optionally `feature_view:`, not `dataset:` or `model:`"
                )
        elif self.dataset is None:
            raise ValueError(f"sli {self.sli} needs `dataset:` (a dataset of the datasets section)")
        if self.sli == "completeness" and not self.columns:
            raise ValueError("sli completeness needs `columns:` (the columns whose cells count)")
        if self.columns and self.sli != "completeness":
            raise ValueError("`columns:` only applies to sli completeness")
        if self.sli != "availability" and (self.source or self.feature_view):
            raise ValueError("`source:` and `feature_view:` only apply to sli availability")
        return self

    @property
    def subject(self) -> str:
        """The dataset (or model, feature view or feature store) the SLO is about."""
        return self.dataset or self.model or self.feature_view or self.source or ""

    @property
    def error_budget(self) -> float:
        return 1.0 - self.objective


class _Receiver(_Model):
    timeout: Duration = timedelta(seconds=10)


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(
            f"{value!r} is not an http(s) URL; use e.g. https://hooks.example.com/osemn"
        )
    return value


HttpUrl = Annotated[str, BeforeValidator(lambda v: _http_url(str(v)) if v is not None else v)]


class WebhookReceiver(_Receiver):
    """Alertmanager's webhook JSON (version 4), signed with ``secret`` (HMAC-SHA256)."""

    type: Literal["webhook"]
    url: HttpUrl
    secret: str
    max_alerts: int = Field(default=0, ge=0)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty; set it, e.g. secret: ${HOOK_SECRET}")
        return value


class AlertmanagerReceiver(_Receiver):
    """Alerts POSTed to ``/api/v2/alerts`` of every listed Alertmanager replica."""

    type: Literal["alertmanager"]
    url: HttpUrl | None = None
    urls: tuple[HttpUrl, ...] = ()
    resend_interval: Duration = timedelta(minutes=1)
    resolved_resend: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _some_url(self) -> AlertmanagerReceiver:
        if self.url is None and not self.urls:
            raise ValueError("needs `url:` or `urls:` (every Alertmanager replica)")
        return self

    @property
    def all_urls(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*([self.url] if self.url else []), *self.urls)))


class SlackReceiver(_Receiver):
    """A Slack incoming webhook; the message is built from blocks."""

    type: Literal["slack"]
    url: HttpUrl
    channel: str | None = None


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2: trigger and resolve, ``dedup_key`` = the alert fingerprint."""

    type: Literal["pagerduty"]
    routing_key: str
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"

    @field_validator("routing_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value:
            raise ValueError("is empty; set it, e.g. routing_key: ${PAGERDUTY_ROUTING_KEY}")
        return value


class FileReceiver(_Receiver):
    """Notifications appended as JSON lines (the webhook document) to ``path``."""

    type: Literal["file"]
    path: str


ReceiverConfig = Annotated[
    WebhookReceiver | AlertmanagerReceiver | SlackReceiver | PagerDutyReceiver | FileReceiver,
    Field(discriminator="type"),
]


class RouteConfig(_Model):
    """A route: alerts whose labels equal ``match`` go to ``receiver``; first match wins.

    ``continue``, ``group_by``, ``group_wait``, ``group_interval`` and
    ``repeat_interval`` mean what they mean in Alertmanager: with ``continue``
    a matching alert also goes on to the routes after this one.
    """

    receiver: str
    match: dict[str, str] = {}
    continue_: bool = Field(default=False, alias="continue")
    group_by: tuple[str, ...] = ("alertname", "slo")
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)


class AlertingConfig(_Model):
    """``alerting:``: receivers by name, and routes tried in order.

    ``evaluation_interval`` is how often burn rates are evaluated;
    ``external_url`` is where links in notifications point (the agent's page).
    """

    receivers: dict[str, ReceiverConfig] = {}
    routes: tuple[RouteConfig, ...] = ()
    evaluation_interval: Duration = timedelta(minutes=1)
    external_url: str | None = None

    @field_validator("receivers")
    @classmethod
    def _reserved_name(cls, value: dict[str, ReceiverConfig]) -> dict[str, ReceiverConfig]:
        if OPENLINEAGE_RECEIVER in value:
            raise ValueError(
                f"the receiver name {OPENLINEAGE_RECEIVER!r} is reserved for OpenLineage "
                "events (lineage.openlineage); give this receiver another name"
            )
        return value
