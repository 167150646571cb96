"""Alerts to notifications: Alertmanager's routing, grouping and timers, in the agent.

The burn-rate evaluator hands ``Dispatcher.update`` its current view of the
alerts; ``Dispatcher.flush`` turns what is due into ``Notification``s for the
outbox. Routing and grouping follow Alertmanager
(https://prometheus.io/docs/alerting/latest/configuration/#route), so a team
that moves from the agent's receivers to its own Alertmanager sees the same
notifications:

- the first route whose ``match`` equals the alert's labels wins, and with
  ``continue`` the routes after it are tried too;
- alerts are grouped per route by the values of ``group_by``; a new group waits
  ``group_wait``, then ticks every ``group_interval``; at a tick the group is sent
  when a firing alert is new to the receiver or an alert it was told about
  resolved, else when ``repeat_interval`` has passed since the last send
  (Alertmanager's ``DedupStage.needsUpdate`` in notify/notify.go);
- resolved alerts go out once, in their group's notification, and are dropped.

Receivers of type ``alertmanager`` skip grouping, since Alertmanager groups
itself: they get every firing alert whenever one changes state and otherwise
every ``resend_interval`` (before Alertmanager's ``resolve_timeout`` ends them),
and resolved alerts for ``resolved_resend`` (Prometheus's notifier does the same,
so a replica that missed a resolve still learns it).

``snapshot``/``restore`` carry the timers and what each receiver was told across
a restart, so a restarted agent neither re-sends a notification nor forgets a
resolve that was due.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from osemn._clock import utcnow
from osemn._slo_config import AlertingConfig, AlertmanagerReceiver, RouteConfig
from osemn.errors import ConfigError, StateError
from osemn.exporters.notification import Notification
from osemn.rules.alerts import Alert, AlertState

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

_SNAPSHOT_VERSION = 1
# The group key of what goes straight to an Alertmanager: everything, ungrouped.
_DIRECT_KEY = "{}:{}"
# Where an alert goes: (route id, group key) for a group, ("", receiver) for an
# Alertmanager (route ids are never empty).
_Dest = tuple[str, str]
_FIRING = AlertState.FIRING
_RESOLVED = AlertState.RESOLVED


def _label_set(labels: Mapping[str, str], separator: str) -> str:
    # Go's %q quoting, as Alertmanager prints label sets and matchers.
    pairs = (f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels))
    return "{" + separator.join(pairs) + "}"


@dataclass(frozen=True)
class _Route:
    """A route as configured, with Alertmanager's ``Key()`` and ``ID()`` for it.

    The key (``{}`` is the root) is what group keys start with; two sibling
    routes with the same ``match`` share it, so their groups are told apart by
    the id, which adds the route's position (dispatch/route.go).
    """

    key: str
    id: str
    config: RouteConfig

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.config.match.items())

    def group(self, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The group key and group labels of an alert; absent ``group_by`` labels are left out."""
        by = self.config.group_by
        chosen = dict(labels) if "..." in by else {k: labels[k] for k in by if k in labels}
        return f"{self.key}:{_label_set(chosen, ', ')}", chosen


@dataclass
class _Group:
    """One aggregation group: its alerts, its timer, and what its receiver was told."""

    route: _Route
    key: str
    labels: dict[str, str]
    next_flush: datetime
    alerts: dict[str, Alert] = field(default_factory=dict)
    notified: frozenset[str] = frozenset()  # fingerprints last sent as firing
    last_sent: datetime | None = None

    def due(self, now: datetime) -> tuple[Alert, ...] | None:
        """The alerts to send at this tick, or None when the receiver knows it all."""
        firing = {fp for fp, a in self.alerts.items() if a.state is _FIRING}
        # A resolve is news only to a receiver that was told the alert fired:
        # one that fired and resolved between two ticks is never sent.
        told = {fp for fp, a in self.alerts.items() if a.state is _RESOLVED and fp in self.notified}
        repeat = (
            self.last_sent is not None and now >= self.last_sent + self.route.config.repeat_interval
        )
        if not firing <= self.notified or told or (firing and repeat):
            return _ordered(self.alerts[fp] for fp in firing | told)
        return None

    def advance(self, now: datetime, sent: tuple[Alert, ...] | None) -> None:
        if sent is not None:
            self.notified = frozenset(a.fingerprint for a in sent if a.state is _FIRING)
            self.last_sent = now
        self.alerts = {fp: a for fp, a in self.alerts.items() if a.state is _FIRING}
        # Ticks stay on the grid group_wait started, so a flush loop that runs a
        # little late does not drift; after a longer pause (a restart) it restarts.
        following = self.next_flush + self.route.config.group_interval
        self.next_flush = following if following > now else now + self.route.config.group_interval


@dataclass
class _Direct:
    """The alerts routed to one ``alertmanager`` receiver, sent ungrouped."""

    receiver: str
    config: AlertmanagerReceiver
    alerts: dict[str, Alert] = field(default_factory=dict)
    resolved_at: dict[str, datetime] = field(default_factory=dict)
    changed: bool = False
    last_sent: datetime | None = None

    def due(self, now: datetime) -> tuple[Alert, ...] | None:
        """The alerts to send now, after forgetting resolves older than ``resolved_resend``."""
        for fp, at in list(self.resolved_at.items()):
            # Every resolve sets ``changed`` and every send clears it: while it is
            # set a resolve may be unsent, so a stalled flush loop cannot lose one.
            if not self.changed and now > at + self.config.resolved_resend:
                del self.alerts[fp], self.resolved_at[fp]
        if not self.alerts:
            self.changed = False
            return None
        resend = self.last_sent is None or now >= self.last_sent + self.config.resend_interval
        return _ordered(self.alerts.values()) if self.changed or resend else None


def _ordered(alerts: Iterable[Alert]) -> tuple[Alert, ...]:
    return tuple(sorted(alerts, key=lambda a: sorted(a.labels.items())))


class Dispatcher:
    """Routes and groups alerts, and enqueues a notification when a group's timer is due.

    Safe to share between the evaluator's thread and the delivery loop.

    Args:
        alerting: the ``alerting`` section; with no ``routes`` and exactly one
            receiver, every alert goes to that receiver.
        enqueue: stores one notification durably (the outbox); when it raises, the
            notification's group is left as it was and is tried at the next flush.
        clock: aware-UTC wall clock; ``created_at`` of notifications and all timers.

    Raises:
        ConfigError: a route names a receiver that is not defined.
    """

    def __init__(
        self,
        alerting: AlertingConfig,
        enqueue: Callable[[Notification], None],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        for i, route in enumerate(alerting.routes):
            if route.receiver not in alerting.receivers:
                raise ConfigError(
                    f"unknown receiver {route.receiver!r}; defined receivers: "
                    f"{', '.join(map(repr, alerting.receivers)) or 'none'}. "
                    "Define it under alerting.receivers or fix the route.",
                    key=f"alerting.routes.{i}.receiver",
                )
        self._receivers = tuple(alerting.receivers)
        self._external_url = alerting.external_url or ""
        self._enqueue = enqueue
        self._clock = clock
        self._lock = threading.Lock()
        if alerting.routes:
            keys = ["{}/" + _label_set(r.match, ",") for r in alerting.routes]
            self._routes = tuple(
                _Route(key, f"{key}/{i}", r)
                for i, (key, r) in enumerate(zip(keys, alerting.routes, strict=True))
            )
        elif len(alerting.receivers) == 1:
            self._routes = (_Route("{}", "{}", RouteConfig(receiver=self._receivers[0])),)
        else:
            self._routes = ()
        self._groups: dict[_Dest, _Group] = {}
        self._direct = {
            name: _Direct(name, r)
            for name, r in alerting.receivers.items()
            if isinstance(r, AlertmanagerReceiver)
        }
        self._unrouted: set[str] = set()

    def update(self, alerts: Sequence[Alert]) -> None:
        """Take the evaluator's current view of the alerts.

        ``alerts`` holds every alert that is pending or firing now, and those
        resolved since the last update. An alert that was firing and is missing
        (or pending again) is taken as resolved now: a resolve is never lost
        because the evaluator forgot an alert, e.g. after a restart or a config
        change that removed its SLO. Pending alerts are never sent.
        """
        with self._lock:
            now = self._clock()
            view = {a.fingerprint: a for a in alerts if a.state is not AlertState.PENDING}
            routes = {fp: self._matching(a.labels) for fp, a in view.items()}
            dest = {fp: {self._destination(r, view[fp]) for r in rs} for fp, rs in routes.items()}
            self._forget(view, dest, now)
            for fp, alert in view.items():
                for route in routes[fp]:
                    direct = self._direct.get(route.config.receiver)
                    if direct is not None:
                        self._note_direct(direct, alert, now)
                    else:
                        self._note_grouped(route, alert, now)
            self._log_unrouted(view, dest)

    def flush(self) -> int:
        """Enqueue every notification whose timer is due now; returns how many were enqueued.

        Raises:
            Exception: whatever ``enqueue`` raises; the groups not yet handled stay due.
        """
        with self._lock:
            now = self._clock()
            count = 0
            for key in sorted(self._groups):
                group = self._groups[key]
                if now < group.next_flush:
                    continue
                alerts = group.due(now)
                if alerts is not None:
                    self._send(group.route.config.receiver, group.key, group.labels, alerts, now)
                    count += 1
                group.advance(now, alerts)
                if not group.alerts:
                    del self._groups[key]
            for name in sorted(self._direct):
                direct = self._direct[name]
                alerts = direct.due(now)
                if alerts is not None:
                    self._send(name, _DIRECT_KEY, {}, alerts, now)
                    count += 1
                    direct.last_sent, direct.changed = now, False
            return count

    def routed(self) -> dict[str, int]:
        """Firing alerts per receiver now (every receiver, 0 when it has none)."""
        with self._lock:
            counts = dict.fromkeys(self._receivers, 0)
            for group in self._groups.values():
                counts[group.route.config.receiver] += sum(
                    a.state is _FIRING for a in group.alerts.values()
                )
            for name, direct in self._direct.items():
                counts[name] += sum(a.state is _FIRING for a in direct.alerts.values())
            return counts

    def unrouted(self) -> int:
        """Firing alerts now that no route matches (each is logged once)."""
        with self._lock:
            return len(self._unrouted)

    def snapshot(self) -> str:
        """The groups, timers and what each receiver was told, as JSON for ``restore``."""
        with self._lock:
            groups = [
                {
                    "receiver": g.route.config.receiver,
                    "route": g.route.id,
                    "key": g.key,
                    "labels": g.labels,
                    "next_flush": g.next_flush.isoformat(),
                    "last_sent": _iso(g.last_sent),
                    "notified": sorted(g.notified),
                    "alerts": [a.to_json() for a in _ordered(g.alerts.values())],
                }
                for _, g in sorted(self._groups.items())
            ]
            direct = [
                {
                    "receiver": name,
                    "last_sent": _iso(d.last_sent),
                    "changed": d.changed,
                    "alerts": [
                        {
                            "alert": a.to_json(),
                            "resolved_at": _iso(d.resolved_at.get(a.fingerprint)),
                        }
                        for a in _ordered(d.alerts.values())
                    ],
                }
                for name, d in sorted(self._direct.items())
                if d.alerts
            ]
            doc = {"version": _SNAPSHOT_VERSION, "groups": groups, "alertmanager": direct}
            return json.dumps(doc, sort_keys=True)

    def restore(self, text: str) -> None:
        """Replace the state with a ``snapshot``; call it before the first ``update``.

        Groups whose route or receiver is gone from the configuration are dropped
        (and logged): their receiver is no longer told anything.

        Raises:
            StateError: the text is not a snapshot, or one of a newer osemn.
        """
        try:
            doc = json.loads(text)
            version = doc["version"]
            if not isinstance(version, int) or version > _SNAPSHOT_VERSION:
                raise StateError(
                    f"the dispatcher snapshot has version {version!r}, this osemn reads up to "
                    f"{_SNAPSHOT_VERSION}. Upgrade osemn, or discard the snapshot (open alerts "
                    "are then notified again once)."
                )
            groups, direct = (
                self._load_groups(doc["groups"]),
                self._load_direct(doc["alertmanager"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(
                f"the dispatcher snapshot cannot be read ({type(exc).__name__}: {exc}). Discard "
                "it to start over (open alerts are then notified again once)."
            ) from exc
        with self._lock:
            self._groups = groups
            self._direct = {
                name: direct.get(name, _Direct(name, d.config)) for name, d in self._direct.items()
            }

    def _load_groups(self, docs: list[dict[str, Any]]) -> dict[_Dest, _Group]:
        routes = {(r.config.receiver, r.id): r for r in self._routes}
        groups: dict[_Dest, _Group] = {}
        for doc in docs:
            route = routes.get((doc["receiver"], doc["route"]))
            if route is None or route.config.receiver in self._direct:
                logger.warning(
                    "dropping alert group %s of receiver %r restored from the last run: "
                    "no route sends it there any more",
                    doc["key"],
                    doc["receiver"],
                )
                continue
            alerts = (Alert.from_json(a) for a in doc["alerts"])
            groups[(route.id, doc["key"])] = _Group(
                route=route,
                key=doc["key"],
                labels={str(k): str(v) for k, v in doc["labels"].items()},
                next_flush=datetime.fromisoformat(doc["next_flush"]),
                alerts={a.fingerprint: a for a in alerts},
                notified=frozenset(map(str, doc["notified"])),
                last_sent=_from_iso(doc["last_sent"]),
            )
        return groups

    def _load_direct(self, docs: list[dict[str, Any]]) -> dict[str, _Direct]:
        loaded = {}
        for doc in docs:
            current = self._direct.get(doc["receiver"])
            if current is None:
                logger.warning(
                    "dropping the alerts for Alertmanager receiver %r restored from the last "
                    "run: it is no longer an alertmanager receiver",
                    doc["receiver"],
                )
                continue
            direct = _Direct(
                current.receiver,
                current.config,
                changed=bool(doc["changed"]),
                last_sent=_from_iso(doc["last_sent"]),
            )
            for item in doc["alerts"]:
                alert = Alert.from_json(item["alert"])
                direct.alerts[alert.fingerprint] = alert
                at = _from_iso(item["resolved_at"])
                if at is not None:
                    direct.resolved_at[alert.fingerprint] = at
            loaded[direct.receiver] = direct
        return loaded

    def _matching(self, labels: Mapping[str, str]) -> list[_Route]:
        """The routes an alert goes to: up to the first match without ``continue``."""
        matched = []
        for route in self._routes:
            if route.matches(labels):
                matched.append(route)
                if not route.config.continue_:
                    break
        return matched

    def _destination(self, route: _Route, alert: Alert) -> _Dest:
        receiver = route.config.receiver
        return (
            ("", receiver) if receiver in self._direct else (route.id, route.group(alert.labels)[0])
        )

    def _forget(
        self, view: Mapping[str, Alert], dest: Mapping[str, set[_Dest]], now: datetime
    ) -> None:
        """Resolve the firing alerts missing from the view; drop those routed elsewhere now."""
        for key, group in list(self._groups.items()):
            for fp, alert in list(group.alerts.items()):
                if fp in view:
                    if key not in dest[fp]:
                        del group.alerts[fp]
                elif alert.state is _FIRING:
                    group.alerts[fp] = dataclasses.replace(alert, state=_RESOLVED, ends_at=now)
            if not group.alerts:
                del self._groups[key]
        for name, direct in self._direct.items():
            for fp, alert in list(direct.alerts.items()):
                if fp in view:
                    if ("", name) not in dest[fp]:
                        del direct.alerts[fp]
                        direct.resolved_at.pop(fp, None)
                elif alert.state is _FIRING:
                    direct.alerts[fp] = dataclasses.replace(alert, state=_RESOLVED, ends_at=now)
                    direct.resolved_at[fp] = now
                    direct.changed = True

    def _note_grouped(self, route: _Route, alert: Alert, now: datetime) -> None:
        fp = alert.fingerprint
        key, labels = route.group(alert.labels)
        group = self._groups.get((route.id, key))
        if alert.state is _RESOLVED:
            # Only an alert the group holds can resolve; any other never fired here.
            if group is not None and fp in group.alerts:
                group.alerts[fp] = _with_end(alert, now)
            return
        if group is None:
            group = self._groups[(route.id, key)] = _Group(
                route=route, key=key, labels=labels, next_flush=now + route.config.group_wait
            )
        group.alerts[fp] = alert

    @staticmethod
    def _note_direct(direct: _Direct, alert: Alert, now: datetime) -> None:
        fp = alert.fingerprint
        before = direct.alerts.get(fp)
        if alert.state is _RESOLVED:
            if before is not None and before.state is _FIRING:
                direct.alerts[fp] = _with_end(alert, now)
                direct.resolved_at[fp] = now
                direct.changed = True
            return
        if before is None or before.state is not _FIRING:
            direct.resolved_at.pop(fp, None)
            direct.changed = True
        direct.alerts[fp] = alert

    def _log_unrouted(self, view: Mapping[str, Alert], dest: Mapping[str, set[_Dest]]) -> None:
        unrouted = {fp for fp, a in view.items() if a.state is _FIRING and not dest[fp]}
        for fp in sorted(unrouted - self._unrouted):
            # Labels only: annotations may carry URLs with tokens.
            logger.warning(
                "alert %s matches no route and is not sent; add a route without `match:` "
                "as the last one to catch every alert",
                _label_set(view[fp].labels, ", "),
            )
        self._unrouted = unrouted

    def _send(
        self,
        receiver: str,
        key: str,
        labels: Mapping[str, str],
        alerts: tuple[Alert, ...],
        now: datetime,
    ) -> None:
        self._enqueue(
            Notification(
                receiver=receiver,
                group_key=key,
                group_labels=dict(labels),
                alerts=alerts,
                created_at=now,
                external_url=self._external_url,
            )
        )


def _with_end(alert: Alert, now: datetime) -> Alert:
    return alert if alert.ends_at is not None else dataclasses.replace(alert, ends_at=now)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
