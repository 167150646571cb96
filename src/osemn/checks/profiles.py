"""Drift profiles computed inside the warehouse: only aggregates leave it.

A numeric column is summarised by quantile cut points taken from the
*reference* window and the counts of each window on those same cuts, plus
rows, nulls, min, max, mean and sample variance. A categorical column is
summarised by the reference's top-K categories (as text), their counts, an
``other`` count, nulls and the distinct count. The statistics in
:mod:`osemn.checks.drift_stats` work on these profiles alone.

Binning rule (shared by SQL and :func:`profile_from_values`): with cuts
``c_0 < ... < c_{k-2}`` bin 0 is ``(-inf, c_0]``, bin ``i`` is
``(c_{i-1}, c_i]`` and the last bin is ``(c_{k-2}, +inf)``; numpy's
``searchsorted(cuts, x, side="left")`` gives the same bin. Equal cut points
(heavy ties, constant columns) are merged, so a profile may have fewer bins
than asked for; a constant column has one cut (its value) and two bins.

Statements: a current window takes one for all its columns
(:func:`window_profiles`: the reference's cuts and categories say what to
count). A reference takes one per numeric column for its cuts, one for the
numeric profiles, and for categorical columns one ``UNION ALL`` of per-column
top-K queries plus one for their counts.

The SQL functions take ``dialect=`` (``Warehouse.dialect_name``) because an
``execute`` callable does not say which engine it talks to: PostgreSQL gets
``percentile_cont``, ``var_samp`` and packed bin counts (below); DuckDB
``quantile_cont``, ``var_samp``, ``histogram()`` and ``count_if()`` (its
``FILTER`` is far slower); SQLite, MariaDB and other engines a portable form
(NTILE cuts, ``SUM(CASE ...)``, shifted sums).

Packed counts (PostgreSQL): every row adds ``10^(20 i)`` for its bin ``i`` to one
exact ``NUMERIC`` sum per column, whose 20-digit groups are then the bin counts
(a count stays below ``10^20``, so no group carries into the next). A numeric
row finds its bin by one ``width_bucket()`` binary search; a categorical one by a
``CASE`` over the categories, behind a hashed ``IN`` when there are many of
them. Against one ``count(*) FILTER`` per cut or category this costs about half
the CPU, and a statement of 20-odd aggregates instead of 300 stays clear of
the JIT optimisation that otherwise costs more than the scan (bench/drift.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, Grouping

from osemn.checks.dtypes import Kind, warehouse_kind
from osemn.errors import CheckError

__all__ = [
    "CUTS_SAMPLE_ROWS",
    "CategoricalProfile",
    "Execute",
    "NumericProfile",
    "categorical_from_values",
    "categorical_profiles",
    "cuts_from_values",
    "is_numeric",
    "numeric_cuts",
    "numeric_profiles",
    "profile_from_values",
    "sample_values",
    "window_profiles",
]

Execute = Callable[[sa.Executable], Sequence[sa.Row[Any]]]

_NUMERIC_KINDS = frozenset({Kind.INTEGER, Kind.FLOAT, Kind.DECIMAL})
# Most values an in-process (DuckDB) reference quantile is computed from: the sample
# sits in the agent's memory (1M values lifted a first run's peak RSS past 250 MB,
# 500k keeps it at about 235 MB); a quantile of 500k values lands within about 0.07%
# of the rows of the exact one (one standard error), and both windows are binned
# exactly on whichever cuts it gives.
CUTS_SAMPLE_ROWS = 500_000
# Dialects counting a column's bins with one packed NUMERIC sum (module docstring).
_PACKED_DIALECTS = frozenset({"postgresql"})
_PACK_DIGITS = 20
_PACK_BASE = 10**_PACK_DIGITS
# PostgreSQL hashes an IN list of at least 9 constants (MIN_ARRAY_SIZE_FOR_HASHED_SAOP,
# PostgreSQL 14+): a value outside the categories then costs one probe, not K compares.
_HASHED_IN_MIN = 9
# Dialects whose var_samp is numerically stable (Youngs-Cramer / Welford);
# elsewhere variance comes from sums shifted by the reference median.
_VAR_SAMP_DIALECTS = frozenset({"postgresql", "duckdb", "mysql", "mariadb"})
# MySQL and MariaDB cannot CAST to DOUBLE before 8.0.17 / 10.4 (SQLAlchemy
# skips the cast with a warning).
_NO_DOUBLE_CAST = frozenset({"mysql", "mariadb"})


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, kw_only=True)
class NumericProfile:
    """Histogram on the reference's cuts plus moments of one numeric column in one window.

    ``rows`` counts every row of the window, ``nulls`` the null ones;
    ``counts`` hold the non-null rows (``sum(counts) == rows - nulls``).
    ``variance`` is the sample variance (ddof=1), None below two values.
    """

    cuts: tuple[float, ...]
    counts: tuple[int, ...]
    rows: int
    nulls: int
    minimum: float | None
    maximum: float | None
    mean: float | None
    variance: float | None

    @property
    def non_null(self) -> int:
        """Rows with a value."""
        return self.rows - self.nulls

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (state store, results, UI histograms)."""
        return {
            "kind": "numeric",
            "cuts": list(self.cuts),
            "counts": list(self.counts),
            "rows": self.rows,
            "nulls": self.nulls,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "mean": self.mean,
            "variance": self.variance,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> NumericProfile:
        """Rebuild a profile written by :meth:`to_json`.

        Raises:
            CheckError: the document is not a numeric profile.
        """
        _expect_kind(doc, "numeric")
        return cls(
            cuts=tuple(float(c) for c in doc["cuts"]),
            counts=tuple(int(c) for c in doc["counts"]),
            rows=int(doc["rows"]),
            nulls=int(doc["nulls"]),
            minimum=_opt_float(doc["minimum"]),
            maximum=_opt_float(doc["maximum"]),
            mean=_opt_float(doc["mean"]),
            variance=_opt_float(doc["variance"]),
        )


@dataclass(frozen=True, kw_only=True)
class CategoricalProfile:
    """Counts of the reference's top-K categories, ``other``, nulls and distinct values."""

    categories: tuple[str, ...]
    counts: tuple[int, ...]
    other: int
    rows: int
    nulls: int
    distinct: int | None  # None in a current window: a COUNT(DISTINCT) there costs a sort

    @property
    def non_null(self) -> int:
        """Rows with a value."""
        return self.rows - self.nulls

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (state store, results, UI bar charts)."""
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "counts": list(self.counts),
            "other": self.other,
            "rows": self.rows,
            "nulls": self.nulls,
            "distinct": self.distinct,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CategoricalProfile:
        """Rebuild a profile written by :meth:`to_json`.

        Raises:
            CheckError: the document is not a categorical profile.
        """
        _expect_kind(doc, "categorical")
        return cls(
            categories=tuple(str(c) for c in doc["categories"]),
            counts=tuple(int(c) for c in doc["counts"]),
            other=int(doc["other"]),
            rows=int(doc["rows"]),
            nulls=int(doc["nulls"]),
            distinct=None if doc.get("distinct") is None else int(doc["distinct"]),
        )


def _expect_kind(doc: Mapping[str, Any], kind: str) -> None:
    if doc.get("kind") != kind:
        raise CheckError(
            f"stored profile has kind {doc.get('kind')!r}, expected {kind!r}; "
            "the stored reference is stale: let it be recomputed (delete it from the state store)."
        )


# --- the binning rule in numpy (tests, calibration, callers holding values) ------


def _dedup(cuts: Iterable[float | None]) -> tuple[float, ...]:
    finite = [float(c) for c in cuts if c is not None and math.isfinite(float(c))]
    return tuple(float(c) for c in np.unique(np.asarray(finite, dtype=np.float64)))


def cuts_from_values(values: npt.ArrayLike, bins: int = 20) -> tuple[float, ...]:
    """Reference cuts as the database computes them: linear quantiles at i/bins, deduplicated.

    NaN values are nulls and ignored; no values give no cuts.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return ()
    probs = np.arange(1, bins) / bins
    return _dedup(np.quantile(data, probs, method="linear"))


def profile_from_values(values: npt.ArrayLike, cuts: Sequence[float]) -> NumericProfile:
    """The numeric profile of ``values`` (NaN = null) on ``cuts``, exactly as the SQL builds it."""
    data = np.asarray(values, dtype=np.float64)
    present = data[~np.isnan(data)]
    edges = np.asarray(cuts, dtype=np.float64)
    bins = np.searchsorted(edges, present, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    n = int(present.size)
    return NumericProfile(
        cuts=tuple(float(c) for c in edges),
        counts=tuple(int(c) for c in counts),
        rows=int(data.size),
        nulls=int(data.size - n),
        minimum=float(present.min()) if n else None,
        maximum=float(present.max()) if n else None,
        mean=float(present.mean()) if n else None,
        variance=float(present.var(ddof=1)) if n > 1 else None,
    )


def categorical_from_values(
    values: npt.ArrayLike, categories: Sequence[str] | None, *, top_k: int = 20
) -> CategoricalProfile:
    """The categorical profile of ``values`` (None = null), exactly as the SQL builds it.

    Values are compared as text. With ``categories`` None the top ``top_k`` by
    count are kept (ties by text), as for a reference window.
    """
    items = np.asarray(values, dtype=object).ravel()
    present = items[np.not_equal(items, np.array(None, dtype=object))].astype(str)
    found, found_counts = np.unique(present, return_counts=True)
    if categories is None:
        order = np.lexsort((found, -found_counts))[:top_k]
        categories = [str(v) for v in found[order]]
    by_value = dict(zip(found.tolist(), found_counts.tolist(), strict=True))
    counts = tuple(int(by_value.get(c, 0)) for c in categories)
    return CategoricalProfile(
        categories=tuple(categories),
        counts=counts,
        other=int(present.size) - sum(counts),
        rows=int(items.size),
        nulls=int(items.size - present.size),
        distinct=int(found.size),
    )


# --- SQL ----------------------------------------------------------------------------


def is_numeric(column_type: sa.types.TypeEngine[Any]) -> bool:
    """True for integer, float and decimal columns: those get quantile-binned profiles."""
    return warehouse_kind(column_type) in _NUMERIC_KINDS


def _column(table: sa.Table, name: str) -> sa.Column[Any]:
    if name not in table.c:
        raise CheckError(
            f"column {name!r} does not exist in table {table.fullname!r}; it has "
            f"{', '.join(repr(c.name) for c in table.c)}. Fix the drift `columns:` of the dataset."
        )
    return table.c[name]


def _numeric_column(table: sa.Table, name: str) -> sa.Column[Any]:
    column = _column(table, name)
    if not is_numeric(column.type):
        raise CheckError(
            f"column {name!r} of table {table.fullname!r} has type {column.type!r} "
            f"({warehouse_kind(column.type)}), which has no numeric profile; use a categorical "
            "method (chi2, jensen_shannon, psi or hellinger on categories) for it."
        )
    return column


def _as_double(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    if dialect in _NO_DOUBLE_CAST:
        # Where CAST AS DOUBLE is missing, a DOUBLE factor makes the value a DOUBLE
        # (AVG of an INTEGER would be a DECIMAL of 4 places); type_coerce reads it
        # as a float, not as a reflected DOUBLE's Decimal rounded to 10 places.
        return sa.type_coerce(expr * sa.literal(1.0, sa.Double), sa.Double())
    return sa.cast(expr, sa.Double)


def _filtered(
    column: ColumnElement[Any], where: ColumnElement[bool] | None
) -> list[ColumnElement[bool]]:
    return [column.is_not(None), *(() if where is None else (where,))]


def _count_if(condition: ColumnElement[bool], dialect: str) -> ColumnElement[Any]:
    if dialect == "duckdb":
        # count_if() costs DuckDB about 60% of SUM(CASE ...), itself 8x faster than
        # its FILTER (bench/drift.py)
        return sa.func.count_if(condition)
    # MySQL and MariaDB have no FILTER; SUM(CASE ...) runs everywhere
    return sa.func.sum(sa.case((condition, 1), else_=0))


def numeric_cuts(
    execute: Execute,
    table: sa.Table,
    column: str,
    *,
    where: ColumnElement[bool] | None,
    dialect: str,
    bins: int = 20,
) -> tuple[float, ...]:
    """Reference cut points at the ``i/bins`` quantiles, computed in the database.

    PostgreSQL ``percentile_cont(ARRAY[...]) WITHIN GROUP`` and DuckDB
    ``quantile_cont`` interpolate linearly (numpy's ``method="linear"``);
    elsewhere ``NTILE(bins)`` takes each tile's maximum, which is within one
    bin of the linear quantile. Equal cuts are merged (fewer bins).

    :param dialect: the engine's dialect name (``Warehouse.dialect_name``).
    :raises CheckError: the column is missing or not numeric.
    """
    if bins < 2:
        raise CheckError(f"drift bins must be at least 2, got {bins!r}; raise `bins`.")
    col = _numeric_column(table, column)
    value = _as_double(col, dialect)
    probs = [i / bins for i in range(1, bins)]
    conditions = _filtered(col, where)
    if dialect in ("postgresql", "duckdb"):
        array = sa.bindparam("quantiles", probs, type_=sa.ARRAY(sa.Double))
        if dialect == "postgresql":
            quantiles = sa.func.percentile_cont(array).within_group(value)
            stmt = sa.select(quantiles).select_from(table).where(*conditions)
        else:
            # DuckDB's exact quantile holds every value in the agent's own memory;
            # past CUTS_SAMPLE_ROWS the cuts come from a uniform reservoir sample
            # (they are only bin edges: the histograms on them stay exact).
            inner = sa.select(value.label("v")).select_from(table).where(*conditions)
            sampled = sa.tablesample(
                inner.subquery("s"),
                sa.func.reservoir(sa.literal(CUTS_SAMPLE_ROWS, literal_execute=True)),
                name="sampled",
                seed=sa.literal(1, literal_execute=True),
            )
            stmt = sa.select(sa.func.quantile_cont(sampled.c.v, array)).select_from(sampled)
        rows = execute(stmt)
        found = rows[0][0] if rows else None
        return _dedup(found or ())
    tiled = (
        sa.select(
            value.label("v"),
            sa.func.ntile(sa.literal(bins, literal_execute=True)).over(order_by=value).label("t"),
        )
        .select_from(table)
        .where(*conditions)
        .subquery("tiles")
    )
    stmt = sa.select(tiled.c.t, sa.func.max(tiled.c.v)).group_by(tiled.c.t).order_by(tiled.c.t)
    maxima = [list(row)[1] for row in execute(stmt)]
    return _dedup(maxima[:-1])


def _count(value: Any) -> int:
    return 0 if value is None else int(value)


_Parse = Callable[[Sequence[Any], int], dict[str, Any]]


def _numeric_bin(value: ColumnElement[Any], cuts: Sequence[float]) -> ColumnElement[Any]:
    """The 1-based bin of ``value`` under the binning rule, NULL for NULL.

    ``width_bucket(x, lower_bounds)`` counts the bounds ``<= x``; with each cut
    replaced by the next double above it that is the count of cuts ``< x``,
    numpy's ``searchsorted(cuts, x, side="left")``. NaN sorts above every
    bound, into the last bin, as it fails every ``x <= cut``.
    """
    bounds = [math.nextafter(c, math.inf) for c in cuts]
    edges = sa.bindparam(None, bounds, type_=sa.ARRAY(sa.Double))
    return sa.func.width_bucket(value, edges) + 1


def _category_bin(text: ColumnElement[Any], categories: Sequence[str]) -> ColumnElement[Any]:
    """The 1-based position of ``text`` among ``categories``, NULL for others and NULL.

    Categories come most frequent first, so the ``CASE`` usually stops early.
    """
    position = sa.case({c: i + 1 for i, c in enumerate(categories)}, value=text)
    if len(categories) < _HASHED_IN_MIN:
        return position
    return sa.case((text.in_(list(categories)), position))


def _packed_count(position: ColumnElement[Any], bins: int) -> ColumnElement[Any]:
    """One exact NUMERIC sum holding the count of each of ``bins`` positions (as text)."""
    weights = [Decimal(_PACK_BASE**i) for i in range(bins)]
    # Parenthesised: PostgreSQL reads "$1::NUMERIC[][i]" as a type, not a subscript.
    table = Grouping(sa.bindparam(None, weights, type_=sa.ARRAY(sa.Numeric)))
    return sa.cast(sa.func.sum(table[position]), sa.Text)


def _unpack(value: Any, bins: int) -> tuple[int, ...]:
    """The counts a packed sum holds, least significant group (bin 0) first."""
    total = 0 if value is None else int(value)
    counts = []
    for _ in range(bins):
        total, count = divmod(total, _PACK_BASE)
        counts.append(count)
    return tuple(counts)


def _numeric_part(
    table: sa.Table, specs: Mapping[str, Sequence[float]], dialect: str
) -> tuple[list[ColumnElement[Any]], _Parse]:
    """Aggregates of numeric columns for one window, and how to read them back."""
    columns = {name: _numeric_column(table, name) for name in specs}
    exprs: list[ColumnElement[Any]] = []
    for name, col in columns.items():
        cuts = tuple(float(c) for c in specs[name])
        value = _as_double(col, dialect) if warehouse_kind(col.type) is Kind.DECIMAL else col
        double = _as_double(col, dialect)
        exprs += [
            sa.func.count(col),
            sa.type_coerce(sa.func.min(value), sa.Double()),
            sa.type_coerce(sa.func.max(value), sa.Double()),
        ]
        exprs.append(sa.func.avg(double))
        if dialect in _VAR_SAMP_DIALECTS:
            exprs.append(sa.func.var_samp(double))
        else:
            shift = sa.literal(cuts[len(cuts) // 2] if cuts else 0.0, sa.Double)
            exprs += [sa.func.sum(double - shift), sa.func.sum((double - shift) * (double - shift))]
        if dialect == "duckdb" and cuts:
            # One histogram(x, boundaries) aggregate bins exactly as the rule above,
            # (c_{i-1}, c_i] with an overflow bin, instead of one SUM(CASE) per cut.
            bounds = sa.bindparam(f"cuts_{name}", list(cuts), type_=sa.ARRAY(sa.Double))
            # histogram() files NaN under the first boundary; NaN fails every
            # `x <= cut`, so the rule (and PostgreSQL) puts it in the last bin.
            binned = sa.case((sa.func.isnan(double), sa.literal(math.inf, sa.Double)), else_=double)
            exprs.append(sa.func.histogram(binned, bounds))
        elif dialect in _PACKED_DIALECTS and cuts:
            exprs.append(_packed_count(_numeric_bin(double, cuts), len(cuts) + 1))
        else:
            exprs += [_count_if(value <= sa.literal(c, sa.Double), dialect) for c in cuts]

    def parse(row: Sequence[Any], rows: int) -> dict[str, Any]:
        position = 0
        profiles: dict[str, Any] = {}
        for name in columns:
            cuts = tuple(float(c) for c in specs[name])
            n, low, high, mean = row[position : position + 4]
            position += 4
            n = _count(n)
            if dialect in _VAR_SAMP_DIALECTS:
                variance = _opt_float(row[position])
                position += 1
            else:
                s1, s2 = (_opt_float(v) for v in row[position : position + 2])
                position += 2
                variance = None
                if n > 1 and s1 is not None and s2 is not None:
                    variance = max(0.0, (s2 - s1 * s1 / n) / (n - 1))
            if dialect == "duckdb" and cuts:
                found = row[position] or {}
                position += 1
                bins = [*cuts, math.inf]  # DuckDB keys the overflow bin by infinity
                counts = tuple(_count(found.get(c, 0)) for c in bins)
            elif dialect in _PACKED_DIALECTS and cuts:
                counts = _unpack(row[position], len(cuts) + 1)
                position += 1
            else:
                cumulative = [_count(v) for v in row[position : position + len(cuts)]]
                position += len(cuts)
                edges = [0, *cumulative, n]
                counts = tuple(edges[i + 1] - edges[i] for i in range(len(cuts) + 1))
            profiles[name] = NumericProfile(
                cuts=cuts,
                counts=counts,
                rows=rows,
                nulls=rows - n,
                minimum=_opt_float(low),
                maximum=_opt_float(high),
                mean=_opt_float(mean),
                variance=variance if n > 1 else None,
            )
        return profiles

    return exprs, parse


def _categorical_part(
    table: sa.Table,
    wanted: Mapping[str, Sequence[str]],
    dialect: str,
    *,
    distinct: Collection[str] = (),
) -> tuple[list[ColumnElement[Any]], _Parse]:
    """Aggregates of categorical columns (given categories) for one window, and their reader.

    Only the columns in ``distinct`` count their distinct values; the others get None.
    """
    cols = {name: _column(table, name) for name in wanted}
    exprs: list[ColumnElement[Any]] = []
    for name, col in cols.items():
        text = _as_text(col)
        exprs.append(sa.func.count(col))
        if name in distinct:
            exprs.append(sa.func.count(col.distinct()))
        if dialect in _PACKED_DIALECTS and wanted[name]:
            exprs.append(_packed_count(_category_bin(text, wanted[name]), len(wanted[name])))
        else:
            exprs += [_count_if(text == sa.literal(c, sa.String), dialect) for c in wanted[name]]

    def parse(row: Sequence[Any], rows: int) -> dict[str, Any]:
        position = 0
        profiles: dict[str, Any] = {}
        for name in cols:
            n = _count(row[position])
            different = _count(row[position + 1]) if name in distinct else None
            position += 2 if name in distinct else 1
            if dialect in _PACKED_DIALECTS and wanted[name]:
                counts = _unpack(row[position], len(wanted[name]))
                position += 1
            else:
                counts = tuple(_count(v) for v in row[position : position + len(wanted[name])])
                position += len(wanted[name])
            profiles[name] = CategoricalProfile(
                categories=tuple(wanted[name]),
                counts=counts,
                other=n - sum(counts),
                rows=rows,
                nulls=rows - n,
                distinct=different,
            )
        return profiles

    return exprs, parse


def _one_statement(
    execute: Execute,
    table: sa.Table,
    parts: Sequence[tuple[list[ColumnElement[Any]], _Parse]],
    where: ColumnElement[bool] | None,
) -> list[dict[str, Any]]:
    """Every part's aggregates in one SELECT over the window; each part reads its own."""
    exprs: list[ColumnElement[Any]] = [sa.func.count()]
    for part_exprs, _ in parts:
        exprs += part_exprs
    # Labelled: SQLAlchemy 2.1 folds equal unlabelled columns into one.
    stmt = sa.select(*(e.label(f"p{i}") for i, e in enumerate(exprs))).select_from(table)
    if where is not None:
        stmt = stmt.where(where)
    row = list(execute(stmt)[0])
    rows = _count(row[0])
    out, position = [], 1
    for part_exprs, parse in parts:
        out.append(parse(row[position : position + len(part_exprs)], rows))
        position += len(part_exprs)
    return out


def numeric_profiles(
    execute: Execute,
    table: sa.Table,
    specs: Mapping[str, Sequence[float]],
    *,
    where: ColumnElement[bool] | None,
    dialect: str,
) -> dict[str, NumericProfile]:
    """Profiles of every column in ``specs`` (column -> reference cuts) in ONE statement.

    Per column: non-null count, min, max, mean, sample variance and the bin
    counts (DuckDB: one ``histogram()``; PostgreSQL: one packed sum; elsewhere
    the count of values ``<= cut`` per cut, bins being their differences). Variance is
    ``var_samp`` over DOUBLE where it is stable, else from sums shifted by the
    middle cut (the reference median), which avoids cancellation at any scale.

    :param dialect: the engine's dialect name (``Warehouse.dialect_name``).
    :raises CheckError: a column is missing or not numeric.
    """
    (profiles,) = _one_statement(execute, table, [_numeric_part(table, specs, dialect)], where)
    return profiles


def window_profiles(
    execute: Execute,
    table: sa.Table,
    numeric: Mapping[str, Sequence[float]],
    categorical: Mapping[str, Sequence[str]],
    *,
    where: ColumnElement[bool] | None,
    dialect: str,
) -> tuple[dict[str, NumericProfile], dict[str, CategoricalProfile]]:
    """A current window's numeric and categorical profiles together, in ONE statement.

    The window is read once for all columns; the reference's cuts and
    categories say what to count.

    :raises CheckError: a column is missing or not numeric.
    """
    parts = []
    if numeric:
        parts.append(_numeric_part(table, numeric, dialect))
    if categorical:
        parts.append(_categorical_part(table, categorical, dialect))
    if not parts:
        return {}, {}
    found = _one_statement(execute, table, parts, where)
    numbers = found[0] if numeric else {}
    categories = found[-1] if categorical else {}
    return numbers, categories


def _as_text(col: sa.Column[Any]) -> ColumnElement[Any]:
    return col if warehouse_kind(col.type) is Kind.STRING else sa.cast(col, sa.String)


def categorical_profiles(
    execute: Execute,
    table: sa.Table,
    columns: Mapping[str, Sequence[str] | None],
    *,
    where: ColumnElement[bool] | None,
    dialect: str,
    top_k: int = 20,
) -> dict[str, CategoricalProfile]:
    """Categorical profiles of a window; categories None means "find the top ``top_k``".

    One statement counts rows, nulls and the categories of every column; the
    columns without categories (a reference) add one ``UNION ALL`` statement of
    per-column top-K ``GROUP BY`` queries, ranked by count and then by text,
    whose number of groups is the distinct count; a column given categories
    counts ``DISTINCT`` values in the first statement. Values are compared as text.

    :param dialect: the engine's dialect name (``Warehouse.dialect_name``).
    :raises CheckError: a column is missing.
    """
    cols = {name: _column(table, name) for name in columns}
    found = _top_categories(execute, table, cols, columns, where=where, top_k=top_k)
    wanted = {
        name: tuple(found[name][0]) if cats is None else tuple(cats)
        for name, cats in columns.items()
    }
    # DuckDB holds every COUNT(DISTINCT) set at once and cannot spill it: ten of them
    # overflow the agent's buffer cap, where the grouped top-K queries spill.
    given = [name for name, cats in columns.items() if cats is not None]
    part = _categorical_part(table, wanted, dialect, distinct=given)
    (profiles,) = _one_statement(execute, table, [part], where)
    return {
        name: profile if name in given else replace(profile, distinct=found[name][1])
        for name, profile in profiles.items()
    }


def _top_categories(
    execute: Execute,
    table: sa.Table,
    cols: Mapping[str, sa.Column[Any]],
    columns: Mapping[str, Sequence[str] | None],
    *,
    where: ColumnElement[bool] | None,
    top_k: int,
) -> dict[str, tuple[list[str], int]]:
    """Per column without categories: its ``top_k`` values and its number of distinct values."""
    names = [name for name, cats in columns.items() if cats is None]
    if not names:
        return {}
    parts = []
    for index, name in enumerate(names):
        text = _as_text(cols[name])
        n = sa.func.count()
        ranked = (
            sa.select(
                sa.literal(index, sa.Integer, literal_execute=True).label("col"),
                text.label("value"),
                n.label("n"),
                # evaluated after GROUP BY, before LIMIT: the number of groups
                sa.func.count().over().label("groups"),
            )
            .select_from(table)
            .where(*_filtered(cols[name], where))
            .group_by(text)
            .order_by(n.desc(), text)
            .limit(sa.literal(top_k, literal_execute=True))
            .subquery(f"top{index}")
        )
        parts.append(sa.select(ranked.c.col, ranked.c.value, ranked.c.n, ranked.c.groups))
    stmt = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    found: dict[str, list[tuple[int, str]]] = {name: [] for name in names}
    distinct = dict.fromkeys(names, 0)  # no row: no value, no group
    for index, value, n, groups in (list(row) for row in execute(stmt)):
        found[names[int(index)]].append((-int(n), str(value)))
        distinct[names[int(index)]] = int(groups)
    return {
        name: ([value for _, value in sorted(ranks)], distinct[name])
        for name, ranks in found.items()
    }


def sample_values(
    execute: Execute,
    table: sa.Table,
    column: str,
    *,
    where: ColumnElement[bool] | None,
    dialect: str,
    size: int,
    seed: float,
) -> npt.NDArray[np.float64]:
    """At most ``size`` non-null values drawn uniformly at random in the database, for exact KS.

    DuckDB draws a reservoir sample (``TABLESAMPLE reservoir(n) REPEATABLE``);
    PostgreSQL sorts by ``random()`` after ``setseed(seed)`` (a one-time
    filter runs it first); elsewhere ``ORDER BY random() LIMIT n`` (SQLite's
    ``random()`` takes no seed, so only DuckDB and PostgreSQL repeat a draw).

    :param seed: in ``[-1, 1]`` (PostgreSQL's ``setseed`` range).
    :raises CheckError: the column is missing or not numeric, or the seed is out of range.
    """
    if not -1.0 <= seed <= 1.0:
        raise CheckError(f"sample seed must be within [-1, 1], got {seed!r}.")
    col = _numeric_column(table, column)
    value = _as_double(col, dialect)
    conditions = _filtered(col, where)
    if dialect == "duckdb":
        inner = sa.select(value.label("v")).select_from(table).where(*conditions).subquery("s")
        sampled = sa.tablesample(
            inner,
            sa.func.reservoir(sa.literal(size, literal_execute=True)),
            name="sampled",
            seed=sa.literal(int(abs(seed) * 2**31), literal_execute=True),
        )
        stmt = sa.select(sampled.c.v)
    else:
        if dialect == "postgresql":
            seeded = sa.select(sa.func.setseed(sa.literal(seed, sa.Double))).scalar_subquery()
            conditions.append(seeded.is_not(None))
        stmt = (
            sa.select(value)
            .select_from(table)
            .where(*conditions)
            .order_by(sa.func.random())
            .limit(sa.literal(size, literal_execute=True))
        )
    return np.asarray([float(row[0]) for row in execute(stmt)], dtype=np.float64)
