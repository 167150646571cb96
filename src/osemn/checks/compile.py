"""Compile a pandera ``DataFrameSchema`` into SQL rules for one reflected table.

pandera's checks are read as data (``Check.name`` and ``Check.statistics``)
and turned into SQLAlchemy Core expressions by the builders of
:data:`BUILTINS`, with pandera's pandas semantics:

* a check skips nulls (``ignore_na=True``, the default); with
  ``ignore_na=False`` a null fails it, except ``not_equal_to`` and ``notin``,
  where pandas finds ``NaN != value`` true. On PostgreSQL and DuckDB a float
  ``NaN`` is a null too, as pandas reads it;
* ``str_matches`` is ``re.match`` (anchored at the start only),
  ``str_contains`` is ``re.search``, ``str_startswith``/``str_endswith`` are
  literal, ``str_length`` counts characters;
* strings compare code point by code point, as Python does (:func:`exact_text`).

A check that is not a built-in, a built-in with ``groupby``, or a regex with
flags SQL cannot express becomes a :class:`CustomRule` that pandera runs on a
sample. Values are bound as parameters; identifiers come from ``table.c``.
A schema's ``index`` and ``ordered`` say nothing about a table (it has no
index, and SQL column order is not data), so they are not compiled.

Rule names are metric label values, so they are stable: ``column:rule(args)``
with args rendered by ``repr`` in pandera's statistics order (sets sorted,
dates in ISO format, default ``include_min``/``include_max`` left out, long
lists cut and tagged with a digest), e.g.
``amount:in_range(0, 99.5)``, ``email:not_null``, ``id:unique``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from osemn.checks.base import (
    AggregateRule,
    CompiledSchema,
    CustomRule,
    RowRule,
    StaticOutcome,
    UniqueRule,
)
from osemn.checks.dtypes import Kind, accepts, warehouse_kind, warehouse_type_name

__all__ = [
    "BUILTINS",
    "Aggregate",
    "Builtin",
    "Condition",
    "Target",
    "builtin",
    "compile_schema",
    "exact_text",
]

# Longest argument list a rule name shows in full.
_MAX_ARGS = 120
# Engines whose float columns can hold NaN, which pandas reads as null.
_NAN_ENGINES = frozenset({"postgresql", "duckdb"})


def exact_text(expr: ColumnElement[Any], dialect: Dialect) -> ColumnElement[Any]:
    """A string expression that compares, sorts and groups code point by code point.

    That is Python's (and pandas') string equality and order: case and trailing
    spaces count. MySQL/MariaDB's default collations ignore both, so strings
    compare there as utf8mb4 bytes; PostgreSQL's locales sort ``a`` < ``B``, so
    they compare under ``COLLATE "C"``. Other types come back unchanged.
    """
    if warehouse_kind(expr.type) is not Kind.STRING:
        return expr
    engine = _engine(dialect)
    if engine == "mysql":
        return sa.cast(sa.cast(expr, mysql.CHAR(charset="utf8mb4")), mysql.BINARY())
    if engine == "postgresql":
        return expr.collate("C")
    return expr


def _engine(dialect: Dialect) -> str:
    name = str(dialect.name)
    return "mysql" if name == "mariadb" else name  # ``mariadb://`` URLs name it so


@dataclass(frozen=True, kw_only=True)
class Target:
    """A table column as a check builder sees it: expression, kind, dialect, null policy."""

    col: ColumnElement[Any]
    kind: Kind
    dialect: Dialect
    ignore_na: bool = True

    @property
    def engine(self) -> str:
        """The dialect name, ``mysql`` for MariaDB too."""
        return _engine(self.dialect)

    def is_na(self) -> ColumnElement[bool]:
        """True where pandas would see a null."""
        na = self.col.is_(None)
        if self.kind is Kind.FLOAT and self.engine in _NAN_ENGINES:
            return sa.or_(na, self.col == sa.literal(float("nan"), sa.Float()))
        return na

    def text(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        """``expr`` made to compare code point by code point (see :func:`exact_text`)."""
        return exact_text(expr, self.dialect)

    def compare(self, op: Callable[[Any, Any], Any], value: Any) -> ColumnElement[bool]:
        """``op(column, value)`` with Python's semantics for strings."""
        if isinstance(value, str) and self.kind is Kind.STRING:
            result: ColumnElement[bool] = op(self.text(self.col), self._text_value(value))
            return result
        result = op(self.col, value)
        return result

    def text_equals(self, expr: ColumnElement[Any], value: str) -> ColumnElement[bool]:
        """``expr = value`` exactly, for a string expression such as a substring."""
        return self.text(expr) == self._text_value(value)

    def member(self, values: Iterable[Any]) -> tuple[ColumnElement[bool], bool]:
        """``column IN values`` for non-null values, and whether the values list a null."""
        items = list(values)
        present = [v for v in items if not _is_null(v)]
        exact = self.kind is Kind.STRING
        strings = [v for v in present if exact and isinstance(v, str)]
        others = [v for v in present if not (exact and isinstance(v, str))]
        parts: list[ColumnElement[bool]] = []
        if others:
            parts.append(self.col.in_(others))
        if strings:
            parts.append(self.text(self.col).in_([self._text_value(v) for v in strings]))
        cond = sa.or_(*parts) if parts else sa.false()
        return cond, len(present) < len(items)

    def regex(self, pattern: Any, *, anchored: bool) -> ColumnElement[bool] | None:
        """A partial regex match (``re.search``), at the start only when ``anchored``.

        None when the pattern has flags other than IGNORECASE, which SQL cannot carry.
        """
        source, flags = pattern, 0
        if isinstance(pattern, re.Pattern):
            source, flags = pattern.pattern, pattern.flags & ~re.UNICODE
        if not isinstance(source, str) or flags & ~re.IGNORECASE:
            return None
        sql = f"^(?:{source})" if anchored else source
        if flags & re.IGNORECASE:
            sql = "(?i)" + sql
        elif self.engine == "mysql":
            sql = "(?-i)" + sql  # REGEXP otherwise follows a case-insensitive collation
        if self.engine == "duckdb":
            # regexp_matches is DuckDB's documented partial match.
            return sa.func.regexp_matches(self.col, sql, type_=sa.Boolean)
        return self.col.regexp_match(sql)

    def length(self) -> ColumnElement[int]:
        """Length in characters (MySQL's LENGTH counts bytes; SQLite has no CHAR_LENGTH)."""
        if self.engine == "sqlite":
            return sa.func.length(self.col, type_=sa.Integer)
        return sa.func.char_length(self.col, type_=sa.Integer)

    def prefix(self, n: int) -> ColumnElement[str]:
        """The first ``n`` characters."""
        return sa.func.substr(self.col, 1, n, type_=sa.String)

    def suffix(self, n: int) -> ColumnElement[str]:
        """The last ``n`` characters (``n`` > 0)."""
        if self.engine == "sqlite":
            return sa.func.substr(self.col, -n, type_=sa.String)
        return sa.func.right(self.col, n, type_=sa.String)

    def _text_value(self, value: str) -> ColumnElement[Any]:
        bound = sa.literal(value, sa.String())
        return bound if self.engine == "postgresql" else self.text(bound)


@dataclass(frozen=True, kw_only=True)
class Condition:
    """What a non-null value must satisfy; ``null_passes``: a null's fate if not ignored."""

    passes: ColumnElement[bool]
    null_passes: bool = False


@dataclass(frozen=True, kw_only=True)
class Aggregate:
    """Aggregates over the column and the verdict on their values."""

    aggregates: tuple[ColumnElement[Any], ...]
    passes: Callable[[Sequence[Any]], bool]


Build = Callable[[Target, Mapping[str, Any]], Condition | Aggregate | None]


@dataclass(frozen=True, kw_only=True)
class Builtin:
    """How one pandera built-in compiles: its builder and how its name shows arguments.

    ``positional`` arguments are shown bare, and required unless they have a
    default; other statistics are shown as ``key=value`` unless equal to their
    entry in ``defaults``.
    """

    build: Build
    positional: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def complete(self, statistics: Mapping[str, Any]) -> bool:
        """Whether ``statistics`` hold every required argument (a lambda named isin has none)."""
        return all(k in statistics or k in self.defaults for k in self.positional)


BUILTINS: dict[str, Builtin] = {}
"""pandera check name -> builder. A builder returning None sends the check to pandera."""


def builtin(
    name: str, *, positional: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None
) -> Callable[[Build], Build]:
    """Register ``fn`` as the SQL builder of the pandera check called ``name``."""

    def register(fn: Build) -> Build:
        BUILTINS[name] = Builtin(build=fn, positional=positional, defaults=dict(defaults or {}))
        return fn

    return register


@builtin("equal_to", positional=("value",))
def _equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return Condition(passes=t.compare(operator.eq, s["value"]))


@builtin("not_equal_to", positional=("value",))
def _not_equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return Condition(passes=t.compare(operator.ne, s["value"]), null_passes=True)


@builtin("greater_than", positional=("min_value",))
def _greater_than(t: Target, s: Mapping[str, Any]) -> Condition:
    return Condition(passes=t.compare(operator.gt, s["min_value"]))


@builtin("greater_than_or_equal_to", positional=("min_value",))
def _greater_than_or_equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return Condition(passes=t.compare(operator.ge, s["min_value"]))


@builtin("less_than", positional=("max_value",))
def _less_than(t: Target, s: Mapping[str, Any]) -> Condition:
    return Condition(passes=t.compare(operator.lt, s["max_value"]))


@builtin("less_than_or_equal_to", positional=("max_value",))
def _less_than_or_equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return Condition(passes=t.compare(operator.le, s["max_value"]))


@builtin(
    "in_range",
    positional=("min_value", "max_value"),
    defaults={"include_min": True, "include_max": True},
)
def _in_range(t: Target, s: Mapping[str, Any]) -> Condition:
    low = operator.ge if s.get("include_min", True) else operator.gt
    high = operator.le if s.get("include_max", True) else operator.lt
    return Condition(
        passes=sa.and_(t.compare(low, s["min_value"]), t.compare(high, s["max_value"]))
    )


@builtin("isin", positional=("allowed_values",))
def _isin(t: Target, s: Mapping[str, Any]) -> Condition:
    member, null_listed = t.member(s["allowed_values"])  # a string: its characters
    return Condition(passes=member, null_passes=null_listed)


@builtin("notin", positional=("forbidden_values",))
def _notin(t: Target, s: Mapping[str, Any]) -> Condition:
    member, null_listed = t.member(s["forbidden_values"])
    return Condition(passes=sa.not_(member), null_passes=not null_listed)


@builtin("str_matches", positional=("pattern",))
def _str_matches(t: Target, s: Mapping[str, Any]) -> Condition | None:
    match = t.regex(s["pattern"], anchored=True)
    return None if match is None else Condition(passes=match)


@builtin("str_contains", positional=("pattern",))
def _str_contains(t: Target, s: Mapping[str, Any]) -> Condition | None:
    match = t.regex(s["pattern"], anchored=False)
    return None if match is None else Condition(passes=match)


@builtin("str_startswith", positional=("string",))
def _str_startswith(t: Target, s: Mapping[str, Any]) -> Condition:
    string = str(s["string"])
    if not string:
        return Condition(passes=sa.true())
    return Condition(passes=t.text_equals(t.prefix(len(string)), string))


@builtin("str_endswith", positional=("string",))
def _str_endswith(t: Target, s: Mapping[str, Any]) -> Condition:
    string = str(s["string"])
    if not string:
        return Condition(passes=sa.true())
    return Condition(passes=t.text_equals(t.suffix(len(string)), string))


@builtin(
    "str_length",
    positional=("min_value", "max_value"),
    defaults={"min_value": None, "max_value": None, "exact_value": None},
)
def _str_length(t: Target, s: Mapping[str, Any]) -> Condition | None:
    length = t.length()
    exact, low, high = s.get("exact_value"), s.get("min_value"), s.get("max_value")
    if exact is not None:
        return Condition(passes=length == exact)
    bounds = [
        *([length >= low] if low is not None else []),
        *([length <= high] if high is not None else []),
    ]
    return Condition(passes=sa.and_(*bounds)) if bounds else None


@builtin("unique_values_eq", positional=("values",))
def _unique_values_eq(t: Target, s: Mapping[str, Any]) -> Aggregate:
    expected = {v for v in s["values"] if not _is_null(v)}
    member, null_listed = t.member(s["values"])
    present = sa.not_(t.is_na())
    key = t.text(t.col)
    aggregates: tuple[ColumnElement[Any], ...] = (
        sa.func.count(sa.distinct(sa.case((sa.and_(present, member), key)))),
        sa.func.sum(sa.case((sa.and_(present, sa.not_(member)), 1), else_=0)),
    )
    if not t.ignore_na:
        aggregates += (sa.func.sum(sa.case((t.is_na(), 1), else_=0)),)
    ignore_na = t.ignore_na

    def passes(got: Sequence[Any]) -> bool:
        found, outside = int(got[0] or 0), int(got[1] or 0)
        has_nulls = not ignore_na and int(got[2] or 0) > 0
        return found == len(expected) and outside == 0 and has_nulls == null_listed

    return Aggregate(aggregates=aggregates, passes=passes)


def compile_schema(
    schema: pa.DataFrameSchema, table: sa.Table, *, dialect: Dialect
) -> CompiledSchema:
    """Compile ``schema`` into the rules it sets on ``table``.

    :param schema: a pandera (pandas) ``DataFrameSchema``.
    :param table: the reflected table (column types and ``nullable``).
    :param dialect: the dialect the rules will run on.
    :returns: static outcomes (missing, extra, dtype), row, aggregate, unique
        and custom rules, and the schema columns found in the table.
    """
    out = _Compiled(table=table, dialect=dialect)
    for key, column in schema.columns.items():
        found = _resolve(str(key), column, table)
        if not found and column.required:
            what = "no table column matches the regex" if column.regex else "not in the table"
            out.static(
                f"{key}:column_in_dataframe",
                None if column.regex else str(key),
                passed=False,
                detail=f"column {key!r}: {what} {table.fullname!r}; it has: "
                f"{', '.join(repr(c.name) for c in table.columns) or 'no columns'}",
            )
        for name in found:
            out.column(name, column)
    if schema.strict is True:
        for col in table.columns:
            if col.name not in out.seen:
                out.static(
                    f"{col.name}:column_in_schema",
                    col.name,
                    passed=False,
                    detail=f"column {col.name!r} of {table.fullname!r} is not in the schema "
                    "(strict=True)",
                )
    if not schema.columns and schema.dtype is not None:
        for col in table.columns:  # pandera's schema-wide dtype applies to every column
            out.dtype(col.name, schema.dtype, coerce=bool(schema.coerce))
    for columns in _unique_sets(schema.unique):
        subset = tuple(c for c in columns if c in table.c)
        if subset:
            out.unique(
                ",".join(columns), subset, nulls_distinct=False, report=schema.report_duplicates
            )
    for check in schema.checks:
        out.custom(_rule_name(None, check, None), None, check)
    return out.result()


@dataclass
class _Compiled:
    """Rules collected in schema order; names made unique as metric labels must be."""

    table: sa.Table
    dialect: Dialect
    seen: dict[str, None] = field(default_factory=dict)
    statics: list[StaticOutcome] = field(default_factory=list)
    rows: list[RowRule] = field(default_factory=list)
    aggregates: list[AggregateRule] = field(default_factory=list)
    uniques: list[UniqueRule] = field(default_factory=list)
    customs: list[CustomRule] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def name(self, base: str) -> str:
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}#{n}"
        self.names.add(name)
        return name

    def static(self, name: str, column: str | None, *, passed: bool, detail: str) -> None:
        self.statics.append(
            StaticOutcome(name=self.name(name), column=column, passed=passed, detail=detail)
        )

    def dtype(self, name: str, dtype: Any, *, coerce: bool) -> None:
        col_type = self.table.c[name].type
        kind = warehouse_kind(col_type)
        self.static(
            f"{name}:dtype({str(dtype)!r})",
            name,
            passed=accepts(dtype, col_type, coerce=coerce),
            detail=f"warehouse type {warehouse_type_name(col_type, self.dialect)} is "
            f"{kind.value}; schema wants {dtype}{' (coerce=True)' if coerce else ''}",
        )

    def unique(
        self, name: str, columns: tuple[str, ...], *, nulls_distinct: bool, report: Any
    ) -> None:
        self.uniques.append(
            UniqueRule(
                name=self.name(f"{name}:unique"),
                columns=columns,
                nulls_distinct=nulls_distinct,
                report=report,
            )
        )

    def custom(self, name: str, column: str | None, check: Any) -> None:
        self.customs.append(CustomRule(name=self.name(name), column=column, check=check))

    def column(self, name: str, column: Any) -> None:
        """Every rule of one schema column on the table column ``name``."""
        if name in self.seen:
            return
        self.seen[name] = None
        sql_col = self.table.c[name]
        if column.dtype is not None:
            self.dtype(name, column.dtype, coerce=bool(column.coerce))
        if not column.nullable:
            target = Target(col=sql_col, kind=warehouse_kind(sql_col.type), dialect=self.dialect)
            self.rows.append(
                RowRule(name=self.name(f"{name}:not_null"), column=name, fails=target.is_na())
            )
        if column.unique:
            self.unique(name, (name,), nulls_distinct=True, report=column.report_duplicates)
        for check in column.checks:
            self.check(name, check)

    def check(self, column: str, check: Any) -> None:
        spec = BUILTINS.get(_registry_name(check))
        stats = {k: _plain(v) for k, v in (check.statistics or {}).items()}
        label = _rule_name(column, check, spec)
        sql_col = self.table.c[column]
        target = Target(
            col=sql_col,
            kind=warehouse_kind(sql_col.type),
            dialect=self.dialect,
            ignore_na=bool(check.ignore_na),
        )
        built = None
        if spec is not None and check.groupby is None and spec.complete(stats):
            built = spec.build(target, stats)
        if isinstance(built, Condition):
            self.rows.append(
                RowRule(name=self.name(label), column=column, fails=_fails(target, built))
            )
        elif isinstance(built, Aggregate):
            self.aggregates.append(
                AggregateRule(
                    name=self.name(label),
                    column=column,
                    aggregates=built.aggregates,
                    passes=built.passes,
                )
            )
        else:
            self.custom(label, column, check)

    def result(self) -> CompiledSchema:
        return CompiledSchema(
            row_rules=tuple(self.rows),
            aggregate_rules=tuple(self.aggregates),
            unique_rules=tuple(self.uniques),
            custom_rules=tuple(self.customs),
            static=tuple(self.statics),
            columns=tuple(self.seen),
        )


def _fails(t: Target, cond: Condition) -> ColumnElement[bool]:
    """TRUE where a row breaks ``cond``, FALSE elsewhere, never NULL."""
    broken = sa.not_(sa.func.coalesce(cond.passes, sa.false(), type_=sa.Boolean))
    if t.ignore_na or cond.null_passes:
        return sa.and_(sa.not_(t.is_na()), broken)
    return sa.or_(t.is_na(), broken)


def _resolve(key: str, column: Any, table: sa.Table) -> list[str]:
    """The table columns a schema column covers: itself, or every regex match (``re.match``)."""
    if column.regex:
        return [c.name for c in table.columns if re.match(key, c.name)]
    return [key] if key in table.c else []


def _unique_sets(unique: Any) -> list[list[str]]:
    """``unique: [a, b]`` is one set; ``unique: [[a, b], [c]]`` is several (as pandera reads it)."""
    if not unique:
        return []
    if isinstance(unique, str):
        return [[unique]]
    if all(isinstance(c, str) for c in unique):
        return [list(unique)]
    return [
        [unique_set] if isinstance(unique_set, str) else list(unique_set) for unique_set in unique
    ]


def _registry_name(check: Any) -> str:
    """The built-in a check is, even when ``name=`` renamed it (pandera's ``registry_name``)."""
    return str(getattr(check, "registry_name", None) or check.name)


def _rule_name(column: str | None, check: Any, spec: Builtin | None) -> str:
    stats = {k: _plain(v) for k, v in (check.statistics or {}).items()}
    args = []
    for key, value in stats.items():
        if spec is not None and key in spec.positional:
            args.append(_show(value))
        elif spec is not None and key in spec.defaults and _same(value, spec.defaults[key]):
            continue
        else:
            args.append(f"{key}={_show(value)}")
    shown = ", ".join(args)
    if len(shown) > _MAX_ARGS:  # a 10,000-value isin: keep labels short, still distinct
        digest = hashlib.sha256(shown.encode()).hexdigest()[:8]
        shown = f"{shown[: _MAX_ARGS - 20]}... #{digest}"
    rule = f"{check.name}({shown})" if args else str(check.name)
    return rule if column is None else f"{column}:{rule}"


def _same(value: Any, default: Any) -> bool:
    return type(value) is type(default) and bool(value == default)


def _show(value: Any) -> str:
    """``repr``, made stable: sets sorted, dates as ISO strings, patterns as their source."""
    if isinstance(value, set | frozenset):
        try:
            items = sorted(value)
        except TypeError:
            items = sorted(value, key=repr)
        return "[" + ", ".join(_show(v) for v in items) + "]"
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_show, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dt.date | dt.time):
        return repr(value.isoformat())
    if isinstance(value, dt.timedelta):
        return repr(str(value))
    if isinstance(value, re.Pattern) and not value.flags & ~re.UNICODE:
        return repr(value.pattern)
    return repr(value)


def _plain(value: Any) -> Any:
    """numpy and pandas scalars as the plain Python values drivers bind."""
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(_plain(v) for v in value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
