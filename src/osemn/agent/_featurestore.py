"""The agent's feature stores: one ``StoreJobs`` per Feast source of osemn.yaml.

A repo that does not load (a missing folder, an invalid feature_store.yaml, an
unreadable registry) makes its source down, never the agent: its checks
report one ``error`` result naming the file, and the repo is loaded again with
the same exponential backoff as a warehouse that is down. Feast is imported
only when a Feast source is configured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osemn._backoff import Backoff
from osemn._feast_config import FeastSourceConfig
from osemn._units import format_duration
from osemn.errors import OsemnError, SourceUnavailableError
from osemn.results import CheckKind, CheckResult, Status

if TYPE_CHECKING:
    from osemn.agent.runner import DatasetRunner
    from osemn.agent.state import StateStore
    from osemn.checks.featurestore import FeatureStoreChecks, OnlineProber, ProbeResult
    from osemn.sources.featurestore import FeatureStoreSource, FeatureViewInfo

__all__ = ["LOAD_CHECK", "StoreJobs", "StorePlan"]

log = logging.getLogger(__name__)

LOAD_CHECK = "repo:load"
"""The ``check`` of the one error result of a source whose repo does not load."""


@dataclass(frozen=True, kw_only=True)
class StorePlan:
    """What ``osemn validate`` says of one Feast source: its views, or why there are none."""

    views: tuple[FeatureViewInfo, ...] = ()
    error: OsemnError | None = None


class StoreJobs:
    """One Feast source in the agent: its repo, its checks and its online probes.

    ``run_checks`` and ``probe`` run on different scheduler threads; the repo is
    opened once, by whichever asks first. A view with ``schema:`` also gets a
    ``DatasetRunner`` on its batch source, so its pandera checks run fused there.

    Args:
        name: the source's key under ``sources:``.
        config: its ``feast:`` options.
        base_dir: the folder of osemn.yaml (relative repo and schema paths start there).
        state: the agent's state store (the schema runners' watermarks and history).
        clock: aware-UTC wall clock, for results and probes.
        mask_key: the key of masked failure values.
        monotonic: seconds, for the backoff between loads.
    """

    def __init__(
        self,
        name: str,
        config: FeastSourceConfig,
        *,
        base_dir: Path,
        state: StateStore,
        clock: Callable[[], datetime],
        mask_key: bytes,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config
        self._base_dir = base_dir
        self._state = state
        self._mask_key = mask_key
        self._runners: dict[str, DatasetRunner | None] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._backoff = Backoff(monotonic)
        self._source: FeatureStoreSource | None = None
        self._checks: FeatureStoreChecks | None = None
        self._prober: OnlineProber | None = None
        self._error: str | None = None
        self._up = False

    @property
    def up(self) -> bool:
        """The repo loaded and its registry answered the last run (``osemn_source_up``)."""
        return self._up

    def open(self) -> FeatureStoreSource:
        """The repo, loaded now unless it is loaded or backing off after a failure.

        Raises:
            ConfigError: the repo does not load (names the file and the fix).
            SourceUnavailableError: it failed before and the backoff has not passed.
        """
        with self._lock:
            if self._source is not None:
                return self._source
            remaining = self._backoff.remaining()
            if remaining > 0:
                raise SourceUnavailableError(
                    f"source {self.name!r} is down; osemn loads its Feast repo again in "
                    f"{remaining:.0f}s. Last error: {self._error}",
                    source=self.name,
                )
            from osemn.checks.featurestore import FeatureStoreChecks, OnlineProber
            from osemn.sources.featurestore import FeatureStoreSource

            try:
                source = FeatureStoreSource(self.name, self.config, base_dir=self._base_dir)
            except OsemnError as exc:
                self._up = False
                self._error = str(exc)
                delay = self._backoff.failed()
                log.error(
                    "source %r is down: its Feast repo does not load (%d failure(s) in a row, "
                    "next try in %.1fs): %s",
                    self.name,
                    self._backoff.failures,
                    delay,
                    exc,
                )
                raise
            if self._backoff.failures:
                log.info("source %r is up again: its Feast repo loaded", self.name)
            self._backoff.succeeded()
            self._error = None
            self._up = True  # it read the registry; each run of the checks says again
            self._source = source
            self._checks = FeatureStoreChecks(source, clock=self._clock, mask_key=self._mask_key)
            self._prober = OnlineProber(source, clock=self._clock)
            return source

    def run_checks(self) -> list[CheckResult]:
        """Every feature view's checks; one error result when the repo does not load."""
        try:
            self.open()
        except OsemnError as exc:
            return [self._not_loaded(exc)]
        assert self._checks is not None
        from osemn.checks.featurestore import REGISTRY_CHECK

        results = self._checks.run()
        self._up = not any(r.check == REGISTRY_CHECK for r in results)
        if self._up and any(v.schema_ is not None for v in self.config.feature_views.values()):
            results += self._schema_results()
        return results

    def _schema_results(self) -> list[CheckResult]:
        """The pandera checks of every view that has ``schema:``, each on its batch source."""
        assert self._source is not None
        out: list[CheckResult] = []
        try:
            views = self._source.views(refresh=False)  # the checks just refreshed it
        except OsemnError as exc:  # the registry went away since the checks read it
            log.warning("source %r: schemas not run: %s", self.name, exc)
            return out
        for view in views:
            try:
                runner = self._schema_runner(self._source, view)
            except OsemnError as exc:
                log.warning("feature view %s of %r: schema not run: %s", view.name, self.name, exc)
                continue
            if runner is not None:
                out += runner.run()
        return out

    def _schema_runner(
        self, source: FeatureStoreSource, view: FeatureViewInfo
    ) -> DatasetRunner | None:
        if view.name in self._runners:
            return self._runners[view.name]
        from osemn.agent.runner import DatasetRunner

        dataset = source.dataset_config(view)
        runner = None
        if dataset is not None and dataset.schema_ref is not None:
            from osemn.checks.schema import load_schema  # pandera loads only if asked

            schema, error = None, None
            try:
                schema = load_schema(dataset.schema_ref, base_dir=self._base_dir)
            except OsemnError as exc:
                error = str(exc)
                log.error("feature view %s of %r: %s", view.name, self.name, exc)
            runner = DatasetRunner(
                name=view.name,
                config=dataset,
                warehouse=source.offline(view).warehouse,
                state=self._state,
                schema=schema,
                schema_error=error,
                clock=self._clock,
                mask_key=self._mask_key,
            )
        self._runners[view.name] = runner
        return runner

    def probe(self) -> list[ProbeResult]:
        """One probe per online feature view; none while the repo does not load."""
        try:
            self.open()
        except OsemnError:
            return []  # run_checks reports it; probes of unknown views have no subject
        assert self._prober is not None
        return self._prober.probe_all()

    def plan(self) -> StorePlan:
        """The feature views and their checks, or why they cannot be listed."""
        try:
            views = self.open().views(refresh=False)  # open() just read the registry
        except OsemnError as exc:
            return StorePlan(error=exc)
        return StorePlan(views=views)

    def describe_plan(self, plan: StorePlan) -> list[str]:
        """What would run, one line per view (``osemn validate``).

        A view's pandera schema that does not load is an ``ERROR`` line of its own.
        """
        if plan.error is not None:
            return [f"ERROR {plan.error}"]
        interval = format_duration(self.config.interval)
        probe = self.config.probe
        lines = []
        for view in plan.views:
            options = self.config.view(view.name)
            checks = ["freshness", "completeness", "dtype"]
            if options.schema_ is not None:
                checks.append(f"schema {options.schema_}")
            if view.online:
                checks.append("materialization")
            if view.servable:
                checks.append("online parity")
            what = f"{', '.join(checks)} every {interval}"
            if view.servable:
                what += (
                    f"; probes of {probe.sample} entities every {format_duration(probe.interval)} "
                    f"(timeout {format_duration(probe.timeout)})"
                )
            lines.append(
                f"feature view {view.name}: {len(view.features)} features, "
                f"{_batch_label(view)}: {what}"
            )
            if options.schema_ is not None:
                from osemn.checks.schema import load_schema  # pandera loads only if asked

                try:
                    load_schema(options.schema_, base_dir=self._base_dir)
                except OsemnError as exc:
                    lines.append(f"ERROR feature view {view.name}: {exc}")
        return lines or ["no feature view in the registry: run `feast apply` in the repo"]

    def close(self) -> None:
        """Dispose the batch sources' engines."""
        with self._lock:
            if self._source is not None:
                self._source.close()

    def _not_loaded(self, exc: OsemnError) -> CheckResult:
        return CheckResult(
            dataset=self.name,
            kind=CheckKind.FEATURESTORE,
            check=LOAD_CHECK,
            status=Status.ERROR,
            error=str(exc),
            finished_at=self._clock(),
            source=self.name,
        )


def _batch_label(view: FeatureViewInfo) -> str:
    batch = view.batch_source
    where: Any = batch.path or batch.table or "a query"
    return f"{batch.type} source {where}"
