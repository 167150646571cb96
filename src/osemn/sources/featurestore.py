"""A feature-store source: one Feast repo, its registry, batch sources and online store.

``FeatureStoreSource`` is what feature-store checks talk to. It describes every
feature view from the registry (no config per view), hands out the warehouse of
each view's batch source (``sources._feast_offline``), and reads the online
store with a deadline: Feast's ``get_online_features`` cannot be cancelled, so
it runs on a daemon thread and a call past the deadline is reported as a
``QueryTimeoutError`` while it finishes in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osemn._feast_config import FeastSourceConfig
from osemn.config import DatasetConfig, FailuresConfig, Schedule
from osemn.errors import QueryTimeoutError, SourceUnavailableError
from osemn.sources._feast_offline import OfflineTable, OfflineWarehouses
from osemn.sources._feast_repo import (
    BatchSourceInfo,
    FeatureField,
    FeatureViewInfo,
    describe_views,
    load_store,
    one_line,
)

__all__ = [
    "BatchSourceInfo",
    "FeatureField",
    "FeatureStoreSource",
    "FeatureViewInfo",
    "OfflineTable",
    "OnlineRead",
]

# Feast's FieldStatus (feast/protos/feast/serving/ServingService.proto) by number.
_STATUS = {1: "present", 2: "null", 3: "not_found", 4: "expired"}


@dataclass(frozen=True, kw_only=True)
class OnlineRead:
    """What one ``get_online_features`` call returned, and how long it took.

    ``values`` and ``statuses`` have one mapping per entity row asked for, keyed
    by feature name; a status is ``present``, ``null``, ``not_found`` or
    ``expired`` (older than the view's TTL).
    """

    seconds: float
    values: tuple[Mapping[str, Any], ...]
    statuses: tuple[Mapping[str, str], ...]


class FeatureStoreSource:
    """One configured Feast repo.

    Args:
        name: the source's key under ``sources:`` in osemn.yaml.
        config: its ``FeastSourceConfig``.
        base_dir: the folder of osemn.yaml; a relative ``feast:`` path starts there.
        monotonic: seconds for latency measurement (tests may pass their own).

    Raises:
        ConfigError: the repo does not load; the error names the file and the fix.
    """

    def __init__(
        self,
        name: str,
        config: FeastSourceConfig,
        *,
        base_dir: Path = Path("."),
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.name = name
        self.config = config
        self.repo_path = config.repo_path(base_dir)
        self._store = load_store(self.repo_path)
        self._monotonic = monotonic
        self._offline = OfflineWarehouses(
            source=name, config=config, offline_store=self._store.config.offline_store
        )
        # One online call at a time: Feast's online stores share one client or
        # connection per store, and a call stuck past its deadline must make the
        # next probes time out rather than pile up threads.
        self._online_lock = threading.Lock()
        self._registry_lock = threading.Lock()

    def views(self, *, refresh: bool = True) -> tuple[FeatureViewInfo, ...]:
        """Every feature view of the registry, sorted by name.

        ``refresh``: read the registry now; without it Feast's cached copy serves
        (as fresh as the last refresh, or its ``cache_ttl_seconds``), which is what
        frequent callers such as the probes want.

        Raises:
            SourceError: the registry cannot be read.
        """
        with self._registry_lock:
            return describe_views(self._store, source=self.name, refresh=refresh)

    def offline(self, view: FeatureViewInfo) -> OfflineTable:
        """The warehouse and table of ``view``'s batch source.

        Raises:
            SourceError: osemn cannot query that kind of batch source.
        """
        return self._offline.table(view)

    def dataset_config(self, view: FeatureViewInfo) -> DatasetConfig | None:
        """The view as a warehouse dataset, when ``feature_views.<name>.schema`` is set.

        Hand it with ``offline(view).warehouse`` to the dataset runner: the
        pandera schema then runs fused on the batch source like on any table
        (freshness and completeness are this source's own checks, so they are
        left out). None without a schema, or for a batch source defined by a query.

        Raises:
            SourceError: osemn cannot query that kind of batch source.
        """
        options = self.config.view(view.name)
        offline = self.offline(view) if options.schema_ is not None else None
        if offline is None or offline.table is None:
            return None
        return DatasetConfig(
            source=self.name,
            table=offline.table,
            timestamp=view.batch_source.timestamp_field,
            schedule=Schedule(interval=self.config.interval),
            schema_=options.schema_,
            incremental=False,
            # The schema runs on the source's columns: mask the columns the fields map to.
            failures=FailuresConfig(
                mask=tuple(view.batch_source.source_column(name) for name in options.mask)
            ),
        )

    def online_read(
        self,
        view: FeatureViewInfo,
        entity_rows: Sequence[Mapping[str, Any]],
        *,
        timeout: float,
    ) -> OnlineRead:
        """``get_online_features`` of every feature of ``view`` for ``entity_rows``.

        Raises:
            QueryTimeoutError: no answer within ``timeout`` seconds (waiting for an
                earlier call that is still running counts against it).
            SourceUnavailableError: the online store failed the call.
        """
        deadline = self._monotonic() + timeout
        if not self._online_lock.acquire(timeout=timeout):
            raise self._timeout(view, timeout, "an earlier call is still running")
        call = _Call(
            lambda: self._store.get_online_features(
                features=[f"{view.name}:{f.name}" for f in view.features],
                entity_rows=[dict(r) for r in entity_rows],
            ),
            release=self._online_lock.release,
        )
        started = self._monotonic()
        call.start(name=f"osemn-online-{self.name}")
        if not call.done.wait(max(deadline - self._monotonic(), 0.0)):
            raise self._timeout(view, timeout, "the call goes on in the background")
        seconds = self._monotonic() - started
        if call.error is not None:
            raise SourceUnavailableError(
                f"source {self.name!r}: the online store failed get_online_features for "
                f"{view.name!r}: {type(call.error).__name__}: {one_line(call.error)}. Check "
                "that the online store in feature_store.yaml is up and reachable.",
                source=self.name,
            )
        return _online_read(call.response, view, len(entity_rows), seconds)

    def close(self) -> None:
        """Dispose the engines of the batch sources."""
        self._offline.close()

    def _timeout(self, view: FeatureViewInfo, timeout: float, why: str) -> QueryTimeoutError:
        return QueryTimeoutError(
            f"source {self.name!r}: the online store did not answer get_online_features "
            f"for {view.name!r} within {timeout:g}s ({why}). Check the online store's "
            "health, or raise `probe.timeout`.",
            source=self.name,
        )

    def __repr__(self) -> str:
        return f"FeatureStoreSource({self.name!r}, {str(self.repo_path)!r})"


class _Call:
    """A call on a daemon thread: its response or error, and an event set when it ends."""

    def __init__(self, work: Callable[[], Any], *, release: Callable[[], None]) -> None:
        self._work = work
        self._release = release
        self.done = threading.Event()
        self.response: Any = None
        self.error: BaseException | None = None

    def start(self, *, name: str) -> None:
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.response = self._work()
        except Exception as exc:  # reported by the caller, whatever the store raised
            self.error = exc
        finally:
            self._release()
            self.done.set()


def _online_read(response: Any, view: FeatureViewInfo, rows: int, seconds: float) -> OnlineRead:
    columns = response.to_dict()
    names = list(response.proto.metadata.feature_names.val)
    results = response.proto.results
    values: list[dict[str, Any]] = [{} for _ in range(rows)]
    statuses: list[dict[str, str]] = [{} for _ in range(rows)]
    for feature in view.features:
        column = columns.get(feature.name, [None] * rows)
        vector = results[names.index(feature.name)] if feature.name in names else None
        for i in range(rows):
            values[i][feature.name] = column[i]
            statuses[i][feature.name] = _status(vector, i)
    return OnlineRead(seconds=seconds, values=tuple(values), statuses=tuple(statuses))


def _status(vector: Any, i: int) -> str:
    """The status of row ``i`` of a feature's vector, as osemn names it.

    Feast's Redis store answers a missing key with PRESENT and an empty value
    stamped 1970-01-01: a value without an event time was never written.
    """
    if vector is None:
        return "not_found"
    status = _STATUS.get(int(vector.statuses[i]), "not_found")
    stamps = vector.event_timestamps
    if status in ("present", "null") and i < len(stamps) and stamps[i].ToNanoseconds() == 0:
        return "not_found"
    return status
