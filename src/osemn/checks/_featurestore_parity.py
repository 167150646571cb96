"""Online/offline parity (training-serving skew) of one feature view.

For a random sample of entities, the latest offline row inside the
materialized range (at or before the last materialization's end) is read in
one statement: a window function ranks each entity's rows in the warehouse,
and only ``sample`` rows leave it. The online store is then asked for the
same entities; a feature's mismatch share is the share of sampled entities
whose online value differs from that offline value. A value that the view's
TTL has expired is expected to be absent online, as Feast serves it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from osemn.checks._featurestore_offline import OfflineFrom
from osemn.checks._time import as_utc, bind_time
from osemn.checks.failures import json_value, mask_value
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.featurestore import FeatureViewInfo, OnlineRead

__all__ = ["latest_materialized", "parity_name", "parity_results"]

_RANK = "osemn_rank"
_TS = "osemn_event_timestamp"
_FAILURE_SAMPLE = 5
_REL_TOL = 1e-6  # Float32 features round-trip through the online store's protobuf


def parity_name(feature: str, tolerance: float) -> str:
    """``conv_rate:online_parity(tolerance=0.01)``."""
    return f"{feature}:online_parity(tolerance={tolerance:g})"


def latest_materialized(
    source: OfflineFrom, view: FeatureViewInfo, *, limit: int
) -> list[dict[str, Any]]:
    """A random sample of ``limit`` entities: each one's latest materialized offline row.

    Each row maps join keys and features to their offline value, and ``_TS`` to
    its event time. No row when the view was never materialized.
    """
    if not view.materialization_intervals:
        return []
    batch = view.batch_source
    ts = source.column(batch.timestamp_field)
    keys = [source.column(k.name) for k in view.join_keys]
    order = [ts.desc()]
    if batch.created_timestamp_column:
        order.append(source.column(batch.created_timestamp_column).desc())
    materialized = sa.or_(
        *(
            sa.and_(ts >= bind_time(start, ts), ts <= bind_time(end, ts))
            for start, end in view.materialization_intervals
        )
    )
    ranked = (
        sa.select(
            *(source.column(f.name).label(f.name) for f in (*view.join_keys, *view.features)),
            ts.label(_TS),
            sa.func.row_number().over(partition_by=keys, order_by=order).label(_RANK),
        )
        .where(materialized)
        .subquery("latest")
    )
    names = [f.name for f in (*view.join_keys, *view.features)]
    stmt = (
        sa.select(*(ranked.c[n] for n in names), ranked.c[_TS])
        .where(ranked.c[_RANK] == 1)
        .order_by(sa.func.random())
        .limit(limit)
    )
    return [dict(row._mapping) for row in source.offline.warehouse.execute(stmt)]


def entity_rows(view: FeatureViewInfo, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``entity_rows`` argument of ``get_online_features`` for offline rows."""
    return [{k.name: _plain(row[k.name]) for k in view.join_keys} for row in rows]


def parity_results(
    view: FeatureViewInfo,
    offline: Sequence[Mapping[str, Any]],
    online: OnlineRead,
    *,
    tolerance: float,
    now: datetime,
    source: str,
    duration_seconds: float,
    mask: frozenset[str],
    mask_key: bytes,
) -> list[CheckResult]:
    """One result per feature: its mismatch share, failing above ``tolerance``.

    The failure samples show the values of the join keys and features in
    ``mask`` as keyed hashes (``mask_key``), as a dataset's ``failures.mask`` does.
    """
    expired = [_expired(view, row, now) for row in offline]
    shown = _Shown(mask=mask, key=mask_key)
    out = []
    for feature in view.features:
        failures = []
        for i, row in enumerate(offline):
            status = online.statuses[i][feature.name]
            value = online.values[i][feature.name]
            if _agrees(row[feature.name], value, status, expired=expired[i]):
                continue
            failures.append(
                {
                    **{k.name: shown(k.name, row[k.name]) for k in view.join_keys},
                    "offline": shown(feature.name, row[feature.name]),
                    "online": shown(feature.name, value),
                    "online_status": status,
                }
            )
        ratio = len(failures) / len(offline)
        out.append(
            CheckResult(
                dataset=view.name,
                kind=CheckKind.FEATURESTORE,
                check=parity_name(feature.name, tolerance),
                status=Status.PASS if ratio <= tolerance else Status.FAIL,
                rows=len(offline),
                failed_rows=len(failures),
                duration_seconds=duration_seconds,
                finished_at=now,
                measurements=(
                    Measurement(
                        name="parity_mismatch_ratio",
                        value=ratio,
                        labels=(("column", feature.name),),
                    ),
                ),
                failures=tuple(failures[:_FAILURE_SAMPLE]),
                source=source,
            )
        )
    return out


def _expired(view: FeatureViewInfo, row: Mapping[str, Any], now: datetime) -> bool:
    event = as_utc(row[_TS])
    return view.ttl is not None and event is not None and event < now - view.ttl


def _agrees(offline: Any, online: Any, status: str, *, expired: bool) -> bool:
    if expired:
        # Past the TTL a store may hide the value or still serve it (Feast 0.67's
        # SQLite store does): either agrees, a different value does not.
        if status in ("expired", "not_found") or online is None:
            return True
        return status in ("present", "null") and _same(offline, online)
    if status not in ("present", "null"):
        return False
    return _same(offline, online)


def _same(offline: Any, online: Any) -> bool:
    offline, online = _plain(offline), _plain(online)
    if _missing(offline) or _missing(online):
        return _missing(offline) and _missing(online)
    if isinstance(offline, float) or isinstance(online, float):
        try:
            return math.isclose(float(offline), float(online), rel_tol=_REL_TOL, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(offline, datetime) and isinstance(online, datetime):
        return as_utc(offline) == as_utc(online)
    return bool(offline == online)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars and Decimals as plain Python values (JSON-safe, comparable)."""
    if isinstance(value, Decimal):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


@dataclass(frozen=True)
class _Shown:
    """A value as a failure sample keeps it: JSON-safe, or its keyed hash when masked."""

    mask: frozenset[str]
    key: bytes

    def __call__(self, name: str, value: Any) -> Any:
        if name in self.mask:
            return mask_value(_plain(value), self.key)
        return json_value(_plain(value))
