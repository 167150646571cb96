"""SQLAlchemy Core statements of :mod:`osemn.checks.model_metrics`: the window itself.

A window is read with at most three statements, so that the expensive part, the
join of predictions to labels, runs exactly once:

1. ``top_values`` (only with segment or version columns): each slice column's
   value counts over the window's predictions, without the join, so that the
   join can fold values beyond the top K into ``"other"`` as it reads them.
2. the window's aggregates per slice (:mod:`osemn.checks._model_slices`) over
   ``joined``: predictions left-joined to their latest label, one row per
   prediction with normalised columns (``p`` score, ``abin``/``cbin``/``ebin``
   score bins, ``yhat`` prediction, ``y`` label, ``delay``, ``lat`` and the folded
   slice keys).
3. ``percentiles``: label-delay and latency percentiles of the whole window,
   exact up to ``PERCENTILE_SAMPLE`` predictions and from a Bernoulli sample of
   about that many above it; ordered-set aggregates hold every value they see,
   so a bounded sample is what keeps the warehouse's (and DuckDB's in-process)
   memory flat in the window's size.

Three expressions differ by engine and are compiled per dialect (``@compiles``),
so no caller has to know which engine a ``run`` talks to: ``_Seconds`` (a
timestamp difference in seconds), ``_Quantile`` (``percentile_cont``; NULL on
SQLite and MySQL, which have no ordered-set aggregates, so those percentiles
are left out there) and ``_Uniform`` (a uniform random number in [0, 1)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from osemn.checks._time import bind_time
from osemn.errors import ConfigError, UnknownColumnError

if TYPE_CHECKING:
    from osemn.checks.model_metrics import ModelTables

__all__ = [
    "ECE_BINS",
    "EPS",
    "NULL_KEY",
    "OTHER",
    "PERCENTILE_SAMPLE",
    "SUB_BINS",
    "dimensions",
    "has_percentiles",
    "joined",
    "materialized",
    "percentiles",
    "top_values",
]

OTHER = "other"  # the slice that folds values beyond the top K
NULL_KEY = "(null)"  # the slice of a NULL segment or version
ECE_BINS = 10
# Score bins are grouped by SUB_BINS, each group counting its bins in as many columns:
# the hash table of a window's groups is SUB_BINS times smaller (DuckDB, scanning in
# the agent's process, keeps it within its memory cap) and AUC keeps every bin.
SUB_BINS = 10
PERCENTILE_SAMPLE = 100_000  # predictions whose delays and latencies are sorted, at most
# sklearn clips probabilities to [eps, 1 - eps] with eps of float64 (log_loss, 1.9).
EPS = 2.220446049250313e-16
_LATENCY_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
_DELAY_QUANTILES = (("p50", 0.5), ("p95", 0.95))
# Engines that understand ``WITH x AS MATERIALIZED``; MySQL materializes a CTE
# that is read more than once by itself.
_MATERIALIZING = ("postgresql", "duckdb", "sqlite")


# --- per-dialect expressions --------------------------------------------------------


class _Seconds(FunctionElement[float]):
    """``later - earlier`` in seconds (two timestamps)."""

    type = sa.Double()
    inherit_cache = True
    name = "seconds_between"


@compiles(_Seconds)
def _seconds_default(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    # julianday keeps SQLite's millisecond resolution only: round to it.
    return f"(round((julianday({later}) - julianday({earlier})) * 86400000.0) / 1000.0)"


@compiles(_Seconds, "mysql")
def _seconds_mysql(element: _Seconds, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"(TIMESTAMPDIFF(MICROSECOND, {earlier}, {later}) / 1000000.0)"


class _Quantile(FunctionElement[float]):
    """The linearly interpolated quantile (``percentile_cont``) of an aggregate group."""

    type = sa.Double()
    inherit_cache = True
    name = "percentile_cont"


@compiles(_Quantile)
def _quantile_default(element: _Quantile, compiler: SQLCompiler, **kw: Any) -> str:
    value, fraction = (compiler.process(c, **kw) for c in element.clauses)
    return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {value})"


_NO_PERCENTILES = ("sqlite", "mysql")


@compiles(_Quantile, *_NO_PERCENTILES)
def _quantile_none(element: _Quantile, compiler: SQLCompiler, **kw: Any) -> str:
    return "min(NULL)"  # still an aggregate: the statement keeps returning one row


def has_percentiles(dialect_name: str) -> bool:
    """Whether the dialect computes ``percentile_cont`` (elsewhere percentiles are NULL)."""
    return dialect_name not in _NO_PERCENTILES


def _quantile(value: sa.ColumnElement[Any], fraction: float) -> sa.ColumnElement[float]:
    # literal_execute: DuckDB wants a constant fraction, not a parameter.
    return _Quantile(value, sa.literal(fraction, sa.Double, literal_execute=True))


class _Uniform(FunctionElement[float]):
    """A uniform random number in [0, 1), drawn per row."""

    type = sa.Double()
    inherit_cache = True
    name = "random"


@compiles(_Uniform)
def _uniform_default(element: _Uniform, compiler: SQLCompiler, **kw: Any) -> str:
    return "random()"


@compiles(_Uniform, "sqlite")
def _uniform_sqlite(element: _Uniform, compiler: SQLCompiler, **kw: Any) -> str:
    return "((random() / 18446744073709551616.0) + 0.5)"  # random() is a 64-bit integer


@compiles(_Uniform, "mysql")
def _uniform_mysql(element: _Uniform, compiler: SQLCompiler, **kw: Any) -> str:
    return "rand()"


def materialized(cte: sa.CTE) -> sa.CTE:
    """``cte`` computed once however often the statement reads it."""
    for dialect in _MATERIALIZING:
        cte = cte.prefix_with("MATERIALIZED", dialect=dialect)
    return cte


# --- the window ---------------------------------------------------------------------


def _column(table: sa.Table, name: str) -> sa.Column[Any]:
    if name not in table.c:
        raise UnknownColumnError(
            source=None, table=table.fullname, column=name, available=list(table.c.keys())
        )
    return table.c[name]


def _in_window(spec: ModelTables, start: datetime, end: datetime) -> sa.ColumnElement[bool]:
    ptime = _column(spec.predictions, spec.prediction_time)
    return sa.and_(ptime >= bind_time(start, ptime), ptime < bind_time(end, ptime))


def dimensions(spec: ModelTables) -> tuple[str, ...]:
    """Slice key columns of the joined window: one per segment, then the version."""
    keys = [f"s{i}" for i in range(len(spec.segments))]
    return (*keys, "v") if spec.version else tuple(keys)


def _slice_columns(spec: ModelTables) -> list[sa.Column[Any]]:
    names = [*spec.segments, *([spec.version] if spec.version else [])]
    return [_column(spec.predictions, name) for name in names]


def _key(value: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    return sa.func.coalesce(sa.cast(value, sa.String), NULL_KEY)


def top_values(spec: ModelTables, start: datetime, end: datetime) -> sa.Select[Any] | None:
    """Statement 1: ``(dim, k, n)`` value counts of each slice column in the window."""
    branches = [
        sa.select(
            sa.literal(i, sa.Integer).label("dim"),
            _key(column).label("k"),
            sa.func.count().label("n"),
        )
        .where(_in_window(spec, start, end))
        .group_by(column)
        for i, column in enumerate(_slice_columns(spec), 1)
    ]
    if not branches:
        return None
    return branches[0] if len(branches) == 1 else sa.union_all(*branches)  # type: ignore[return-value]


def _latest(spec: ModelTables, ids: sa.Select[Any]) -> sa.Subquery:
    """The latest non-NULL label of each id in ``ids`` (see the module of the metrics)."""
    labels = spec.labels
    lid, label, ltime = (
        _column(labels, spec.label_id),
        _column(labels, spec.label),
        _column(labels, spec.label_time),
    )
    ranked = (
        sa.select(
            lid.label("id"),
            label.label("label"),
            ltime.label("label_time"),
            sa.func.row_number()
            .over(partition_by=lid, order_by=(ltime.desc().nulls_last(), label.desc()))
            .label("rn"),
        )
        .where(label.is_not(None), lid.in_(ids))
        .subquery("ranked")
    )
    return sa.select(ranked).where(ranked.c.rn == 1).subquery("latest")


def _binary(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A binary label or prediction as 1 / 0, -1 for any other value, NULL for NULL."""
    if isinstance(value.type, sa.Boolean):
        return sa.cast(value, sa.Integer)
    return sa.case(
        (value.is_(None), sa.null()),
        (value == 1, 1),
        (value == 0, 0),
        else_=-1,
    )


def _bin(p: sa.ColumnElement[float], bins: int) -> sa.ColumnElement[int]:
    """Equal-width bin of ``p`` over [0, 1] (``min(floor(p * bins), bins - 1)``), -1 for a
    score outside [0, 1], NULL for no score."""
    return sa.case(
        (p.is_(None), sa.null()),
        (sa.or_(p < 0.0, p > 1.0), -1),
        (p >= 1.0, bins - 1),
        else_=sa.cast(sa.func.floor(p * float(bins)), sa.Integer),
    )


def _coarse(abin: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """The group of ``SUB_BINS`` consecutive score bins ``abin`` is in (-1 stays -1)."""
    return sa.cast(sa.func.floor(abin / float(SUB_BINS)), sa.Integer)


def _code(value: sa.ColumnElement[Any], kept: Sequence[str]) -> sa.ColumnElement[int]:
    """The slice of ``value`` as a small integer: ``i`` for ``kept[i - 1]``, 0 for the
    rest; grouping by integers keeps the warehouse's hash tables small."""
    key = _key(value)
    if not kept:
        return sa.literal(0, sa.Integer)
    return sa.case(*((key == k, i) for i, k in enumerate(kept, 1)), else_=0)


def joined(
    spec: ModelTables, start: datetime, end: datetime, kept: Mapping[str, Sequence[str]]
) -> sa.Subquery:
    """Predictions in ``[start, end)`` with the latest label of their id (or NULL), and
    their slice keys coded by ``kept`` (dimension name to its top values)."""
    preds = spec.predictions
    pid, ptime = _column(preds, spec.prediction_id), _column(preds, spec.prediction_time)
    in_window = _in_window(spec, start, end)
    latest = _latest(spec, sa.select(pid).where(in_window))
    y_raw = latest.c.label
    cols: list[sa.ColumnElement[Any]] = []
    p: sa.ColumnElement[float] | None = None
    if spec.score is not None:
        p = sa.cast(_column(preds, spec.score), sa.Double)
        cols += [
            p.label("p"),
            _bin(p, spec.auc_bins).label("abin"),
            _coarse(_bin(p, spec.auc_bins)).label("cbin"),
            _bin(p, ECE_BINS).label("ebin"),
        ]
    pred = _column(preds, spec.prediction) if spec.prediction is not None else None
    if spec.task == "binary":
        y = _binary(y_raw)
        if pred is not None:
            yhat = _binary(pred)
        elif p is not None:
            yhat = sa.case((p >= spec.threshold, 1), (p.is_not(None), 0), else_=sa.null())
        else:
            raise _needs("binary", "score or prediction")
    elif pred is None:
        raise _needs(spec.task, "prediction")
    elif spec.task == "regression":
        y, yhat = sa.cast(y_raw, sa.Double), sa.cast(pred, sa.Double)
    else:
        y, yhat = y_raw, pred
    cols += [y.label("y"), yhat.label("yhat")]
    cols.append(sa.cast(_Seconds(latest.c.label_time, ptime), sa.Double).label("delay"))
    if spec.latency is not None:
        cols.append(sa.cast(_column(preds, spec.latency), sa.Double).label("lat"))
    for dim, column in zip(dimensions(spec), _slice_columns(spec), strict=True):
        cols.append(_code(column, kept[dim]).label(dim))
    return (
        sa.select(*cols)
        .select_from(preds.outerjoin(latest, pid == latest.c.id))
        .where(in_window)
        .subquery("j")
    )


def _needs(task: str, what: str) -> ConfigError:
    return ConfigError(f"a {task} model needs a {what} column; set it in `predictions:`.")


# --- statement 3: percentiles ---------------------------------------------------------


def percentiles(
    spec: ModelTables, start: datetime, end: datetime, predictions: int
) -> sa.Select[Any]:
    """Statement 3: label-delay and latency percentiles of the whole window (one row),
    over a Bernoulli sample of about ``PERCENTILE_SAMPLE`` of its ``predictions``."""
    preds = spec.predictions
    pid, ptime = _column(preds, spec.prediction_id), _column(preds, spec.prediction_time)
    picked = [pid.label("id"), ptime.label("t")]
    if spec.latency is not None:
        picked.append(sa.cast(_column(preds, spec.latency), sa.Double).label("lat"))
    where = _in_window(spec, start, end)
    if predictions > PERCENTILE_SAMPLE:
        where = sa.and_(where, _Uniform() < PERCENTILE_SAMPLE / predictions)
    # Read twice (the ids to look up, then the rows): both reads must see one sample.
    sample = materialized(sa.select(*picked).where(where).cte("sample"))
    latest = _latest(spec, sa.select(sample.c.id))
    delay = sa.cast(_Seconds(latest.c.label_time, sample.c.t), sa.Double)
    out: list[sa.ColumnElement[Any]] = [
        _quantile(delay, q).label(f"delay_{name}") for name, q in _DELAY_QUANTILES
    ]
    if spec.latency is not None:
        out += [_quantile(sample.c.lat, q).label(f"lat_{name}") for name, q in _LATENCY_QUANTILES]
    return sa.select(*out).select_from(sample.outerjoin(latest, sample.c.id == latest.c.id))
