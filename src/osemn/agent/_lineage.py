"""The agent's lineage: the graph it scans and keeps, and the OpenLineage events it enqueues.

Kept apart from ``agent.py`` so that module stays readable; the agent owns one
``AgentLineage`` and hands it the outbox once that is open.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from osemn.agent.state import StateStore
from osemn.config import Config
from osemn.errors import OsemnError, StateError
from osemn.exporters.metrics import MetricsCollector
from osemn.lineage.graph import LineageGraph
from osemn.results import CheckResult
from osemn.sources.warehouse import Warehouse

if TYPE_CHECKING:
    from osemn.exporters.outbox import Outbox
    from osemn.exporters.receivers import OpenLineageSink
    from osemn.sources.featurestore import FeatureStoreSource

__all__ = ["AgentLineage"]

log = logging.getLogger(__name__)


class AgentLineage:
    """The lineage graph of one agent, safe to read from any thread.

    Args:
        config: the validated config (its ``lineage:``, datasets and sources).
        state: the opened state store, where scans are kept.
        metrics: where ``osemn_lineage_coverage_ratio`` is set.
        warehouses: the agent's warehouses, scanned with their own engines.
        clock: aware-UTC wall clock.
        feature_stores: the Feast sources whose repos are loaded now (their views are nodes).
    """

    def __init__(
        self,
        config: Config,
        *,
        state: StateStore,
        metrics: MetricsCollector,
        warehouses: Mapping[str, Warehouse],
        clock: Callable[[], datetime],
        feature_stores: Callable[[], Mapping[str, FeatureStoreSource]] = dict,
    ) -> None:
        self._config = config
        self._feature_stores = feature_stores
        self._state = state
        self._metrics = metrics
        self._warehouses = warehouses
        self._clock = clock
        self._lock = threading.Lock()
        self._graph: LineageGraph | None = None
        self._at: datetime | None = None
        self._outbox: Outbox | None = None

    @property
    def graph(self) -> LineageGraph | None:
        """The graph of the last scan (or the kept one), None before any."""
        with self._lock:
            return self._graph

    def sink(self) -> OpenLineageSink | None:
        """Where OpenLineage events go, when osemn.yaml or the environment configures it."""
        if self._config.lineage is None:
            return None
        from osemn.lineage.emit import openlineage_client

        client = openlineage_client(self._config.lineage.openlineage)
        if client is None:
            return None
        from osemn.exporters.receivers import OpenLineageSink  # httpx loads only here

        return OpenLineageSink(client=client)

    def send_through(self, outbox: Outbox) -> None:
        """Enqueue OpenLineage events in ``outbox`` (one made with this ``sink()``)."""
        self._outbox = outbox

    def load(self) -> None:
        """The graph of the last scan, so alerts are lineage-aware from the first evaluation."""
        try:
            kept = self._state.latest_lineage()
        except StateError as exc:
            log.error("lineage graph not loaded (%s): the next scan builds it", exc)
            return
        if kept is not None:
            at, doc = kept
            self._set(LineageGraph.from_json(doc), at)

    def scan(self) -> LineageGraph:
        """Scan now, keep the graph (state store, metrics, API), enqueue its events.

        A source that is down or a view that does not parse is a problem of the
        graph (logged), never an exception: the rest of the graph is kept.
        """
        from osemn.lineage.scan import scan_lineage

        scan = scan_lineage(self._config, self._warehouses, feature_stores=self._feature_stores())
        graph = scan.graph
        for problem in graph.problems:
            log.warning("lineage: %s", problem.message)
        log.info(
            "lineage: %d nodes, %d edges scanned in %.2fs",
            len(graph.nodes),
            len(graph.edges),
            scan.duration_seconds,
        )
        try:
            self._state.put_lineage(graph.to_json(), duration_seconds=scan.duration_seconds)
        except StateError as exc:  # the graph still serves this process
            log.error("lineage graph not kept: %s", exc)
        at = self._clock()
        self._set(graph, at)
        if self._outbox is not None:
            from osemn.lineage.openlineage import scan_events

            events = scan_events(
                graph,
                urls=self._config.warehouse_urls,
                namespace=self._config.openlineage_namespace,
                at=at,
            )
            self._enqueue("lineage scan", events)
        return graph

    def document(self) -> dict[str, Any]:
        """The last scan, for ``/api/v1/lineage``."""
        with self._lock:
            graph, at = self._graph, self._at
        return {
            "scanned_at": None if at is None else at.isoformat(),
            "graph": None if graph is None else graph.to_json(),
        }

    def check_run(self, name: str, warehouse: Warehouse, results: Sequence[CheckResult]) -> None:
        """START and COMPLETE/FAIL of a dataset's run into the outbox: a write, never a send."""
        if self._outbox is None or name not in self._config.datasets or not results:
            return
        from osemn.lineage.openlineage import check_run_events, dataset_name

        schema, _, relation = self._config.datasets[name].table.rpartition(".")
        graph = self.graph
        key = graph.key_of(name) if graph is not None else None
        node = graph.nodes[key] if graph is not None and key is not None else None
        columns = node.columns if node is not None else ()
        if node is not None and node.schema:  # the schema the scan resolved (`public`, ...)
            schema = node.schema
        started = min(r.finished_at - timedelta(seconds=r.duration_seconds) for r in results)
        events = check_run_events(
            results,
            namespace=self._config.openlineage_namespace,
            dataset=dataset_name(warehouse.config.url, schema or None, relation),
            columns=[(c, None) for c in columns],
            started=started,
        )
        self._enqueue(f"check run of {name}", events)

    def _enqueue(self, what: str, events: Sequence[Any]) -> None:
        from osemn.lineage.openlineage import to_json

        assert self._outbox is not None
        try:
            for event in events:
                self._outbox.enqueue_event(json.loads(to_json(event)))
        except OsemnError as exc:  # these events are lost; checks and scans go on
            log.error("%s: OpenLineage events not enqueued: %s", what, exc)

    def _set(self, graph: LineageGraph, at: datetime) -> None:
        datasets = {name: ds.source for name, ds in self._config.datasets.items()}
        for node in graph.nodes.values():  # feature views are datasets of their Feast source
            if node.dataset and node.source in self._config.feast_sources:
                datasets.setdefault(node.dataset, node.source)
        self._metrics.set_lineage_coverage(graph.coverage(datasets))
        with self._lock:
            self._graph, self._at = graph, at
