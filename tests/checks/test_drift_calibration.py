"""Calibration of the drift decision: few false alarms without drift, power with a real shift.

Profiles are built with numpy exactly as the SQL builds them
(``cuts_from_values``, ``profile_from_values``, ``categorical_from_values``).
"""

from __future__ import annotations

import math

import numpy as np

from osemn.checks.drift_stats import evaluate
from osemn.checks.profiles import (
    CategoricalProfile,
    NumericProfile,
    categorical_from_values,
    cuts_from_values,
    profile_from_values,
)

Q = 0.05
SHARES = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02])
LABELS = np.array([f"c{i}" for i in range(len(SHARES))])


def _numeric(rng: np.random.Generator, kind: int, n: int, shift: float = 0.0) -> np.ndarray:
    """Column ``kind`` of the generator, shifted by ``shift`` of its standard deviation."""
    if kind == 0:
        return rng.normal(100.0, 15.0, n) + shift * 15.0
    if kind == 1:
        sigma = 0.8
        std = math.sqrt((math.exp(sigma**2) - 1) * math.exp(sigma**2))
        return rng.lognormal(0.0, sigma, n) + shift * std
    if kind == 2:
        return rng.poisson(6.0, n).astype(np.float64) + shift * math.sqrt(6.0)
    values = rng.exponential(2.0, n) + shift * 2.0
    values[rng.random(n) < 0.1] = np.nan  # 10% nulls, unchanged between windows
    return values


def _categorical(rng: np.random.Generator, n: int, shares: np.ndarray = SHARES) -> np.ndarray:
    return rng.choice(LABELS, n, p=shares)


def _run(
    rng: np.random.Generator,
    n: int,
    *,
    numeric_shift: float = 0.0,
    shares: np.ndarray = SHARES,
    others: int | None = None,
) -> dict[str, bool | None]:
    """One run over 7 numeric and 3 categorical columns; ``x0`` and ``k0`` may move.

    ``others`` rows (default ``n``) for the columns that never move: they only
    fill the Benjamini-Hochberg family, so the power tests keep them small.
    """
    columns: dict[
        str, tuple[NumericProfile | CategoricalProfile, NumericProfile | CategoricalProfile]
    ] = {}
    for index in range(7):
        rows = n if index == 0 else others or n
        reference = _numeric(rng, index % 4, rows)
        current = _numeric(rng, index % 4, rows, numeric_shift if index == 0 else 0.0)
        cuts = cuts_from_values(reference)
        columns[f"x{index}"] = (
            profile_from_values(reference, cuts),
            profile_from_values(current, cuts),
        )
    for index in range(3):
        rows = n if index == 0 else others or n
        reference_cat = categorical_from_values(_categorical(rng, rows), None)
        current_values = _categorical(rng, rows, shares if index == 0 else SHARES)
        columns[f"k{index}"] = (
            reference_cat,
            categorical_from_values(current_values, reference_cat.categories),
        )
    return {r.column: r.detected for r in evaluate(columns, q=Q)}


def test_no_drift_keeps_the_family_wise_rate() -> None:
    runs = 200
    flagged = 0
    for seed in range(runs):
        detected = _run(np.random.default_rng(seed), 2_000)
        assert all(d is not None for d in detected.values())
        flagged += any(detected.values())
    margin = 3 * math.sqrt(Q * (1 - Q) / runs)
    assert flagged / runs <= Q + margin, flagged


def test_numeric_shift_of_a_tenth_std_is_detected() -> None:
    runs = 100
    hits = sum(
        bool(
            _run(np.random.default_rng(1_000 + seed), 50_000, numeric_shift=0.1, others=2_000)["x0"]
        )
        for seed in range(runs)
    )
    assert hits >= 95, hits


def test_category_share_moving_five_points_is_detected() -> None:
    moved = SHARES.copy()
    moved[0] -= 0.05  # the largest category gives five points to the second
    moved[1] += 0.05
    runs = 100
    hits = sum(
        bool(_run(np.random.default_rng(2_000 + seed), 50_000, shares=moved, others=2_000)["k0"])
        for seed in range(runs)
    )
    assert hits >= 95, hits
