"""Uniqueness as pandera counts it, in one grouped statement, or for free from the catalog.

pandera reports every row whose key occurs more than once (``report_duplicates``
may exclude the first or last of each group). A PRIMARY KEY, UNIQUE constraint
or unique index already proves a key unique, so those rules cost no scan: this
is where osemn beats a hand-written fused query, whose ``count(DISTINCT)`` is
most of its time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.util import ClauseAdapter

from osemn.checks.base import UniqueRule
from osemn.checks.builtins import exact_text

__all__ = ["duplicates_sample", "proven_by_constraint", "unique_counts"]


def proven_by_constraint(
    rule: UniqueRule,
    table: sa.Table,
    *,
    primary_key: Sequence[str],
    unique_keys: Sequence[Sequence[str]],
) -> str | None:
    """Why the catalog already guarantees ``rule``, or None when it must be counted.

    A constraint on columns C proves a key K unique when C is a subset of K.
    Warehouses let a UNIQUE constraint hold several NULLs, so for pandera's
    schema-level ``unique`` (NULL keys compare equal) every column of C must
    also be NOT NULL; a column's own ``unique`` drops nulls first, like the
    constraint does.
    """
    key = set(rule.columns)
    if primary_key and set(primary_key) <= key:
        return f"proven by constraint (primary key {', '.join(primary_key)})"
    for columns in unique_keys:
        if not columns or not set(columns) <= key:
            continue
        if rule.nulls_distinct or all(not table.c[c].nullable for c in columns):
            return f"proven by constraint (unique {', '.join(columns)})"
    return None


def _key(table: sa.FromClause, rule: UniqueRule, dialect: Dialect) -> list[ColumnElement[Any]]:
    """The key as pandas compares it: strings exact (case and trailing spaces count)."""
    return [exact_text(table.c[c], dialect) for c in rule.columns]


def _in_window(
    table: sa.Table, rule: UniqueRule, window: ColumnElement[bool] | None, dialect: Dialect
) -> list[ColumnElement[bool]]:
    """Filters of the grouped count: drop nulls if pandera does, keep keys seen in the window.

    An incremental run still counts duplicates against the whole table (a new
    row may repeat an old key), but only for keys that occur in the window.
    """
    filters: list[ColumnElement[bool]] = []
    if rule.nulls_distinct:
        filters.extend(table.c[c].is_not(None) for c in rule.columns)
    if window is not None:
        recent = table.alias("recent")
        same_key = [
            mine.is_not_distinct_from(theirs)
            for mine, theirs in zip(
                _key(recent, rule, dialect), _key(table, rule, dialect), strict=True
            )
        ]
        filters.append(
            sa.exists(
                sa.select(sa.literal(1))
                .select_from(recent)
                .where(_rebind(window, recent), *same_key)
            )
        )
    return filters


def _rebind(expr: ColumnElement[bool], alias: sa.FromClause) -> ColumnElement[bool]:
    """The same condition on an alias of its table."""
    adapted: ColumnElement[bool] = ClauseAdapter(alias).traverse(expr)
    return adapted


def unique_counts(
    table: sa.Table,
    rules: Sequence[UniqueRule],
    *,
    dialect: Dialect,
    window: ColumnElement[bool] | None = None,
) -> sa.Select[Any]:
    """One statement counting the duplicate rows of every rule (columns ``u0``, ``u1``...)."""
    counts = []
    for rule in rules:
        groups = (
            sa.select(sa.func.count().label("n"))
            .select_from(table)
            .where(*_in_window(table, rule, window, dialect))
            .group_by(*_key(table, rule, dialect))
            .having(sa.func.count() > 1)
            .subquery()
        )
        excluded = 0 if rule.report == "all" else 1
        counts.append(
            sa.select(sa.func.coalesce(sa.func.sum(groups.c.n - excluded), 0)).scalar_subquery()
        )
    return sa.select(*(c.label(f"u{i}") for i, c in enumerate(counts)))


def duplicates_sample(
    table: sa.Table,
    rule: UniqueRule,
    *,
    dialect: Dialect,
    limit: int,
    window: ColumnElement[bool] | None = None,
) -> sa.Select[Any]:
    """Up to ``limit`` duplicated keys with how often each occurs."""
    shown = [sa.func.min(table.c[c]).label(c) for c in rule.columns]
    return (
        sa.select(*shown, sa.func.count().label("occurrences"))
        .select_from(table)
        .where(*_in_window(table, rule, window, dialect))
        .group_by(*_key(table, rule, dialect))
        .having(sa.func.count() > 1)
        .order_by(sa.func.count().desc())
        .limit(limit)
    )
