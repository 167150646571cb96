"""SQLAlchemy Core statements of :mod:`osemn.checks.model_metrics`.

``joined`` is the window's predictions left-joined to their latest label, one
row per prediction with normalised columns (``p`` score, ``yhat`` prediction,
``y`` label, ``delay``, ``lat`` and the slice keys). ``totals`` aggregates it per
slice (the whole window, each top-K segment value, each top-K version) in one
statement; ``details`` adds, in a second one, what cannot be summed into a
fixed set of columns: per-label score histograms (binary with a score) or
per-class counts (multiclass).

Two expressions differ by engine and are compiled per dialect
(``@compiles``), so no caller has to know which engine a ``run`` talks to:
``_Seconds`` (a timestamp difference in seconds) and ``_Quantile``
(``percentile_cont``; NULL on SQLite and MySQL, which have no ordered-set
aggregates, so those percentiles are left out there).
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

__all__ = ["ECE_BINS", "NULL_KEY", "OTHER", "details", "dimensions", "joined", "totals"]

OTHER = "other"  # the slice that folds values beyond the top K
NULL_KEY = "(null)"  # the slice of a NULL segment or version
ECE_BINS = 10
# sklearn clips probabilities to [eps, 1 - eps] with eps of float64 (log_loss, 1.9).
_EPS = 2.220446049250313e-16
_LATENCY_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
_DELAY_QUANTILES = (("p50", 0.5), ("p95", 0.95))


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


@compiles(_Quantile, "sqlite")
@compiles(_Quantile, "mysql")
def _quantile_none(element: _Quantile, compiler: SQLCompiler, **kw: Any) -> str:
    return "NULL"


def _quantile(value: sa.ColumnElement[Any], fraction: float) -> sa.ColumnElement[float]:
    # literal_execute: DuckDB wants a constant fraction, not a parameter.
    return _Quantile(value, sa.literal(fraction, sa.Double, literal_execute=True))


# --- the joined window --------------------------------------------------------------


def _column(table: sa.Table, name: str) -> sa.Column[Any]:
    if name not in table.c:
        raise UnknownColumnError(
            source=None, table=table.fullname, column=name, available=list(table.c.keys())
        )
    return table.c[name]


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
    """Equal-width bin of ``p`` over [0, 1]: ``min(floor(p * bins), bins - 1)``."""
    return sa.case(
        (p >= 1.0, bins - 1),
        else_=sa.cast(sa.func.floor(p * float(bins)), sa.Integer),
    )


def dimensions(spec: ModelTables) -> tuple[str, ...]:
    """Slice key columns of the joined window: one per segment, then the version."""
    keys = [f"s{i}" for i in range(len(spec.segments))]
    return (*keys, "v") if spec.version else tuple(keys)


def _key(value: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    return sa.func.coalesce(sa.cast(value, sa.String), NULL_KEY)


def joined(spec: ModelTables, start: datetime, end: datetime) -> sa.CTE:
    """Predictions in ``[start, end)`` with the latest label of their id (or NULL)."""
    preds, labels = spec.predictions, spec.labels
    pid, ptime = _column(preds, spec.prediction_id), _column(preds, spec.prediction_time)
    lid, label, ltime = (
        _column(labels, spec.label_id),
        _column(labels, spec.label),
        _column(labels, spec.label_time),
    )
    in_window = sa.and_(ptime >= bind_time(start, ptime), ptime < bind_time(end, ptime))
    ranked = (
        sa.select(
            lid.label("id"),
            label.label("label"),
            ltime.label("label_time"),
            sa.func.row_number()
            .over(partition_by=lid, order_by=(ltime.desc().nulls_last(), label.desc()))
            .label("rn"),
        )
        .where(label.is_not(None), lid.in_(sa.select(pid).where(in_window)))
        .subquery("ranked")
    )
    latest = sa.select(ranked).where(ranked.c.rn == 1).subquery("latest")
    y_raw = latest.c.label
    cols: list[sa.ColumnElement[Any]] = []
    p: sa.ColumnElement[float] | None = None
    if spec.score is not None:
        p = sa.cast(_column(preds, spec.score), sa.Double)
        cols += [
            p.label("p"),
            _bin(p, spec.auc_bins).label("abin"),
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
    for i, name in enumerate(spec.segments):
        cols.append(_key(_column(preds, name)).label(f"s{i}"))
    if spec.version is not None:
        cols.append(_key(_column(preds, spec.version)).label("v"))
    return (
        sa.select(*cols)
        .select_from(preds.outerjoin(latest, pid == latest.c.id))
        .where(in_window)
        .cte("j")
    )


def _needs(task: str, what: str) -> ConfigError:
    return ConfigError(f"a {task} model needs a {what} column; set it in `predictions:`.")


# --- statement 1: totals per slice ---------------------------------------------------


def _slices(
    j: sa.CTE,
    spec: ModelTables,
    columns: Sequence[str],
    kept: Mapping[str, Sequence[str]] | None = None,
) -> sa.Subquery:
    """The window's rows once per slice: ``dim`` 0 is the whole window, ``dim`` i the
    i-th slice key (folded to its top K: ranked here, or ``kept`` from statement 1)."""
    base = [j.c[c] for c in columns]
    branches: list[sa.Select[Any]] = [
        sa.select(sa.literal(0, sa.Integer).label("dim"), _text("").label("k"), *base)
    ]
    for i, dim in enumerate(dimensions(spec), 1):
        value = j.c[dim]
        if kept is None:
            rank = (
                sa.select(
                    value.label("key"),
                    sa.func.row_number().over(order_by=(sa.func.count().desc(), value)).label("r"),
                )
                .group_by(value)
                .subquery(f"rank_{dim}")
            )
            key = sa.case((rank.c.r <= spec.top_k, value), else_=_text(OTHER))
            source: sa.FromClause = j.join(rank, value == rank.c.key)
        else:
            key = sa.case((value.in_(list(kept[dim])), value), else_=_text(OTHER))
            source = j
        branches.append(
            sa.select(sa.literal(i, sa.Integer).label("dim"), key.label("k"), *base).select_from(
                source
            )
        )
    if len(branches) == 1:
        return branches[0].subquery("u")
    return sa.union_all(*branches).subquery("u")


def _text(value: str) -> sa.ColumnElement[str]:
    return sa.literal(value, sa.String)


def _sum(condition: sa.ColumnElement[bool], value: Any = 1) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, value), else_=0))


def _aggregates(u: sa.Subquery, spec: ModelTables, shift: Any) -> list[sa.ColumnElement[Any]]:
    y, yhat = u.c.y, u.c.yhat
    out: list[sa.ColumnElement[Any]] = [
        sa.func.count().label("n"),
        sa.func.count(y).label("labelled"),
        sa.func.max(u.c.delay).label("delay_max"),
    ]
    out += [_quantile(u.c.delay, q).label(f"delay_{name}") for name, q in _DELAY_QUANTILES]
    if spec.latency is not None:
        lat = u.c.lat
        out += [_quantile(lat, q).label(f"lat_{name}") for name, q in _LATENCY_QUANTILES]
        if spec.latency_threshold is not None:
            out += [
                _sum(lat <= spec.latency_threshold).label("lat_good"),
                _sum(lat > spec.latency_threshold).label("lat_bad"),
            ]
    if spec.task == "binary":
        out += [
            _sum(sa.and_(y == 1, yhat == 1)).label("tp"),
            _sum(sa.and_(y == 0, yhat == 1)).label("fp"),
            _sum(sa.and_(y == 1, yhat == 0)).label("fn"),
            _sum(sa.and_(y == 0, yhat == 0)).label("tn"),
            _sum(y == -1).label("bad_labels"),
            _sum(yhat == -1).label("bad_predictions"),
        ]
        if spec.score is not None:
            out += _score_aggregates(u, y, yhat)
    elif spec.task == "multiclass":
        out.append(_sum(y == yhat).label("correct"))
    else:
        out += _regression_aggregates(u, spec, shift)
    return out


def _score_aggregates(
    u: sa.Subquery, y: sa.ColumnElement[Any], yhat: sa.ColumnElement[Any]
) -> list[sa.ColumnElement[Any]]:
    p = u.c.p
    valid = sa.and_(p >= 0.0, p <= 1.0)
    scored = sa.and_(valid, y.in_([0, 1]))
    unlabelled = sa.and_(valid, y.is_(None))

    def clip(q: sa.ColumnElement[float]) -> sa.ColumnElement[float]:
        return sa.case((q < _EPS, _EPS), (q > 1.0 - _EPS, 1.0 - _EPS), else_=q)

    loss = sa.case((y == 1, -sa.func.ln(clip(p))), else_=-sa.func.ln(clip(1.0 - p)))
    return [
        _sum(sa.or_(p < 0.0, p > 1.0)).label("bad_scores"),
        _sum(scored).label("scored"),
        _sum(scored, loss).label("log_loss_sum"),
        _sum(scored, (p - y) * (p - y)).label("brier_sum"),
        _sum(unlabelled).label("unlabelled"),
        _sum(sa.and_(unlabelled, yhat == 1), p).label("e_tp"),
        _sum(sa.and_(unlabelled, yhat == 1), 1.0 - p).label("e_fp"),
        _sum(sa.and_(unlabelled, yhat == 0), p).label("e_fn"),
        _sum(sa.and_(unlabelled, yhat == 0), 1.0 - p).label("e_tn"),
    ]


def _regression_aggregates(
    u: sa.Subquery, spec: ModelTables, shift: Any
) -> list[sa.ColumnElement[Any]]:
    y, yhat = u.c.y, u.c.yhat
    both = sa.and_(y.is_not(None), yhat.is_not(None))
    error = sa.func.abs(yhat - y)
    floor = sa.case((sa.func.abs(y) > _EPS, sa.func.abs(y)), else_=_EPS)
    out: list[sa.ColumnElement[Any]] = [
        _sum(both).label("errors"),
        _sum(both, error).label("abs_sum"),
        _sum(both, (yhat - y) * (yhat - y)).label("sq_sum"),
        _sum(both, error / floor).label("ape_sum"),
        # Sums shifted by the window's label mean: SS_tot without cancellation.
        _sum(both, y - shift).label("y_sum"),
        _sum(both, (y - shift) * (y - shift)).label("y_sq_sum"),
    ]
    if spec.tolerance is not None:
        out.append(_sum(sa.and_(both, error <= spec.tolerance)).label("good"))
    return out


def _shift(j: sa.CTE, spec: ModelTables) -> Any:
    if spec.task != "regression":
        return None
    both = sa.and_(j.c.y.is_not(None), j.c.yhat.is_not(None))
    return sa.func.coalesce(sa.select(sa.func.avg(j.c.y)).where(both).scalar_subquery(), 0.0)


def totals(j: sa.CTE, spec: ModelTables) -> sa.Select[Any]:
    """Statement 1: one row of aggregates per slice (``dim``, ``k``)."""
    columns = [c.name for c in j.c if c.name not in dimensions(spec)]
    u = _slices(j, spec, columns)
    return sa.select(u.c.dim, u.c.k, *_aggregates(u, spec, _shift(j, spec))).group_by(
        u.c.dim, u.c.k
    )


# --- statement 2: histograms or classes per slice -----------------------------------


def details(
    j: sa.CTE, spec: ModelTables, kept: Mapping[str, Sequence[str]]
) -> sa.Select[Any] | None:
    """Statement 2, or None when the task needs none.

    Binary with a score: ``(dim, k, abin, ebin, y, n, p_sum)`` over labelled rows
    with a valid score. Multiclass: ``(dim, k, cls, tp, support, predicted)``
    over labelled rows.
    """
    if spec.task == "binary" and spec.score is not None:
        u = _slices(j, spec, ["p", "abin", "ebin", "y"], kept)
        return (
            sa.select(
                u.c.dim,
                u.c.k,
                u.c.abin,
                u.c.ebin,
                u.c.y,
                sa.func.count().label("n"),
                sa.func.sum(u.c.p).label("p_sum"),
            )
            .where(u.c.y.in_([0, 1]), u.c.p >= 0.0, u.c.p <= 1.0)
            .group_by(u.c.dim, u.c.k, u.c.abin, u.c.ebin, u.c.y)
        )
    if spec.task == "multiclass":
        u = _slices(j, spec, ["y", "yhat"], kept)
        labelled = u.c.y.is_not(None)
        hit = sa.case((u.c.y == u.c.yhat, 1), else_=0)
        zero, one = sa.literal(0, sa.Integer), sa.literal(1, sa.Integer)
        sides = sa.union_all(
            sa.select(
                u.c.dim,
                u.c.k,
                sa.cast(u.c.y, sa.String).label("cls"),
                hit.label("tp"),
                one.label("support"),
                zero.label("predicted"),
            ).where(labelled),
            sa.select(u.c.dim, u.c.k, sa.cast(u.c.yhat, sa.String), zero, zero, one).where(
                labelled, u.c.yhat.is_not(None)
            ),
        ).subquery("sides")
        return sa.select(
            sides.c.dim,
            sides.c.k,
            sides.c.cls,
            sa.func.sum(sides.c.tp).label("tp"),
            sa.func.sum(sides.c.support).label("support"),
            sa.func.sum(sides.c.predicted).label("predicted"),
        ).group_by(sides.c.dim, sides.c.k, sides.c.cls)
    return None
