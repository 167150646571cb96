"""A compiled schema: pandera's checks as data that the SQL backend executes.

The compiler (``checks.compile``) turns a pandera ``DataFrameSchema`` and a
reflected table into these rules; the fused scan (``checks.fused``) evaluates
every row rule and aggregate rule in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "AggregateRule",
    "CompiledSchema",
    "CustomRule",
    "RowRule",
    "StaticOutcome",
    "UniqueRule",
]


@dataclass(frozen=True, kw_only=True)
class RowRule:
    """A rule every row must keep; ``fails`` is true (never NULL) for a row that breaks it.

    Null handling is already folded into ``fails`` as pandera does it: checks
    ignore nulls, ``not_null`` fails exactly the nulls.
    """

    name: str
    column: str | None
    fails: ColumnElement[bool]


@dataclass(frozen=True, kw_only=True)
class AggregateRule:
    """A rule over a whole column (``unique_values_eq``): aggregates, then a verdict.

    ``aggregates`` are fused into the scan; ``passes`` gets their values in order.
    A failing aggregate rule counts one failure, as pandera counts a scalar check.
    """

    name: str
    column: str
    aggregates: tuple[ColumnElement[Any], ...]
    passes: Callable[[Sequence[Any]], bool]


@dataclass(frozen=True, kw_only=True)
class UniqueRule:
    """Rows whose key occurs more than once, counted as pandera counts them.

    ``nulls_distinct`` is true for a column's ``unique`` (pandera drops nulls
    first) and false for a schema's ``unique: [cols]`` (pandas treats NaN keys
    as equal). ``report`` is pandera's ``report_duplicates``.
    """

    name: str
    columns: tuple[str, ...]
    nulls_distinct: bool
    report: Literal["all", "exclude_first", "exclude_last"] = "all"


@dataclass(frozen=True, kw_only=True)
class CustomRule:
    """A non built-in pandera check; run on a bounded sample by pandera itself."""

    name: str
    column: str | None
    check: Any  # pandera.api.checks.Check


@dataclass(frozen=True, kw_only=True)
class StaticOutcome:
    """A rule decided from the catalog alone: a dtype, a missing or an extra column."""

    name: str
    column: str | None
    passed: bool
    detail: str


@dataclass(frozen=True, kw_only=True)
class CompiledSchema:
    """Everything a schema asks of one table, ready for the SQL backend."""

    row_rules: tuple[RowRule, ...] = ()
    aggregate_rules: tuple[AggregateRule, ...] = ()
    unique_rules: tuple[UniqueRule, ...] = ()
    custom_rules: tuple[CustomRule, ...] = ()
    static: tuple[StaticOutcome, ...] = ()
    columns: tuple[str, ...] = ()  # schema columns present in the table, for completeness

    def rule_names(self) -> list[str]:
        """Every rule's name, in the order results are reported."""
        return [
            *(s.name for s in self.static),
            *(r.name for r in self.row_rules),
            *(r.name for r in self.aggregate_rules),
            *(r.name for r in self.unique_rules),
            *(r.name for r in self.custom_rules),
        ]
