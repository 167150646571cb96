"""Lineage-aware alerting: labels, symptoms held while their root fires, re-checked
when it resolves, and staleness blamed on parents that have not updated."""

from __future__ import annotations

from datetime import timedelta

from osemn.lineage.graph import Edge, EdgeKind, LineageGraph, Node, NodeKind
from osemn.lineage.incidents import IncidentTriage, failing_datasets
from osemn.results import Status
from osemn.rules.alerts import Alert, AlertState
from tests.lineage.helpers import NOW, freshness_result


def _graph() -> LineageGraph:
    # raw (table) -> staging (a view that is no dataset) -> clean -> report
    def node(key: str, dataset: str | None) -> Node:
        return Node(key=key, kind=NodeKind.VIEW, source="w", schema="s", name=key, dataset=dataset)

    nodes = {
        k: node(k, d)
        for k, d in [
            ("w/s.raw", "raw"),
            ("w/s.staging", None),
            ("w/s.clean", "clean"),
            ("w/s.report", "report"),
        ]
    }
    pairs = [("w/s.raw", "w/s.staging"), ("w/s.staging", "w/s.clean"), ("w/s.clean", "w/s.report")]
    return LineageGraph(
        nodes=nodes, edges=[Edge(upstream=u, downstream=d, kind=EdgeKind.VIEW) for u, d in pairs]
    )


def _alert(dataset: str, state: AlertState = AlertState.FIRING) -> Alert:
    return Alert(
        labels={
            "alertname": "OsemnSLOBurnRate",
            "dataset": dataset,
            "slo": f"{dataset}-valid",
            "severity": "page",
        },
        state=state,
        starts_at=NOW,
        ends_at=NOW if state is AlertState.RESOLVED else None,
    )


def _roles(alerts: list[Alert]) -> dict[str, tuple[str, str]]:
    return {a.labels["dataset"]: (a.labels["incident_root"], a.labels["dq_role"]) for a in alerts}


def test_every_alert_is_labelled_and_only_the_root_notified() -> None:
    triage = IncidentTriage().triage(
        [_alert("raw"), _alert("clean"), _alert("report")], graph=_graph(), failing=set()
    )
    assert _roles(triage.alerts) == {
        "raw": ("raw", "root_cause"),
        "clean": ("raw", "downstream_symptom"),
        "report": ("raw", "downstream_symptom"),
    }
    assert [a.labels["dataset"] for a in triage.notify] == ["raw"]
    assert triage.recheck == frozenset()


def test_without_lineage_every_alert_is_its_own_root() -> None:
    triage = IncidentTriage().triage([_alert("raw"), _alert("clean")], graph=None, failing=())
    assert {a.labels["dq_role"] for a in triage.notify} == {"root_cause"}
    assert len(triage.notify) == 2


def test_when_the_root_resolves_held_symptoms_are_rechecked_first() -> None:
    incidents = IncidentTriage()
    graph = _graph()
    incidents.triage(
        [_alert("raw"), _alert("clean"), _alert("report")],
        graph=graph,
        failing={"raw", "clean", "report"},
    )
    # The root resolves; the symptoms' burn-rate alerts still fire (their windows lag).
    after = [_alert("raw", AlertState.RESOLVED), _alert("clean"), _alert("report")]
    first = incidents.triage(after, graph=graph, failing={"clean", "report"})
    assert first.recheck == {"clean", "report"}
    assert [a.labels["dataset"] for a in first.notify] == ["raw"]  # the root's resolve
    # Both are re-run: clean recovered with its root, report still fails on its own.
    second = incidents.triage(after[1:], graph=graph, failing={"report"}, rechecked=first.recheck)
    assert _roles(second.notify) == {"report": ("report", "root_cause")}
    assert _roles(second.alerts)["clean"] == ("raw", "downstream_symptom")
    # clean's alert then resolves: it was never notified, so neither is its resolve.
    third = incidents.triage(
        [_alert("clean", AlertState.RESOLVED), _alert("report")], graph=graph, failing={"report"}
    )
    assert [a.labels["dataset"] for a in third.notify] == ["report"]
    assert third.recheck == frozenset()


def test_a_stale_dataset_whose_parent_did_not_update_is_a_symptom() -> None:
    graph = _graph()
    old = NOW - timedelta(hours=2)
    # raw has no freshness bound of its own that fails, but nothing newer than clean's rows.
    latest = {
        "raw": [freshness_result("raw", Status.PASS, old)],
        "clean": [freshness_result("clean", Status.FAIL, old)],
    }
    failing = failing_datasets(latest, graph)
    assert failing == {"raw", "clean"}
    triage = IncidentTriage().triage([_alert("clean")], graph=graph, failing=failing)
    assert _roles(triage.alerts) == {"clean": ("raw", "downstream_symptom")}
    assert triage.notify == []


def test_a_stale_dataset_whose_parent_has_newer_rows_is_the_root() -> None:
    latest = {
        "raw": [freshness_result("raw", Status.PASS, NOW - timedelta(minutes=1))],
        "clean": [freshness_result("clean", Status.FAIL, NOW - timedelta(hours=2))],
    }
    failing = failing_datasets(latest, _graph())
    assert failing == {"clean"}
    triage = IncidentTriage().triage([_alert("clean")], graph=_graph(), failing=failing)
    assert _roles(triage.notify) == {"clean": ("clean", "root_cause")}
