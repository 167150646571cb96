"""The lineage graph: datasets, data-flow edges, foreign keys and column lineage.

A node is anything data lives in or flows through: a table, a view, a
materialized view, a dbt model, an ML model. Data-flow edges say "downstream is
computed from upstream" (a view's query, an ``INSERT ... SELECT`` seen in query
history, a dbt ``depends_on``, a model reading its predictions); foreign keys
are kept apart because a reference is a relationship, not a data flow: a broken
``customers`` table does not make ``orders`` stale.

The graph is built once per scan and then only read, so its adjacency is
precomputed as integer lists: finding the most upstream failing ancestor of a
dataset at the bottom of a 10-deep chain is a breadth-first walk over a few
dozen integers, however large the graph (the < 10 ms target of issue 6).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ColumnEdge",
    "Edge",
    "EdgeKind",
    "ForeignKey",
    "LineageGraph",
    "Node",
    "NodeKind",
    "Problem",
    "merge_edges",
]


class NodeKind(enum.StrEnum):
    """What a node is; the value is what JSON, DOT and the API show."""

    TABLE = "table"
    VIEW = "view"
    MATERIALIZED_VIEW = "materialized_view"
    DBT_MODEL = "dbt_model"
    MODEL = "model"  # an ML model watched by osemn (``models:`` of osemn.yaml)


class EdgeKind(enum.StrEnum):
    """Where a data-flow edge was learned."""

    VIEW = "view"  # the definition of a view or materialized view
    QUERY = "query"  # a statement in the warehouse's query history
    DBT = "dbt"  # depends_on of a dbt manifest node
    MODEL = "model"  # an osemn model and its predictions / labels datasets


@dataclass(frozen=True, kw_only=True)
class Node:
    """A dataset of the graph.

    ``key`` is ``source/schema.name`` (``model/name`` for an ML model);
    ``dataset`` is the name of the osemn.yaml dataset it is, if one is.
    """

    key: str
    kind: NodeKind
    source: str
    schema: str | None
    name: str
    dataset: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The name people know it by: the config dataset's name, else the key."""
        return self.dataset or self.key


@dataclass(frozen=True, kw_only=True)
class Edge:
    """Data flows from ``upstream`` to ``downstream`` (both node keys)."""

    upstream: str
    downstream: str
    kind: EdgeKind
    sql: str | None = None


@dataclass(frozen=True, kw_only=True)
class ForeignKey:
    """``child``'s ``columns`` reference ``parent``'s ``referred`` columns."""

    child: str
    parent: str
    columns: tuple[str, ...]
    referred: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ColumnEdge:
    """Column ``column`` of ``downstream`` reads ``upstream_column`` of ``upstream``.

    ``indirect`` marks a column that only decides which rows appear (a join
    key, a filter, a grouping) rather than a value that is copied or computed.
    """

    upstream: str
    upstream_column: str
    downstream: str
    column: str
    indirect: bool = False


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Something the scan could not use; the rest of the graph is kept."""

    node: str | None
    message: str


@dataclass
class LineageGraph:
    """Nodes and edges with their adjacency precomputed; built once, then read."""

    nodes: dict[str, Node]
    edges: list[Edge]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    columns: list[ColumnEdge] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    roots: frozenset[str] = frozenset()  # node keys declared as roots (lineage.roots)

    def __post_init__(self) -> None:
        self._index = {key: i for i, key in enumerate(self.nodes)}
        self._keys = list(self.nodes)
        self._up: list[list[int]] = [[] for _ in self._keys]
        self._down: list[list[int]] = [[] for _ in self._keys]
        seen: set[tuple[int, int]] = set()
        for edge in self.edges:
            u, d = self._index.get(edge.upstream), self._index.get(edge.downstream)
            if u is None or d is None or (u, d) in seen:
                continue
            seen.add((u, d))
            self._up[d].append(u)
            self._down[u].append(d)
        self._by_dataset = {n.dataset: n.key for n in self.nodes.values() if n.dataset}
        self._column_in: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for c in self.columns:
            if not c.indirect:
                self._column_in.setdefault((c.downstream, c.column), []).append(
                    (c.upstream, c.upstream_column)
                )
        self.cycles = self._find_cycles()
        for cycle in self.cycles:
            self.problems.append(
                Problem(
                    node=cycle[0],
                    message="lineage cycle " + " -> ".join([*cycle, cycle[0]]) + "; each node "
                    "is walked once, so roots found through it may be arbitrary: fix the "
                    "definitions that feed each other",
                )
            )

    # -- lookups -----------------------------------------------------------------

    def key_of(self, name: str) -> str | None:
        """The node key of a config dataset name or of a node key."""
        if name in self.nodes:
            return name
        return self._by_dataset.get(name)

    def upstream(self, key: str) -> list[str]:
        """The direct upstream node keys of ``key``."""
        return [self._keys[i] for i in self._up[self._index[key]]]

    def downstream(self, key: str) -> list[str]:
        """The direct downstream node keys of ``key``."""
        return [self._keys[i] for i in self._down[self._index[key]]]

    def ancestors(self, key: str) -> list[str]:
        """Every node upstream of ``key``, nearest first (cycles walked once)."""
        return [self._keys[i] for i in self._walk(self._index[key], self._up)]

    def column_origins(self, key: str, column: str) -> list[tuple[str, str]]:
        """The table columns a column is computed from, nested views expanded.

        A view over a view is followed down to the columns that are not computed
        from anything the graph knows (those of tables, or of unparsed views).
        """
        out: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        stack = list(self._column_in.get((key, column), []))
        while stack:
            pair = stack.pop()
            if pair in seen:
                continue
            seen.add(pair)
            parents = self._column_in.get(pair)
            if parents:
                stack.extend(parents)
            else:
                out.append(pair)
        return sorted(out)

    def _walk(self, start: int, adjacency: list[list[int]]) -> list[int]:
        seen = {start}
        order: list[int] = []
        queue = deque(adjacency[start])
        while queue:
            i = queue.popleft()
            if i in seen:
                continue
            seen.add(i)
            order.append(i)
            queue.extend(adjacency[i])
        return order

    # -- incidents ---------------------------------------------------------------

    def incident_roots(self, failing: Iterable[str]) -> dict[str, str]:
        """For each failing dataset, the most upstream failing dataset it descends from.

        ``failing`` holds config dataset names or node keys; the answer maps each
        to itself when none of its ancestors fails (it is a root cause), else to
        the failing ancestor with no failing ancestor of its own, the farthest
        one first when several qualify (names as given). Unknown names are
        their own roots: lineage that is not known cannot blame anyone else.
        """
        given = list(dict.fromkeys(failing))
        index: dict[int, str] = {}
        for name in given:
            key = self.key_of(name)
            if key is not None:
                index[self._index[key]] = name
        out: dict[str, str] = {}
        for name in given:
            key = self.key_of(name)
            if key is None:
                out[name] = name
                continue
            upstream_failing = [i for i in self._walk(self._index[key], self._up) if i in index]
            if not upstream_failing:
                out[name] = name
                continue
            tops = [
                i for i in upstream_failing if not any(j in index for j in self._walk(i, self._up))
            ]
            # A cycle of failing nodes has no top: blame the farthest one reached.
            out[name] = index[tops[-1] if tops else upstream_failing[-1]]
        return out

    # -- coverage ----------------------------------------------------------------

    def coverage(self, datasets: Mapping[str, str]) -> dict[str, float]:
        """Per source, the share of ``datasets`` (name -> source) with a known
        upstream or declared a root (``osemn_lineage_coverage_ratio``)."""
        covered: dict[str, list[int]] = {}
        for name, source in datasets.items():
            key = self.key_of(name)
            known = key is not None and (bool(self._up[self._index[key]]) or key in self.roots)
            counts = covered.setdefault(source, [0, 0])
            counts[0] += int(known)
            counts[1] += 1
        return {source: hit / total for source, (hit, total) in covered.items()}

    # -- cycles --------------------------------------------------------------------

    def _find_cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one node, or with a self-loop.

        Tarjan's algorithm, iterative so that a 10,000-deep chain does not hit
        Python's recursion limit.
        """
        n = len(self._keys)
        index = [-1] * n
        low = [0] * n
        on_stack = [False] * n
        stack: list[int] = []
        counter = 0
        cycles: list[list[str]] = []
        for root in range(n):
            if index[root] != -1:
                continue
            work: list[tuple[int, int]] = [(root, 0)]
            while work:
                v, pos = work.pop()
                if pos == 0:
                    index[v] = low[v] = counter
                    counter += 1
                    stack.append(v)
                    on_stack[v] = True
                children = self._down[v]
                if pos < len(children):
                    work.append((v, pos + 1))
                    w = children[pos]
                    if index[w] == -1:
                        work.append((w, 0))
                    elif on_stack[w]:
                        low[v] = min(low[v], index[w])
                    continue
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    component: list[int] = []
                    while True:
                        w = stack.pop()
                        on_stack[w] = False
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1 or v in self._down[v]:
                        cycles.append(sorted(self._keys[i] for i in component))
        return cycles

    # -- output --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The graph as one JSON document (``osemn lineage --format json``, the API)."""
        return {
            "nodes": [
                {
                    "key": n.key,
                    "kind": n.kind.value,
                    "source": n.source,
                    "schema": n.schema,
                    "name": n.name,
                    "dataset": n.dataset,
                    "columns": list(n.columns),
                    "upstream": self.upstream(n.key),
                    "root": n.key in self.roots,
                }
                for n in self.nodes.values()
            ],
            "edges": [
                {"upstream": e.upstream, "downstream": e.downstream, "kind": e.kind.value}
                | ({"sql": e.sql} if e.sql else {})
                for e in self.edges
            ],
            "foreign_keys": [
                {
                    "child": f.child,
                    "parent": f.parent,
                    "columns": list(f.columns),
                    "referred": list(f.referred),
                }
                for f in self.foreign_keys
            ],
            "columns": [
                {
                    "upstream": c.upstream,
                    "upstream_column": c.upstream_column,
                    "downstream": c.downstream,
                    "column": c.column,
                    "indirect": c.indirect,
                }
                for c in self.columns
            ],
            "problems": [{"node": p.node, "message": p.message} for p in self.problems],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LineageGraph:
        """The graph back from ``to_json`` (as kept in the state store)."""
        nodes = {
            n["key"]: Node(
                key=n["key"],
                kind=NodeKind(n["kind"]),
                source=n["source"],
                schema=n["schema"],
                name=n["name"],
                dataset=n["dataset"],
                columns=tuple(n["columns"]),
            )
            for n in doc["nodes"]
        }
        problems = [Problem(node=p["node"], message=p["message"]) for p in doc["problems"]]
        graph = cls(
            nodes=nodes,
            edges=[
                Edge(
                    upstream=e["upstream"],
                    downstream=e["downstream"],
                    kind=EdgeKind(e["kind"]),
                    sql=e.get("sql"),
                )
                for e in doc["edges"]
            ],
            foreign_keys=[
                ForeignKey(
                    child=f["child"],
                    parent=f["parent"],
                    columns=tuple(f["columns"]),
                    referred=tuple(f["referred"]),
                )
                for f in doc["foreign_keys"]
            ],
            columns=[ColumnEdge(**c) for c in doc["columns"]],
            # Cycle problems are found again from the edges.
            problems=[p for p in problems if not p.message.startswith("lineage cycle ")],
            roots=frozenset(n["key"] for n in doc["nodes"] if n.get("root")),
        )
        return graph

    def to_dot(self) -> str:
        """Graphviz DOT: data flow as solid arrows, foreign keys dashed."""
        lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box];"]
        shapes = {
            NodeKind.VIEW: "ellipse",
            NodeKind.MATERIALIZED_VIEW: "ellipse",
            NodeKind.MODEL: "hexagon",
            NodeKind.DBT_MODEL: "component",
        }
        for n in self.nodes.values():
            shape = shapes.get(n.kind, "box")
            lines.append(f"  {_dot_id(n.key)} [label={_dot_id(n.label)}, shape={shape}];")
        for e in self.edges:
            lines.append(
                f"  {_dot_id(e.upstream)} -> {_dot_id(e.downstream)} [label={_dot_id(e.kind)}];"
            )
        for f in self.foreign_keys:
            lines.append(
                f"  {_dot_id(f.child)} -> {_dot_id(f.parent)} "
                f"[style=dashed, label={_dot_id('fk ' + ','.join(f.columns))}];"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def merge_edges(*groups: Sequence[Edge]) -> list[Edge]:
    """Edges of several sources in order, the first of each (upstream, downstream, kind)."""
    seen: set[tuple[str, str, str]] = set()
    out: list[Edge] = []
    for group in groups:
        for edge in group:
            ident = (edge.upstream, edge.downstream, edge.kind.value)
            if ident not in seen:
                seen.add(ident)
                out.append(edge)
    return out
