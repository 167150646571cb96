"""The drift check of a dataset: windows, stored reference profiles, one result per column.

The reference profile (quantile cuts and histogram, or top-K categories) is
built in the warehouse once per reference window and kept in the state store;
each run then histograms only the current window on the reference's own cuts.
Bins are never re-derived from reference and current combined: that would let
the drift shape the yardstick that measures it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from osemn._drift_config import DRIFT_SHARE, DriftConfig, drift_name
from osemn.checks._time import bind_time
from osemn.checks.drift_stats import ColumnDrift, Method, drift_share, evaluate
from osemn.checks.profiles import (
    CategoricalProfile,
    NumericProfile,
    categorical_profiles,
    is_numeric,
    numeric_cuts,
    numeric_profiles,
    sample_values,
    window_profiles,
)
from osemn.errors import CheckError, OsemnError, QueryTimeoutError, SourceUnavailableError
from osemn.results import CheckKind, Measurement, Status

if TYPE_CHECKING:
    from osemn.agent._run import RunContext
    from osemn.agent.state import StateStore

__all__ = ["DriftWindows", "drift_windows", "run_drift"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS = {
    "drift": Status.FAIL,
    "no_drift": Status.PASS,
    "insufficient_data": Status.INSUFFICIENT_DATA,
    "error": Status.ERROR,
}

Profile = NumericProfile | CategoricalProfile
Execute = Callable[[sa.Executable], Sequence[sa.Row[Any]]]


def _floor(moment: datetime, step: timedelta) -> datetime:
    return moment - (moment - _EPOCH) % step


@dataclass(frozen=True, kw_only=True)
class DriftWindows:
    """Event-time windows ``[start, end)`` of one drift run."""

    reference: tuple[tuple[datetime, datetime], ...]
    current: tuple[datetime, datetime]

    def key(self, config: DriftConfig, column: str, kind: str) -> str:
        """What a stored reference profile must match to be reused.

        ``kind`` (numeric or categorical) is part of it: a column retyped since
        the profile was built gets a new one instead of a profile of the wrong kind.
        """
        doc = {
            "column": column,
            "kind": kind,
            "windows": [[s.isoformat(), e.isoformat()] for s, e in self.reference],
            "bins": config.bins,
            "top_k": config.top_k,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": [[s.isoformat(), e.isoformat()] for s, e in self.reference],
            "current": [self.current[0].isoformat(), self.current[1].isoformat()],
        }


def drift_windows(config: DriftConfig, now: datetime) -> DriftWindows:
    """The reference and current windows at ``now``.

    Rolling and seasonal references end on a ``refresh`` boundary so that one
    stored profile serves every run until the boundary passes.
    """
    current = (now - config.current.window, now)
    ref = config.reference
    fixed = ref.fixed
    if fixed is not None:
        return DriftWindows(reference=(fixed,), current=current)
    if ref.seasonal is not None:
        anchor = _floor(now, ref.refresh)
        width = config.current.window
        windows = tuple(
            (anchor - i * ref.seasonal.period - width, anchor - i * ref.seasonal.period)
            for i in range(1, ref.seasonal.cycles + 1)
        )
        return DriftWindows(reference=windows, current=current)
    assert ref.window is not None
    end = _floor(now - ref.offset, ref.refresh)
    return DriftWindows(reference=((end - ref.window, end),), current=current)


def _within(
    ts: sa.Column[Any], windows: Sequence[tuple[datetime, datetime]]
) -> ColumnElement[bool]:
    return sa.or_(*(sa.and_(ts >= bind_time(s, ts), ts < bind_time(e, ts)) for s, e in windows))


@dataclass
class _Profiles:
    """Reference and current profiles by column, and the columns that failed."""

    reference: dict[str, Profile]
    current: dict[str, Profile]
    errors: dict[str, str]


def _profile_each(
    build: Callable[[Sequence[str]], Mapping[str, Profile]], columns: Sequence[str]
) -> tuple[dict[str, Profile], dict[str, str]]:
    """Build profiles in one statement; if it fails, per column, to isolate the culprit."""
    if not columns:
        return {}, {}
    try:
        return dict(build(columns)), {}
    except (SourceUnavailableError, QueryTimeoutError):
        raise
    except OsemnError:
        if len(columns) == 1:
            raise
    out: dict[str, Profile] = {}
    errors: dict[str, str] = {}
    for column in columns:
        try:
            out.update(build([column]))
        except (SourceUnavailableError, QueryTimeoutError):
            raise
        except OsemnError as exc:
            errors[column] = str(exc)
    return out, errors


def run_drift(
    *,
    run: RunContext,
    table: sa.Table,
    ts: sa.Column[Any],
    config: DriftConfig,
    state: StateStore,
    dataset: str,
    dialect: str,
) -> None:
    """Profile the windows, compare each column with its reference, add the results."""
    windows = drift_windows(config, run.now)
    ref_where = _within(ts, windows.reference)
    cur_where = _within(ts, (windows.current,))
    errors: dict[str, str] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    for column in config.columns:
        if column not in table.c:
            errors[column] = (
                f"column {column!r} does not exist in {table.fullname!r}; it has: "
                f"{', '.join(repr(c.name) for c in table.columns)}"
            )
            continue
        method = config.methods.get(column)
        if is_numeric(table.c[column].type):
            numeric.append(column)
        elif method in ("psi", "ks", "wasserstein"):
            errors[column] = (
                f"method {method!r} needs a numeric column; {column!r} is "
                f"{table.c[column].type}. Use chi2, jensen_shannon or hellinger"
            )
        else:
            categorical.append(column)

    profiles = _Profiles(reference={}, current={}, errors=errors)
    _reference_profiles(
        run,
        table,
        config,
        state,
        dataset,
        windows,
        ref_where,
        numeric,
        categorical,
        profiles,
        dialect,
    )
    ok_numeric = [c for c in numeric if c in profiles.reference]
    ok_categorical = [c for c in categorical if c in profiles.reference]
    cuts = {c: _cuts(profiles.reference[c]) for c in ok_numeric}
    categories = {c: _categories(profiles.reference[c]) for c in ok_categorical}

    def current_window(cols: Sequence[str]) -> dict[str, Profile]:
        numbers, labels = window_profiles(
            run.execute,
            table,
            {c: cuts[c] for c in cols if c in cuts},
            {c: categories[c] for c in cols if c in categories},
            where=cur_where,
            dialect=dialect,
        )
        return {**numbers, **labels}

    current, errs = _profile_each(current_window, [*ok_numeric, *ok_categorical])
    profiles.current.update(current)
    profiles.errors.update(errs)

    samples = _samples(run, table, config, ref_where, cur_where, ok_numeric, dialect)
    pairs = {
        c: (profiles.reference[c], profiles.current[c])
        for c in config.columns
        if c in profiles.reference and c in profiles.current
    }
    verdicts = evaluate(
        pairs,
        methods={c: Method(m) for c, m in config.methods.items() if c in pairs},
        thresholds={c: t for c, t in config.thresholds.items() if c in pairs},
        q=config.fdr,
        min_rows=config.min_rows,
        samples=samples or None,
    )
    by_column = {v.column: v for v in verdicts}
    for column in config.columns:
        if column in profiles.errors:
            run.error(CheckKind.DRIFT, drift_name(column), profiles.errors[column])
        elif column in by_column:
            _column_result(run, by_column[column], pairs[column], windows)
    share = drift_share(verdicts)
    evaluated = [v for v in verdicts if v.status in ("drift", "no_drift")]
    if not evaluated:
        run.add(
            CheckKind.DRIFT,
            DRIFT_SHARE,
            Status.INSUFFICIENT_DATA,
            note="no column had enough data to judge",
        )
        return
    drifted = sum(1 for v in evaluated if v.status == "drift")
    run.add(
        CheckKind.DRIFT,
        DRIFT_SHARE,
        Status.FAIL if drifted else Status.PASS,
        rows=len(evaluated),
        failed_rows=drifted,
        measurements=(Measurement(name="drift_share", value=share),),
    )


def _reference_profiles(
    run: RunContext,
    table: sa.Table,
    config: DriftConfig,
    state: StateStore,
    dataset: str,
    windows: DriftWindows,
    where: ColumnElement[bool],
    numeric: Sequence[str],
    categorical: Sequence[str],
    profiles: _Profiles,
    dialect: str,
) -> None:
    """Stored profiles when their window has not moved; else build and store them."""
    missing_numeric: list[str] = []
    missing_categorical: list[str] = []
    for column in [*numeric, *categorical]:
        kind = "numeric" if column in numeric else "categorical"
        stored = state.get_profile(dataset, column, windows.key(config, column, kind))
        try:
            if stored is not None and column in numeric:
                profiles.reference[column] = NumericProfile.from_json(stored)
            elif stored is not None:
                profiles.reference[column] = CategoricalProfile.from_json(stored)
        except (CheckError, KeyError, TypeError, ValueError):
            stored = None  # unreadable (written by another version): build it again
        if stored is None:
            (missing_numeric if column in numeric else missing_categorical).append(column)
    cuts: dict[str, tuple[float, ...]] = {}
    for column in missing_numeric:
        try:
            cuts[column] = numeric_cuts(
                run.execute, table, column, where=where, dialect=dialect, bins=config.bins
            )
        except (SourceUnavailableError, QueryTimeoutError):
            raise
        except OsemnError as exc:
            profiles.errors[column] = str(exc)
    built, errs = _profile_each(
        lambda cols: numeric_profiles(
            run.execute, table, {c: cuts[c] for c in cols}, where=where, dialect=dialect
        ),
        [c for c in missing_numeric if c in cuts],
    )
    profiles.errors.update(errs)
    more, errs = _profile_each(
        lambda cols: categorical_profiles(
            run.execute,
            table,
            dict.fromkeys(cols),
            where=where,
            dialect=dialect,
            top_k=config.top_k,
        ),
        missing_categorical,
    )
    profiles.errors.update(errs)
    for column, profile in {**built, **more}.items():
        kind = "numeric" if isinstance(profile, NumericProfile) else "categorical"
        state.put_profile(dataset, column, windows.key(config, column, kind), profile.to_json())
        profiles.reference[column] = profile


def _cuts(profile: Profile) -> tuple[float, ...]:
    if not isinstance(profile, NumericProfile):  # pragma: no cover - split by type above
        raise CheckError("a numeric column has a categorical reference profile")
    return profile.cuts


def _categories(profile: Profile) -> tuple[str, ...]:
    if not isinstance(profile, CategoricalProfile):  # pragma: no cover - split by type above
        raise CheckError("a categorical column has a numeric reference profile")
    return profile.categories


def _samples(
    run: RunContext,
    table: sa.Table,
    config: DriftConfig,
    ref_where: ColumnElement[bool],
    cur_where: ColumnElement[bool],
    columns: Sequence[str],
    dialect: str,
) -> dict[str, tuple[Any, Any]]:
    """Bounded random samples of both windows, for exact KS where asked for."""
    if not config.ks_sample:
        return {}
    out = {}
    for column in columns:
        if config.methods.get(column, "ks") != "ks":
            continue
        out[column] = (
            sample_values(
                run.execute,
                table,
                column,
                where=ref_where,
                dialect=dialect,
                size=config.ks_sample,
                seed=0.5,
            ),
            sample_values(
                run.execute,
                table,
                column,
                where=cur_where,
                dialect=dialect,
                size=config.ks_sample,
                seed=0.25,
            ),
        )
    return out


def _column_result(
    run: RunContext, verdict: ColumnDrift, pair: tuple[Profile, Profile], windows: DriftWindows
) -> None:
    labels = (("column", verdict.column), ("method", verdict.method.value))
    measurements = []
    if verdict.score is not None:
        measurements.append(Measurement(name="drift_score", value=verdict.score, labels=labels))
    if verdict.pvalue is not None:
        measurements.append(Measurement(name="drift_pvalue", value=verdict.pvalue, labels=labels))
    if verdict.detected is not None:
        measurements.append(
            Measurement(name="drift_detected", value=float(verdict.detected), labels=labels)
        )
    details = {
        "method": verdict.method.value,
        "signals": list(verdict.signals),
        "reference_rows": verdict.reference_rows,
        "current_rows": verdict.current_rows,
        "windows": windows.to_json(),
        "reference": pair[0].to_json(),
        "current": pair[1].to_json(),
    }
    status = _STATUS[verdict.status]
    fields: dict[str, Any] = {
        "rows": verdict.current_rows,
        "measurements": tuple(measurements),
        "details": details,
        "note": verdict.reason,
    }
    if status is Status.ERROR:
        run.error(CheckKind.DRIFT, drift_name(verdict.column), verdict.reason or "error", **fields)
    else:
        run.add(CheckKind.DRIFT, drift_name(verdict.column), status, **fields)
