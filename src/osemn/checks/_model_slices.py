"""Statement 2 of a model window: every slice's aggregates from one pass over the join.

The joined rows are first grouped by their slice keys and by every key a metric
needs (score bins, label, predicted class), a few thousand groups that the
warehouse keeps in a hash table; everything after that works on those groups,
not on rows. Confusion matrices, CBPE sums, log loss and Brier sums are sums
over the groups; ROC AUC (Mann-Whitney over the per-label score histograms, a
running sum in a window function) and ECE are computed per slice in SQL too, so
one row per slice leaves the database.

The groups are keyed by the cross product of all slice keys when it is small
(one segment column and the version: 11 x 11 values at top-K 10), and each
slice's rows are summed from them; when the cross product is large the rows are
instead repeated once per slice dimension before grouping, which costs a
multiple of the rows but never more groups than the slices have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from osemn.checks._model_sql import EPS, SUB_BINS, dimensions, materialized

if TYPE_CHECKING:
    from osemn.checks.model_metrics import ModelTables

__all__ = ["CROSS_LIMIT", "window_slices"]

CROSS_LIMIT = 128  # slice-key combinations grouped together before expanding per slice


def _sum(condition: sa.ColumnElement[bool], value: Any = 1) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, value), else_=0))


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    # count, not sum: a 64-bit result (DuckDB sums integers into 128 bits).
    return sa.func.count(sa.case((condition, 1)))


def _measures(j: sa.Subquery, spec: ModelTables) -> list[sa.ColumnElement[Any]]:
    """Per-group sums of what cannot be read off the group keys."""
    out: list[sa.ColumnElement[Any]] = [
        sa.func.count().label("n"),
        sa.func.max(j.c.delay).label("dmax"),
    ]
    if spec.latency is not None and spec.latency_threshold is not None:
        out += [
            _count(j.c.lat <= spec.latency_threshold).label("lat_good"),
            _count(j.c.lat > spec.latency_threshold).label("lat_bad"),
        ]
    if spec.task == "binary" and spec.score is not None:
        p, y = j.c.p, j.c.y
        scored = sa.and_(j.c.abin >= 0, y.in_([0, 1]))
        q = sa.case((y == 1, p), else_=1.0 - p)
        clipped = sa.case((q < EPS, EPS), (q > 1.0 - EPS, 1.0 - EPS), else_=q)
        out += [
            sa.func.sum(p).label("ps"),
            sa.func.sum(p * p).label("p2"),
            _sum(scored, -sa.func.ln(clipped)).label("ll"),
            *(_count(j.c.abin - SUB_BINS * j.c.cbin == i).label(f"c{i}") for i in range(SUB_BINS)),
        ]
    elif spec.task == "regression":
        out += _regression_measures(j, spec)
    return out


def _regression_measures(j: sa.Subquery, spec: ModelTables) -> list[sa.ColumnElement[Any]]:
    y, yhat = j.c.y, j.c.yhat
    both = sa.and_(y.is_not(None), yhat.is_not(None))
    error = sa.func.abs(yhat - y)
    floor = sa.case((sa.func.abs(y) > EPS, sa.func.abs(y)), else_=EPS)
    # Sums shifted by one label of the table: SS_tot without catastrophic cancellation
    # when labels sit far from zero (any constant keeps the algebra exact).
    label = spec.labels.c[spec.label]
    shift = sa.func.coalesce(
        sa.select(sa.cast(label, sa.Double)).where(label.is_not(None)).limit(1).scalar_subquery(),
        0.0,
    )
    out: list[sa.ColumnElement[Any]] = [
        sa.func.count(y).label("labelled"),
        _sum(both).label("errors"),
        _sum(both, error).label("abs_sum"),
        _sum(both, (yhat - y) * (yhat - y)).label("sq_sum"),
        _sum(both, error / floor).label("ape_sum"),
        _sum(both, y - shift).label("y_sum"),
        _sum(both, (y - shift) * (y - shift)).label("y_sq_sum"),
    ]
    if spec.tolerance is not None:
        out.append(_sum(sa.and_(both, error <= spec.tolerance)).label("good"))
    return out


def _metric_keys(spec: ModelTables) -> list[str]:
    keys = ["cbin", "ebin"] if spec.task == "binary" and spec.score is not None else []
    return keys if spec.task == "regression" else [*keys, "y", "yhat"]


def _groups(j: sa.Subquery, spec: ModelTables, kept: Mapping[str, Sequence[str]]) -> sa.CTE:
    """``(dim, k, <metric keys>, <measures>)``: every slice's groups (``dim`` 0 is the
    whole window), read several times and computed once."""
    dims = dimensions(spec)
    keys = [j.c[k] for k in _metric_keys(spec)]
    cross = math.prod(len(kept[d]) + 1 for d in dims)
    if cross > CROSS_LIMIT:
        expanded = _expanded(j, dims)
        groups = sa.select(
            expanded.c.dim,
            expanded.c.k,
            *(expanded.c[k.name] for k in keys),
            *_measures(expanded, spec),
        ).group_by(expanded.c.dim, expanded.c.k, *(expanded.c[k.name] for k in keys))
        return materialized(groups.cte("g"))
    fine = materialized(
        sa.select(*(j.c[d] for d in dims), *keys, *_measures(j, spec))
        .group_by(*(j.c[d] for d in dims), *keys)
        .cte("f")
    )
    names = [k.name for k in keys]
    rest = [c for c in fine.c if c.name not in dims and c.name not in names]
    branches = [
        sa.select(
            sa.literal(i, sa.Integer).label("dim"),
            (fine.c[dim] if dim else sa.literal(0, sa.Integer)).label("k"),
            *(fine.c[k] for k in names),
            *rest,
        )
        for i, dim in enumerate(["", *dims])
    ]
    union = sa.union_all(*branches).subquery("u")
    rolled = sa.select(
        union.c.dim,
        union.c.k,
        *(union.c[k] for k in names),
        *(_rollup(union.c[c.name]) for c in rest),
    ).group_by(union.c.dim, union.c.k, *(union.c[k] for k in names))
    return materialized(rolled.cte("g"))


def _rollup(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    agg = sa.func.max if column.key == "dmax" else sa.func.sum
    return agg(column).label(column.key)


def _numbers(count: int) -> sa.Subquery:
    """The integers ``0 .. count - 1`` as rows of one column, to repeat rows by."""
    numbers = sa.union_all(*(sa.select(sa.literal(i, sa.Integer).label("i")) for i in range(count)))
    return numbers.subquery(f"n{count}")


def _expanded(j: sa.Subquery, dims: Sequence[str]) -> sa.Subquery:
    """Each joined row once per slice dimension (``dim`` 0 the whole window), in-line."""
    d = _numbers(len(dims) + 1)
    (dim,) = d.c
    k = sa.case(
        *((dim == i, j.c[name]) for i, name in enumerate(dims, 1)),
        else_=sa.literal(0, sa.Integer),
    )
    keep = [c for c in j.c if c.name not in dims]
    return (
        sa.select(dim.label("dim"), k.label("k"), *keep)
        .select_from(j.join(d, sa.true()))
        .subquery("x")
    )


def _totals(g: sa.CTE, spec: ModelTables) -> sa.Select[Any]:
    y, yhat, n = g.c.y if "y" in g.c else None, g.c.yhat if "yhat" in g.c else None, g.c.n
    out: list[sa.ColumnElement[Any]] = [
        g.c.dim,
        g.c.k,
        sa.func.sum(n).label("n"),
        sa.func.max(g.c.dmax).label("delay_max"),
    ]
    if "lat_good" in g.c:
        out += [sa.func.sum(g.c[c]).label(c) for c in ("lat_good", "lat_bad")]
    if spec.task == "regression":
        names = ("errors", "abs_sum", "sq_sum", "ape_sum", "y_sum", "y_sq_sum", "good")
        out += [sa.func.sum(g.c[c]).label(c) for c in ("labelled", *names) if c in g.c]
        return sa.select(*out).group_by(g.c.dim, g.c.k)
    assert y is not None and yhat is not None
    out.append(_sum(y.is_not(None), n).label("labelled"))
    if spec.task == "multiclass":
        out.append(_sum(y == yhat, n).label("correct"))
        return sa.select(*out).group_by(g.c.dim, g.c.k)
    out += [
        _sum(sa.and_(y == 1, yhat == 1), n).label("tp"),
        _sum(sa.and_(y == 0, yhat == 1), n).label("fp"),
        _sum(sa.and_(y == 1, yhat == 0), n).label("fn"),
        _sum(sa.and_(y == 0, yhat == 0), n).label("tn"),
        _sum(y == -1, n).label("bad_labels"),
        _sum(yhat == -1, n).label("bad_predictions"),
    ]
    if spec.score is not None:
        valid = g.c.cbin >= 0
        scored = sa.and_(valid, y.in_([0, 1]))
        unlabelled = sa.and_(valid, y.is_(None))
        ps = g.c.ps
        out += [
            _sum(g.c.cbin == -1, n).label("bad_scores"),
            _sum(scored, n).label("scored"),
            _sum(scored, g.c.ll).label("log_loss_sum"),
            # sum (p - y)^2 = sum p^2 - 2 y sum p + y n, y being the group's 0 or 1
            _sum(scored, g.c.p2 - 2.0 * y * ps + y * n).label("brier_sum"),
            _sum(unlabelled, n).label("unlabelled"),
            _sum(sa.and_(unlabelled, yhat == 1), ps).label("e_tp"),
            _sum(sa.and_(unlabelled, yhat == 1), n - ps).label("e_fp"),
            _sum(sa.and_(unlabelled, yhat == 0), ps).label("e_fn"),
            _sum(sa.and_(unlabelled, yhat == 0), n - ps).label("e_tn"),
        ]
    return sa.select(*out).group_by(g.c.dim, g.c.k)


def _auc(g: sa.CTE) -> sa.Subquery:
    """Twice the Mann-Whitney U per slice (``u2``; ties in one bin count one half),
    in integers so that it is exact whatever the window's size."""
    scored = sa.and_(g.c.cbin >= 0, g.c.y.in_([0, 1]))
    sub = _numbers(SUB_BINS)
    (i,) = sub.c
    count = sa.case(*((i == b, g.c[f"c{b}"]) for b in range(SUB_BINS)))
    hist = (
        sa.select(
            g.c.dim,
            g.c.k,
            (g.c.cbin * SUB_BINS + i).label("abin"),
            _sum(g.c.y == 1, count).label("pos"),
            _sum(g.c.y == 0, count).label("neg"),
        )
        .select_from(g.join(sub, sa.true()))
        .where(scored)
        .group_by(g.c.dim, g.c.k, g.c.cbin, i)
        .subquery("h")
    )
    running = sa.func.sum(hist.c.neg).over(
        partition_by=(hist.c.dim, hist.c.k), order_by=hist.c.abin
    )
    ranked = sa.select(hist, (running - hist.c.neg).label("below")).subquery("r")
    return (
        sa.select(
            ranked.c.dim,
            ranked.c.k,
            sa.func.sum(2 * ranked.c.pos * ranked.c.below + ranked.c.pos * ranked.c.neg).label(
                "u2"
            ),
            sa.func.sum(ranked.c.pos).label("auc_pos"),
            sa.func.sum(ranked.c.neg).label("auc_neg"),
        )
        .group_by(ranked.c.dim, ranked.c.k)
        .subquery("auc")
    )


def _ece(g: sa.CTE) -> sa.Subquery:
    """``sum_b |sum of scores_b - positives_b|`` per slice (divided by ``scored`` later)."""
    scored = sa.and_(g.c.cbin >= 0, g.c.y.in_([0, 1]))
    per_bin = (
        sa.select(
            g.c.dim,
            g.c.k,
            sa.func.abs(sa.func.sum(g.c.ps) - _sum(g.c.y == 1, g.c.n)).label("gap"),
        )
        .where(scored)
        .group_by(g.c.dim, g.c.k, g.c.ebin)
        .subquery("e")
    )
    return (
        sa.select(per_bin.c.dim, per_bin.c.k, sa.func.sum(per_bin.c.gap).label("ece_sum"))
        .group_by(per_bin.c.dim, per_bin.c.k)
        .subquery("ece")
    )


def _f1(g: sa.CTE) -> sa.Subquery:
    """Per slice: the sum of per-class F1, the number of classes, and the sum of F1
    weighted by support, over the classes seen in labels or predictions."""
    labelled = g.c.y.is_not(None)
    zero = sa.literal(0, sa.Integer)
    sides = sa.union_all(
        sa.select(
            g.c.dim,
            g.c.k,
            sa.cast(g.c.y, sa.String).label("cls"),
            sa.case((g.c.y == g.c.yhat, g.c.n), else_=0).label("tp"),
            g.c.n.label("support"),
            zero.label("predicted"),
        ).where(labelled),
        sa.select(g.c.dim, g.c.k, sa.cast(g.c.yhat, sa.String), zero, zero, g.c.n).where(
            labelled, g.c.yhat.is_not(None)
        ),
    ).subquery("sides")
    per_class = (
        sa.select(
            sides.c.dim,
            sides.c.k,
            sa.func.sum(sides.c.support).label("support"),
            (
                sa.cast(2 * sa.func.sum(sides.c.tp), sa.Double)
                / sa.cast(sa.func.sum(sides.c.support) + sa.func.sum(sides.c.predicted), sa.Double)
            ).label("f1"),
        )
        .group_by(sides.c.dim, sides.c.k, sides.c.cls)
        .subquery("classes")
    )
    return (
        sa.select(
            per_class.c.dim,
            per_class.c.k,
            sa.func.sum(per_class.c.f1).label("f1_sum"),
            sa.func.count().label("classes"),
            sa.func.sum(per_class.c.f1 * per_class.c.support).label("f1_weighted_sum"),
        )
        .group_by(per_class.c.dim, per_class.c.k)
        .subquery("f1")
    )


def window_slices(
    j: sa.Subquery, spec: ModelTables, kept: Mapping[str, Sequence[str]]
) -> sa.Select[Any]:
    """Statement 2: one row of aggregates per slice (``dim``, ``k``)."""
    g = _groups(j, spec, kept)
    totals = _totals(g, spec).subquery("t")
    extras: list[sa.Subquery] = []
    if spec.task == "binary" and spec.score is not None:
        extras += [_auc(g), _ece(g)]
    elif spec.task == "multiclass":
        extras.append(_f1(g))
    source: sa.FromClause = totals
    for extra in extras:
        source = source.outerjoin(
            extra, sa.and_(totals.c.dim == extra.c.dim, totals.c.k == extra.c.k)
        )
    picked = [c for extra in extras for c in extra.c if c.name not in ("dim", "k")]
    return sa.select(totals, *picked).select_from(source)
