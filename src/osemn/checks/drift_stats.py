"""Drift statistics on profiles (scipy), and the decision for a run over many columns.

Every method pairs an effect size (``score``) with a test (``pvalue``):

=============  ==========================================  ============================
method         score                                       p-value
=============  ==========================================  ============================
psi            population stability index on the bins      KS (numeric) / chi2 (categ.)
jensen_shannon Jensen-Shannon distance, base 2, in [0, 1]  KS (numeric) / chi2 (categ.)
hellinger      Hellinger distance in [0, 1]                KS (numeric) / chi2 (categ.)
wasserstein    Wasserstein distance / reference std        KS (numeric only)
chi2           Cramer's V of the 2 x k table               chi-square test
ks             KS statistic D                              KS (exact on samples if given)
=============  ==========================================  ============================

The KS p-value is exact (``ks_2samp``) when database samples are given for the
column, else the binned statistic with its asymptotic distribution.

Only ``scipy.special`` is imported up front: ``scipy.stats`` pulls in
``scipy.sparse``, ``scipy.optimize`` and ``scipy.spatial``, about 45 MB of the
agent's resident memory, so the few of its functions used here are written out
on ``scipy.special`` as scipy 1.17 computes them (the tests hold them equal to
``scipy.stats`` bit for bit), and ``ks_2samp`` is imported only when exact KS
is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from osemn.checks.profiles import CategoricalProfile, NumericProfile
from osemn.errors import CheckError, OsemnError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ColumnDrift",
    "Method",
    "Profile",
    "benjamini_hochberg",
    "chi2",
    "drift_share",
    "evaluate",
    "hellinger",
    "jensen_shannon",
    "ks_binned",
    "ks_exact",
    "psi",
    "wasserstein_normed",
]

Profile = NumericProfile | CategoricalProfile
Counts = Sequence[int] | npt.NDArray[np.int64]
Status = Literal["drift", "no_drift", "insufficient_data", "error"]


class Method(StrEnum):
    """A drift method; the value is the ``method`` label of the drift metrics."""

    PSI = "psi"
    JS = "jensen_shannon"
    HELLINGER = "hellinger"
    WASSERSTEIN = "wasserstein"
    CHI2 = "chi2"
    KS = "ks"


DEFAULT_THRESHOLDS: Mapping[Method, float] = {
    # About half the effect of the smallest change issue 3 calls real (a 0.1-std
    # mean shift: PSI ~0.01, JS ~0.04, Hellinger ~0.035, W/std 0.1, D ~0.04,
    # V ~0.05; a 5-point share move between two large categories: similar), and
    # well above the sampling noise of 20 bins at 50k rows. The conventional
    # PSI 0.2 / JS 0.1 flag only shifts of about half a standard deviation.
    Method.PSI: 0.005,
    Method.JS: 0.025,
    Method.HELLINGER: 0.02,
    Method.WASSERSTEIN: 0.05,
    Method.CHI2: 0.03,
    Method.KS: 0.02,
}


@dataclass(frozen=True, kw_only=True)
class ColumnDrift:
    """The drift verdict of one column: score, p-value, status and what fired."""

    column: str
    method: Method
    score: float | None
    pvalue: float | None
    detected: bool | None  # None while insufficient or errored
    status: Status
    reason: str | None
    signals: tuple[str, ...]
    reference_rows: int
    current_rows: int


# --- statistics on counts ------------------------------------------------------------


def _proportions(counts: Counts) -> npt.NDArray[np.float64]:
    array = np.asarray(counts, dtype=np.float64)
    total = float(array.sum())
    if total <= 0:
        raise CheckError("a window has no counted rows; drift needs rows on both sides.")
    return array / total


def _same_bins(ref: Counts, cur: Counts) -> None:
    if len(ref) != len(cur):
        raise CheckError(
            f"reference has {len(ref)} bins and current {len(cur)}; profile the current "
            "window on the reference's cuts or categories."
        )


def psi(ref_counts: Counts, cur_counts: Counts, *, epsilon: float = 1e-4) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` on the bins' proportions.

    An empty bin's proportion is replaced by ``epsilon`` (no renormalisation),
    so a bin that empties or fills adds a large but finite term.
    """
    _same_bins(ref_counts, cur_counts)
    r = np.maximum(_proportions(ref_counts), epsilon)
    c = np.maximum(_proportions(cur_counts), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(ref_counts: Counts, cur_counts: Counts) -> float:
    """Jensen-Shannon distance in base 2 (a metric in ``[0, 1]``).

    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``, step for step, except
    where nearly equal distributions round the divergence to a tiny negative
    number: scipy answers NaN there (and warns), this answers 0.0.
    """
    _same_bins(ref_counts, cur_counts)
    p, q = _proportions(ref_counts), _proportions(cur_counts)
    p, q = p / np.sum(p), q / np.sum(q)
    m = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))
    return float(np.sqrt(max(js, 0.0) / np.log(2) / 2.0))


def hellinger(ref_counts: Counts, cur_counts: Counts) -> float:
    """Hellinger distance ``sqrt(1 - sum(sqrt(r * c)))`` in ``[0, 1]``."""
    _same_bins(ref_counts, cur_counts)
    overlap = np.sum(np.sqrt(_proportions(ref_counts) * _proportions(cur_counts)))
    return float(math.sqrt(max(0.0, 1.0 - overlap)))


def _centres(ref: NumericProfile, cur: NumericProfile) -> npt.NDArray[np.float64]:
    cuts = np.asarray(ref.cuts, dtype=np.float64)
    if cuts.size == 0:
        return np.zeros(1)
    lows = [v for v in (ref.minimum, cur.minimum) if v is not None]
    highs = [v for v in (ref.maximum, cur.maximum) if v is not None]
    low = min([*lows, float(cuts[0])])
    high = max([*highs, float(cuts[-1])])
    inner = (cuts[:-1] + cuts[1:]) / 2
    return np.concatenate([[(low + cuts[0]) / 2], inner, [(cuts[-1] + high) / 2]])


def wasserstein_normed(profile_ref: NumericProfile, profile_cur: NumericProfile) -> float:
    """Wasserstein distance of the binned distributions divided by the reference std.

    Each bin is its centre weighted by its count; the outer bins' centres use
    the smaller minimum and larger maximum of the two profiles.

    :raises CheckError: the bins differ, or the reference has no spread.
    """
    _same_bins(profile_ref.counts, profile_cur.counts)
    std = math.sqrt(profile_ref.variance) if profile_ref.variance else 0.0
    if std <= 0:
        raise CheckError("the reference has no spread (std 0): a normed Wasserstein is undefined.")
    centres = _centres(profile_ref, profile_cur)
    distance = _wasserstein_1d(
        centres,
        np.asarray(profile_ref.counts, dtype=np.float64),
        np.asarray(profile_cur.counts, dtype=np.float64),
    )
    return distance / std


def _wasserstein_1d(
    values: npt.NDArray[np.float64],
    u_weights: npt.NDArray[np.float64],
    v_weights: npt.NDArray[np.float64],
) -> float:
    """``scipy.stats.wasserstein_distance(values, values, u_weights, v_weights)``, step for step.

    The area between the two weighted CDFs over the merged support.
    """
    sorter = np.argsort(values)
    merged = np.concatenate((values, values))
    merged.sort(kind="mergesort")
    deltas = np.diff(merged)
    indices = values[sorter].searchsorted(merged[:-1], "right")
    cdfs = []
    for weights in (u_weights, v_weights):
        cumulative = np.concatenate(([0], np.cumsum(weights[sorter])))
        cdfs.append(cumulative[indices] / cumulative[-1])
    return float(np.dot(np.abs(cdfs[0] - cdfs[1]), deltas))  # what np.vecdot gives


def chi2(ref_counts: Counts, cur_counts: Counts) -> tuple[float, float]:
    """Pearson chi-square test of the 2 x k table (all-zero columns dropped): statistic, p.

    No Yates correction (it over-corrects and breaks calibration at k = 2);
    a table left with one column has statistic 0 and p-value 1.
    """
    _same_bins(ref_counts, cur_counts)
    table = np.asarray([ref_counts, cur_counts], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    # scipy.stats.chi2_contingency(table, correction=False), step for step: expected
    # counts from the margins, Pearson's terms summed flat, the chi-square tail.
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = np.sum(((table - expected) ** 2 / expected).ravel())
    dof = table.shape[1] - 1
    return float(statistic), float(special.chdtrc(dof, statistic))


def _cramers_v(ref_counts: Counts, cur_counts: Counts) -> float:
    statistic, _ = chi2(ref_counts, cur_counts)
    total = float(np.sum(ref_counts) + np.sum(cur_counts))
    return math.sqrt(statistic / total)


def ks_binned(ref_counts: Counts, cur_counts: Counts) -> tuple[float, float]:
    """KS statistic on the shared bins and its asymptotic p-value.

    D is the largest gap between the two empirical CDFs at the cut points.
    Binning hides gaps inside a bin, so D is a lower bound of the exact
    statistic. The p-value is the Kolmogorov limit distribution
    (``kstwobign``) of ``sqrt(n_eff) * D`` with ``n_eff = n m / (n + m)``;
    both make the test slightly conservative, never liberal.
    """
    _same_bins(ref_counts, cur_counts)
    n, m = float(np.sum(ref_counts)), float(np.sum(cur_counts))
    gap = np.cumsum(_proportions(ref_counts)) - np.cumsum(_proportions(cur_counts))
    d = float(np.max(np.abs(gap)))
    n_eff = n * m / (n + m)
    # scipy.stats.kstwobign.sf is special.kolmogorov on [0, inf)
    return d, float(np.clip(special.kolmogorov(math.sqrt(n_eff) * d), 0.0, 1.0))


def ks_exact(ref_sample: npt.ArrayLike, cur_sample: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample KS test (``scipy.stats.ks_2samp``) on database samples: statistic, p."""
    from scipy.stats import ks_2samp  # only when exact KS is asked for (module docstring)

    result = ks_2samp(np.asarray(ref_sample), np.asarray(cur_sample))
    return float(result.statistic), float(result.pvalue)


def benjamini_hochberg(pvalues: Sequence[float | None], q: float) -> list[bool]:
    """Which p-values are discoveries at false discovery rate ``q``; None is never one.

    The adjusted p-values are ``scipy.stats.false_discovery_control(ps, method="bh")``,
    step for step: ``p_(i) * m / i``, made monotone from the largest down, capped at 1.
    """
    present = [i for i, p in enumerate(pvalues) if p is not None]
    flags = [False] * len(pvalues)
    if not present:
        return flags
    ps = np.asarray([pvalues[i] for i in present], dtype=np.float64)
    if ps.size > 1:
        order = np.argsort(ps)
        ranked = ps[order] * (ps.size / np.arange(1, ps.size + 1, dtype=np.float64))
        np.minimum.accumulate(ranked[::-1], out=ranked[::-1])
        ps = np.empty_like(ranked)
        ps[order] = ranked
    for i, value in zip(present, np.clip(ps, 0.0, 1.0), strict=True):
        flags[i] = bool(value <= q)
    return flags


# --- the decision for a run ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Pending:
    """A column past the gates, waiting for the run's Benjamini-Hochberg step."""

    column: str
    method: Method
    score: float | None
    pvalue: float | None
    threshold: float
    large: bool
    signals: tuple[str, ...]  # side signals already fired
    notes: tuple[str, ...]
    constant: bool | None  # constant reference: True when the current value changed
    reference_rows: int
    current_rows: int


def _final(
    column: str, method: Method, status: Status, reason: str, ref: Profile, cur: Profile
) -> ColumnDrift:
    return ColumnDrift(
        column=column,
        method=method,
        score=None,
        pvalue=None,
        detected=None,
        status=status,
        reason=reason,
        signals=(),
        reference_rows=ref.non_null,
        current_rows=cur.non_null,
    )


def _gate(ref: Profile, cur: Profile, min_rows: int) -> str | None:
    for side, profile in (("reference", ref), ("current", cur)):
        if profile.rows == 0:
            return f"the {side} window has no rows"
        if profile.non_null == 0:
            return f"the column is all null in the {side} window ({profile.rows} rows)"
    if min(ref.non_null, cur.non_null) < min_rows:
        return (
            f"reference has {ref.non_null} non-null rows and current {cur.non_null}; "
            f"at least min_rows={min_rows} are needed on both sides"
        )
    return None


def _vector(profile: Profile) -> npt.NDArray[np.int64]:
    if isinstance(profile, CategoricalProfile):
        return np.asarray([*profile.counts, profile.other], dtype=np.int64)
    return np.asarray(profile.counts, dtype=np.int64)


def _score_and_pvalue(
    method: Method,
    ref: Profile,
    cur: Profile,
    sample: tuple[npt.ArrayLike, npt.ArrayLike] | None,
) -> tuple[float | None, float]:
    r, c = _vector(ref), _vector(cur)
    numeric = isinstance(ref, NumericProfile)
    if not numeric and method in (Method.KS, Method.WASSERSTEIN):
        raise CheckError(
            f"method {method.value!r} needs an ordered numeric column; use chi2, "
            "jensen_shannon, psi or hellinger for a categorical column."
        )
    d = 0.0
    if numeric:
        d, pvalue = ks_exact(*sample) if sample is not None else ks_binned(r, c)
    else:
        pvalue = chi2(r, c)[1]
    scores: dict[Method, Callable[[], float]] = {
        Method.PSI: lambda: psi(r, c),
        Method.JS: lambda: jensen_shannon(r, c),
        Method.HELLINGER: lambda: hellinger(r, c),
        Method.CHI2: lambda: _cramers_v(r, c),
        Method.KS: lambda: d,
    }
    if method is Method.WASSERSTEIN:
        assert isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile)
        if not ref.variance:
            return None, pvalue  # constant reference: decided on values, not on spread
        return wasserstein_normed(ref, cur), pvalue
    return scores[method](), pvalue


def _share_test(ref_hits: int, ref_total: int, cur_hits: int, cur_total: int) -> float:
    table = [[ref_hits, ref_total - ref_hits], [cur_hits, cur_total - cur_hits]]
    return chi2(table[0], table[1])[1] if ref_total and cur_total else 1.0


def _side_signals(
    ref: Profile, cur: Profile, *, q: float, missing_share_delta: float, new_category_delta: float
) -> tuple[list[str], list[str]]:
    signals: list[str] = []
    notes: list[str] = []
    ref_null, cur_null = ref.nulls / ref.rows, cur.nulls / cur.rows
    if abs(cur_null - ref_null) > missing_share_delta and (
        _share_test(ref.nulls, ref.rows, cur.nulls, cur.rows) < q
    ):
        signals.append("missing_share")
        notes.append(f"null share moved from {ref_null:.1%} to {cur_null:.1%}")
    if isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
        ref_other, cur_other = ref.other / ref.non_null, cur.other / cur.non_null
        if cur_other > ref_other + new_category_delta and (
            _share_test(ref.other, ref.non_null, cur.other, cur.non_null) < q
        ):
            signals.append("new_categories")
            notes.append(
                f"rows outside the reference's categories rose from {ref_other:.1%} "
                f"to {cur_other:.1%}"
            )
    return signals, notes


def _assess(
    column: str,
    ref: Profile,
    cur: Profile,
    *,
    method: Method,
    threshold: float,
    sample: tuple[npt.ArrayLike, npt.ArrayLike] | None,
    q: float,
    min_rows: int,
    large_n: int,
    missing_share_delta: float,
    new_category_delta: float,
) -> ColumnDrift | _Pending:
    if type(ref) is not type(cur):
        reason = "reference and current profiles differ in kind (numeric vs categorical)"
        return _final(column, method, "error", reason, ref, cur)
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile) and ref.cuts != cur.cuts:
        reason = "current profile was not binned on the reference's cuts; re-profile it"
        return _final(column, method, "error", reason, ref, cur)
    gate = _gate(ref, cur, min_rows)
    if gate is not None:
        return _final(column, method, "insufficient_data", gate, ref, cur)
    try:
        score, pvalue = _score_and_pvalue(method, ref, cur, sample)
    except (OsemnError, ValueError, ArithmeticError) as exc:
        return _final(column, method, "error", str(exc), ref, cur)
    signals, notes = _side_signals(
        ref,
        cur,
        q=q,
        missing_share_delta=missing_share_delta,
        new_category_delta=new_category_delta,
    )
    constant = None
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        if ref.minimum == ref.maximum:
            constant = cur.minimum != ref.minimum or cur.maximum != ref.maximum
            notes.insert(
                0,
                f"reference is constant {ref.minimum!r}; current spans "
                f"[{cur.minimum!r}, {cur.maximum!r}]",
            )
    return _Pending(
        column=column,
        method=method,
        score=score,
        pvalue=pvalue,
        threshold=threshold,
        large=min(ref.non_null, cur.non_null) >= large_n,
        signals=tuple(signals),
        notes=tuple(notes),
        constant=constant,
        reference_rows=ref.non_null,
        current_rows=cur.non_null,
    )


def _decide(pending: _Pending, significant: bool, q: float) -> ColumnDrift:
    notes = list(pending.notes)
    if pending.constant is not None:
        distribution = pending.constant
    elif pending.large:
        big = pending.score is not None and pending.score >= pending.threshold
        distribution = significant and big
        if significant or big:
            notes.append(
                f"{pending.method.value} {pending.score:.4g} "
                f"{'>=' if big else '<'} {pending.threshold:g}, p={pending.pvalue:.3g} "
                f"{'significant' if significant else 'not significant'} after BH at q={q:g} "
                "(large windows: the effect size must reach its threshold)"
            )
    else:
        distribution = significant
        if significant:
            notes.append(f"p={pending.pvalue:.3g} significant after BH at q={q:g}")
    signals = (("distribution",) if distribution else ()) + pending.signals
    detected = bool(signals)
    return ColumnDrift(
        column=pending.column,
        method=pending.method,
        score=pending.score,
        pvalue=pending.pvalue,
        detected=detected,
        status="drift" if detected else "no_drift",
        reason="; ".join(notes) or None,
        signals=signals,
        reference_rows=pending.reference_rows,
        current_rows=pending.current_rows,
    )


def evaluate(
    columns: Mapping[str, tuple[Profile, Profile]],
    *,
    methods: Mapping[str, Method] | None = None,
    thresholds: Mapping[str, float] | None = None,
    q: float = 0.05,
    min_rows: int = 1000,
    large_n: int = 5000,
    missing_share_delta: float = 0.05,
    new_category_delta: float = 0.05,
    samples: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]] | None = None,
) -> list[ColumnDrift]:
    """Drift verdicts of one run over several columns (reference, current profile each).

    Policy:

    * Gates: a window with no rows, an all-null column, or fewer than
      ``min_rows`` non-null rows on either side is ``insufficient_data`` (never
      pass or fail) with the counts in ``reason``. Profiles of different kinds
      or cuts, and a method that does not fit the column, are ``error``.
    * Every p-value of the run (one per evaluated column) goes through
      Benjamini-Hochberg at level ``q``.
    * Small windows (either side below ``large_n``): the BH-adjusted test
      decides. Large windows: the effect size must reach its threshold *and*
      the test must be significant; a tiny p-value alone never flags.
    * A constant numeric reference (min == max) is decided on values: any
      other value in the current window is drift, the same constant is not.
    * Side signals, each able to set ``detected`` on its own: ``missing_share``
      (null share moved more than ``missing_share_delta`` and a two-proportion
      test is significant at ``q``) and, for categorical columns,
      ``new_categories`` (the share outside the reference's categories grew more
      than ``new_category_delta``, significant at ``q``).

    :param methods: per column; default ``psi`` for numeric (KS p-value),
        ``jensen_shannon`` for categorical (chi-square p-value).
    :param thresholds: per column; default :data:`DEFAULT_THRESHOLDS` of the method.
    :param samples: per numeric column, database samples (reference, current):
        the KS p-value (and ``ks`` score) is then exact.
    :returns: one :class:`ColumnDrift` per column, in the order given;
        ``reference_rows``/``current_rows`` count non-null rows.
    """
    methods = methods or {}
    thresholds = thresholds or {}
    samples = samples or {}
    assessed: list[ColumnDrift | _Pending] = []
    for column, (ref, cur) in columns.items():
        default = Method.PSI if isinstance(ref, NumericProfile) else Method.JS
        method = Method(methods.get(column, default))
        assessed.append(
            _assess(
                column,
                ref,
                cur,
                method=method,
                threshold=thresholds.get(column, DEFAULT_THRESHOLDS[method]),
                sample=samples.get(column),
                q=q,
                min_rows=min_rows,
                large_n=large_n,
                missing_share_delta=missing_share_delta,
                new_category_delta=new_category_delta,
            )
        )
    pending = [a for a in assessed if isinstance(a, _Pending)]
    flags = iter(benjamini_hochberg([p.pvalue for p in pending], q))
    return [a if isinstance(a, ColumnDrift) else _decide(a, next(flags), q) for a in assessed]


def drift_share(results: Sequence[ColumnDrift]) -> float:
    """Share of evaluated columns (drift or no_drift) that drifted; NaN when none was evaluated."""
    evaluated = [r for r in results if r.status in ("drift", "no_drift")]
    if not evaluated:
        return math.nan
    return sum(r.status == "drift" for r in evaluated) / len(evaluated)
