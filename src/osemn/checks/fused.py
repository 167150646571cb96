"""One scan per dataset: every aggregate of every check in a single SELECT.

When the warehouse rejects the fused statement because of one expression (an
overflow, a bad cast, a regex the dialect refuses), the aggregates are split in
halves and retried until the offending ones are isolated: only they report
``error``, the rest keep their counts. Soda Core fails the whole scan instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from osemn.errors import QueryTimeoutError, SourceError, SourceUnavailableError

__all__ = ["Aggregate", "ScanOutcome", "count_failing", "fused_scan"]

Execute = Callable[[sa.Executable], Sequence[sa.Row[Any]]]


@dataclass(frozen=True, kw_only=True)
class Aggregate:
    """One aggregate expression of the scan, named by the check it serves."""

    key: str
    expr: ColumnElement[Any]


@dataclass(frozen=True, kw_only=True)
class ScanOutcome:
    """Values by aggregate key, and the errors of aggregates the split isolated."""

    values: Mapping[str, Any]
    errors: Mapping[str, str]


def count_failing(fails: ColumnElement[bool]) -> ColumnElement[Any]:
    """``SUM(CASE WHEN fails THEN 1 ELSE 0 END)``: rows that break a rule, 0 on no rows."""
    return sa.func.coalesce(sa.func.sum(sa.case((fails, 1), else_=0)), 0)


def _select(
    table: sa.FromClause, aggregates: Sequence[Aggregate], where: ColumnElement[bool] | None
) -> sa.Select[Any]:
    stmt = sa.select(*(a.expr.label(f"a{i}") for i, a in enumerate(aggregates))).select_from(table)
    return stmt if where is None else stmt.where(where)


def fused_scan(
    execute: Execute,
    table: sa.FromClause,
    aggregates: Sequence[Aggregate],
    *,
    where: ColumnElement[bool] | None = None,
    composite: frozenset[str] = frozenset(),
) -> ScanOutcome:
    """Evaluate ``aggregates`` over ``table`` (filtered by ``where``) in one statement.

    ``composite`` names aggregates built from all the others (e.g. "any rule
    fails"): one bad part breaks them, so after a failure they are not retried
    but reported in ``errors`` for the caller to rebuild from the good parts.

    Raises:
        SourceUnavailableError: the source is down (nothing can be isolated).
        QueryTimeoutError: the scan ran out of time (splitting would only cost more).
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def attempt(group: Sequence[Aggregate], *, first: bool = False) -> None:
        if not group:
            return
        try:
            rows = execute(_select(table, group, where))
        except (SourceUnavailableError, QueryTimeoutError):
            raise
        except SourceError as exc:
            if first:
                # Is it one expression, or the table itself (permissions, a broken
                # view)? One probe decides, so a table-wide error costs 2 statements
                # instead of 2n-1; the probe's own error propagates.
                execute(_select(table, [Aggregate(key="rows", expr=sa.func.count())], where))
                errors.update((a.key, str(exc)) for a in group if a.key in composite)
                group = [a for a in group if a.key not in composite]
                if not group:
                    return
            if len(group) == 1:
                errors[group[0].key] = str(exc)
                return
            middle = len(group) // 2
            attempt(group[:middle])
            attempt(group[middle:])
            return
        values.update((a.key, rows[0][i]) for i, a in enumerate(group))

    attempt(aggregates, first=True)
    return ScanOutcome(values=values, errors=errors)
