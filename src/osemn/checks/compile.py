"""Compile a pandera ``DataFrameSchema`` into SQL rules for one reflected table.

pandera's checks are read as data (``Check.name`` and ``Check.statistics``)
and turned into SQLAlchemy Core expressions by the builders of
:data:`osemn.checks.builtins.BUILTINS`, with pandera's pandas semantics:

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

import re
from dataclasses import dataclass, field
from typing import Any

import pandera.pandas as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from osemn.checks._names import plain, rule_name
from osemn.checks.base import (
    AggregateRule,
    CompiledSchema,
    CustomRule,
    RowRule,
    StaticOutcome,
    UniqueRule,
)
from osemn.checks.builtins import BUILTINS, Aggregate, Condition, Target
from osemn.checks.dtypes import accepts, warehouse_kind, warehouse_type_name

__all__ = ["compile_schema"]


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
        out.custom(rule_name(None, check, None), None, check)
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
        stats = {k: plain(v) for k, v in (check.statistics or {}).items()}
        label = rule_name(column, check, spec)
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
    """TRUE where a row breaks ``cond``; FALSE or NULL (a pass, as WHERE and CASE read it).

    A strict condition needs no guard: ``NOT passes`` is already NULL on a null
    row, so only NaN (a null to pandas, a number to the engine) is excluded.
    Guards and ``coalesce`` cost a tenth of a scan on DuckDB.
    """
    if cond.strict:
        broken: ColumnElement[bool] = sa.not_(cond.passes)
        if t.ignore_na or cond.null_passes:
            nan = t.nan()
            return broken if nan is None else sa.and_(broken, t.col != nan)
        return sa.or_(t.is_na(), broken)
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
