"""Feature-store checks: every feature view of a Feast repo, without config per view.

One run of a view yields, as ``CheckResult``s the agent stores and exports
like any other:

* ``<timestamp_field>:freshness(max_age=...)`` (kind ``freshness``): the newest
  row of the batch source, against ``freshness`` or the view's TTL;
* ``<feature>:completeness(min=...)`` and ``<column>:dtype('<Feast type>')``
  (kind ``schema``): non-null share per feature, and each join key's and
  feature's source type against its Feast type;
* ``materialization:freshness(max_age=...)`` (kind ``featurestore``): time since
  the end of the last materialization interval in the registry, against
  ``materialization`` or the TTL;
* ``<feature>:online_parity(tolerance=...)`` (kind ``featurestore``): training-serving
  skew, the share of sampled entities whose online value differs from the
  latest materialized offline value.

The first two are one aggregate statement on the batch source; parity is one
sampling statement and one online read. A failing part becomes ``error``
results for its checks only; ``run`` never raises. Probes of the online store
are ``OnlineProber``'s, on their own interval.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from osemn._clock import utcnow
from osemn._units import format_duration
from osemn.checks._featurestore_metrics import REQUEST_BUCKETS, FeatureStoreCollector
from osemn.checks._featurestore_offline import (
    OfflineFrom,
    expected_offline_checks,
    offline_checks,
    offline_from,
)
from osemn.checks._featurestore_parity import (
    entity_rows,
    latest_materialized,
    parity_name,
    parity_results,
)
from osemn.checks._featurestore_probe import PROBE_CHECK, OnlineProber, ProbeResult, ProbeStatus
from osemn.errors import ConfigError, OsemnError
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.featurestore import FeatureStoreSource, FeatureViewInfo

__all__ = [
    "MATERIALIZATION",
    "PROBE_CHECK",
    "REGISTRY_CHECK",
    "REQUEST_BUCKETS",
    "FeatureStoreChecks",
    "FeatureStoreCollector",
    "OnlineProber",
    "ProbeResult",
    "ProbeStatus",
    "materialization_name",
    "materialization_result",
]

log = logging.getLogger(__name__)

MATERIALIZATION = "materialization"
REGISTRY_CHECK = f"{MATERIALIZATION}:registry"
"""The one result of a run whose registry could not be read (``dataset`` is the source)."""


def materialization_name(max_age: timedelta | None) -> str:
    """``materialization:freshness(max_age=1d)``, or without a threshold when there is none."""
    limit = "" if max_age is None else f"(max_age={format_duration(max_age)})"
    return f"{MATERIALIZATION}:freshness{limit}"


def materialization_result(
    view: FeatureViewInfo, *, max_age: timedelta | None, now: datetime, source: str
) -> CheckResult:
    """Time since the view's last materialization ended, against ``max_age``.

    Online values are as of that end: once it is older than the TTL, every
    entity the store holds is older than the TTL too, and Feast serves nulls.
    """
    common: dict[str, Any] = {
        "dataset": view.name,
        "kind": CheckKind.FEATURESTORE,
        "check": materialization_name(max_age),
        "finished_at": now,
        "source": source,
    }
    until = view.materialized_until
    if until is None:
        return CheckResult(
            status=Status.FAIL,
            note="the registry has no materialization of this view: its online store is empty",
            **common,
        )
    age = max((now - until).total_seconds(), 0.0)
    status = Status.PASS if max_age is None or age <= max_age.total_seconds() else Status.FAIL
    return CheckResult(
        status=status,
        measurements=(
            Measurement(name="materialization_lag_seconds", value=age),
            Measurement(name="materialized_until_timestamp_seconds", value=until.timestamp()),
        ),
        note="measured only: the view has no TTL and no `materialization:` is configured"
        if max_age is None
        else None,
        **common,
    )


class FeatureStoreChecks:
    """Runs the offline, materialization and parity checks of one feature-store source.

    Args:
        source: the feature-store source.
        clock: wall clock (aware UTC); tests pass a frozen one.
        monotonic: seconds, for statement durations.
        mask_key: the key of the hashes that replace masked values in failure samples
            (the agent's); None draws a random one, so a hash is never of a known key.
    """

    def __init__(
        self,
        source: FeatureStoreSource,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.perf_counter,
        mask_key: bytes | None = None,
    ) -> None:
        self.source = source
        self._clock = clock
        self._monotonic = monotonic
        self._mask_key = mask_key if mask_key is not None else secrets.token_bytes(32)

    def run(self) -> list[CheckResult]:
        """Every check of every feature view; a registry that cannot be read is one error."""
        try:
            views = self.source.views()
        except OsemnError as exc:
            return [
                CheckResult(
                    dataset=self.source.name,
                    kind=CheckKind.FEATURESTORE,
                    check=REGISTRY_CHECK,
                    status=Status.ERROR,
                    error=str(exc),
                    finished_at=self._clock(),
                    source=self.source.name,
                )
            ]
        return [r for view in views for r in self.run_view(view)]

    def run_view(self, view: FeatureViewInfo) -> list[CheckResult]:
        """Every check of one view; never raises (a bug costs this view's run, as errors)."""
        try:
            return self._run_view(view)
        except Exception as exc:
            log.exception("feature view %s of %r: unexpected error", view.name, self.source.name)
            failure = OsemnError(f"internal error: {type(exc).__name__}: {exc}")
            return self._errors(view, self._expected(view), failure, self._clock())

    def _expected(self, view: FeatureViewInfo) -> list[tuple[CheckKind, str]]:
        options = self.source.config.view(view.name)
        out = expected_offline_checks(
            view,
            max_age=options.freshness or view.ttl,
            min_completeness=options.min_completeness,
        )
        if view.online:
            limit = options.materialization or view.ttl
            out.insert(0, (CheckKind.FEATURESTORE, materialization_name(limit)))
        if view.servable:
            out += [(CheckKind.FEATURESTORE, n) for n in self._parity_names(view)]
        return out

    def _run_view(self, view: FeatureViewInfo) -> list[CheckResult]:
        options = self.source.config.view(view.name)
        now = self._clock()
        max_age = options.freshness or view.ttl
        results = []
        if view.online:  # a view that is never served has nothing to materialize
            results.append(
                materialization_result(
                    view,
                    max_age=options.materialization or view.ttl,
                    now=now,
                    source=self.source.name,
                )
            )
        try:
            source = offline_from(self.source.offline(view), view)
            results += offline_checks(
                source,
                view,
                max_age=max_age,
                min_completeness=options.min_completeness,
                now=now,
                monotonic=self._monotonic,
            )
        except OsemnError as exc:
            expected = expected_offline_checks(
                view, max_age=max_age, min_completeness=options.min_completeness
            )
            errors = self._errors(view, expected, exc, now)
            return [*results, *errors, *self._parity_errors(view, exc, now)]
        if view.servable:
            results += self._parity(view, source, now)
        return results

    def _parity(
        self, view: FeatureViewInfo, source: OfflineFrom, now: datetime
    ) -> list[CheckResult]:
        config = self.source.config
        mask = config.view(view.name).mask
        names = [k.name for k in view.join_keys] + [f.name for f in view.features]
        unknown = [m for m in mask if m not in names]
        if unknown:  # an unmasked value must never show because of a typo
            problem = ConfigError(
                f"feature_views.{view.name}.mask: {', '.join(map(repr, unknown))} is not a "
                f"join key or feature of the view; it has: {', '.join(names)}. Fix the name."
            )
            return self._parity_errors(view, problem, now)
        started = self._monotonic()
        try:
            offline = latest_materialized(source, view, limit=config.parity.sample)
            if not offline:
                return self._parity_skipped(view, now)
            read = self.source.online_read(
                view, entity_rows(view, offline), timeout=config.probe.timeout.total_seconds()
            )
        except OsemnError as exc:
            return self._parity_errors(view, exc, now)
        return parity_results(
            view,
            offline,
            read,
            tolerance=self._tolerance(view),
            now=now,
            source=self.source.name,
            duration_seconds=self._monotonic() - started,
            mask=frozenset(config.view(view.name).mask),
            mask_key=self._mask_key,
        )

    def _tolerance(self, view: FeatureViewInfo) -> float:
        tolerance = self.source.config.view(view.name).parity_tolerance
        return self.source.config.parity.tolerance if tolerance is None else tolerance

    def _parity_names(self, view: FeatureViewInfo) -> list[str]:
        return [parity_name(f.name, self._tolerance(view)) for f in view.features]

    def _parity_skipped(self, view: FeatureViewInfo, now: datetime) -> list[CheckResult]:
        return [
            CheckResult(
                dataset=view.name,
                kind=CheckKind.FEATURESTORE,
                check=name,
                status=Status.INSUFFICIENT_DATA,
                rows=0,
                finished_at=now,
                note="no offline row in the materialized range to compare with",
                source=self.source.name,
            )
            for name in self._parity_names(view)
        ]

    def _parity_errors(
        self, view: FeatureViewInfo, exc: OsemnError, now: datetime
    ) -> list[CheckResult]:
        if not view.servable:
            return []
        return self._errors(
            view, [(CheckKind.FEATURESTORE, n) for n in self._parity_names(view)], exc, now
        )

    def _errors(
        self,
        view: FeatureViewInfo,
        checks: list[tuple[CheckKind, str]],
        exc: OsemnError,
        now: datetime,
    ) -> list[CheckResult]:
        log.warning("feature view %s of %r: %s", view.name, self.source.name, exc)
        return [
            CheckResult(
                dataset=view.name,
                kind=kind,
                check=name,
                status=Status.ERROR,
                error=str(exc),
                finished_at=now,
                source=self.source.name,
            )
            for kind, name in checks
        ]
