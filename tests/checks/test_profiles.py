"""Drift profiles computed in DuckDB, PostgreSQL and SQLite equal numpy on the same rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from osemn.checks.profiles import (
    CategoricalProfile,
    NumericProfile,
    categorical_from_values,
    categorical_profiles,
    cuts_from_values,
    is_numeric,
    numeric_cuts,
    numeric_profiles,
    profile_from_values,
    sample_values,
    window_profiles,
)
from osemn.errors import CheckError
from osemn.sources._dialects import reflect_table
from tests.conftest import Warehouse, make_warehouse

N = 20_000
NUMERIC = ("normal", "skewed", "counts", "ties", "constant", "price", "empty")
CATEGORICAL = ("city", "code")
CITIES = [f"city-{i:02d}" for i in range(30)]


@dataclass
class Loaded:
    """A warehouse holding the test table, its reflection and the rows as loaded."""

    warehouse: Warehouse
    table: sa.Table
    data: dict[str, list[Any]]
    statements: list[str]

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def execute(self, statement: sa.Executable) -> list[sa.Row[Any]]:
        with self.warehouse.engine.connect() as conn:
            return list(conn.execute(statement).fetchall())


def _rows() -> dict[str, list[Any]]:
    rng = np.random.default_rng(20260301)
    part = rng.integers(0, 2, N)

    def with_nulls(values: np.ndarray, share: float) -> list[Any]:
        missing = rng.random(N) < share
        return [None if m else float(v) for v, m in zip(values, missing, strict=True)]

    weights = 1 / np.arange(1, len(CITIES) + 1)
    cities = rng.choice(CITIES, N, p=weights / weights.sum())
    city_missing = rng.random(N) < 0.03
    return {
        "part": [int(p) for p in part],
        # realistic scale: a large mean and a small spread punish naive variance
        "normal": with_nulls(rng.normal(1_000_000.0, 3.0, N) + 0.5 * part, 0.05),
        "skewed": with_nulls(rng.lognormal(0.0, 1.5, N), 0.0),
        "counts": [int(v) for v in rng.poisson(4, N)],
        "ties": with_nulls(rng.choice([0.0, 0.0, 0.0, 1.5, 2.5], N), 0.1),
        "constant": [3.0] * N,
        "price": [Decimal(f"{v:.2f}") for v in rng.normal(50, 10, N)],
        "empty": [None] * N,
        "city": [None if m else str(c) for c, m in zip(cities, city_missing, strict=True)],
        "code": [int(v) for v in rng.integers(1, 6, N)],
    }


def _load(warehouse: Warehouse) -> Loaded:
    metadata = sa.MetaData()
    name = "drift_profiles"
    table = sa.Table(
        name,
        metadata,
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("normal", sa.Double),
        sa.Column("skewed", sa.Double),
        sa.Column("counts", sa.Integer),
        sa.Column("ties", sa.Double),
        sa.Column("constant", sa.Double),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("empty", sa.Double),
        sa.Column("city", sa.String(20)),
        sa.Column("code", sa.Integer),
        schema=warehouse.schema,
    )
    data = _rows()
    records = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    metadata.create_all(warehouse.engine)
    with warehouse.engine.begin() as conn:
        conn.execute(table.insert(), records)
        reflected, _ = reflect_table(conn, warehouse.schema, name)
    statements: list[str] = []
    sa.event.listen(
        warehouse.engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: statements.append(statement),
    )
    return Loaded(warehouse, reflected, data, statements)


@pytest.fixture(scope="module", params=("duckdb", "postgresql", "sqlite", "mariadb"))
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    for warehouse in make_warehouse(request.param, tmp_path_factory.mktemp(request.param)):
        yield _load(warehouse)


def _values(loaded: Loaded, column: str, part: int) -> np.ndarray:
    """The column's values in one window, as floats with NaN for null."""
    return np.asarray(
        [
            np.nan if v is None else float(v)
            for v, p in zip(loaded.data[column], loaded.data["part"], strict=True)
            if p == part
        ],
        dtype=np.float64,
    )


def _window(loaded: Loaded, part: int) -> sa.ColumnElement[bool]:
    return loaded.table.c.part == part


def test_cuts_match_numpy_quantiles(loaded: Loaded) -> None:
    for column in ("normal", "skewed", "counts", "ties", "price"):
        cuts = numeric_cuts(
            loaded.execute, loaded.table, column, where=_window(loaded, 0), dialect=loaded.dialect
        )
        values = _values(loaded, column, 0)
        expected = cuts_from_values(values)
        if loaded.dialect in ("duckdb", "postgresql"):
            # percentile_cont / quantile_cont interpolate linearly, like numpy
            np.testing.assert_allclose(cuts, expected, rtol=1e-12, err_msg=column)
        else:
            # NTILE takes each tile's maximum: within one bin of the linear quantile
            present = values[~np.isnan(values)]
            low = np.quantile(present, np.arange(0, 19) / 20)
            high = np.quantile(present, np.arange(2, 21) / 20)
            assert all(
                any(lo <= c <= hi for lo, hi in zip(low, high, strict=True)) for c in cuts
            ), column
    assert numeric_cuts(
        loaded.execute, loaded.table, "constant", where=None, dialect=loaded.dialect
    ) == (3.0,)
    assert (
        numeric_cuts(loaded.execute, loaded.table, "empty", where=None, dialect=loaded.dialect)
        == ()
    )


def test_ties_merge_cuts(loaded: Loaded) -> None:
    cuts = numeric_cuts(loaded.execute, loaded.table, "ties", where=None, dialect=loaded.dialect)
    assert len(cuts) < 19  # 60% zeros: most quantiles are equal and merged
    assert list(cuts) == sorted(set(cuts))


def test_numeric_profiles_equal_numpy_in_one_statement(loaded: Loaded) -> None:
    specs = {
        column: numeric_cuts(
            loaded.execute, loaded.table, column, where=_window(loaded, 0), dialect=loaded.dialect
        )
        for column in NUMERIC
    }
    for part in (0, 1):
        loaded.statements.clear()
        profiles = numeric_profiles(
            loaded.execute, loaded.table, specs, where=_window(loaded, part), dialect=loaded.dialect
        )
        assert len(loaded.statements) == 1
        for column in NUMERIC:
            got = profiles[column]
            want = profile_from_values(_values(loaded, column, part), specs[column])
            assert got.cuts == want.cuts
            assert got.counts == want.counts, column  # exactly numpy's bins
            assert (got.rows, got.nulls) == (want.rows, want.nulls)
            assert got.minimum == want.minimum and got.maximum == want.maximum
            for field in ("mean", "variance"):
                g, w = getattr(got, field), getattr(want, field)
                if w is None:
                    assert g is None, (column, field)
                else:
                    assert g == pytest.approx(w, rel=1e-9, abs=1e-12), (column, field)


def test_empty_window_gives_zero_rows(loaded: Loaded) -> None:
    nothing = _window(loaded, 99)
    cuts = numeric_cuts(
        loaded.execute, loaded.table, "normal", where=nothing, dialect=loaded.dialect
    )
    assert cuts == ()
    profile = numeric_profiles(
        loaded.execute, loaded.table, {"normal": (1.0, 2.0)}, where=nothing, dialect=loaded.dialect
    )["normal"]
    assert profile == NumericProfile(
        cuts=(1.0, 2.0),
        counts=(0, 0, 0),
        rows=0,
        nulls=0,
        minimum=None,
        maximum=None,
        mean=None,
        variance=None,
    )
    categorical = categorical_profiles(
        loaded.execute, loaded.table, {"city": None}, where=nothing, dialect=loaded.dialect
    )["city"]
    assert categorical == CategoricalProfile(
        categories=(), counts=(), other=0, rows=0, nulls=0, distinct=0
    )


def test_categorical_profiles_exact(loaded: Loaded) -> None:
    def texts(column: str, part: int) -> list[str | None]:
        return [
            None if v is None else str(v)
            for v, p in zip(loaded.data[column], loaded.data["part"], strict=True)
            if p == part
        ]

    loaded.statements.clear()
    reference = categorical_profiles(
        loaded.execute,
        loaded.table,
        dict.fromkeys(CATEGORICAL),
        where=_window(loaded, 0),
        dialect=loaded.dialect,
        top_k=10,
    )
    assert len(loaded.statements) == 2  # totals, and one UNION ALL of the top-K queries
    for column in CATEGORICAL:
        assert reference[column] == categorical_from_values(texts(column, 0), None, top_k=10)
    assert reference["code"].other == 0 and len(reference["code"].categories) == 5
    assert reference["city"].other > 0 and reference["city"].distinct == 30

    loaded.statements.clear()
    current = categorical_profiles(
        loaded.execute,
        loaded.table,
        {column: reference[column].categories for column in CATEGORICAL},
        where=_window(loaded, 1),
        dialect=loaded.dialect,
    )
    assert len(loaded.statements) == 1
    for column in CATEGORICAL:
        assert current[column] == categorical_from_values(
            texts(column, 1), reference[column].categories
        )


def test_non_numeric_column_is_a_check_error(loaded: Loaded) -> None:
    assert not is_numeric(loaded.table.c.city.type)
    assert is_numeric(loaded.table.c.price.type)
    with pytest.raises(CheckError, match=r"'city'.*categorical"):
        numeric_cuts(loaded.execute, loaded.table, "city", where=None, dialect=loaded.dialect)
    with pytest.raises(CheckError, match=r"'city'.*categorical"):
        numeric_profiles(
            loaded.execute, loaded.table, {"city": ()}, where=None, dialect=loaded.dialect
        )
    with pytest.raises(CheckError, match=r"'nope' does not exist.*'normal'"):
        categorical_profiles(
            loaded.execute, loaded.table, {"nope": None}, where=None, dialect=loaded.dialect
        )


def test_sample_values_bounded_from_the_window(loaded: Loaded) -> None:
    sample = sample_values(
        loaded.execute,
        loaded.table,
        "normal",
        where=_window(loaded, 1),
        dialect=loaded.dialect,
        size=500,
        seed=0.25,
    )
    window = _values(loaded, "normal", 1)
    assert sample.shape == (500,)
    assert np.isin(sample, window).all()  # drawn from the window, nulls excluded
    assert len(np.unique(sample)) == 500  # without replacement
    everything = sample_values(
        loaded.execute,
        loaded.table,
        "normal",
        where=_window(loaded, 1),
        dialect=loaded.dialect,
        size=N,
        seed=0.25,
    )
    assert np.sort(everything).tolist() == np.sort(window[~np.isnan(window)]).tolist()
    if loaded.dialect in ("duckdb", "postgresql"):
        again = sample_values(
            loaded.execute,
            loaded.table,
            "normal",
            where=_window(loaded, 1),
            dialect=loaded.dialect,
            size=500,
            seed=0.25,
        )
        assert sorted(again) == sorted(sample)  # a seed repeats the draw


def test_profiles_round_trip_json() -> None:
    numeric = profile_from_values(np.array([1.0, 2.0, np.nan, 5.0]), (1.5, 3.0))
    assert numeric.counts == (1, 1, 1) and numeric.nulls == 1
    assert NumericProfile.from_json(numeric.to_json()) == numeric
    categorical = categorical_from_values(["a", "b", None, "a", "c"], ("a", "b"))
    assert (categorical.counts, categorical.other, categorical.distinct) == ((2, 1), 1, 3)
    assert CategoricalProfile.from_json(categorical.to_json()) == categorical
    with pytest.raises(CheckError, match="expected 'numeric'"):
        NumericProfile.from_json(categorical.to_json())


# --- bin edges: every value on, next to and beyond a cut lands where the rule says ----

EDGE_CUTS = (-1.5, 0.0, 0.1, 2.0**53, 1e100)
MANY = ("a", "it's", "", "a b", "B", "é", "k6", "k7", "k8", "k9", "k10", "k11")  # hashed IN
FEW = ("yes", "no", "maybe")


def _edge_values() -> list[float | None]:
    near = [v for c in EDGE_CUTS for v in (math.nextafter(c, -math.inf), c, math.nextafter(c, 1))]
    far = [-math.inf, -1e140, -0.0, 5e-324, 1e140, math.inf, math.nan, None]
    return [*near, *far] * 3


def _edge_texts(categories: tuple[str, ...], extra: list[str | None]) -> list[str | None]:
    values = [*categories, *categories[:3], "A", " a", "a ", "its", "k1", *extra]
    return values * 2


def test_bins_and_categories_are_exact_at_the_edges(duckdb_or_pg: Warehouse) -> None:
    xs = _edge_values()
    many = _edge_texts(MANY, [None, "zzz"])
    few = _edge_texts(FEW, [None, "YES"])
    size = max(len(xs), len(many), len(few))
    metadata = sa.MetaData()
    table = sa.Table(
        "drift_edges",
        metadata,
        sa.Column("x", sa.Double),
        sa.Column("many", sa.String(10)),
        sa.Column("few", sa.String(10)),
        schema=duckdb_or_pg.schema,
    )
    metadata.create_all(duckdb_or_pg.engine)
    rows = [
        {
            "x": xs[i] if i < len(xs) else None,
            "many": many[i] if i < len(many) else None,
            "few": few[i] if i < len(few) else None,
        }
        for i in range(size)
    ]
    with duckdb_or_pg.engine.begin() as conn:
        conn.execute(table.insert(), rows)
        reflected, _ = reflect_table(conn, duckdb_or_pg.schema, "drift_edges")

    def execute(statement: sa.Executable) -> list[sa.Row[Any]]:
        with duckdb_or_pg.engine.connect() as conn:
            return list(conn.execute(statement).fetchall())

    numbers, labels = window_profiles(
        execute,
        reflected,
        {"x": EDGE_CUTS},
        {"many": MANY, "few": FEW},
        where=None,
        dialect=duckdb_or_pg.dialect,
    )
    present = [r["x"] for r in rows if r["x"] is not None]
    # NaN is a value, not a null, and fails every `x <= cut`: the last bin
    bins = [len(EDGE_CUTS) if math.isnan(x) else sum(c < x for c in EDGE_CUTS) for x in present]
    expected = tuple(bins.count(i) for i in range(len(EDGE_CUTS) + 1))
    assert numbers["x"].counts == expected
    assert (numbers["x"].rows, numbers["x"].nulls) == (size, size - len(present))
    for name, categories in (("many", MANY), ("few", FEW)):
        values = [r[name] for r in rows]
        # a current window counts no distinct values (a sort it does not need)
        want = replace(categorical_from_values(values, categories), distinct=None)
        assert labels[name] == want, name
