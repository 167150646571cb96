"""The Prometheus view of feature stores (DESIGN.md, Metrics contract: seed SLI M9).

A custom collector, registered by the agent on the ``CollectorRegistry`` it
was given (never the global one)::

    osemn_featurestore_up{store, feature_view}                gauge: last probe answered
    osemn_featurestore_request_seconds{store, feature_view}   histogram: answered probes
    osemn_featurestore_probes_total{store, feature_view, outcome}   counter: up / down
    osemn_featurestore_materialization_age_seconds{store, feature_view}
    osemn_featurestore_parity_mismatch_ratio{store, feature_view, feature}

Label values are configured names only (source, view, feature), never entity
keys or feature values. The materialization age is computed at scrape time, so
it keeps growing while materialization is stalled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from osemn.checks._featurestore_probe import ProbeResult, ProbeStatus
from osemn.exporters.metrics import Histogram
from osemn.results import CheckResult

__all__ = ["REQUEST_BUCKETS", "FeatureStoreCollector"]

# Online lookups take from under a millisecond (SQLite, a local Redis) to the
# probe timeout; a timed-out probe is not observed.
REQUEST_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

_View = tuple[str, str]  # (store, feature_view)


class FeatureStoreCollector:
    """Collector (``prometheus_client.registry.Collector``) of feature-store metrics.

    ``observe_probes``, ``observe_results`` and ``collect`` may run on different threads.

    Args:
        clock: unix time now, for the materialization age at scrape time.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._up: dict[_View, bool] = {}
        self._seconds: dict[_View, Histogram] = {}
        self._probes: dict[tuple[str, str, str], int] = {}
        self._materialized: dict[_View, float] = {}
        self._parity: dict[tuple[str, str, str], float] = {}

    def observe_probes(self, probes: Sequence[ProbeResult]) -> None:
        """Record probes; a skipped probe changes nothing (the store was not asked)."""
        with self._lock:
            for p in probes:
                if p.status is ProbeStatus.SKIPPED:
                    continue
                view = (p.store, p.feature_view)
                self._up[view] = p.status is ProbeStatus.UP
                for outcome in (ProbeStatus.UP, ProbeStatus.DOWN):
                    self._probes.setdefault((*view, outcome.value), 0)
                self._probes[(*view, p.status.value)] += 1
                if p.seconds is not None:
                    histogram = self._seconds.setdefault(view, Histogram(REQUEST_BUCKETS))
                    histogram.observe(p.seconds)

    def observe_results(self, store: str, results: Iterable[CheckResult]) -> None:
        """Take materialization times and parity ratios from a feature-store run's results."""
        with self._lock:
            for r in results:
                until = r.measurement("materialized_until_timestamp_seconds")
                if until is not None:
                    self._materialized[(store, r.dataset)] = until
                for m in r.measurements:
                    if m.name == "parity_mismatch_ratio":
                        self._parity[(store, r.dataset, dict(m.labels)["column"])] = m.value

    def describe(self) -> Iterable[Metric]:
        """The metric families without samples, so the registry can refuse duplicates."""
        return self._families(fill=False)

    def collect(self) -> Iterable[Metric]:
        """Render the current state; called by the registry on every scrape."""
        with self._lock:
            return self._families(fill=True)

    def _families(self, *, fill: bool) -> list[Metric]:
        view = ["store", "feature_view"]
        up = GaugeMetricFamily(
            "osemn_featurestore_up",
            "1 if the online store answered the last probe of the feature view in time, else 0.",
            labels=view,
        )
        seconds = HistogramMetricFamily(
            "osemn_featurestore_request_seconds",
            "Latency of answered get_online_features probes (timed-out probes are not observed).",
            labels=view,
        )
        probes = CounterMetricFamily(
            "osemn_featurestore_probes",
            "Online-store probes by outcome (up/down): the availability SLI's events.",
            labels=[*view, "outcome"],
        )
        age = GaugeMetricFamily(
            "osemn_featurestore_materialization_age_seconds",
            "Seconds since the end of the feature view's last materialization, as of this scrape.",
            labels=view,
        )
        parity = GaugeMetricFamily(
            "osemn_featurestore_parity_mismatch_ratio",
            "Share of sampled entities whose online value differs from the latest materialized "
            "offline value (0..1).",
            labels=[*view, "feature"],
        )
        if fill:
            for key, is_up in sorted(self._up.items()):
                up.add_metric(key, 1 if is_up else 0)
            for key, histogram in sorted(self._seconds.items()):
                seconds.add_metric(key, histogram.cumulative(), histogram.total)
            for probe_key, count in sorted(self._probes.items()):
                probes.add_metric(probe_key, count)
            now = self._clock()
            for key, until in sorted(self._materialized.items()):
                age.add_metric(key, max(now - until, 0.0))
            for parity_key, ratio in sorted(self._parity.items()):
                parity.add_metric(parity_key, ratio)
        return [up, seconds, probes, age, parity]
