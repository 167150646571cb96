"""The lineage graph on its own: roots of incidents, cycles, coverage, speed."""

from __future__ import annotations

import itertools
import time

from osemn.lineage.graph import ColumnEdge, Edge, EdgeKind, LineageGraph, Node, NodeKind


def _node(key: str, *, dataset: str | None = None) -> Node:
    kind = NodeKind.VIEW if key.startswith("v") else NodeKind.TABLE
    return Node(key=key, kind=kind, source="w", schema="s", name=key, dataset=dataset)


def _graph(pairs: list[tuple[str, str]], **kwargs: object) -> LineageGraph:
    keys = dict.fromkeys(k for pair in pairs for k in pair)
    return LineageGraph(
        nodes={k: _node(k) for k in keys},
        edges=[Edge(upstream=u, downstream=d, kind=EdgeKind.VIEW) for u, d in pairs],
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_most_upstream_failing_dataset_is_the_root() -> None:
    graph = _graph([("t", "v1"), ("v1", "v2"), ("v2", "v3"), ("other", "v3")])
    roots = graph.incident_roots(["v3", "v1", "t"])
    assert roots == {"v3": "t", "v1": "t", "t": "t"}
    # A passing dataset in between does not cut the incident.
    assert graph.incident_roots(["v3", "t"]) == {"v3": "t", "t": "t"}
    # Unrelated failures are each their own root; unknown names too.
    assert graph.incident_roots(["v1", "other", "nowhere"]) == {
        "v1": "v1",
        "other": "other",
        "nowhere": "nowhere",
    }


def test_a_cycle_is_reported_and_not_followed_forever() -> None:
    graph = _graph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    assert graph.cycles == [["a", "b", "c"]]
    assert any("lineage cycle" in p.message for p in graph.problems)
    assert sorted(graph.ancestors("d")) == ["a", "b", "c"]
    roots = graph.incident_roots(["a", "b", "c", "d"])
    assert roots["d"] in ("a", "b", "c")
    assert set(roots) == {"a", "b", "c", "d"}


def test_coverage_counts_known_upstreams_and_declared_roots() -> None:
    nodes = {
        "t": _node("t", dataset="raw"),
        "v": _node("v", dataset="clean"),
        "u": _node("u", dataset="orphan"),
    }
    graph = LineageGraph(
        nodes=nodes, edges=[Edge(upstream="t", downstream="v", kind=EdgeKind.VIEW)]
    )
    datasets = {"raw": "w", "clean": "w", "orphan": "w", "missing": "x"}
    assert graph.coverage(datasets) == {"w": 1 / 3, "x": 0.0}
    rooted = LineageGraph(
        nodes=nodes,
        edges=[Edge(upstream="t", downstream="v", kind=EdgeKind.VIEW)],
        roots=frozenset({"t"}),
    )
    assert rooted.coverage(datasets)["w"] == 2 / 3


def test_nested_views_expand_to_table_columns() -> None:
    graph = _graph(
        [("t", "v1"), ("v1", "v2")],
        columns=[
            ColumnEdge(upstream="t", upstream_column="a", downstream="v1", column="x"),
            ColumnEdge(upstream="t", upstream_column="b", downstream="v1", column="x"),
            ColumnEdge(upstream="v1", upstream_column="x", downstream="v2", column="y"),
            ColumnEdge(
                upstream="t", upstream_column="c", downstream="v2", column="", indirect=True
            ),
        ],
    )
    assert graph.column_origins("v2", "y") == [("t", "a"), ("t", "b")]


def test_json_round_trip_keeps_everything() -> None:
    graph = _graph(
        [("t", "v1"), ("v1", "v2")],
        columns=[ColumnEdge(upstream="t", upstream_column="a", downstream="v1", column="x")],
        roots=frozenset({"t"}),
    )
    again = LineageGraph.from_json(graph.to_json())
    assert again.to_json() == graph.to_json()
    assert '"t" -> "v1"' in graph.to_dot()


def test_root_of_the_bottom_of_a_10_deep_chain_in_3000_nodes_under_10ms() -> None:
    pairs: list[tuple[str, str]] = []
    for chain in range(300):  # 300 chains of 10: 3,000 nodes
        names = [f"t{chain}"] + [f"v{chain}_{depth}" for depth in range(1, 10)]
        pairs.extend(itertools.pairwise(names))
    graph = _graph(pairs)
    assert len(graph.nodes) == 3000
    failing = ["t7", "v7_3", "v7_9", "v12_9"]
    best = min(_timed(graph, failing) for _ in range(20))
    assert graph.incident_roots(failing) == {
        "t7": "t7", "v7_3": "t7", "v7_9": "t7", "v12_9": "v12_9",
    }  # fmt: skip
    assert best < 0.010, f"root finding took {best * 1000:.2f} ms"


def _timed(graph: LineageGraph, failing: list[str]) -> float:
    started = time.perf_counter()
    graph.incident_roots(failing)
    return time.perf_counter() - started
