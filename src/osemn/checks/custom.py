"""Custom (non built-in) pandera checks, run by pandera itself on a bounded sample.

A Python function cannot be compiled to SQL, so osemn pulls at most
``limit`` rows of the window and lets pandera's pandas backend judge them;
the result says ``sampled`` so nobody mistakes it for a full count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from osemn.checks.base import CustomRule
from osemn.errors import CheckError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["custom_failures", "sample_statement"]


def sample_statement(
    table: sa.Table, columns: Sequence[str], *, limit: int, where: ColumnElement[bool] | None
) -> sa.Select[Any]:
    """The bounded sample the custom checks of one dataset share."""
    stmt = sa.select(*(table.c[c] for c in columns)).select_from(table)
    if where is not None:
        stmt = stmt.where(where)
    return stmt.limit(limit)


def custom_failures(rule: CustomRule, frame: pd.DataFrame) -> int:
    """How many failure cases pandera reports for ``rule`` on ``frame``.

    Raises:
        CheckError: the check function raised (pandera records that as a failure
            case; osemn reports it as an ``error``, never a data failure).
    """
    import pandera.pandas as pa
    from pandera.errors import SchemaErrorReason, SchemaErrors

    if rule.column is not None:
        schema = pa.DataFrameSchema({rule.column: pa.Column(checks=[rule.check], nullable=True)})
    else:
        schema = pa.DataFrameSchema(checks=[rule.check])
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        for err in exc.schema_errors:
            if err.reason_code is SchemaErrorReason.CHECK_ERROR:
                raise CheckError(str(err).splitlines()[0]) from None
        return len(exc.failure_cases)
    return 0
