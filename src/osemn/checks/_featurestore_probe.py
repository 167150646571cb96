"""Online-store probes: is each feature view served, and how fast (seed SLI M9).

A probe is one ``get_online_features`` call for a few entity keys known to be
materialized (sampled from the batch source, refreshed hourly). It is *up*
when the store answered within ``probe.timeout``, whatever the values: an
emptied store still answers, and shows up in parity instead. A timeout or an
error counts as down and is never raised. Each probe is one availability SLI
event: good when up.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from osemn._clock import utcnow
from osemn._feast_config import PROBE_CHECK
from osemn.checks._featurestore_offline import offline_from
from osemn.checks._featurestore_parity import entity_rows, latest_materialized
from osemn.errors import OsemnError
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.featurestore import FeatureStoreSource, FeatureViewInfo

__all__ = ["PROBE_CHECK", "OnlineProber", "ProbeResult", "ProbeStatus"]

_PROBE_STATUS = {
    "up": Status.PASS,
    "down": Status.FAIL,  # the store is unavailable: the SLI's bad event, not osemn's error
    "skipped": Status.INSUFFICIENT_DATA,
}

log = logging.getLogger(__name__)

_KEYS_REFRESH = timedelta(hours=1)


class ProbeStatus(enum.StrEnum):
    """Outcome of one probe; the value doubles as the ``outcome`` metric label."""

    UP = "up"
    DOWN = "down"
    SKIPPED = "skipped"  # no entity key known yet: the online store was not asked


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """One probe of one feature view's online store.

    ``seconds`` is the latency of an answered call (None when it timed out or
    failed, so that failures never pollute the latency histogram); ``found_ratio``
    is the share of probed values the store had (present or null).
    """

    store: str
    feature_view: str
    status: ProbeStatus
    at: datetime
    entities: int = 0
    seconds: float | None = None
    found_ratio: float | None = None
    error: str | None = None

    @property
    def good(self) -> int:
        """Availability SLI good events of this probe (1 when up)."""
        return 1 if self.status is ProbeStatus.UP else 0

    @property
    def bad(self) -> int:
        """Availability SLI bad events of this probe (1 when down; 0 when skipped)."""
        return 1 if self.status is ProbeStatus.DOWN else 0

    def to_result(self) -> CheckResult:
        """The probe as a check result of its feature view, for history, API and SLIs.

        ``duration_seconds`` is the answered call's latency (0 when there was none).
        """
        measured = [("found_ratio", self.found_ratio), ("request_seconds", self.seconds)]
        return CheckResult(
            dataset=self.feature_view,
            kind=CheckKind.FEATURESTORE,
            check=PROBE_CHECK,
            status=_PROBE_STATUS[self.status.value],
            rows=self.entities,
            duration_seconds=self.seconds or 0.0,
            finished_at=self.at,
            measurements=tuple(
                Measurement(name=name, value=value) for name, value in measured if value is not None
            ),
            note=self.error,
            source=self.store,
        )

    def to_json(self) -> dict[str, Any]:
        """The probe as ``/api`` shows it."""
        return {
            "store": self.store,
            "feature_view": self.feature_view,
            "status": self.status.value,
            "at": self.at.isoformat(),
            "entities": self.entities,
            "seconds": self.seconds,
            "found_ratio": self.found_ratio,
            "error": self.error,
        }


class OnlineProber:
    """Probes the online store of every online feature view of one source.

    Args:
        source: the feature-store source.
        clock: wall clock (aware UTC), for probe times and key refresh.
    """

    def __init__(
        self, source: FeatureStoreSource, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.source = source
        self._clock = clock
        self._keys: dict[str, tuple[datetime, list[dict[str, Any]]]] = {}

    def probe_all(self) -> list[ProbeResult]:
        """One probe per online feature view; a registry that cannot be read gives none."""
        try:
            views = self.source.views(refresh=False)  # the checks refresh it
        except OsemnError as exc:
            log.warning("source %r: cannot list feature views to probe: %s", self.source.name, exc)
            return []
        return [self.probe(v) for v in views if v.servable]

    def probe(self, view: FeatureViewInfo) -> ProbeResult:
        """Probe one view; never raises (an unexpected error counts as down)."""
        try:
            return self._probe(view)
        except Exception as exc:
            log.exception("probe of %s on %r: unexpected error", view.name, self.source.name)
            return ProbeResult(
                store=self.source.name,
                feature_view=view.name,
                status=ProbeStatus.DOWN,
                at=self._clock(),
                error=f"internal error: {type(exc).__name__}: {exc}",
            )

    def _probe(self, view: FeatureViewInfo) -> ProbeResult:
        timeout = self.source.config.probe.timeout.total_seconds()
        common: dict[str, Any] = {"store": self.source.name, "feature_view": view.name}
        rows = self._entities(view)
        if isinstance(rows, str):
            return ProbeResult(status=ProbeStatus.SKIPPED, at=self._clock(), error=rows, **common)
        try:
            read = self.source.online_read(view, rows, timeout=timeout)
        except OsemnError as exc:
            return ProbeResult(
                status=ProbeStatus.DOWN,
                at=self._clock(),
                entities=len(rows),
                error=str(exc),
                **common,
            )
        cells = [s for row in read.statuses for s in row.values()]
        found = sum(1 for s in cells if s in ("present", "null"))
        return ProbeResult(
            status=ProbeStatus.UP,
            at=self._clock(),
            entities=len(rows),
            seconds=read.seconds,
            found_ratio=found / len(cells) if cells else None,
            **common,
        )

    def _entities(self, view: FeatureViewInfo) -> list[dict[str, Any]] | str:
        """Known entity keys of ``view``, or why there are none."""
        now = self._clock()
        known = self._keys.get(view.name)
        if known is not None and now - known[0] < _KEYS_REFRESH:
            return known[1]
        try:
            source = offline_from(self.source.offline(view), view)
            offline = latest_materialized(source, view, limit=self.source.config.probe.sample)
        except OsemnError as exc:
            if known is not None:
                return known[1]  # keep probing with the keys we had
            return f"no entity key known: sampling the batch source failed: {exc}"
        if not offline:
            return "no entity key known: the view has no materialized row yet"
        rows = entity_rows(view, offline)
        self._keys[view.name] = (now, rows)
        return rows
