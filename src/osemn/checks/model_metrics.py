"""Model-accuracy metrics of one window, computed inside the warehouse.

Predictions whose ``prediction_time`` falls in ``[start, end)`` are left-joined
by id to the labels table; only aggregates leave the database.

Join semantics:

* **Duplicate label ids: the latest label wins.** Among the label rows of one id
  with a non-NULL label, the one with the greatest ``label_time`` is used (a
  NULL ``label_time`` loses to any time); rows with equal times are broken by
  the greatest label value, so the choice never depends on row order.
* Label rows whose id has no prediction in the window are ignored; a label row
  with a NULL label is ignored (it is not ground truth).
* A prediction without a label is *unlabelled*: it counts in ``predictions``
  but not ``labelled`` (coverage is ``labelled / predictions``). Re-evaluating
  a window after late labels arrive gives the metrics of the labels present then.
* Prediction ids are expected to be unique; a repeated prediction id counts once
  per prediction row, each with the id's latest label.

Metrics (``realized``; a metric that is undefined, e.g. AUC with one class or
precision with no predicted positive, is left out):

* binary: the positive class is 1 / true. The predicted class is the
  ``prediction`` column, else ``score >= threshold``. accuracy, precision,
  recall, f1 as scikit-learn computes them; a labelled prediction with no
  predicted class counts as wrong. With a score: ``log_loss`` with scikit-learn's
  clipping of the score to ``[eps, 1 - eps]`` (eps of float64), ``brier`` (mean
  squared error of the score), ``auc`` by Mann-Whitney on per-label score
  histograms of ``auc_bins`` equal-width bins over [0, 1] (pairs within one bin
  count one half; at 2,000 bins this is within 1e-3 of the exact value), and
  ``ece`` = ``sum_b |mean score_b - positive rate_b| * n_b / n`` over 10 bins,
  bin ``b = min(floor(10 * score), 9)``. A score outside [0, 1], or a label or
  prediction other than 0/1/true/false, raises ``CheckError``.
* multiclass: accuracy, ``macro_f1`` and ``weighted_f1`` over the classes seen
  in the labelled rows' labels or predictions (scikit-learn's ``f1_score``).
* regression: mae, rmse, mape (scikit-learn's, ``|y|`` floored at eps), r2
  (two or more labelled rows; a constant label gives 1.0 for a perfect fit
  and 0.0 otherwise, as scikit-learn does).

``estimated`` (binary with a score): NannyML's confidence-based performance
estimation (CBPE) over the window's *unlabelled* predictions, taking the score
as a calibrated probability: expected TP = sum of p where the predicted class
is 1, FP = sum of 1 - p there, FN = sum of p where it is 0, TN = sum of 1 - p
there; accuracy, precision, recall and F1 of that expected confusion matrix.

SLI events: a labelled prediction is ``good`` when correct (classification) or
within ``tolerance`` (regression; without a tolerance no accuracy events are
counted); a prediction with a latency is ``latency_good`` when at most
``latency_threshold`` seconds.

Slices: each segment column and the version are folded to their ``top_k``
most frequent values in the window (ties by value), the rest into ``"other"``;
a NULL value is the slice ``"(null)"``.

Statements (see :mod:`osemn.checks._model_sql`), whatever the number of
segments and versions: the slice columns' value counts (only when there are
slice columns; no join), then every slice's aggregates in one pass over the
join (one row per slice), then the percentiles (only with labels or a latency
column). The join of predictions to labels runs once.

Percentiles are of the whole window, not per slice (a slice reports its
maximum label delay): label delay p50/p95 and latency p50/p95/p99 as
``percentile_cont`` computes them, exactly for windows of up to 100,000
predictions and from a uniform random sample of about 100,000 above that, so
that the warehouse never sorts more than that many values. They need
``percentile_cont`` (PostgreSQL, DuckDB and most warehouses); on SQLite and
MySQL they are left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from osemn.checks._model_slices import window_slices
from osemn.checks._model_sql import OTHER, dimensions, joined, percentiles, top_values
from osemn.errors import CheckError, ConfigError

__all__ = ["ModelTables", "Run", "WindowMetrics", "window_metrics"]

Run = Callable[[sa.Executable], list[sa.Row[Any]]]
Task = Literal["binary", "multiclass", "regression"]
_Agg = Mapping[Any, Any]
_Key = tuple[int, str]


@dataclass(frozen=True, kw_only=True)
class ModelTables:
    """Where a model's predictions and labels are, and how to read them.

    ``predictions`` and ``labels`` are reflected tables; the other fields name
    their columns (``latency`` in seconds) or set the metric parameters.
    """

    predictions: sa.Table
    labels: sa.Table
    prediction_id: str
    prediction_time: str
    score: str | None = None
    prediction: str | None = None
    version: str | None = None
    latency: str | None = None
    segments: tuple[str, ...] = ()
    label_id: str
    label: str
    label_time: str
    task: Task
    threshold: float = 0.5
    tolerance: float | None = None
    latency_threshold: float | None = None
    top_k: int = 10
    auc_bins: int = 2000


@dataclass(frozen=True, kw_only=True)
class WindowMetrics:
    """Metrics of one window (or of one slice of it: then ``by_*`` are empty)."""

    predictions: int
    labelled: int
    realized: dict[str, float]
    estimated: dict[str, float]
    label_delay: dict[str, float]
    latency: dict[str, float]
    good: int
    bad: int
    latency_good: int
    latency_bad: int
    by_segment: dict[tuple[str, str], WindowMetrics] = field(default_factory=dict)
    by_version: dict[str, WindowMetrics] = field(default_factory=dict)

    @property
    def coverage(self) -> float | None:
        """Labelled share of the window's predictions (None without predictions)."""
        return self.labelled / self.predictions if self.predictions else None


def window_metrics(
    run: Run,
    spec: ModelTables,
    start: datetime,
    end: datetime,
    *,
    percentiles_too: bool = True,
) -> WindowMetrics:
    """Metrics of the predictions made in ``[start, end)`` with the labels present now.

    :param run: executes one statement and returns its rows.
    :param percentiles_too: also the label-delay and latency percentiles (one more
        statement); callers that only count good and bad events leave them out, as
        do dialects without ``percentile_cont`` (``has_percentiles``).
    :raises UnknownColumnError: a configured column is not in its table.
    :raises ConfigError: the task lacks the columns it needs, or a bad parameter.
    :raises CheckError: a score outside [0, 1] or a binary label or prediction
        other than 0/1 in the window.
    """
    _check_spec(spec)
    # Building the join resolves every configured column before any statement runs.
    joined(spec, start, end, dict.fromkeys(dimensions(spec), ()))
    kept = _top_values(run, spec, start, end)
    j = joined(spec, start, end, kept)
    names = [[""], *([OTHER, *kept[d]] for d in dimensions(spec))]
    slices: dict[_Key, _Agg] = {
        (int(r.dim), names[int(r.dim)][int(r.k)]): r._mapping
        for r in run(window_slices(j, spec, kept))
    }
    whole = slices.get((0, ""))
    if whole is None or not whole["n"]:
        return _empty()
    _check_values(whole, spec)
    metrics = {key: _metrics(agg, spec) for key, agg in slices.items()}
    window = metrics[(0, "")]
    if percentiles_too and (spec.latency is not None or window.labelled):
        (row,) = run(percentiles(spec, start, end, window.predictions))
        window = replace(
            window,
            label_delay={**_present(p50=row.delay_p50, p95=row.delay_p95), **window.label_delay},
            latency=_present(**{q: getattr(row, f"lat_{q}", None) for q in ("p50", "p95", "p99")}),
        )
    by_segment = {
        (spec.segments[d - 1], k): m
        for (d, k), m in metrics.items()
        if 1 <= d <= len(spec.segments)
    }
    by_version = {k: m for (d, k), m in metrics.items() if d == len(spec.segments) + 1}
    return replace(window, by_segment=by_segment, by_version=by_version)


def _top_values(
    run: Run, spec: ModelTables, start: datetime, end: datetime
) -> dict[str, list[str]]:
    """Each slice dimension's ``top_k`` most frequent values (ties by value)."""
    dims = dimensions(spec)
    statement = top_values(spec, start, end)
    counts: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in run(statement) if statement is not None else []:
        counts[int(row.dim)].append((-int(row.n), str(row.k)))
    return {dim: [k for _, k in sorted(counts[i])[: spec.top_k]] for i, dim in enumerate(dims, 1)}


def _check_spec(spec: ModelTables) -> None:
    if spec.top_k < 1:
        raise ConfigError(f"top_k is {spec.top_k!r}; set it to 1 or more.")
    if spec.auc_bins < 1:
        raise ConfigError(f"auc_bins is {spec.auc_bins!r}; set it to 1 or more (2000 by default).")
    if spec.task not in ("binary", "multiclass", "regression"):
        raise ConfigError(f"task {spec.task!r} is unknown; use binary, multiclass or regression.")


def _check_values(whole: _Agg, spec: ModelTables) -> None:
    checks = (
        ("bad_scores", spec.predictions, spec.score, "a score outside [0, 1]"),
        ("bad_labels", spec.labels, spec.label, "a label other than 0/1/true/false"),
        ("bad_predictions", spec.predictions, spec.prediction, "a class other than 0/1"),
    )
    for name, table, column, what in checks:
        count = _int(whole.get(name))
        if count:
            raise CheckError(
                f"{count} predictions in the window have {what} in column {column!r} of "
                f"{table.fullname!r}; a {spec.task} model's scores are probabilities of the "
                "positive class and its labels and predicted classes are 0/1 or booleans. "
                "Fix the data or the model's columns."
            )


def _empty() -> WindowMetrics:
    return WindowMetrics(
        predictions=0,
        labelled=0,
        realized={},
        estimated={},
        label_delay={},
        latency={},
        good=0,
        bad=0,
        latency_good=0,
        latency_bad=0,
    )


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _float(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _present(**values: Any) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _metrics(agg: _Agg, spec: ModelTables) -> WindowMetrics:
    labelled = _int(agg["labelled"])
    if spec.task == "binary":
        realized, estimated, good = _binary(agg, spec)
    elif spec.task == "multiclass":
        realized, estimated, good = _multiclass(agg), {}, _int(agg["correct"])
    else:
        realized, estimated, good = _regression(agg), {}, _int(agg.get("good"))
    counts_events = spec.task != "regression" or spec.tolerance is not None
    return WindowMetrics(
        predictions=_int(agg["n"]),
        labelled=labelled,
        realized=realized if labelled else {},
        estimated=estimated,
        label_delay=_present(max=agg["delay_max"]),
        latency={},
        good=good if counts_events else 0,
        bad=labelled - good if counts_events else 0,
        latency_good=_int(agg.get("lat_good")),
        latency_bad=_int(agg.get("lat_bad")),
    )


def _confusion(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    return _present(
        accuracy=_ratio(tp + tn, tp + fp + fn + tn),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
    )


def _binary(agg: _Agg, spec: ModelTables) -> tuple[dict[str, float], dict[str, float], int]:
    tp, fp, fn, tn = (_int(agg[k]) for k in ("tp", "fp", "fn", "tn"))
    labelled = _int(agg["labelled"])
    realized = _confusion(tp, fp, fn, tn)
    if labelled:  # a labelled row without a predicted class is wrong, not skipped
        realized["accuracy"] = (tp + tn) / labelled
    estimated: dict[str, float] = {}
    if spec.score is None:
        return realized, estimated, tp + tn
    scored = _int(agg["scored"])
    if scored:
        realized["log_loss"] = _float(agg["log_loss_sum"]) / scored
        realized["brier"] = _float(agg["brier_sum"]) / scored
        realized["ece"] = _float(agg["ece_sum"]) / scored
        pos, neg = _int(agg["auc_pos"]), _int(agg["auc_neg"])
        if pos and neg:
            realized["auc"] = int(agg["u2"]) / (2 * pos * neg)
    if _int(agg["unlabelled"]):
        estimated = _confusion(*(_float(agg[k]) for k in ("e_tp", "e_fp", "e_fn", "e_tn")))
    return realized, estimated, tp + tn


def _multiclass(agg: _Agg) -> dict[str, float]:
    labelled = _int(agg["labelled"])
    if not labelled:
        return {}
    realized = {"accuracy": _int(agg["correct"]) / labelled}
    classes = _int(agg["classes"])
    if classes:
        realized["macro_f1"] = _float(agg["f1_sum"]) / classes
        realized["weighted_f1"] = _float(agg["f1_weighted_sum"]) / labelled
    return realized


def _regression(agg: _Agg) -> dict[str, float]:
    n = _int(agg["errors"])
    if not n:
        return {}
    sq = _float(agg["sq_sum"])
    realized = {
        "mae": _float(agg["abs_sum"]) / n,
        "rmse": math.sqrt(sq / n),
        "mape": _float(agg["ape_sum"]) / n,
    }
    if n >= 2:
        y_sum = _float(agg["y_sum"])
        ss_tot = _float(agg["y_sq_sum"]) - y_sum * y_sum / n
        if ss_tot > 0:
            realized["r2"] = 1.0 - sq / ss_tot
        else:  # scikit-learn's force_finite: a constant label
            realized["r2"] = 1.0 if sq == 0 else 0.0
    return realized
