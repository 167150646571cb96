"""Schema change detection: columns added, removed or retyped since the last run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from osemn.results import CheckKind, CheckResult, Status

__all__ = ["SCHEMA_CHANGE", "column_types", "schema_change_result"]

SCHEMA_CHANGE = "schema_change"


def column_types(table: sa.Table, dialect: Dialect) -> dict[str, str]:
    """Column name -> the type as the warehouse spells it (the snapshot's content)."""
    out = {}
    for column in table.columns:
        try:
            out[column.name] = column.type.compile(dialect=dialect)
        except Exception:  # a type the dialect cannot render back (e.g. NullType)
            out[column.name] = str(column.type.__class__.__name__)
    return out


def schema_change_result(
    *,
    dataset: str,
    before: Mapping[str, str] | None,
    now_columns: Mapping[str, str],
    finished_at: datetime,
) -> CheckResult:
    """Fail once for each change; the first run only records the snapshot.

    A change is an event, not a state: the next run compares with the new
    snapshot and passes, while the alert on the failure has done its job.
    """
    changes: list[dict[str, Any]] = []
    if before is not None:
        for name in now_columns.keys() - before.keys():
            changes.append({"column": name, "change": "added", "type": now_columns[name]})
        for name in before.keys() - now_columns.keys():
            changes.append({"column": name, "change": "removed", "type": before[name]})
        for name in now_columns.keys() & before.keys():
            if now_columns[name] != before[name]:
                changes.append(
                    {
                        "column": name,
                        "change": "retyped",
                        "from": before[name],
                        "to": now_columns[name],
                    }
                )
    changes.sort(key=lambda c: (c["column"], c["change"]))
    return CheckResult(
        dataset=dataset,
        kind=CheckKind.SCHEMA_CHANGE,
        check=SCHEMA_CHANGE,
        status=Status.FAIL if changes else Status.PASS,
        rows=len(now_columns),
        failed_rows=len(changes),
        finished_at=finished_at,
        failures=tuple(changes),
        note=None if before is not None else "first snapshot recorded",
    )
