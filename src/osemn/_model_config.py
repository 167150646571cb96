"""The ``models`` section of osemn.yaml: predictions, labels, task, metrics, windows.

Kept apart from ``config.py`` so that module stays readable; ``config`` re-exports
these models and checks their cross-references (datasets, sources, timestamps).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from osemn._units import parse_duration

if TYPE_CHECKING:
    from osemn.config import Schedule

__all__ = [
    "LABELS_CHECK",
    "LATENCY_CHECK",
    "MODEL_METRICS",
    "LabelsConfig",
    "ModelConfig",
    "PredictionsConfig",
    "Task",
]

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Task = Literal["binary", "multiclass", "regression"]

# Check names of a model's label health and latency results; SLI events ride on them.
LABELS_CHECK = "model:labels"
LATENCY_CHECK = "model:latency"

# The metrics each task can report, in the order they are reported.
MODEL_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "auc", "log_loss", "brier", "ece"),
    "multiclass": ("accuracy", "macro_f1", "weighted_f1"),
    "regression": ("mae", "rmse", "mape", "r2"),
}
# Binary metrics read from the probability score rather than the predicted class.
_SCORE_METRICS = frozenset({"auc", "log_loss", "brier", "ece"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PredictionsConfig(_Model):
    """Where predictions are logged when served.

    ``timestamp`` is the prediction time (default: the dataset's ``timestamp:``);
    ``latency`` a column of serving latency in seconds; ``segments`` columns
    whose top values get their own metrics.
    """

    dataset: str
    id: str
    score: str | None = None
    prediction: str | None = None
    timestamp: str | None = None
    version: str | None = None
    latency: str | None = None
    segments: tuple[str, ...] = ()


class LabelsConfig(_Model):
    """Where ground truth lands, later: ``timestamp`` is when a label became known."""

    dataset: str
    id: str
    label: str
    timestamp: str | None = None


class ModelConfig(_Model):
    """One model under watch: predictions joined to labels in the warehouse.

    ``window`` is the span of prediction time one evaluation covers; each run
    also re-evaluates the ``relabel_windows`` windows before it, so labels that
    arrive late update them. ``min``/``max`` are optional per-metric bounds
    that make a metric's result fail.
    """

    predictions: PredictionsConfig
    labels: LabelsConfig
    task: Task
    metrics: tuple[str, ...] = ()
    window: Duration = timedelta(days=1)
    relabel_windows: int = Field(default=3, ge=0, le=100)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    schedule: Annotated[Schedule, BeforeValidator(lambda v: _schedule(v))] = Field(
        default_factory=lambda: _schedule("every 5m")
    )
    tolerance: float | None = Field(default=None, ge=0.0)
    latency_threshold: Duration | None = None
    top_k: int = Field(default=10, ge=1, le=100)
    min_: dict[str, float] = Field(default={}, alias="min")
    max_: dict[str, float] = Field(default={}, alias="max")
    # The Feast feature views the model is served from, as `<feast source>/<view>`: in
    # the lineage graph they are upstream of the model, so a stale view is the root of
    # the model's incident.
    feature_views: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _fits_task(self) -> ModelConfig:
        known = MODEL_METRICS[self.task]
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ValueError(
                f"metrics {', '.join(map(repr, unknown))} do not apply to task {self.task}; "
                f"use some of: {', '.join(known)}"
            )
        for what, bounds in (("min", self.min_), ("max", self.max_)):
            bad = [m for m in bounds if m not in self.selected_metrics]
            if bad:
                raise ValueError(
                    f"{what} names {', '.join(map(repr, bad))}, not a reported metric; "
                    f"bound some of: {', '.join(self.selected_metrics)}"
                )
        p = self.predictions
        if self.task == "binary" and p.score is None and p.prediction is None:
            raise ValueError(
                "a binary model needs predictions.score, predictions.prediction or both"
            )
        if self.task == "binary" and p.score is None:
            needs_score = sorted(_SCORE_METRICS.intersection(self.metrics))
            if needs_score:
                raise ValueError(
                    f"metrics {', '.join(needs_score)} need predictions.score (the probability)"
                )
        if self.task != "binary" and p.prediction is None:
            raise ValueError(
                f"a {self.task} model needs predictions.prediction (the predicted value)"
            )
        if self.tolerance is not None and self.task != "regression":
            raise ValueError(
                "tolerance only applies to task regression (|error| <= tolerance is good)"
            )
        if self.latency_threshold is not None and p.latency is None:
            raise ValueError("latency_threshold needs predictions.latency (a column of seconds)")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive, e.g. 1d")
        return self

    @property
    def selected_metrics(self) -> tuple[str, ...]:
        """The metrics reported: those asked for, else all of the task that the columns allow."""
        if self.metrics:
            return self.metrics
        known = MODEL_METRICS[self.task]
        if self.task == "binary" and self.predictions.score is None:
            return tuple(m for m in known if m not in _SCORE_METRICS)
        return known


def _schedule(value: object) -> Schedule:
    # config imports this module, so Schedule is looked up when a value is validated;
    # config.py rebuilds ModelConfig once Schedule exists.
    from osemn.config import Schedule

    return Schedule.parse(value)
