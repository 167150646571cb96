"""Drift statistics equal numpy/scipy on the raw rows, and the run's decision policy."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from osemn.checks.drift_stats import (
    DEFAULT_THRESHOLDS,
    ColumnDrift,
    Method,
    benjamini_hochberg,
    chi2,
    drift_share,
    evaluate,
    hellinger,
    jensen_shannon,
    ks_binned,
    ks_exact,
    psi,
    wasserstein_normed,
)
from osemn.checks.profiles import (
    CategoricalProfile,
    NumericProfile,
    categorical_from_values,
    categorical_profiles,
    cuts_from_values,
    numeric_cuts,
    numeric_profiles,
    profile_from_values,
    sample_values,
)
from osemn.sources._dialects import reflect_table
from tests.conftest import Warehouse

# --- values on real databases equal numpy / scipy on the rows pulled back ----------


def _load(warehouse: Warehouse) -> sa.Table:
    rng = np.random.default_rng(11)
    metadata = sa.MetaData()
    table = sa.Table(
        "drift_stats",
        metadata,
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("x", sa.Double),
        sa.Column("k", sa.String(8)),
        schema=warehouse.schema,
    )
    n = 4_000
    x = np.concatenate([rng.gamma(2.0, 10.0, n), rng.gamma(2.0, 10.0, n) * 1.1 + 1.0])
    labels = np.array(["a", "b", "c", "d", "e"])
    k = np.concatenate(
        [
            rng.choice(labels, n, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
            rng.choice(labels, n, p=[0.35, 0.3, 0.2, 0.1, 0.05]),
        ]
    )
    metadata.create_all(warehouse.engine)
    with warehouse.engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"part": i // n, "x": float(v), "k": str(c)}
                for i, (v, c) in enumerate(zip(x, k, strict=True))
            ],
        )
        reflected, _ = reflect_table(conn, warehouse.schema, "drift_stats")
    return reflected


def _direct_counts(values: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    """Bins (a, b] counted with plain comparisons, independent of the library."""
    edges = [-math.inf, *cuts, math.inf]
    return np.array(
        [np.sum((values > lo) & (values <= hi)) for lo, hi in itertools.pairwise(edges)]
    )


def test_statistics_equal_scipy_on_pulled_rows(duckdb_or_pg: Warehouse) -> None:
    table = _load(duckdb_or_pg)
    dialect = duckdb_or_pg.dialect

    def execute(statement: sa.Executable) -> list[sa.Row[Any]]:
        with duckdb_or_pg.engine.connect() as conn:
            return list(conn.execute(statement).fetchall())

    ref_window, cur_window = table.c.part == 0, table.c.part == 1
    cuts = numeric_cuts(execute, table, "x", where=ref_window, dialect=dialect)
    ref = numeric_profiles(execute, table, {"x": cuts}, where=ref_window, dialect=dialect)["x"]
    cur = numeric_profiles(execute, table, {"x": cuts}, where=cur_window, dialect=dialect)["x"]
    ref_k = categorical_profiles(execute, table, {"k": None}, where=ref_window, dialect=dialect)
    cur_k = categorical_profiles(
        execute, table, {"k": ref_k["k"].categories}, where=cur_window, dialect=dialect
    )

    with duckdb_or_pg.engine.connect() as conn:
        pulled = conn.execute(sa.select(table.c.part, table.c.x, table.c.k)).all()
    x_ref = np.array([x for part, x, _ in pulled if part == 0])
    x_cur = np.array([x for part, x, _ in pulled if part == 1])
    r_counts, c_counts = _direct_counts(x_ref, cuts), _direct_counts(x_cur, cuts)
    assert ref.counts == tuple(r_counts) and cur.counts == tuple(c_counts)

    p, q = r_counts / r_counts.sum(), c_counts / c_counts.sum()
    pe, qe = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    assert psi(ref.counts, cur.counts) == pytest.approx(
        np.sum((qe - pe) * np.log(qe / pe)), rel=1e-9
    )
    assert jensen_shannon(ref.counts, cur.counts) == pytest.approx(
        jensenshannon(p, q, base=2), rel=1e-9
    )
    assert hellinger(ref.counts, cur.counts) == pytest.approx(
        np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)), rel=1e-9
    )
    low, high = min(x_ref.min(), x_cur.min()), max(x_ref.max(), x_cur.max())
    bounds = np.array([low, *cuts, high])
    centres = (bounds[:-1] + bounds[1:]) / 2
    expected_w = stats.wasserstein_distance(centres, centres, r_counts, c_counts) / np.std(
        x_ref, ddof=1
    )
    assert wasserstein_normed(ref, cur) == pytest.approx(expected_w, rel=1e-9)
    d_binned, p_binned = ks_binned(ref.counts, cur.counts)
    gap = np.abs(np.cumsum(p) - np.cumsum(q)).max()
    assert d_binned == pytest.approx(gap, rel=1e-9)
    n_eff = len(x_ref) * len(x_cur) / (len(x_ref) + len(x_cur))
    assert p_binned == pytest.approx(stats.kstwobign.sf(gap * np.sqrt(n_eff)), rel=1e-9)
    assert d_binned <= stats.ks_2samp(x_ref, x_cur).statistic  # binning gives a lower bound

    k_ref = [k for part, _, k in pulled if part == 0]
    k_cur = [k for part, _, k in pulled if part == 1]
    labels = sorted(set(k_ref))
    table_k = np.array([[k_ref.count(v) for v in labels], [k_cur.count(v) for v in labels]])
    order = [labels.index(v) for v in ref_k["k"].categories]
    ref_vec = (*ref_k["k"].counts, ref_k["k"].other)
    cur_vec = (*cur_k["k"].counts, cur_k["k"].other)
    assert ref_vec[:-1] == tuple(table_k[0][order]) and cur_vec[:-1] == tuple(table_k[1][order])
    expected_chi2 = stats.chi2_contingency(table_k, correction=False)
    got_chi2 = chi2(ref_vec, cur_vec)
    assert got_chi2 == pytest.approx((expected_chi2.statistic, expected_chi2.pvalue), rel=1e-9)

    sample_ref = sample_values(
        execute, table, "x", where=ref_window, dialect=dialect, size=1_000, seed=0.5
    )
    sample_cur = sample_values(
        execute, table, "x", where=cur_window, dialect=dialect, size=1_000, seed=0.5
    )
    expected_ks = stats.ks_2samp(sample_ref, sample_cur)
    assert ks_exact(sample_ref, sample_cur) == (expected_ks.statistic, expected_ks.pvalue)


# --- statistics on hand-made counts --------------------------------------------------


def test_psi_smooths_empty_bins_with_epsilon() -> None:
    value = psi([50, 50, 0], [40, 50, 10])
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert value == pytest.approx(expected, rel=1e-12)
    assert psi([1, 2, 3], [2, 4, 6]) == 0.0


def test_chi2_drops_empty_columns_and_a_single_column_is_no_evidence() -> None:
    assert chi2([10, 0, 20], [12, 0, 18]) == pytest.approx(chi2([10, 20], [12, 18]))
    assert chi2([10, 0], [12, 0]) == (0.0, 1.0)


def test_benjamini_hochberg_equals_scipy_and_skips_none() -> None:
    pvalues = [0.001, 0.04, None, 0.03, 0.2, 0.012, None]
    present = [p for p in pvalues if p is not None]
    adjusted = iter(stats.false_discovery_control(present, method="bh"))
    expected = [p is not None and bool(next(adjusted) <= 0.05) for p in pvalues]
    assert benjamini_hochberg(pvalues, 0.05) == expected
    assert benjamini_hochberg([None, None], 0.05) == [False, False]


# --- scipy.stats written out on scipy.special: the same floats --------------------------

_counts = st.integers(min_value=2, max_value=30).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 10**9), min_size=k, max_size=k).filter(any),
        st.lists(st.integers(0, 10**9), min_size=k, max_size=k).filter(any),
    )
)


@settings(max_examples=300, deadline=None)
@given(_counts)
@example(([0, 5, 2, 0, 463129082], [0, 5, 2, 0, 463129085]))  # the divergence rounds below 0
def test_count_statistics_are_scipy_stats_bit_for_bit(pair: tuple[list[int], list[int]]) -> None:
    ref, cur = np.asarray(pair[0]), np.asarray(pair[1])
    with np.errstate(invalid="ignore"):  # scipy's sqrt of a divergence rounded below 0
        expected_js = float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
    assert jensen_shannon(ref, cur) == (0.0 if math.isnan(expected_js) else expected_js)
    table = np.asarray([ref, cur], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] > 1:
        expected = stats.chi2_contingency(table, correction=False)
        assert chi2(ref, cur) == (float(expected.statistic), float(expected.pvalue))
    d, pvalue = ks_binned(ref, cur)
    n, m = float(ref.sum()), float(cur.sum())
    assert pvalue == float(np.clip(stats.kstwobign.sf(math.sqrt(n * m / (n + m)) * d), 0.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(
    _counts,
    st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
        min_size=40,
        max_size=40,
        unique=True,
    ),
    st.floats(1e-6, 1e6),
)
def test_wasserstein_is_scipy_stats_bit_for_bit(
    pair: tuple[list[int], list[int]], points: list[float], variance: float
) -> None:
    k = len(pair[0])
    cuts, low, high = tuple(sorted(points[: k - 1])), min(points) - 1.0, max(points) + 1.0
    profiles = [
        NumericProfile(
            cuts=cuts,
            counts=tuple(counts),
            rows=sum(counts),
            nulls=0,
            minimum=low,
            maximum=high,
            mean=0.0,
            variance=variance,
        )
        for counts in pair
    ]
    bounds = np.array([low, *cuts, high])
    centres = (bounds[:-1] + bounds[1:]) / 2
    expected = stats.wasserstein_distance(centres, centres, pair[0], pair[1])
    assert wasserstein_normed(*profiles) == float(expected) / math.sqrt(variance)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.01, 0.04]), min_size=1, max_size=40))
def test_benjamini_hochberg_is_scipy_stats_bit_for_bit(pvalues: list[float]) -> None:
    adjusted = np.atleast_1d(stats.false_discovery_control(pvalues, method="bh"))
    for q in {0.05, *adjusted.tolist()}:  # each adjusted value as q pins it exactly
        assert benjamini_hochberg(pvalues, q) == [bool(a <= q) for a in adjusted]


def test_the_drift_path_does_not_import_scipy_stats() -> None:
    code = (
        "import sys, numpy as np\n"
        "from osemn.checks import drift, drift_stats\n"
        "from osemn.checks.profiles import profile_from_values\n"
        "ref = profile_from_values(np.arange(3000.0), (999.5, 1999.5))\n"
        "cur = profile_from_values(np.arange(3000.0) + 50, (999.5, 1999.5))\n"
        "drift_stats.evaluate({'x': (ref, cur)}, methods={'x': drift_stats.Method.WASSERSTEIN})\n"
        "print(sorted(m for m in sys.modules if m.startswith(('scipy.stats', 'scipy.spatial'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- the decision policy ---------------------------------------------------------------


def _normal(seed: int, n: int, shift: float = 0.0, nulls: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(shift, 1.0, n)
    values[rng.random(n) < nulls] = np.nan
    return values


def _pair(ref: np.ndarray, cur: np.ndarray) -> tuple[NumericProfile, NumericProfile]:
    cuts = cuts_from_values(ref)
    return profile_from_values(ref, cuts), profile_from_values(cur, cuts)


def _by_column(results: list[ColumnDrift]) -> dict[str, ColumnDrift]:
    return {r.column: r for r in results}


def test_gates_give_insufficient_data_and_leave_other_columns_alone() -> None:
    reference = _pair(_normal(4, 3_000), _normal(5, 10))[0]
    empty = profile_from_values(np.array([]), reference.cuts)
    results = _by_column(
        evaluate(
            {
                "few": _pair(_normal(1, 500), _normal(2, 800)),
                "all_null": _pair(_normal(3, 3_000), np.full(3_000, np.nan)),
                "no_rows": (reference, empty),
                "fine": _pair(_normal(6, 3_000), _normal(7, 3_000, shift=0.5)),
            }
        )
    )
    few = results["few"]
    assert few.status == "insufficient_data" and few.detected is None
    assert (
        "500" in str(few.reason) and "800" in str(few.reason) and "min_rows=1000" in str(few.reason)
    )
    assert results["all_null"].status == "insufficient_data"
    assert "all null in the current window" in str(results["all_null"].reason)
    assert results["no_rows"].status == "insufficient_data"
    assert "no rows" in str(results["no_rows"].reason)
    assert results["fine"].status == "drift" and results["fine"].signals == ("distribution",)
    assert drift_share(list(results.values())) == 1.0


def test_constant_reference_is_decided_on_values() -> None:
    constant = np.full(2_000, 7.0)
    same = _by_column(evaluate({"c": _pair(constant, np.full(3_000, 7.0))}))["c"]
    assert same.status == "no_drift" and same.detected is False
    lower = constant.copy()
    lower[:5] = 6.0  # below the only cut: invisible to the bins, not to min/max
    changed = _by_column(evaluate({"c": _pair(constant, lower)}))["c"]
    assert changed.status == "drift" and "constant 7.0" in str(changed.reason)
    wasser = evaluate({"c": _pair(constant, lower)}, methods={"c": Method.WASSERSTEIN})[0]
    assert wasser.status == "drift" and wasser.score is None


def test_large_windows_need_an_effect_not_just_a_tiny_pvalue() -> None:
    ref, cur = _normal(10, 400_000), _normal(11, 400_000, shift=0.02)
    result = evaluate({"x": _pair(ref, cur)})[0]
    assert result.pvalue is not None and result.pvalue < 1e-6
    assert result.score is not None and result.score < DEFAULT_THRESHOLDS[Method.PSI]
    assert result.status == "no_drift" and "effect size must reach" in str(result.reason)
    # a large effect in large windows is flagged
    big = evaluate({"x": _pair(ref, _normal(12, 400_000, shift=0.2))})[0]
    assert big.status == "drift"


def test_small_windows_are_decided_by_bh_across_the_run() -> None:
    columns = {f"x{i}": _pair(_normal(20 + i, 2_000), _normal(40 + i, 2_000)) for i in range(10)}
    columns["moved"] = _pair(_normal(60, 2_000), _normal(61, 2_000, shift=0.3))
    results = _by_column(evaluate(columns))
    assert results["moved"].status == "drift" and "BH" in str(results["moved"].reason)
    assert drift_share(list(results.values())) == pytest.approx(1 / 11)
    raw = [r.pvalue for r in results.values()]
    assert [r.status == "drift" for r in results.values()] == benjamini_hochberg(raw, 0.05)


def test_missing_share_is_its_own_signal() -> None:
    result = evaluate({"x": _pair(_normal(70, 5_000, nulls=0.02), _normal(71, 5_000, nulls=0.2))})[
        0
    ]
    assert result.status == "drift" and result.signals == ("missing_share",)
    assert "2.0%" in str(result.reason) or "null share" in str(result.reason)


def test_new_categories_are_their_own_signal() -> None:
    rng = np.random.default_rng(80)
    ref_values = rng.choice(["a", "b", "c"], 4_000, p=[0.5, 0.3, 0.2])
    cur_values = np.concatenate(
        [rng.choice(["a", "b", "c"], 3_600, p=[0.5, 0.3, 0.2]), np.full(400, "new")]
    )
    ref = categorical_from_values(ref_values, None)
    cur = categorical_from_values(cur_values, ref.categories)
    result = evaluate({"k": (ref, cur)}, methods={"k": Method.CHI2})[0]
    assert "new_categories" in result.signals and result.status == "drift"
    assert result.method is Method.CHI2 and result.score is not None


def test_misfits_are_errors_with_a_reason() -> None:
    numeric = _pair(_normal(90, 2_000), _normal(91, 2_000))
    categorical = categorical_from_values(["a", "b"] * 1_000, None)
    other_cuts = profile_from_values(_normal(92, 2_000), (0.0,))
    results = _by_column(
        evaluate(
            {
                "ks_on_text": (categorical, categorical),
                "kinds": (numeric[0], categorical),
                "cuts": (numeric[0], other_cuts),
                "fine": numeric,
            },
            methods={"ks_on_text": Method.KS},
        )
    )
    assert results["ks_on_text"].status == "error"
    assert "ordered numeric" in str(results["ks_on_text"].reason)
    assert results["kinds"].status == "error" and results["cuts"].status == "error"
    assert results["fine"].status == "no_drift"
    assert drift_share(list(results.values())) == 0.0
    assert math.isnan(drift_share([results["kinds"]]))


def test_exact_ks_from_samples() -> None:
    ref, cur = _normal(100, 3_000), _normal(101, 3_000, shift=0.3)
    result = evaluate(
        {"x": _pair(ref, cur)}, methods={"x": Method.KS}, samples={"x": (ref[:1_000], cur[:1_000])}
    )[0]
    expected = stats.ks_2samp(ref[:1_000], cur[:1_000])
    assert (result.score, result.pvalue) == (expected.statistic, expected.pvalue)
    assert result.status == "drift"


def test_profiles_for_categorical_and_numeric_defaults() -> None:
    ref = CategoricalProfile(
        categories=("a", "b"), counts=(600, 400), other=0, rows=1_000, nulls=0, distinct=2
    )
    result = evaluate({"k": (ref, ref)})[0]
    assert result.method is Method.JS and result.score == 0.0 and result.status == "no_drift"
    numeric = evaluate({"x": _pair(_normal(110, 1_500), _normal(111, 1_500))})[0]
    assert numeric.method is Method.PSI and numeric.pvalue is not None
