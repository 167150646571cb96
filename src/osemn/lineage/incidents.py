"""Lineage-aware alerting: one incident, one notification.

When a table breaks, every view and model computed from it breaks too, and
each of their SLOs fires. Every alert gets two labels:

- ``incident_root``: the most upstream failing dataset it descends from (itself
  when nothing upstream fails);
- ``dq_role``: ``root_cause`` when that is itself, else ``downstream_symptom``.

The agent notifies root causes and holds symptoms back while their root fires.
When the root resolves, Alertmanager (with the inhibit rule ``osemn rules``
emits) would deliver every symptom at once, though most recover with their
root; the agent instead re-runs the checks of the held symptoms right away and
promotes only those that still fail to root causes of their own. A symptom
that recovers is never notified, not even its resolve.

"Failing" is a dataset with a firing alert or a failing check, and also a
parent that has not updated: when a dataset is stale, a parent whose newest
row is no newer than the dataset's is stale too (the data never arrived
upstream), so the dataset is a symptom of it, not a root.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from osemn.lineage.graph import LineageGraph
from osemn.results import CheckKind, CheckResult, Status
from osemn.rules.alerts import Alert, AlertState

__all__ = ["ROLE_ROOT", "ROLE_SYMPTOM", "IncidentTriage", "Triage", "failing_datasets"]

ROLE_ROOT = "root_cause"
ROLE_SYMPTOM = "downstream_symptom"
_NEWEST = "newest_row_timestamp_seconds"


@dataclass(frozen=True, kw_only=True)
class Triage:
    """One evaluation's alerts sorted by incident.

    ``alerts`` are all of them with the lineage labels (for the API and metrics),
    ``notify`` those that go to the receivers, ``recheck`` the datasets of held
    symptoms whose root resolved, to be checked again before they are judged.
    """

    alerts: list[Alert]
    notify: list[Alert]
    recheck: frozenset[str]


def failing_datasets(
    latest: Mapping[str, Sequence[CheckResult]], graph: LineageGraph | None
) -> set[str]:
    """Datasets whose latest run has a failing check, and the parents they are stale from.

    A dataset whose freshness fails makes each nearest upstream dataset with a
    known newest row failing too when that row is no newer than its own: the
    parent has not updated since the dataset last did. A parent with newer
    rows is fine, and the dataset stays the root (its own pipeline stalled).
    """
    failing = {
        name for name, results in latest.items() if any(r.status is Status.FAIL for r in results)
    }
    if graph is None:
        return failing
    newest = {name: _newest(results) for name, results in latest.items()}
    for name, results in latest.items():
        stale = any(r.kind is CheckKind.FRESHNESS and r.status is Status.FAIL for r in results)
        own = newest.get(name)
        if not stale or own is None:
            continue
        for parent in _parent_datasets(graph, name):
            theirs = newest.get(parent)
            if theirs is not None and theirs <= own:
                failing.add(parent)
    return failing


def _newest(results: Iterable[CheckResult]) -> float | None:
    return next((v for r in results if (v := r.measurement(_NEWEST)) is not None), None)


def _parent_datasets(graph: LineageGraph, name: str) -> list[str]:
    """The nearest upstream nodes that are config datasets, through any that are not."""
    key = graph.key_of(name)
    if key is None:
        return []
    out: list[str] = []
    seen = {key}
    stack = graph.upstream(key)
    while stack:
        up = stack.pop()
        if up in seen:
            continue
        seen.add(up)
        dataset = graph.nodes[up].dataset
        if dataset is not None:
            out.append(dataset)
        else:
            stack.extend(graph.upstream(up))
    return out


class IncidentTriage:
    """Labels alerts by incident and remembers which ones it holds back as symptoms.

    Safe to call from the agent's threads; the held set lives in memory, so after
    a restart a symptom whose root is still failing is held again at once, and
    one whose root resolved meanwhile is re-checked like any other.
    """

    def __init__(self) -> None:
        self._held: dict[str, str] = {}  # fingerprint without lineage labels -> its root
        self._checked: set[str] = set()  # held symptoms re-checked after their root resolved
        self._lock = threading.Lock()

    def triage(
        self,
        alerts: Sequence[Alert],
        *,
        graph: LineageGraph | None,
        failing: Iterable[str],
        rechecked: Iterable[str] = (),
    ) -> Triage:
        """Label ``alerts`` and split what to notify from what to hold.

        Args:
            alerts: the evaluator's alerts (pending, firing, just resolved).
            graph: the lineage graph, or None before the first scan (every
                alert is then its own root).
            failing: datasets failing now (``failing_datasets``).
            rechecked: datasets whose checks were just run again on request
                of the previous ``triage`` (their ``recheck``).
        """
        checks_fail = set(failing)
        done = set(rechecked)
        with self._lock:
            # Held symptoms re-checked and passing recover with their root: their
            # lagging burn-rate alerts must not make them the root of anything.
            recovering = {
                d
                for a in alerts
                if (d := a.labels.get("dataset", "")) not in checks_fail
                and (a.fingerprint in self._checked or d in done)
            }
            bad = checks_fail | {
                d
                for a in alerts
                if a.state is AlertState.FIRING
                and (d := a.labels.get("dataset", ""))
                and d not in recovering
            }
            roots = graph.incident_roots(sorted(bad)) if graph is not None else {}
            out: list[Alert] = []
            notify: list[Alert] = []
            recheck: set[str] = set()
            for alert in alerts:
                dataset = alert.labels.get("dataset", "")
                base = alert.fingerprint
                held = self._held.get(base)
                if alert.state is AlertState.RESOLVED:
                    self._forget(base)
                    if held is not None:  # never notified: its resolve is not news
                        out.append(_labelled(alert, held))
                        continue
                    labelled = _labelled(alert, dataset)
                    out.append(labelled)
                    notify.append(labelled)
                    continue
                if held is not None and held not in bad:
                    # Its root resolved: judge it on checks run after that, not before.
                    if dataset in done:
                        self._checked.add(base)
                    if base not in self._checked:
                        recheck.add(dataset)
                        out.append(_labelled(alert, held))
                        continue
                    if dataset not in checks_fail:
                        out.append(_labelled(alert, held))
                        continue
                    self._forget(base)  # still failing on its own: judged afresh below
                root = roots.get(dataset, dataset)
                if root != dataset:
                    if alert.state is AlertState.FIRING:
                        self._held[base] = root
                    out.append(_labelled(alert, root))
                    continue
                self._forget(base)
                labelled = _labelled(alert, dataset)
                out.append(labelled)
                notify.append(labelled)
        return Triage(alerts=out, notify=notify, recheck=frozenset(recheck))

    def _forget(self, base: str) -> None:
        self._held.pop(base, None)
        self._checked.discard(base)


def _labelled(alert: Alert, root: str) -> Alert:
    dataset = alert.labels.get("dataset", "")
    role = ROLE_ROOT if root == dataset else ROLE_SYMPTOM
    return Alert(
        labels={**alert.labels, "incident_root": root, "dq_role": role},
        annotations=alert.annotations,
        state=alert.state,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        generator_url=alert.generator_url,
    )
