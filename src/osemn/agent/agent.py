"""The long-running agent: sources, runners, state, metrics, HTTP and the scheduler.

``Agent`` is also what ``osemn check`` uses for a single pass, so a CI run and
the sidecar produce the same results from the same code.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from osemn._clock import utcnow
from osemn._version import __version__
from osemn.agent._featurestore import StoreJobs
from osemn.agent._lineage import AgentLineage
from osemn.agent.runner import DatasetRunner
from osemn.agent.state import StateStore
from osemn.config import Config, Schedule
from osemn.errors import ConfigError, OsemnError, StateError
from osemn.exporters.metrics import MetricsCollector
from osemn.exporters.slo_metrics import SloCollector
from osemn.lineage.incidents import IncidentTriage, Triage, failing_datasets
from osemn.results import CheckResult, results_document
from osemn.rules.alerts import Alert
from osemn.rules.evaluator import SloEvaluator, SloStatus
from osemn.sources.warehouse import Warehouse

if TYPE_CHECKING:
    from osemn.agent.scheduler import Scheduler
    from osemn.checks.featurestore import FeatureStoreCollector
    from osemn.checks.model import ModelRunner
    from osemn.exporters.dispatch import Dispatcher
    from osemn.exporters.outbox import Outbox
    from osemn.exporters.receivers import OpenLineageSink
    from osemn.lineage.graph import LineageGraph
    from osemn.sources.featurestore import FeatureStoreSource

__all__ = ["Agent", "validate_sources"]

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)
FLUSH_EVERY = timedelta(seconds=5)  # resolution of group_wait / group_interval timers
_DISPATCHER_KEY = "dispatcher"  # osemn_meta key of the dispatcher's group state


def _mask_key() -> bytes:
    """The key of masked-value hashes: OSEMN_MASK_KEY, else random for this process.

    Set OSEMN_MASK_KEY to keep hashes comparable across restarts and replicas.
    """
    key = os.environ.get("OSEMN_MASK_KEY")
    return key.encode("utf-8") if key else secrets.token_bytes(32)


class Agent:
    """Everything one osemn.yaml asks for, wired together.

    Args:
        config: the validated configuration.
        clock: aware-UTC wall clock (frozen in tests).
        registry: where metrics are registered (a fresh one when omitted).
        engines: engines to use for some sources instead of creating them; the
            agent never closes an engine it was handed (the demo shares one).
        record_sli: turn dataset runs into SLI events; ``osemn check`` passes False
            so that a one-off run in CI does not count against the agent's SLOs.
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        registry: CollectorRegistry | None = None,
        engines: Mapping[str, sa.Engine] | None = None,
        record_sli: bool = True,
    ) -> None:
        self.config = config
        self._record_sli = record_sli
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = MetricsCollector(version=__version__, clock=lambda: clock().timestamp())
        self.registry.register(self.metrics)
        self.state = StateStore(config.agent.state, clock=clock)
        self.warehouses = {
            name: Warehouse(name, src, engine=(engines or {}).get(name))
            for name, src in config.warehouse_sources.items()
        }
        self.schema_errors: dict[str, str] = {}
        self.runners: dict[str, DatasetRunner] = {}
        self.model_runners: dict[str, ModelRunner] = {}
        self._latest: dict[str, list[CheckResult]] = {}
        self._lock = threading.Lock()
        self._mask_key = _mask_key()
        self.feature_stores = {
            name: StoreJobs(
                name,
                src,
                base_dir=config.base_dir,
                state=self.state,
                clock=clock,
                mask_key=self._mask_key,
            )
            for name, src in config.feast_sources.items()
        }
        # Latest results of each store's checks and of its probes, kept apart from
        # datasets': a feature view may share a dataset's name.
        self._store_latest: dict[tuple[str, str], list[CheckResult]] = {}
        self.featurestore_metrics: FeatureStoreCollector | None = None
        if self.feature_stores:
            from osemn.checks.featurestore import FeatureStoreCollector

            self.featurestore_metrics = FeatureStoreCollector(clock=lambda: clock().timestamp())
            self.registry.register(self.featurestore_metrics)
        self._scheduler: Scheduler | None = None
        self._server: Any = None
        self._stopped = threading.Event()
        self.slos = SloEvaluator(config, self.state, clock=clock) if config.slo_list else None
        self.outbox: Outbox | None = None
        self.dispatcher: Dispatcher | None = None
        self._dispatcher_saved: str | None = None
        self._lineage = AgentLineage(
            config,
            state=self.state,
            metrics=self.metrics,
            warehouses=self.warehouses,
            clock=clock,
            feature_stores=self._loaded_stores,
        )
        self._slo_statuses: list[SloStatus] = []
        self._alerts: list[Alert] = []
        self._incidents = IncidentTriage()
        self.slo_metrics = SloCollector(
            totals=self._sli_totals, pending=self._outbox_pending, delivered=self._outbox_counts
        )
        self.registry.register(self.slo_metrics)

    # -- set-up ---------------------------------------------------------------

    def open(self) -> None:
        """Open the state store and load every dataset's schema.

        A schema that does not load is kept as that dataset's error (its other
        checks still run); the state store failing to open is fatal.
        """
        self.state.open()
        if self.slos is not None:
            rows = self.slos.open()
            log.info("SLOs: %d loaded, %d rows of SLI history read", len(self.slos.slos), rows)
        sink = self._lineage.sink()
        if self.config.alerting.receivers or sink is not None:
            self._open_alerting(sink)
        for name, ds in self.config.datasets.items():
            schema = None
            if ds.schema_ref is not None:
                from osemn.checks.schema import load_schema  # pandera loads only if asked

                try:
                    schema = load_schema(ds.schema_ref, base_dir=self.config.base_dir)
                except ConfigError as exc:
                    self.schema_errors[name] = str(exc)
                    log.error("dataset %s: %s", name, exc)
            self.runners[name] = DatasetRunner(
                name=name,
                config=ds,
                warehouse=self.warehouses[ds.source],
                state=self.state,
                schema=schema,
                schema_error=self.schema_errors.get(name),
                clock=self.clock,
                mask_key=self._mask_key,
            )
        if self.config.models:
            self._open_models()
        if self.config.lineage is not None:
            self._lineage.load()

    def _open_models(self) -> None:
        from osemn.checks.model import ModelRunner  # model SQL loads only with models

        datasets = self.config.datasets
        for name, model in self.config.models.items():
            predictions = datasets[model.predictions.dataset]
            self.model_runners[name] = ModelRunner(
                name=name,
                config=model,
                predictions=predictions,
                labels=datasets[model.labels.dataset],
                warehouse=self.warehouses[predictions.source],
                state=self.state,
                clock=self.clock,
            )

    def _loaded_stores(self) -> dict[str, FeatureStoreSource]:
        """The Feast sources whose repo loads (lineage scans their feature views).

        A repo that does not load is left out: its own jobs report it and back off.
        """
        out: dict[str, FeatureStoreSource] = {}
        for name, store in self.feature_stores.items():
            try:
                out[name] = store.open()
            except OsemnError:
                continue
        return out

    @property
    def lineage(self) -> LineageGraph | None:
        """The lineage graph of the last scan (or the one kept before a restart)."""
        return self._lineage.graph

    def scan_lineage(self) -> LineageGraph:
        """Scan lineage now and keep the graph (state store, metrics, API, OpenLineage)."""
        return self._lineage.scan()

    def send_lineage_events(self) -> int:
        """One delivery pass over the OpenLineage events waiting in the outbox.

        ``osemn check`` runs no deliverer threads; this sends its runs' events
        before it exits. An endpoint that is down leaves them in the outbox,
        where a running agent on the same state store delivers them later.
        """
        if self.outbox is None:
            return 0
        from osemn.exporters.receivers import OPENLINEAGE_RECEIVER  # httpx loads only here

        return self.outbox.deliver_due(limit=10_000, receivers=[OPENLINEAGE_RECEIVER])

    def lineage_document(self) -> dict[str, Any]:
        """The last lineage scan, for ``/api/v1/lineage``."""
        return self._lineage.document()

    def _open_alerting(self, sink: OpenLineageSink | None) -> None:
        from osemn.exporters.outbox import Outbox

        self.outbox = Outbox(
            self.state.engine, self.config.alerting.receivers, clock=self.clock, openlineage=sink
        )
        if sink is not None:
            self._lineage.send_through(self.outbox)
        if not self.config.alerting.receivers:
            return
        from osemn.exporters.dispatch import Dispatcher  # httpx loads only with receivers

        self.dispatcher = Dispatcher(self.config.alerting, self.outbox.enqueue, clock=self.clock)
        snapshot = self.state.get_meta(_DISPATCHER_KEY)
        if snapshot is not None:
            try:
                self.dispatcher.restore(snapshot)
            except StateError as exc:  # a corrupt snapshot must not stop the agent
                log.error("alert groups not restored (%s): they start afresh", exc)

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.stop()
        for warehouse in self.warehouses.values():
            warehouse.close()
        for store in self.feature_stores.values():
            store.close()
        self.state.close()

    # -- running --------------------------------------------------------------

    def run_dataset(self, name: str, *, full: bool = False) -> list[CheckResult]:
        """Run one dataset's checks and publish the results (state, metrics, API)."""
        runner = self.runners[name]
        results = runner.run(full=full)
        self._publish(name, runner.warehouse, results)
        return results

    def run_model(self, name: str) -> list[CheckResult]:
        """Evaluate one model's windows and publish the results (state, metrics, API, SLIs).

        Its SLI events are counted only when an SLO is about it and they are recorded
        (not by ``osemn check``), so that no run takes events another would record.
        """
        runner = self.model_runners[name]
        counted = any(slo.model == name for slo in self.config.slo_list)
        results = runner.run(events=self._record_sli and counted)
        self._publish(name, runner.warehouse, results)
        return results

    def run_feature_store(self, name: str) -> list[CheckResult]:
        """Run one Feast source's checks (every feature view) and publish the results."""
        store = self.feature_stores[name]
        results = store.run_checks()
        assert self.featurestore_metrics is not None
        self.featurestore_metrics.observe_results(name, results)
        self._publish_store(store, "checks", results)
        return results

    def probe_feature_store(self, name: str) -> list[CheckResult]:
        """Probe one Feast source's online store and publish the probes as results.

        Each probe is an availability SLI event of the SLOs about its source or view.
        """
        store = self.feature_stores[name]
        probes = store.probe()
        assert self.featurestore_metrics is not None
        self.featurestore_metrics.observe_probes(probes)
        results = [p.to_result() for p in probes]
        self._publish_store(store, "probes", results)
        return results

    def _publish_store(self, store: StoreJobs, part: str, results: list[CheckResult]) -> None:
        self.metrics.set_source_up(store.name, store.up)
        self.metrics.observe(results)
        with self._lock:
            self._store_latest[(store.name, part)] = results
        try:
            self.state.record_run(results)
        except StateError as exc:
            log.error("%s: results not recorded: %s", store.name, exc)
        if self.slos is None or not self._record_sli or part != "probes":
            return  # only probes are availability events; checks have their own SLOs
        # The evaluator routes a batch to the SLOs of its first result's subject: a
        # store-wide SLO takes every view's probes as its own, a view's SLO that view's.
        subjects = {
            slo.subject: slo.feature_view
            for slo in self.config.slo_list
            if slo.sli == "availability" and slo.source == store.name
        }
        for subject, view in subjects.items():
            mine = [
                dataclasses.replace(r, dataset=subject)
                for r in results
                if view in (None, r.dataset)
            ]
            try:
                self.slos.record(mine)
            except StateError as exc:
                log.error("%s: SLI events not recorded: %s", subject, exc)

    def _publish(self, name: str, warehouse: Warehouse, results: list[CheckResult]) -> None:
        self.metrics.set_source_up(warehouse.name, warehouse.up)
        self.metrics.observe(results)
        with self._lock:
            self._latest[name] = results
        try:
            self.state.record_run(results)
        except StateError as exc:  # history is lost for this run; checks go on
            log.error("%s: results not recorded: %s", name, exc)
        if self.slos is not None and self._record_sli:
            try:
                self.slos.record(results)
            except StateError as exc:
                log.error("%s: SLI events not recorded: %s", name, exc)
        self._lineage.check_run(name, warehouse, results)

    # -- SLOs and alerts -------------------------------------------------------

    def evaluate_slos(self) -> list[Alert]:
        """Evaluate every SLO now, hand its alerts to the dispatcher, and send what is due."""
        if self.slos is None:
            return []
        statuses, alerts = self.slos.evaluate()
        triage = self._triage(alerts)
        if triage.recheck:
            # Symptoms whose root resolved: judged on checks run now, not before it did.
            for name in sorted(triage.recheck):
                if name in self.runners:
                    self.run_dataset(name)
                elif name in self.model_runners:
                    self.run_model(name)
            triage = self._triage(alerts, rechecked=triage.recheck)
        alerts = triage.alerts
        self.slo_metrics.update(statuses, alerts)
        with self._lock:
            self._slo_statuses = statuses
            self._alerts = alerts
        if self.dispatcher is not None:
            self.dispatcher.update(triage.notify)
        self.flush_alerts()
        return alerts

    def _triage(self, alerts: list[Alert], rechecked: Iterable[str] = ()) -> Triage:
        """Lineage labels on every alert, and which to notify (see ``lineage.incidents``)."""
        with self._lock:
            graph = self.lineage
            latest = dict(self._latest)
            views: dict[str, list[CheckResult]] = {}
            for results in self._store_latest.values():  # feature views, by view name
                for r in results:
                    views.setdefault(r.dataset, []).append(r)
        for view, results in views.items():
            latest.setdefault(view, results)
        return self._incidents.triage(
            alerts,
            graph=graph,
            failing=failing_datasets(latest, graph),
            rechecked=rechecked,
        )

    def flush_alerts(self) -> int:
        """Enqueue the notifications whose group timers are due; keep the group state."""
        if self.dispatcher is None:
            return 0
        sent = self.dispatcher.flush()
        snapshot = self.dispatcher.snapshot()
        if snapshot != self._dispatcher_saved:
            try:
                self.state.put_meta(_DISPATCHER_KEY, snapshot)
                self._dispatcher_saved = snapshot
            except StateError as exc:  # the outbox has them; a restart may only repeat one
                log.error("alert groups not saved: %s", exc)
        return sent

    def slo_document(self) -> dict[str, Any]:
        """SLO statuses and alerts, for ``/api/v1/slos`` and the status page."""
        with self._lock:
            statuses, alerts = list(self._slo_statuses), list(self._alerts)
        return {
            "slos": [
                {
                    "slo": s.name,
                    "dataset": s.slo.subject,
                    "sli": s.slo.sli,
                    "objective": s.slo.objective,
                    "window": s.slo.window.total_seconds(),
                    "good": s.good,
                    "bad": s.bad,
                    "error_ratio": s.error_ratio,
                    "error_budget_remaining": s.budget_remaining,
                    "burn_rates": s.burn_rates,
                    "last_event": None if s.last_event is None else s.last_event.isoformat(),
                }
                for s in statuses
            ],
            "alerts": [a.to_json() for a in alerts],
        }

    def _sli_totals(self) -> Mapping[tuple[str, str], int]:
        return {} if self.slos is None else dict(self.slos.totals)

    def _outbox_pending(self) -> Mapping[str, int]:
        return {} if self.outbox is None else self.outbox.pending()

    def _outbox_counts(self) -> Mapping[tuple[str, str], int]:
        return {} if self.outbox is None else self.outbox.counts()

    def run_once(
        self, datasets: Iterable[str] | None = None, *, full: bool = False
    ) -> list[CheckResult]:
        """Run the given datasets, models and Feast sources (all by default) once, in parallel.

        A Feast source runs its feature views' checks and one round of online probes.
        """
        known = [*self.runners, *self.model_runners, *self.feature_stores]
        names = list(dict.fromkeys(datasets)) if datasets is not None else known
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"unknown dataset(s) {', '.join(map(repr, unknown))}; configured: "
                f"{', '.join(map(repr, known)) or 'none'}"
            )

        def run(name: str) -> list[CheckResult]:
            if name in self.runners:
                return self.run_dataset(name, full=full)
            if name in self.model_runners:
                return self.run_model(name)
            return [*self.run_feature_store(name), *self.probe_feature_store(name)]

        workers = max(1, sum(s.max_concurrency for s in self.config.sources.values()))
        with ThreadPoolExecutor(max_workers=min(workers, max(len(names), 1))) as pool:
            batches = list(pool.map(run, names))
        return [r for batch in batches for r in batch]

    def results_document(self) -> dict[str, Any]:
        """The latest result of every check, in the ``osemn check --format json`` shape."""
        with self._lock:
            names = [*self.runners, *self.model_runners]
            results = [r for name in names for r in self._latest.get(name, [])]
            results += [
                r
                for name in self.feature_stores
                for part in ("checks", "probes")
                for r in self._store_latest.get((name, part), [])
            ]
        return results_document(results)

    def latest(self) -> Sequence[CheckResult]:
        with self._lock:
            batches = [*self._latest.values(), *self._store_latest.values()]
            return [r for batch in batches for r in batch]

    def ready(self) -> tuple[bool, str]:
        """Ready when the config is loaded and the state store answers."""
        if not self.runners and not self.model_runners and not self.feature_stores:
            return False, "no datasets loaded"
        if not self.state.ping():
            return False, f"state store {self.state.safe_url} does not answer"
        return True, "ready"

    # -- the long-running process ---------------------------------------------

    def start(self, *, serve: bool = True) -> None:
        """Serve HTTP and start the schedules (returns at once)."""
        if serve:
            from osemn.agent.server import AgentServer

            self._server = AgentServer(
                host=self.config.agent.host,
                port=self.config.agent.port,
                registry=self.registry,
                ready=self.ready,
                results=self.results_document,
                slos=self.slo_document,
                lineage=self.lineage_document,
            )
            self._server.start()
        # A Feast source's max_concurrency bounds its batch scans; its probes take one more.
        workers = max(2, sum(s.max_concurrency for s in self.config.sources.values()) + 1)
        workers += len(self.feature_stores)
        from osemn.agent.scheduler import Scheduler  # apscheduler loads only for `run`

        scheduler = Scheduler(max_workers=workers, jitter=self.config.agent.jitter)
        for name, ds in self.config.datasets.items():
            scheduler.add(f"dataset:{name}", ds.schedule, functools.partial(self.run_dataset, name))
        for name, model in self.config.models.items():
            scheduler.add(f"model:{name}", model.schedule, functools.partial(self.run_model, name))
        for name, store in self.config.feast_sources.items():
            # Checks and probes are separate jobs: a slow batch scan never delays a probe.
            scheduler.add(
                f"featurestore:{name}",
                Schedule(interval=store.interval),
                functools.partial(self.run_feature_store, name),
            )
            scheduler.add(
                f"featurestore-probe:{name}",
                Schedule(interval=store.probe.interval),
                functools.partial(self.probe_feature_store, name),
            )
        scheduler.add("prune", Schedule(interval=PRUNE_EVERY), self._prune)
        if self.config.lineage is not None:
            scheduler.add("lineage-scan", self.config.lineage.schedule, self.scan_lineage)
        if self.slos is not None:
            every = Schedule(interval=self.config.alerting.evaluation_interval)
            scheduler.add("slo-evaluate", every, self.evaluate_slos)
        if self.dispatcher is not None:
            scheduler.add("alerts-flush", Schedule(interval=FLUSH_EVERY), self.flush_alerts)
        if self.outbox is not None:
            self.outbox.start()
        scheduler.start()
        self._scheduler = scheduler

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.port)

    def _prune(self) -> None:
        try:
            deleted = self.state.prune(self.config.agent.retention)
            if self.slos is not None:
                deleted += self.slos.prune(self.config.agent.retention)
            log.info("state store: pruned %d rows older than the retention", deleted)
        except StateError as exc:
            log.error("state store: prune failed: %s", exc)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop scheduling, let runs in flight finish within ``timeout``, then cancel them.

        Returns True when every run finished on its own.
        """
        deadline = (
            self.config.agent.shutdown_timeout.total_seconds() if timeout is None else timeout
        )
        clean = True
        if self._scheduler is not None:
            self._scheduler.stop_scheduling()
            clean = self._scheduler.wait_idle(deadline)
            if not clean:
                log.warning("runs still in flight after %.0fs: cancelling their queries", deadline)
                for warehouse in self.warehouses.values():
                    warehouse.cancel_all()
                self._scheduler.wait_idle(5.0)
        if self._server is not None:
            self._server.stop()
        if self.outbox is not None:
            self.outbox.stop()
        self._stopped.set()
        return clean

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop`` was called (True) or ``timeout`` passed (False)."""
        return self._stopped.wait(timeout)


def validate_sources(agent: Agent) -> list[tuple[str, OsemnError | None]]:
    """Connect to every source once: (name, None) when it answers, else the error."""
    out: list[tuple[str, OsemnError | None]] = []
    for name, warehouse in agent.warehouses.items():
        try:
            warehouse.execute(sa.select(sa.literal(1)))
            out.append((name, None))
        except OsemnError as exc:
            out.append((name, exc))
    return out
