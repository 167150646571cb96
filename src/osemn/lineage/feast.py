"""Feast feature views in the lineage graph: each view reads its batch source.

A feature view is a node ``<feast source>/<view>`` of kind
``materialized_view``: like one, it is defined over a source and its rows are
copied (materialized) into the online store. Its batch source is the node the
warehouse scan gave the same table when that table lives in a configured
warehouse (same host, port and database), so the view joins the warehouse's
lineage; otherwise a node of its own: ``<feast source>/<schema>.<table>`` for a
PostgreSQL table, ``file/<path>`` for a parquet file, shared by every view that
reads it. A view defined by a query gets no upstream edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from osemn.errors import OsemnError
from osemn.lineage.graph import Edge, EdgeKind, Node, NodeKind, Problem
from osemn.sources.featurestore import FeatureStoreSource, FeatureViewInfo

__all__ = ["FeastLineage", "feast_lineage"]

_FILE = "file"


@dataclass
class FeastLineage:
    """The nodes and edges that the feature views of every Feast source add."""

    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def feast_lineage(
    stores: Mapping[str, FeatureStoreSource],
    *,
    warehouse_urls: Mapping[str, str],
    nodes: Mapping[str, Node],
) -> FeastLineage:
    """Feature-view nodes and their edges from their batch sources.

    Args:
        stores: the opened Feast sources, by name.
        warehouse_urls: the configured warehouses' SQLAlchemy URLs, by source name.
        nodes: the nodes scanned so far (warehouse tables reuse their keys).
    """
    out = FeastLineage()
    # A view's results name it by the view's name: so does its node, unless a
    # dataset (or an earlier store's view) already goes by that name.
    taken = {n.dataset for n in nodes.values() if n.dataset}
    for name, store in stores.items():
        try:
            views = store.views()
        except OsemnError as exc:
            out.problems.append(Problem(node=None, message=f"source {name!r} not scanned: {exc}"))
            continue
        for view in views:
            key = f"{name}/{view.name}"
            out.nodes[key] = Node(
                key=key,
                kind=NodeKind.MATERIALIZED_VIEW,
                source=name,
                schema=None,
                name=view.name,
                columns=tuple(f.name for f in (*view.join_keys, *view.features)),
                dataset=None if view.name in taken else view.name,
            )
            taken.add(view.name)
            try:
                upstream = _batch_node(name, store, view, warehouse_urls, nodes, out)
            except OsemnError as exc:
                out.problems.append(Problem(node=key, message=str(exc)))
                continue
            if upstream is not None:
                out.edges.append(Edge(upstream=upstream, downstream=key, kind=EdgeKind.VIEW))
    return out


def _batch_node(
    name: str,
    store: FeatureStoreSource,
    view: FeatureViewInfo,
    warehouse_urls: Mapping[str, str],
    nodes: Mapping[str, Node],
    out: FeastLineage,
) -> str | None:
    """The key of the view's batch source node (added to ``out`` when new)."""
    batch = view.batch_source
    if batch.type == _FILE and batch.path is not None:
        key = f"{_FILE}/{batch.path}"
        out.nodes.setdefault(
            key, Node(key=key, kind=NodeKind.TABLE, source=_FILE, schema=None, name=batch.path)
        )
        return key
    if batch.table is None:
        return None  # a query source: its tables are not known without parsing it
    url = sa.make_url(_offline_url(store, view))
    schema, _, table = batch.table.rpartition(".")
    schema = schema or _search_path(url) or "public"
    owner = _same_database(url, warehouse_urls) or name
    key = f"{owner}/{schema}.{table}"
    if key not in nodes:  # the scan's own spelling, when it differs only in case
        lowered = key.lower()
        key = next((k for k in nodes if k.lower() == lowered), key)
    if key not in nodes:
        out.nodes.setdefault(
            key, Node(key=key, kind=NodeKind.TABLE, source=owner, schema=schema, name=table)
        )
    return key


def _offline_url(store: FeatureStoreSource, view: FeatureViewInfo) -> str:
    return store.offline(view).warehouse.config.url


# A URL without a port means the server's default one, so it names the same database.
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def _same_database(url: sa.URL, warehouse_urls: Mapping[str, str]) -> str | None:
    """The configured warehouse on the same server and database as ``url``, if any."""
    default_port = _DEFAULT_PORTS.get(url.get_backend_name())
    for name, other in warehouse_urls.items():
        theirs = sa.make_url(other)
        if (
            theirs.get_backend_name() == url.get_backend_name()
            and (theirs.host or "localhost") == (url.host or "localhost")
            and (theirs.port or default_port) == (url.port or default_port)
            and theirs.database == url.database
        ):
            return name
    return None


def _search_path(url: sa.URL) -> str | None:
    """The schema of ``-csearch_path=<schema>`` in the URL's ``options`` (Feast's db_schema)."""
    options = url.query.get("options")
    text = options if isinstance(options, str) else ""
    prefix = "-csearch_path="
    return text.removeprefix(prefix) if text.startswith(prefix) else None
