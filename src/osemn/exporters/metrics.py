"""The Prometheus view of the latest check results (DESIGN.md, Metrics contract).

``MetricsCollector`` is a custom collector: the runner hands it each dataset
run's results, and every scrape renders the state kept since. The agent
registers it on the ``CollectorRegistry`` it was given, never the global one.

Measurements become metrics through one table, ``MEASUREMENT_METRICS``: a new
check kind (drift, model) that measures something adds a row there, not code.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from osemn.results import CheckResult, Status

__all__ = [
    "DURATION_BUCKETS",
    "MEASUREMENT_METRICS",
    "Histogram",
    "MeasurementMetric",
    "MetricsCollector",
]

logger = logging.getLogger(__name__)

# Fused SQL scans take from milliseconds (a small DuckDB table) to the
# statement timeout (minutes on a big warehouse table); the last bucket is a
# typical statement_timeout ceiling.
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class MeasurementMetric:
    """How one measurement name becomes one gauge.

    ``subject`` is the label that carries ``CheckResult.dataset`` (``model`` for
    model checks); ``labels`` are the measurement's own labels, in exposition
    order. ``age`` turns a unix timestamp into seconds before now, computed at
    scrape time so the value keeps growing between runs. ``replace`` drops a
    subject's series that a run measured no more (top-K segments come and go),
    instead of keeping their last value.
    """

    measurement: str
    metric: str
    documentation: str
    labels: tuple[str, ...] = ()
    subject: str = "dataset"
    age: bool = False
    replace: bool = False


MEASUREMENT_METRICS: tuple[MeasurementMetric, ...] = (
    MeasurementMetric(
        measurement="newest_row_timestamp_seconds",
        metric="osemn_dataset_freshness_seconds",
        documentation=(
            "Age in seconds of the newest row of the dataset (by its timestamp column), "
            "as of this scrape."
        ),
        age=True,
    ),
    MeasurementMetric(
        measurement="completeness_ratio",
        metric="osemn_column_completeness_ratio",
        documentation="Share of non-null values of the column in the last run (0..1).",
        labels=("column",),
    ),
    MeasurementMetric(
        measurement="validity_ratio",
        metric="osemn_dataset_validity_ratio",
        documentation="Share of rows passing every schema check in the last run (0..1).",
    ),
    MeasurementMetric(
        measurement="rows",
        metric="osemn_dataset_rows",
        documentation="Rows of the dataset in the volume window of the last run.",
        labels=("window",),
    ),
    MeasurementMetric(
        measurement="drift_score",
        metric="osemn_drift_score",
        documentation=(
            "Drift of the column's current window from its reference, by the method's "
            "effect size (PSI, Jensen-Shannon distance, Hellinger, normed Wasserstein, KS D)."
        ),
        labels=("column", "method"),
    ),
    MeasurementMetric(
        measurement="drift_pvalue",
        metric="osemn_drift_pvalue",
        documentation="p-value of the column's drift test (chi-square or KS), before correction.",
        labels=("column", "method"),
    ),
    MeasurementMetric(
        measurement="drift_detected",
        metric="osemn_drift_detected",
        documentation="1 when the last drift run found the column drifted, else 0.",
        labels=("column", "method"),
    ),
    MeasurementMetric(
        measurement="drift_share",
        metric="osemn_dataset_drift_share",
        documentation="Share of the dataset's evaluated drift columns that drifted (0..1).",
    ),
    MeasurementMetric(
        measurement="model_metric",
        metric="osemn_model_metric",
        documentation=(
            "Model performance over the current window by prediction time: realized on the "
            "labelled predictions, or estimated from the scores (CBPE) for the unlabelled ones; "
            "segment is all, column=value of a top segment, or version=v."
        ),
        labels=("metric", "kind", "segment"),
        subject="model",
        replace=True,
    ),
    MeasurementMetric(
        measurement="label_coverage_ratio",
        metric="osemn_model_label_coverage_ratio",
        documentation="Share of the current window's predictions that have a label (0..1).",
        subject="model",
    ),
    MeasurementMetric(
        measurement="label_delay_seconds",
        metric="osemn_model_label_delay_seconds",
        documentation=(
            "Label time minus prediction time of the current window's labelled predictions, "
            "by percentile (100 is the maximum)."
        ),
        labels=("percentile",),
        subject="model",
    ),
    MeasurementMetric(
        measurement="predictions",
        metric="osemn_model_predictions",
        documentation="Predictions logged in the current window.",
        subject="model",
    ),
    MeasurementMetric(
        measurement="latency_seconds",
        metric="osemn_model_latency_seconds",
        documentation="Serving latency of the current window's predictions, by percentile.",
        labels=("percentile",),
        subject="model",
    ),
)

_LabelValues = tuple[str, ...]
_Key = TypeVar("_Key", bound=tuple[str, ...])


@dataclass
class Histogram:
    """Per-bucket (not cumulative) counts over ``bounds``; the last slot is ``+Inf``.

    A collector renders these itself, so that it keeps its own label sets without
    prometheus-client's global, label-child machinery.
    """

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)
        self._labels = (*(repr(b) for b in self.bounds), "+Inf")

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self._labels, self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(frozen=True)
class _LastCheck:
    rows: int | None
    failed_rows: int | None
    success: bool


class MetricsCollector:
    """Collector (``prometheus_client.registry.Collector``) of osemn's check metrics.

    Register it on the agent's registry: ``registry.register(collector)``.
    ``observe``, ``set_source_up`` and ``collect`` may run on
    different threads.
    """

    def __init__(self, *, version: str, clock: Callable[[], float] = time.time) -> None:
        """Create an empty collector.

        Args:
            version: the running osemn version, for ``osemn_build_info``.
            clock: unix time now; freshness is computed against it at scrape time.
        """
        self._version = version
        self._clock = clock
        self._lock = threading.Lock()
        self._source_up: dict[str, bool] = {}
        self._lineage_coverage: dict[str, float] = {}
        self._runs: dict[tuple[str, str, str], int] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._checks: dict[tuple[str, str], _LastCheck] = {}
        self._last_run: dict[tuple[str, str], float] = {}
        self._last_success: dict[tuple[str, str], float] = {}
        self._measured: dict[str, dict[_LabelValues, float]] = {
            row.measurement: {} for row in MEASUREMENT_METRICS
        }
        self._rows_by_measurement = {row.measurement: row for row in MEASUREMENT_METRICS}

    def observe(self, results: Sequence[CheckResult]) -> None:
        """Record one dataset run's results.

        Counters accumulate; gauges take the values of this run. Results of one
        kind were fused into one scan, so each (dataset, kind) adds one
        duration observation, the longest of the batch. A measured series keeps
        its last value until measured again: the freshness of a
        table that cannot be read keeps ageing rather than vanishing.
        """
        by_kind: dict[tuple[str, str], list[CheckResult]] = {}
        for r in results:
            by_kind.setdefault((r.dataset, r.kind.value), []).append(r)
        with self._lock:
            self._forget_replaced(results)
            for r in results:
                for status in Status:  # zero-initialised, so the first fail shows in increase()
                    self._runs.setdefault((r.dataset, r.check, status.value), 0)
                self._runs[(r.dataset, r.check, r.status.value)] += 1
                self._checks[(r.dataset, r.check)] = _LastCheck(
                    rows=r.rows, failed_rows=r.failed_rows, success=r.status is Status.PASS
                )
                self._record_measurements(r)
            for key, batch in by_kind.items():
                self._durations.setdefault(key, Histogram()).observe(
                    max(r.duration_seconds for r in batch)
                )
                finished = max(r.finished_at.timestamp() for r in batch)
                self._last_run[key] = finished
                if all(r.status is Status.PASS for r in batch):
                    self._last_success[key] = finished

    def _forget_replaced(self, results: Sequence[CheckResult]) -> None:
        """Drop the series of ``replace`` rows of the subjects this batch measures anew."""
        remeasured = {
            (m.name, r.dataset)
            for r in results
            for m in r.measurements
            if (row := self._rows_by_measurement.get(m.name)) is not None and row.replace
        }
        for name, subject in remeasured:
            series = self._measured[name]
            for key in [k for k in series if k[0] == subject]:
                del series[key]

    def _record_measurements(self, result: CheckResult) -> None:
        for m in result.measurements:
            row = self._rows_by_measurement.get(m.name)
            if row is None:
                continue
            given = dict(m.labels)
            if set(given) != set(row.labels):
                logger.warning(
                    "measurement %r of %s/%s has labels %s, %s expects %s; not exported",
                    m.name,
                    result.dataset,
                    result.check,
                    sorted(given),
                    row.metric,
                    list(row.labels),
                )
                continue
            key = (result.dataset, *(given[name] for name in row.labels))
            self._measured[m.name][key] = m.value

    def set_source_up(self, source: str, up: bool) -> None:
        """Record whether ``source`` answered its last query."""
        with self._lock:
            self._source_up[source] = up

    def set_lineage_coverage(self, coverage: Mapping[str, float]) -> None:
        """Replace the lineage coverage of every source (after each lineage scan)."""
        with self._lock:
            self._lineage_coverage = dict(coverage)

    def describe(self) -> Iterable[Metric]:
        """The metric families without samples, so the registry can refuse duplicates."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """Render the current state; called by the registry on every scrape."""
        with self._lock:
            return self._families(fill=True)

    def _families(self, *, fill: bool = False) -> list[Metric]:
        build = GaugeMetricFamily(
            "osemn_build_info",
            "Always 1; the version label names the running osemn.",
            labels=["version"],
        )
        source_up = GaugeMetricFamily(
            "osemn_source_up",
            "1 if the source answered its last query, 0 if it failed.",
            labels=["source"],
        )
        runs = CounterMetricFamily(
            "osemn_check_runs_total",
            "Check runs by outcome: pass, fail (data broke the rule) or error (not evaluated).",
            labels=["dataset", "check", "status"],
        )
        durations = HistogramMetricFamily(
            "osemn_check_duration_seconds",
            "Wall time of a check run; checks fused into one scan share one observation.",
            labels=["dataset", "kind"],
        )
        rows = GaugeMetricFamily(
            "osemn_check_rows",
            "Rows the check looked at in its last run.",
            labels=["dataset", "check"],
        )
        failed_rows = GaugeMetricFamily(
            "osemn_check_failed_rows",
            "Rows that broke the check in its last run.",
            labels=["dataset", "check"],
        )
        success = GaugeMetricFamily(
            "osemn_check_success",
            "1 if the last run of the check passed, 0 if it failed, errored or lacked data.",
            labels=["dataset", "check"],
        )
        last_run = GaugeMetricFamily(
            "osemn_check_last_run_timestamp_seconds",
            "Unix time the last run of checks of this kind finished.",
            labels=["dataset", "kind"],
        )
        last_success = GaugeMetricFamily(
            "osemn_check_last_success_timestamp_seconds",
            "Unix time of the last run in which every check of this kind passed.",
            labels=["dataset", "kind"],
        )
        coverage = GaugeMetricFamily(
            "osemn_lineage_coverage_ratio",
            "Share of the source's datasets with a known upstream or declared a lineage root "
            "(0..1), as of the last lineage scan.",
            labels=["source"],
        )
        measured = [
            GaugeMetricFamily(row.metric, row.documentation, labels=[row.subject, *row.labels])
            for row in MEASUREMENT_METRICS
        ]
        if fill:
            build.add_metric([self._version], 1)
            for source, up in sorted(self._source_up.items()):
                source_up.add_metric([source], 1 if up else 0)
            for source, ratio in sorted(self._lineage_coverage.items()):
                coverage.add_metric([source], ratio)
            for run_key, count in sorted(self._runs.items()):
                runs.add_metric(run_key, count)
            for kind_key, hist in sorted(self._durations.items()):
                durations.add_metric(kind_key, hist.cumulative(), hist.total)
            for check_key, last in sorted(self._checks.items()):
                if last.rows is not None:
                    rows.add_metric(check_key, last.rows)
                if last.failed_rows is not None:
                    failed_rows.add_metric(check_key, last.failed_rows)
                success.add_metric(check_key, 1 if last.success else 0)
            for kind_key, at in sorted(self._last_run.items()):
                last_run.add_metric(kind_key, at)
            for kind_key, at in sorted(self._last_success.items()):
                last_success.add_metric(kind_key, at)
            now = self._clock()
            for row, family in zip(MEASUREMENT_METRICS, measured, strict=True):
                for label_values, value in sorted(self._measured[row.measurement].items()):
                    family.add_metric(label_values, now - value if row.age else value)
        return [
            build,
            source_up,
            runs,
            durations,
            rows,
            failed_rows,
            success,
            last_run,
            last_success,
            coverage,
            *measured,
        ]
