"""Offline checks of one feature view, pushed down to its batch source in one statement.

One aggregate statement gives the rows, the newest ``timestamp_field`` and the
non-null count of every feature: freshness and completeness. The dtype of each
join key and feature is compared with its Feast type on the reflected catalog,
through the same logical kinds as pandera dtypes (``checks.dtypes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from osemn.checks._time import as_utc
from osemn.checks.dtypes import accepts, warehouse_type_name
from osemn.checks.freshness import freshness_name, freshness_result
from osemn.config import FreshnessConfig
from osemn.errors import UnknownColumnError
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.featurestore import (
    BatchSourceInfo,
    FeatureField,
    FeatureViewInfo,
    OfflineTable,
)

__all__ = ["OfflineFrom", "offline_checks", "offline_from", "pandera_dtype"]

_QUERY_ALIAS = "feast_source"


@dataclass(frozen=True, kw_only=True)
class OfflineFrom:
    """A batch source as a FROM clause, with the reflected column types when known."""

    offline: OfflineTable
    batch: BatchSourceInfo
    from_: sa.FromClause
    types: dict[str, sa.types.TypeEngine[Any]] | None

    def column(self, name: str) -> sa.ColumnElement[Any]:
        """The column of the view's field (join key, feature, timestamp) ``name``."""
        return self.from_.c[self.batch.source_column(name)]


def offline_from(offline: OfflineTable, view: FeatureViewInfo) -> OfflineFrom:
    """Reflect the batch source (or wrap its query) and check the view's columns are there.

    Raises:
        UnknownTableError, UnknownColumnError, SourceError: as the warehouse reports them.
    """
    batch = view.batch_source
    fields = [
        *(f.name for f in view.join_keys),
        *(f.name for f in view.features),
        batch.timestamp_field,
        *([batch.created_timestamp_column] if batch.created_timestamp_column else []),
    ]
    needed = [batch.source_column(name) for name in fields]
    if offline.table is None:
        # A query source cannot be reflected: its columns are taken on trust.
        text = sa.text(offline.query or "").columns(*(sa.column(n) for n in dict.fromkeys(needed)))
        from_ = text.subquery(_QUERY_ALIAS)
        return OfflineFrom(offline=offline, batch=batch, from_=from_, types=None)
    info = offline.warehouse.describe(offline.table)
    for column in needed:
        if column not in info.table.c:
            raise UnknownColumnError(
                source=offline.warehouse.name,
                table=offline.label,
                column=column,
                available=info.columns,
            )
    types = {c.name: c.type for c in info.table.columns}
    return OfflineFrom(offline=offline, batch=batch, from_=info.table, types=types)


def freshness_check_name(view: FeatureViewInfo, max_age: timedelta | None) -> str:
    """``event_timestamp:freshness(max_age=1d)``, or without a threshold when there is none."""
    ts = view.batch_source.timestamp_field
    if max_age is None:
        return f"{ts}:freshness"
    return freshness_name(ts, FreshnessConfig(max_age=max_age))


def completeness_name(feature: str, minimum: float) -> str:
    """``conv_rate:completeness(min=0.99)``."""
    return f"{feature}:completeness(min={minimum:g})"


def dtype_name(field: FeatureField) -> str:
    """``conv_rate:dtype('Float64')``, as pandera names its dtype checks."""
    return f"{field.name}:dtype({field.feast_type!r})"


def offline_checks(
    source: OfflineFrom,
    view: FeatureViewInfo,
    *,
    max_age: timedelta | None,
    min_completeness: float,
    now: datetime,
    monotonic: Callable[[], float] = time.perf_counter,
) -> list[CheckResult]:
    """Freshness, completeness per feature and dtype per column of one view.

    Raises:
        SourceError: the statement failed; the caller turns it into error results.
    """
    ts = source.column(view.batch_source.timestamp_field)
    stmt = sa.select(
        sa.func.count().label("rows"),
        sa.func.max(ts).label("newest"),
        *(sa.func.count(source.column(f.name)).label(f"n{i}") for i, f in enumerate(view.features)),
    ).select_from(source.from_)
    started = monotonic()
    row = tuple(source.offline.warehouse.execute(stmt)[0])
    duration = monotonic() - started
    rows = int(row[0])
    common: dict[str, Any] = {
        "dataset": view.name,
        "source": source.offline.warehouse.name,
        "duration_seconds": duration,
        "finished_at": now,
    }
    out = [_freshness(view, max_age, as_utc(row[1]), now, common)]
    for i, feature in enumerate(view.features):
        out.append(_completeness(feature, rows, int(row[2 + i]), min_completeness, common))
    if source.types is not None:
        dialect = source.offline.warehouse.engine.dialect
        for field in (*view.join_keys, *view.features):
            type_ = source.types[source.batch.source_column(field.name)]
            out.append(_dtype(field, type_, dialect, common))
    return out


def expected_offline_checks(
    view: FeatureViewInfo, *, max_age: timedelta | None, min_completeness: float
) -> list[tuple[CheckKind, str]]:
    """The checks ``offline_checks`` reports, for error results when it cannot run."""
    return [
        (CheckKind.FRESHNESS, freshness_check_name(view, max_age)),
        *((CheckKind.SCHEMA, completeness_name(f.name, min_completeness)) for f in view.features),
    ]


def _freshness(
    view: FeatureViewInfo,
    max_age: timedelta | None,
    newest: datetime | None,
    now: datetime,
    common: dict[str, Any],
) -> CheckResult:
    ts = view.batch_source.timestamp_field
    if max_age is not None:
        result = freshness_result(
            dataset=view.name,
            timestamp=ts,
            config=FreshnessConfig(max_age=max_age),
            newest=newest,
            now=now,
        )
        return replace(result, **common)
    measurements: tuple[Measurement, ...] = ()
    if newest is not None:
        measurements = (
            Measurement(name="freshness_seconds", value=max((now - newest).total_seconds(), 0.0)),
            Measurement(name="newest_row_timestamp_seconds", value=newest.timestamp()),
        )
    return CheckResult(
        kind=CheckKind.FRESHNESS,
        check=freshness_check_name(view, None),
        status=Status.PASS,
        measurements=measurements,
        note="measured only: the view has no TTL and no `freshness:` is configured",
        **common,
    )


def _completeness(
    feature: FeatureField, rows: int, non_null: int, minimum: float, common: dict[str, Any]
) -> CheckResult:
    name = completeness_name(feature.name, minimum)
    if rows == 0:
        return CheckResult(
            kind=CheckKind.SCHEMA,
            check=name,
            status=Status.INSUFFICIENT_DATA,
            rows=0,
            failed_rows=0,
            note="the batch source has no rows",
            **common,
        )
    ratio = non_null / rows
    return CheckResult(
        kind=CheckKind.SCHEMA,
        check=name,
        status=Status.PASS if ratio >= minimum else Status.FAIL,
        rows=rows,
        failed_rows=rows - non_null,
        measurements=(
            Measurement(name="completeness_ratio", value=ratio, labels=(("column", feature.name),)),
        ),
        **common,
    )


def pandera_dtype(feast_type: str) -> Any | None:
    """The pandera dtype that means Feast type ``feast_type``; None for lists, maps, JSON."""
    import pandera.dtypes as pdt

    known: dict[str, Callable[[], Any]] = {
        "Int32": pdt.Int32,
        "Int64": pdt.Int64,
        "Float32": pdt.Float32,
        "Float64": pdt.Float64,
        "String": pdt.String,
        "Bool": pdt.Bool,
        "UnixTimestamp": pdt.Timestamp,
        "Bytes": pdt.Binary,
        "Decimal": pdt.Decimal,
    }
    make = known.get(feast_type)
    return None if make is None else make()


def _dtype(
    field: FeatureField,
    type_: sa.types.TypeEngine[Any],
    dialect: sa.Dialect,
    common: dict[str, Any],
) -> CheckResult:
    want = pandera_dtype(field.feast_type)
    have = warehouse_type_name(type_, dialect)
    if want is None:
        return CheckResult(
            kind=CheckKind.SCHEMA,
            check=dtype_name(field),
            status=Status.PASS,
            note=f"not compared: osemn does not map Feast type {field.feast_type} ({have})",
            **common,
        )
    passed = accepts(want, type_)
    return CheckResult(
        kind=CheckKind.SCHEMA,
        check=dtype_name(field),
        status=Status.PASS if passed else Status.FAIL,
        failed_rows=None if passed else 1,
        failures=()
        if passed
        else (
            {
                "column": field.name,
                "feast_type": field.feast_type,
                "source_type": have,
                "detail": f"the batch source holds {have}, which Feast type "
                f"{field.feast_type} does not accept; fix the view's schema or the source",
            },
        ),
        **common,
    )
