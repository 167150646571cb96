"""One run of one model: predictions joined to labels in the warehouse, window by window.

A run evaluates the current window ``[now - window, now)`` by prediction time,
then re-evaluates the ``relabel_windows`` windows before it, because labels
arrive late: a window's numbers keep changing until its labels are in, and a
window first seen at 30% coverage is reported again with the labels that came
since. Only the current window's numbers become measurements (and so gauges);
a re-evaluated window is one ``model:window-N`` result whose ``details`` carry
its numbers, so an older window never overwrites the current one's gauges.

SLI events are counted once: a labelled prediction is an event in the run
after its label arrives (label time in ``[previous run, now)``), judged with
that label; a prediction is a latency event in the run after it was served.
A label written with a time earlier than a run that could not yet see it is
counted in the window metrics but not as an event: stamp labels when they land.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from osemn._model_config import LABELS_CHECK, LATENCY_CHECK, ModelConfig
from osemn.agent._run import RunContext
from osemn.agent.state import StateStore
from osemn.checks._model_sql import has_percentiles
from osemn.checks._time import bind_time
from osemn.checks.model_metrics import ModelTables, WindowMetrics, window_metrics
from osemn.config import DatasetConfig
from osemn.errors import OsemnError, QueryTimeoutError, SourceUnavailableError
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.warehouse import Warehouse, require_columns

__all__ = [
    "LABELS_CHECK",
    "LATENCY_CHECK",
    "ModelRunner",
    "metric_check",
    "window_check",
]

log = logging.getLogger(__name__)

# A ``percentile`` label, not ``quantile``: Prometheus keeps that for summaries (and
# promtool refuses it on a gauge). The maximum is the 100th percentile.
_PERCENTILES = {"p50": "50", "p95": "95", "p99": "99", "max": "100"}


def metric_check(metric: str) -> str:
    """The check name of one metric of the current window, e.g. ``model:accuracy``."""
    return f"model:{metric}"


def window_check(offset: int) -> str:
    """The check name of the window ``offset`` windows before the current one."""
    return f"model:window-{offset}"


class ModelRunner:
    """Runs one model's evaluation against its warehouse; never raises.

    Args:
        name: the model's key under ``models:``.
        config: its ``ModelConfig``.
        predictions: the dataset predictions are logged to.
        labels: the dataset labels land in (same source).
        warehouse: the source both live in.
        state: where the SLI-event watermark (the previous run's time) is kept.
        clock: aware-UTC wall clock.
    """

    def __init__(
        self,
        *,
        name: str,
        config: ModelConfig,
        predictions: DatasetConfig,
        labels: DatasetConfig,
        warehouse: Warehouse,
        state: StateStore,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.config = config
        self.predictions = predictions
        self.labels = labels
        self.warehouse = warehouse
        self.state = state
        self.clock = clock
        self.last_statements = 0

    @property
    def watermark_key(self) -> str:
        """The state-store watermark holding the time of the last run that counted events."""
        return f"model:{self.name}"

    def run(self, *, events: bool = True) -> list[CheckResult]:
        """Evaluate the current and re-evaluated windows once.

        ``events`` counts SLI events since the previous counting run and moves
        the watermark; ``osemn check`` passes False so that a one-off run does
        not take events away from the agent.
        """
        run = RunContext(
            dataset=self.name,
            source=self.warehouse.name,
            now=self.clock(),
            send=self.warehouse.execute,
        )
        try:
            self._run(run, events=events)
        except OsemnError as exc:
            return self._all_errors(run, str(exc))
        except Exception as exc:  # a bug must cost one run, never the agent
            log.exception("model %s: unexpected error", self.name)
            return self._all_errors(run, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.last_statements = run.statements
        return run.finish(self.clock())

    def expected_checks(self) -> list[str]:
        """The checks a run reports, in order (also when it cannot start)."""
        out = [metric_check(m) for m in self.config.selected_metrics]
        out.append(LABELS_CHECK)
        if self.config.predictions.latency is not None:
            out.append(LATENCY_CHECK)
        out += [window_check(i) for i in range(1, self.config.relabel_windows + 1)]
        return out

    # -- the run ----------------------------------------------------------------

    def _run(self, run: RunContext, *, events: bool) -> None:
        if not self.warehouse.available():
            raise SourceUnavailableError(
                f"source {self.warehouse.name!r} is down and in backoff; "
                "the model is evaluated again when it answers",
                source=self.warehouse.name,
            )
        spec = self._spec()
        now, width = run.now, self.config.window

        quantiles = has_percentiles(self.warehouse.engine.dialect.name)

        def measure(tables: ModelTables, start: datetime, end: datetime) -> WindowMetrics:
            return window_metrics(
                lambda s: list(run.execute(s)), tables, start, end, percentiles_too=quantiles
            )

        def count(tables: ModelTables, start: datetime, end: datetime) -> WindowMetrics:
            """Good and bad events only: no percentiles statement."""
            return window_metrics(
                lambda s: list(run.execute(s)), tables, start, end, percentiles_too=False
            )

        current = measure(spec, now - width, now)
        past: list[tuple[int, datetime, datetime, WindowMetrics | OsemnError]] = []
        for offset in range(1, self.config.relabel_windows + 1):
            start, end = now - (offset + 1) * width, now - offset * width
            try:
                past.append((offset, start, end, measure(spec, start, end)))
            except (SourceUnavailableError, QueryTimeoutError):
                raise
            except OsemnError as exc:
                past.append((offset, start, end, exc))
        counted = None
        # Events span every evaluated window: a window whose data was refused would
        # refuse them too, so they wait (the watermark stays) until it is fixed.
        if events and not any(isinstance(m, OsemnError) for *_, m in past):
            try:
                counted = self._events(run, spec, count)
            except (SourceUnavailableError, QueryTimeoutError):
                raise
            except OsemnError as exc:
                log.warning("model %s: SLI events not counted this run: %s", self.name, exc)
        self._current(run, current, now - width, now, counted)
        for offset, start, end, m in past:
            if isinstance(m, OsemnError):
                run.error(CheckKind.MODEL, window_check(offset), str(m), details=_span(start, end))
            else:
                self._past(run, offset, m, start, end)
        if counted is not None:
            self.state.set_watermark(self.watermark_key, now)

    def _spec(self) -> ModelTables:
        cfg, p, lab = self.config, self.config.predictions, self.config.labels
        preds = self.warehouse.describe(self.predictions.table)
        labels = self.warehouse.describe(self.labels.table)
        prediction_time = p.timestamp or self.predictions.timestamp
        label_time = lab.timestamp or self.labels.timestamp
        assert prediction_time is not None and label_time is not None  # config checked
        optional = (p.score, p.prediction, p.version, p.latency)
        require_columns(preds, [p.id, prediction_time, *(c for c in optional if c), *p.segments])
        require_columns(labels, [lab.id, lab.label, label_time])
        latency = cfg.latency_threshold
        return ModelTables(
            predictions=preds.table,
            labels=labels.table,
            prediction_id=p.id,
            prediction_time=prediction_time,
            score=p.score,
            prediction=p.prediction,
            version=p.version,
            latency=p.latency,
            segments=p.segments,
            label_id=lab.id,
            label=lab.label,
            label_time=label_time,
            task=cfg.task,
            threshold=cfg.threshold,
            tolerance=cfg.tolerance,
            latency_threshold=None if latency is None else latency.total_seconds(),
            top_k=cfg.top_k,
        )

    def _events(
        self,
        run: RunContext,
        spec: ModelTables,
        measure: Callable[[ModelTables, datetime, datetime], WindowMetrics],
    ) -> dict[str, tuple[int, int]]:
        """Good and bad SLI events since the previous counting run (the first: one window)."""
        now, width = run.now, self.config.window
        last = self.state.get_watermark(self.watermark_key)
        # A clock set back counts nothing until it passes the last run again.
        since = now - width if last is None else min(last, now)
        lean = dataclasses.replace(spec, segments=(), version=None)
        label_time = spec.labels.c[spec.label_time]
        arrived = (
            sa.select(spec.labels)
            .where(
                label_time >= bind_time(since, label_time),
                label_time < bind_time(now, label_time),
            )
            .subquery("arrived_labels")
        )
        # Predictions of every window still re-evaluated can get a label now.
        horizon = now - (self.config.relabel_windows + 1) * width
        newly = measure(
            dataclasses.replace(lean, labels=cast(sa.Table, arrived), latency=None),
            horizon,
            now,
        )
        out = {"accuracy": (newly.good, newly.bad)}
        if spec.latency is not None and spec.latency_threshold is not None:
            served = measure(lean, since, now)
            out["latency"] = (served.latency_good, served.latency_bad)
        return out

    def _current(
        self,
        run: RunContext,
        m: WindowMetrics,
        start: datetime,
        end: datetime,
        counted: Mapping[str, tuple[int, int]] | None,
    ) -> None:
        span = {**_span(start, end), "predictions": m.predictions, "labelled": m.labelled}
        for metric in self.config.selected_metrics:
            measurements = _metric_measurements(metric, m)
            value = m.realized.get(metric)
            if value is None:
                why = "no labelled predictions" if not m.labelled else "undefined on these labels"
                run.add(
                    CheckKind.MODEL,
                    metric_check(metric),
                    Status.INSUFFICIENT_DATA,
                    rows=m.labelled,
                    measurements=measurements,
                    note=f"{metric} {why} in the window",
                    details=span,
                )
                continue
            broken = self._broken(metric, value)
            run.add(
                CheckKind.MODEL,
                metric_check(metric),
                Status.FAIL if broken else Status.PASS,
                rows=m.labelled,
                measurements=measurements,
                note=broken,
                details=span,
            )
        label_health = [Measurement(name="predictions", value=float(m.predictions))]
        if m.predictions:
            label_health.append(
                Measurement(name="label_coverage_ratio", value=m.labelled / m.predictions)
            )
        label_health += _percentiles("label_delay_seconds", m.label_delay)
        if counted is not None:
            good, bad = counted["accuracy"]
            label_health += [
                Measurement(name="accuracy_good_events", value=float(good)),
                Measurement(name="accuracy_bad_events", value=float(bad)),
            ]
        run.add(
            CheckKind.MODEL,
            LABELS_CHECK,
            Status.PASS if m.predictions else Status.INSUFFICIENT_DATA,
            rows=m.predictions,
            measurements=tuple(label_health),
            note=None if m.predictions else "no predictions in the window",
            details=span,
        )
        if self.config.predictions.latency is None:
            return
        latency = _percentiles("latency_seconds", m.latency)
        if counted is not None and "latency" in counted:
            good, bad = counted["latency"]
            latency += [
                Measurement(name="latency_good_events", value=float(good)),
                Measurement(name="latency_bad_events", value=float(bad)),
            ]
        judged = self.config.latency_threshold is not None
        run.add(
            CheckKind.MODEL,
            LATENCY_CHECK,
            Status.PASS if m.predictions else Status.INSUFFICIENT_DATA,
            rows=m.predictions,
            failed_rows=m.latency_bad if judged else None,
            measurements=tuple(latency),
            note=None if m.predictions else "no predictions in the window",
            details=span,
        )

    def _past(
        self, run: RunContext, offset: int, m: WindowMetrics, start: datetime, end: datetime
    ) -> None:
        details: dict[str, Any] = {
            **_span(start, end),
            "predictions": m.predictions,
            "labelled": m.labelled,
            "label_coverage_ratio": m.labelled / m.predictions if m.predictions else None,
            "realized": dict(m.realized),
            "estimated": dict(m.estimated),
            "label_delay_seconds": dict(m.label_delay),
        }
        if not m.labelled:
            run.add(
                CheckKind.MODEL,
                window_check(offset),
                Status.INSUFFICIENT_DATA,
                rows=0,
                note="no labelled predictions in the window",
                details=details,
            )
            return
        broken = [
            why
            for metric in self.config.selected_metrics
            if (value := m.realized.get(metric)) is not None
            and (why := self._broken(metric, value)) is not None
        ]
        run.add(
            CheckKind.MODEL,
            window_check(offset),
            Status.FAIL if broken else Status.PASS,
            rows=m.labelled,
            note="; ".join(broken) or None,
            details=details,
        )

    def _broken(self, metric: str, value: float) -> str | None:
        """Why ``value`` breaks the configured bound of ``metric``, or None."""
        low, high = self.config.min_.get(metric), self.config.max_.get(metric)
        if low is not None and value < low:
            return f"{metric} {value:.4g} is below the minimum {low:g}"
        if high is not None and value > high:
            return f"{metric} {value:.4g} is above the maximum {high:g}"
        return None

    def _all_errors(self, run: RunContext, reason: str) -> list[CheckResult]:
        run.results.clear()
        for check in self.expected_checks():
            run.error(CheckKind.MODEL, check, reason)
        return run.finish(self.clock())


def _span(start: datetime, end: datetime) -> dict[str, Any]:
    return {"window_start": start.isoformat(), "window_end": end.isoformat()}


def _percentiles(name: str, values: Mapping[str, float]) -> list[Measurement]:
    return [
        Measurement(name=name, value=value, labels=(("percentile", _PERCENTILES.get(q, q)),))
        for q, value in values.items()
    ]


def _metric_measurements(metric: str, m: WindowMetrics) -> tuple[Measurement, ...]:
    """``model_metric`` of ``metric``: overall, per top segment value and per version."""
    parts: list[tuple[str, WindowMetrics]] = [("all", m)]
    parts += [(f"{col}={value}", sub) for (col, value), sub in m.by_segment.items()]
    parts += [(f"version={version}", sub) for version, sub in m.by_version.items()]
    out = []
    for segment, sub in parts:
        for kind, values in (("realized", sub.realized), ("estimated", sub.estimated)):
            if metric in values:
                labels = (("metric", metric), ("kind", kind), ("segment", segment))
                out.append(Measurement(name="model_metric", value=values[metric], labels=labels))
    return tuple(out)
