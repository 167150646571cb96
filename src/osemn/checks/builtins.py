"""pandera's built-in checks as SQL: a registry of builders, one per check name.

Each builder reads a check's ``statistics`` (pandera's own record of its
arguments) and returns a :class:`Condition` a passing row satisfies, or an
:class:`Aggregate` for a check over the whole column; ``compile_schema`` folds
null handling in. ``@builtin`` registers a builder, so adding a check is data.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from osemn.checks.dtypes import Kind, warehouse_kind

__all__ = [
    "BUILTINS",
    "Aggregate",
    "Builtin",
    "Condition",
    "Target",
    "builtin",
    "exact_text",
    "is_null",
]

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
        nan = self.nan()
        return na if nan is None else sa.or_(na, self.col == nan)

    def nan(self) -> ColumnElement[float] | None:
        """NaN, where the column can hold it as a number (pandas reads it as a null)."""
        if self.kind is Kind.FLOAT and self.engine in _NAN_ENGINES:
            return sa.literal(float("nan"), sa.Float())
        return None

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
        present = [v for v in items if not is_null(v)]
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
    """What a non-null value must satisfy; ``null_passes``: a null's fate if not ignored.

    ``strict``: ``passes`` is NULL exactly where the column is (as a SQL comparison
    with a non-null value is), so the compiler needs no null guard around it.
    """

    passes: ColumnElement[bool]
    null_passes: bool = False
    strict: bool = False


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


def _compared(
    t: Target, op: Callable[[Any, Any], Any], value: Any, *, null_passes: bool = False
) -> Condition:
    """``column op value``: strict unless the value is null (NaN binds as NULL on SQLite)."""
    return Condition(
        passes=t.compare(op, value), null_passes=null_passes, strict=not is_null(value)
    )


def _strict_member(member: ColumnElement[bool]) -> bool:
    """``IN`` over non-null values is NULL only for a null column; an empty list is FALSE."""
    return not isinstance(member, sa.sql.elements.False_)


@builtin("equal_to", positional=("value",))
def _equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return _compared(t, operator.eq, s["value"])


@builtin("not_equal_to", positional=("value",))
def _not_equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return _compared(t, operator.ne, s["value"], null_passes=True)


@builtin("greater_than", positional=("min_value",))
def _greater_than(t: Target, s: Mapping[str, Any]) -> Condition:
    return _compared(t, operator.gt, s["min_value"])


@builtin("greater_than_or_equal_to", positional=("min_value",))
def _greater_than_or_equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return _compared(t, operator.ge, s["min_value"])


@builtin("less_than", positional=("max_value",))
def _less_than(t: Target, s: Mapping[str, Any]) -> Condition:
    return _compared(t, operator.lt, s["max_value"])


@builtin("less_than_or_equal_to", positional=("max_value",))
def _less_than_or_equal_to(t: Target, s: Mapping[str, Any]) -> Condition:
    return _compared(t, operator.le, s["max_value"])


@builtin(
    "in_range",
    positional=("min_value", "max_value"),
    defaults={"include_min": True, "include_max": True},
)
def _in_range(t: Target, s: Mapping[str, Any]) -> Condition:
    low = operator.ge if s.get("include_min", True) else operator.gt
    high = operator.le if s.get("include_max", True) else operator.lt
    return Condition(
        passes=sa.and_(t.compare(low, s["min_value"]), t.compare(high, s["max_value"])),
        strict=not (is_null(s["min_value"]) or is_null(s["max_value"])),
    )


@builtin("isin", positional=("allowed_values",))
def _isin(t: Target, s: Mapping[str, Any]) -> Condition:
    member, null_listed = t.member(s["allowed_values"])  # a string: its characters
    return Condition(passes=member, null_passes=null_listed, strict=_strict_member(member))


@builtin("notin", positional=("forbidden_values",))
def _notin(t: Target, s: Mapping[str, Any]) -> Condition:
    member, null_listed = t.member(s["forbidden_values"])
    return Condition(
        passes=sa.not_(member), null_passes=not null_listed, strict=_strict_member(member)
    )


@builtin("str_matches", positional=("pattern",))
def _str_matches(t: Target, s: Mapping[str, Any]) -> Condition | None:
    match = t.regex(s["pattern"], anchored=True)
    return None if match is None else Condition(passes=match, strict=True)


@builtin("str_contains", positional=("pattern",))
def _str_contains(t: Target, s: Mapping[str, Any]) -> Condition | None:
    match = t.regex(s["pattern"], anchored=False)
    return None if match is None else Condition(passes=match, strict=True)


@builtin("str_startswith", positional=("string",))
def _str_startswith(t: Target, s: Mapping[str, Any]) -> Condition:
    string = str(s["string"])
    if not string:
        return Condition(passes=sa.true())
    return Condition(passes=t.text_equals(t.prefix(len(string)), string), strict=True)


@builtin("str_endswith", positional=("string",))
def _str_endswith(t: Target, s: Mapping[str, Any]) -> Condition:
    string = str(s["string"])
    if not string:
        return Condition(passes=sa.true())
    return Condition(passes=t.text_equals(t.suffix(len(string)), string), strict=True)


@builtin(
    "str_length",
    positional=("min_value", "max_value"),
    defaults={"min_value": None, "max_value": None, "exact_value": None},
)
def _str_length(t: Target, s: Mapping[str, Any]) -> Condition | None:
    length = t.length()
    exact, low, high = s.get("exact_value"), s.get("min_value"), s.get("max_value")
    if exact is not None:
        return Condition(passes=length == exact, strict=True)
    bounds = [
        *([length >= low] if low is not None else []),
        *([length <= high] if high is not None else []),
    ]
    return Condition(passes=sa.and_(*bounds), strict=True) if bounds else None


@builtin("unique_values_eq", positional=("values",))
def _unique_values_eq(t: Target, s: Mapping[str, Any]) -> Aggregate:
    expected = {v for v in s["values"] if not is_null(v)}
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


def is_null(value: Any) -> bool:
    """None or NaN: what pandas counts as missing."""
    return value is None or (isinstance(value, float) and value != value)
