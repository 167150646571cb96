"""Model metrics in the warehouse against scikit-learn on the same rows, read back in the test.

Every table has predictions outside the window (and one on each edge), missing
labels, duplicate label ids (the latest wins, ties to the greatest label),
NULL labels and labels of unknown ids.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from osemn.checks.model_metrics import ModelTables, WindowMetrics, window_metrics
from osemn.errors import CheckError, ConfigError, UnknownColumnError
from tests.conftest import Warehouse, make_warehouse

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)
T0 = START.replace(tzinfo=None)
EXACT = 1e-12
AUC_TOLERANCE = 1e-3
LABEL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "binary": sa.Boolean(),
    "multiclass": sa.String(10),
    "regression": sa.Double(),
}
CLASSES = ("ant", "bee", "cat", "dog")


@dataclass
class Data:
    predictions: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    truth: dict[int, Any]  # every prediction's true value, labelled or not


def generate(task: str, n: int, *, seed: int, coverage: float = 0.7) -> Data:
    """Predictions around the window and labels with the troubles real tables have."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-7200, 86400 + 7200, n)
    offsets[:2] = (0.0, 86400.0)  # one on each edge: [start, end)
    country = rng.choice(
        ["nl", "de", "fr", "es", "it", "pl"], n, p=[0.4, 0.25, 0.15, 0.1, 0.06, 0.04]
    )
    device = rng.choice(["ios", "android", "web", ""], n, p=[0.45, 0.3, 0.2, 0.05])
    version = rng.choice(["v1", "v2", "v3", "v4"], n, p=[0.5, 0.3, 0.15, 0.05])
    p = rng.beta(2, 3, n)
    truth: np.ndarray[Any, Any]
    if task == "binary":
        truth = rng.uniform(size=n) < p
    elif task == "multiclass":
        truth = rng.choice(CLASSES, n)
        guess = rng.choice(CLASSES, n)
        predicted = np.where(rng.uniform(size=n) < 0.6, truth, guess)
    else:
        truth = rng.normal(50, 10, n)
        predicted = truth + rng.normal(0, 4, n)
    predictions, labels = [], []
    for i in range(n):
        ts = T0 + timedelta(seconds=float(offsets[i]))
        row: dict[str, Any] = {
            "id": i,
            "ts": ts,
            "country": str(country[i]),
            "device": str(device[i]) or None,
            "ver": str(version[i]),
            "lat": float(rng.exponential(0.2)),
            "score": float(p[i]) if task == "binary" else None,
            "pred": None if task == "binary" else _plain(predicted[i]),
        }
        predictions.append(row)
        if rng.uniform() >= coverage:
            continue
        lt = ts + timedelta(seconds=float(rng.exponential(3 * 3600)))
        value = _plain(truth[i])
        labels.append({"id": i, "y": value, "lt": lt})
        draw = rng.uniform()
        if draw < 0.15:  # an older, wrong label of the same id
            labels.append({"id": i, "y": _wrong(task, value), "lt": lt - timedelta(hours=1)})
        elif draw < 0.2:  # a NULL label later: ignored
            labels.append({"id": i, "y": None, "lt": lt + timedelta(hours=1)})
        elif draw < 0.23:  # a tie on time: the greatest label wins
            labels.append({"id": i, "y": _wrong(task, value), "lt": lt})
    for i in range(30):  # labels of ids that were never predicted
        labels.append({"id": 10**6 + i, "y": _plain(truth[i % n]), "lt": T0})
    return Data(predictions, labels, {i: _plain(truth[i]) for i in range(n)})


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _wrong(task: str, value: Any) -> Any:
    if task == "binary":
        return not value
    if task == "multiclass":
        return CLASSES[(CLASSES.index(value) + 1) % len(CLASSES)]
    return value + 7.5


def create(wh: Warehouse | sa.Engine, task: str, suffix: str = "") -> tuple[sa.Table, sa.Table]:
    engine = wh if isinstance(wh, sa.Engine) else wh.engine
    schema = None if isinstance(wh, sa.Engine) or wh.dialect == "duckdb" else wh.schema
    metadata = sa.MetaData()
    preds = sa.Table(
        f"predictions{suffix}",
        metadata,
        sa.Column("id", sa.Integer),
        sa.Column("ts", sa.DateTime),
        sa.Column("score", sa.Double),
        sa.Column("pred", sa.Double if task == "regression" else sa.String(10)),
        sa.Column("country", sa.String(10)),
        sa.Column("device", sa.String(10)),
        sa.Column("ver", sa.String(10)),
        sa.Column("lat", sa.Double),
        schema=schema,
    )
    labels = sa.Table(
        f"labels{suffix}",
        metadata,
        sa.Column("id", sa.Integer),
        sa.Column("y", LABEL_TYPES[task]),
        sa.Column("lt", sa.DateTime),
        schema=schema,
    )
    metadata.drop_all(engine)
    metadata.create_all(engine)
    return preds, labels


PANDAS_TYPES: tuple[tuple[type[Any], Any], ...] = (
    (sa.Boolean, "boolean"),
    (sa.Integer, "Int64"),
    (sa.Float, "Float64"),
    (sa.DateTime, "datetime64[us]"),
)


def insert(engine: sa.Engine, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Rows into a table; DuckDB appends a frame (its executemany is a second a 1,000 rows)."""
    if not rows:
        return
    with engine.begin() as conn:
        if engine.dialect.name != "duckdb":
            conn.execute(sa.insert(table), list(rows))
            return
        frame = pd.DataFrame(list(rows), columns=[c.name for c in table.c])
        for column in table.c:
            dtype = next((d for t, d in PANDAS_TYPES if isinstance(column.type, t)), None)
            if dtype is not None:
                frame[column.name] = frame[column.name].astype(dtype)
        conn.connection.driver_connection.append(table.name, frame)  # type: ignore[union-attr]


def spec_for(preds: sa.Table, labels: sa.Table, task: str, **extra: Any) -> ModelTables:
    columns: dict[str, Any] = (
        {"score": "score"} if task == "binary" else {"prediction": "pred", "tolerance": 5.0}
    )
    spec = ModelTables(
        predictions=preds,
        labels=labels,
        prediction_id="id",
        prediction_time="ts",
        version="ver",
        latency="lat",
        latency_threshold=0.25,
        segments=("country", "device"),
        label_id="id",
        label="y",
        label_time="lt",
        task=task,  # type: ignore[arg-type]
        top_k=3,
        **columns,
    )
    return replace(spec, **extra)


class Counting:
    """``run`` for the tests: a plain connection, counting statements."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements = 0

    def __call__(self, statement: sa.Executable) -> list[sa.Row[Any]]:
        self.statements += 1
        with self.engine.connect() as conn:
            return list(conn.execute(statement).all())


# --- the reference: rows read back, joined in Python, scored by scikit-learn ---------------


@dataclass
class Joined:
    row: dict[str, Any]
    label: Any  # None when unlabelled
    label_time: datetime | None


def read_back(engine: sa.Engine, preds: sa.Table, labels: sa.Table) -> list[Joined]:
    with engine.connect() as conn:
        prediction_rows = [dict(r._mapping) for r in conn.execute(sa.select(preds))]
        label_rows = [dict(r._mapping) for r in conn.execute(sa.select(labels))]
    latest: dict[int, dict[str, Any]] = {}
    for label in label_rows:
        if label["y"] is None:
            continue
        best = latest.get(label["id"])
        if best is None or (label["lt"], label["y"]) > (best["lt"], best["y"]):
            latest[label["id"]] = label
    out = []
    for row in prediction_rows:
        if T0 <= row["ts"] < END.replace(tzinfo=None):
            found = latest.get(row["id"])
            out.append(Joined(row, found["y"] if found else None, found["lt"] if found else None))
    return out


def top_k(rows: list[Joined], column: str, k: int) -> Callable[[Joined], str]:
    keys = Counter(_key(r.row[column]) for r in rows)
    ranked = sorted(keys, key=lambda v: (-keys[v], v))
    assert len(ranked) <= k or keys[ranked[k - 1]] > keys[ranked[k]], "a tie at the K-th value"
    kept = set(ranked[:k])
    return lambda r: _key(r.row[column]) if _key(r.row[column]) in kept else "other"


def _key(value: Any) -> str:
    return "(null)" if value is None else str(value)


def expected_realized(task: str, rows: list[Joined], spec: ModelTables) -> dict[str, float]:
    labelled = [r for r in rows if r.label is not None]
    if not labelled:
        return {}
    if task == "binary":
        y = np.array([int(r.label) for r in labelled])
        p = np.array([r.row["score"] for r in labelled])
        yhat = (p >= spec.threshold).astype(int)
        out = {
            "accuracy": skm.accuracy_score(y, yhat),
            "log_loss": skm.log_loss(y, p, labels=[0, 1]),
            "brier": skm.brier_score_loss(y, p, labels=[0, 1]),
            "ece": ece(y, p),
        }
        if yhat.sum():
            out["precision"] = skm.precision_score(y, yhat)
        if y.sum():
            out["recall"] = skm.recall_score(y, yhat)
        if y.sum() or yhat.sum():
            out["f1"] = skm.f1_score(y, yhat)
        if 0 < y.sum() < len(y):
            out["auc"] = skm.roc_auc_score(y, p)
        return out
    truth = [r.label for r in labelled]
    guess = [r.row["pred"] for r in labelled]
    if task == "multiclass":
        return {
            "accuracy": skm.accuracy_score(truth, guess),
            "macro_f1": skm.f1_score(truth, guess, average="macro"),
            "weighted_f1": skm.f1_score(truth, guess, average="weighted"),
        }
    out = {
        "mae": skm.mean_absolute_error(truth, guess),
        "rmse": math.sqrt(skm.mean_squared_error(truth, guess)),
        "mape": skm.mean_absolute_percentage_error(truth, guess),
    }
    if len(truth) >= 2:
        out["r2"] = skm.r2_score(truth, guess)
    return out


def ece(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    """The module's definition: sum over 10 bins of |mean score - positive rate| * share."""
    bins = np.minimum(np.floor(p * 10), 9).astype(int)
    total = 0.0
    for b in range(10):
        inside = bins == b
        if inside.any():
            total += abs(p[inside].mean() - y[inside].mean()) * inside.sum() / len(p)
    return total


def assert_metrics(actual: dict[str, float], expected: dict[str, float], *, where: str) -> None:
    assert set(actual) == set(expected), where
    for name, value in expected.items():
        tolerance = AUC_TOLERANCE if name == "auc" else EXACT
        assert actual[name] == pytest.approx(value, rel=tolerance, abs=tolerance), (where, name)


def assert_window(
    task: str,
    got: WindowMetrics,
    rows: list[Joined],
    spec: ModelTables,
    *,
    where: str,
    percentiles: bool = True,
) -> None:
    """``percentiles``: the whole window's; a slice has only its maximum label delay."""
    labelled = [r for r in rows if r.label is not None]
    assert (got.predictions, got.labelled) == (len(rows), len(labelled)), where
    assert_metrics(got.realized, expected_realized(task, rows, spec), where=where)
    delays = [(r.label_time - r.row["ts"]).total_seconds() for r in labelled]
    latencies = [r.row["lat"] for r in rows]
    expected_delay = {"max": max(delays)}
    expected_latency: dict[str, float] = {}
    if percentiles:
        expected_delay |= {q: float(np.percentile(delays, int(q[1:]))) for q in ("p50", "p95")}
        expected_latency = {f"p{q}": float(np.percentile(latencies, q)) for q in (50, 95, 99)}
    assert got.label_delay == pytest.approx(expected_delay, rel=1e-9), where
    assert got.latency == pytest.approx(expected_latency, rel=1e-9), where
    assert got.latency_good == sum(v <= 0.25 for v in latencies), where
    assert got.latency_bad == sum(v > 0.25 for v in latencies), where
    good = sum(_good(task, r, spec) for r in labelled)
    assert (got.good, got.bad) == (good, len(labelled) - good), where


def _good(task: str, r: Joined, spec: ModelTables) -> bool:
    if task == "binary":
        return bool(r.row["score"] >= spec.threshold) == bool(r.label)
    if task == "multiclass":
        return bool(r.row["pred"] == r.label)
    return bool(abs(r.row["pred"] - r.label) <= 5.0)


# --- the differential tests -----------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_metrics_equal_sklearn_on_the_same_rows(duckdb_or_pg: Warehouse, task: str) -> None:
    wh = duckdb_or_pg
    preds, labels = create(wh, task)
    data = generate(task, 1500, seed={"binary": 1, "multiclass": 2, "regression": 3}[task])
    insert(wh.engine, preds, data.predictions)
    insert(wh.engine, labels, data.labels)
    spec = spec_for(preds, labels, task)
    run = Counting(wh.engine)

    got = window_metrics(run, spec, START, END)

    # value counts of the slice columns, the slices in one join, the percentiles
    assert run.statements == 3
    rows = read_back(wh.engine, preds, labels)
    assert 0 < got.labelled < got.predictions < len(data.predictions)
    assert_window(task, got, rows, spec, where="window")
    for column in ("country", "device"):
        slice_of = top_k(rows, column, spec.top_k)
        keys = {slice_of(r) for r in rows}
        assert {k for c, k in got.by_segment if c == column} == keys
        for key in keys:
            part = [r for r in rows if slice_of(r) == key]
            sliced = got.by_segment[(column, key)]
            assert_window(task, sliced, part, spec, where=f"{column}={key}", percentiles=False)
            assert sliced.by_segment == {} and sliced.by_version == {}
    slice_of = top_k(rows, "ver", spec.top_k)
    assert set(got.by_version) == {"v1", "v2", "v3", "other"}
    for key in got.by_version:
        part = [r for r in rows if slice_of(r) == key]
        assert_window(
            task, got.by_version[key], part, spec, where=f"version={key}", percentiles=False
        )


def test_binary_auc_within_1e3_of_sklearn_on_many_rows(duckdb_warehouse: Warehouse) -> None:
    preds, labels = create(duckdb_warehouse, "binary")
    data = generate("binary", 20_000, seed=7, coverage=1.0)
    insert(duckdb_warehouse.engine, preds, data.predictions)
    insert(duckdb_warehouse.engine, labels, data.labels)
    spec = spec_for(preds, labels, "binary", segments=(), version=None)

    got = window_metrics(Counting(duckdb_warehouse.engine), spec, START, END)

    rows = [r for r in read_back(duckdb_warehouse.engine, preds, labels) if r.label is not None]
    exact = skm.roc_auc_score([int(r.label) for r in rows], [r.row["score"] for r in rows])
    assert abs(got.realized["auc"] - exact) < 1e-4


def test_binary_with_a_prediction_column_and_integer_labels(duckdb_or_pg: Warehouse) -> None:
    schema = None if duckdb_or_pg.dialect == "duckdb" else duckdb_or_pg.schema
    metadata = sa.MetaData()
    preds = sa.Table(
        "p", metadata, sa.Column("id", sa.Integer), sa.Column("ts", sa.DateTime),
        sa.Column("cls", sa.Boolean), schema=schema,
    )  # fmt: skip
    labels = sa.Table(
        "l", metadata, sa.Column("id", sa.Integer), sa.Column("y", sa.Integer),
        sa.Column("lt", sa.DateTime), schema=schema,
    )  # fmt: skip
    metadata.create_all(duckdb_or_pg.engine)
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 400)
    guess = np.where(rng.uniform(size=400) < 0.8, truth, 1 - truth)
    insert(duckdb_or_pg.engine, preds, [
        {"id": i, "ts": T0 + timedelta(minutes=i), "cls": bool(guess[i])} for i in range(400)
    ])  # fmt: skip
    insert(duckdb_or_pg.engine, labels, [
        {"id": i, "y": int(truth[i]), "lt": T0 + timedelta(days=2)} for i in range(0, 400, 2)
    ])  # fmt: skip
    spec = ModelTables(
        predictions=preds, labels=labels, prediction_id="id", prediction_time="ts",
        prediction="cls", label_id="id", label="y", label_time="lt", task="binary",
    )  # fmt: skip

    got = window_metrics(Counting(duckdb_or_pg.engine), spec, START, END)

    y, yhat = truth[::2], guess[::2]
    assert (got.predictions, got.labelled, got.estimated, got.latency) == (400, 200, {}, {})
    assert_metrics(
        got.realized,
        {
            "accuracy": skm.accuracy_score(y, yhat),
            "precision": skm.precision_score(y, yhat),
            "recall": skm.recall_score(y, yhat),
            "f1": skm.f1_score(y, yhat),
        },
        where="prediction column",
    )


# --- estimated performance and late labels ------------------------------------------------


def test_cbpe_estimate_lands_within_sampling_error(duckdb_or_pg: Warehouse) -> None:
    preds, labels = create(duckdb_or_pg, "binary")
    data = generate("binary", 3000, seed=11, coverage=0.3)
    insert(duckdb_or_pg.engine, preds, data.predictions)
    insert(duckdb_or_pg.engine, labels, data.labels)
    spec = spec_for(preds, labels, "binary", segments=(), version=None)

    got = window_metrics(Counting(duckdb_or_pg.engine), spec, START, END)

    rows = read_back(duckdb_or_pg.engine, preds, labels)
    hidden = [r for r in rows if r.label is None]
    truth = np.array([int(data.truth[r.row["id"]]) for r in hidden])
    yhat = np.array([r.row["score"] >= 0.5 for r in hidden]).astype(int)
    for name, fn, share in [
        ("accuracy", skm.accuracy_score, 1.0),
        ("precision", skm.precision_score, yhat.mean()),
        ("recall", skm.recall_score, truth.mean()),
    ]:
        actual = fn(truth, yhat)
        sigma = math.sqrt(actual * (1 - actual) / (len(hidden) * share))
        assert abs(got.estimated[name] - actual) < 3 * sigma, name
    assert abs(got.estimated["f1"] - skm.f1_score(truth, yhat)) < 0.05


def test_late_labels_update_the_window(duckdb_or_pg: Warehouse) -> None:
    preds, labels = create(duckdb_or_pg, "binary")
    data = generate("binary", 1500, seed=13, coverage=1.0)
    insert(duckdb_or_pg.engine, preds, data.predictions)
    ids = sorted({row["id"] for row in data.labels})
    early = set(np.random.default_rng(0).choice(ids, int(0.3 * len(ids)), replace=False).tolist())
    insert(duckdb_or_pg.engine, labels, [r for r in data.labels if r["id"] in early])
    spec = spec_for(preds, labels, "binary")
    run = Counting(duckdb_or_pg.engine)

    first = window_metrics(run, spec, START, END)
    insert(duckdb_or_pg.engine, labels, [r for r in data.labels if r["id"] not in early])
    second = window_metrics(run, spec, START, END)

    full = read_back(duckdb_or_pg.engine, preds, labels)
    assert first.labelled / first.predictions == pytest.approx(0.3, abs=0.05)
    assert second.labelled == second.predictions == len(full)
    assert_window("binary", second, full, spec, where="all labels")
    assert second.estimated == {}
    assert first.realized["auc"] != second.realized["auc"]


# --- bad input --------------------------------------------------------------------------


def loaded(wh: Warehouse, task: str = "binary") -> tuple[sa.Table, sa.Table, Data]:
    preds, labels = create(wh, task)
    data = generate(task, 200, seed=17)
    insert(wh.engine, preds, data.predictions)
    insert(wh.engine, labels, data.labels)
    return preds, labels, data


def test_score_outside_0_1_is_a_check_error(duckdb_or_pg: Warehouse) -> None:
    preds, labels, _ = loaded(duckdb_or_pg)
    with duckdb_or_pg.engine.begin() as conn:
        conn.execute(sa.update(preds).where(preds.c.id == 0).values(score=1.5))
    with pytest.raises(
        CheckError, match=r"1 predictions .* score outside \[0, 1\] in column 'score'"
    ):
        window_metrics(Counting(duckdb_or_pg.engine), spec_for(preds, labels, "binary"), START, END)


def test_label_outside_the_classes_is_a_check_error(duckdb_warehouse: Warehouse) -> None:
    preds, _, _ = loaded(duckdb_warehouse)
    metadata = sa.MetaData()
    labels = sa.Table(
        "int_labels", metadata, sa.Column("id", sa.Integer), sa.Column("y", sa.Integer),
        sa.Column("lt", sa.DateTime),
    )  # fmt: skip
    metadata.create_all(duckdb_warehouse.engine)
    insert(
        duckdb_warehouse.engine, labels, [{"id": 0, "y": 2, "lt": T0}, {"id": 1, "y": 1, "lt": T0}]
    )
    with pytest.raises(CheckError, match="label other than 0/1/true/false in column 'y'"):
        window_metrics(
            Counting(duckdb_warehouse.engine), spec_for(preds, labels, "binary"), START, END
        )


def test_missing_column_names_it_and_what_the_table_has(duckdb_warehouse: Warehouse) -> None:
    preds, labels, _ = loaded(duckdb_warehouse)
    spec = spec_for(preds, labels, "binary", prediction_id="request_id")
    run = Counting(duckdb_warehouse.engine)
    with pytest.raises(UnknownColumnError, match=r"'request_id' does not exist .* 'id', 'ts'"):
        window_metrics(run, spec, START, END)
    with pytest.raises(ConfigError, match="regression model needs a prediction column"):
        window_metrics(run, spec_for(preds, labels, "regression", prediction=None), START, END)
    assert run.statements == 0


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_empty_window_has_no_metrics(duckdb_or_pg: Warehouse, task: str) -> None:
    preds, labels, _ = loaded(duckdb_or_pg, task)
    run = Counting(duckdb_or_pg.engine)
    got = window_metrics(
        run, spec_for(preds, labels, task), END + timedelta(days=5), END + timedelta(days=6)
    )
    assert got == WindowMetrics(
        predictions=0, labelled=0, realized={}, estimated={}, label_delay={}, latency={},
        good=0, bad=0, latency_good=0, latency_bad=0,
    )  # fmt: skip
    assert run.statements == 2  # the slice columns' value counts, then the empty join


def test_window_without_labels_is_estimated_only(duckdb_warehouse: Warehouse) -> None:
    preds, labels = create(duckdb_warehouse, "binary")
    insert(duckdb_warehouse.engine, preds, generate("binary", 100, seed=3).predictions)
    got = window_metrics(
        Counting(duckdb_warehouse.engine), spec_for(preds, labels, "binary"), START, END
    )
    assert got.predictions > 0 and got.labelled == 0
    assert (got.realized, got.label_delay, got.good, got.bad) == ({}, {}, 0, 0)
    assert set(got.estimated) == {"accuracy", "precision", "recall", "f1"}


def test_sqlite_computes_all_but_percentiles(tmp_path: Path) -> None:
    for wh in make_warehouse("sqlite", tmp_path):
        preds, labels, _ = loaded(wh)
        spec = spec_for(preds, labels, "binary")
        got = window_metrics(Counting(wh.engine), spec, START, END)
        rows = read_back(wh.engine, preds, labels)
        assert_metrics(got.realized, expected_realized("binary", rows, spec), where="sqlite")
        assert got.latency == {} and set(got.label_delay) == {"max"}
        delays = [(r.label_time - r.row["ts"]).total_seconds() for r in rows if r.label is not None]
        assert got.label_delay["max"] == pytest.approx(max(delays), abs=1e-3)


# --- small random tables ------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"duckdb:///{tmp_path_factory.mktemp('mm') / 'h.duckdb'}")
    yield engine
    engine.dispose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    task=st.sampled_from(["binary", "multiclass", "regression"]),
    n=st.integers(2, 40),
    seed=st.integers(0, 2**32 - 1),
    coverage=st.floats(0.0, 1.0),
)
def test_small_random_tables_match_sklearn(
    scratch: sa.Engine, task: str, n: int, seed: int, coverage: float
) -> None:
    preds, labels = create(scratch, task, suffix="_h")
    data = generate(task, n, seed=seed, coverage=coverage)
    insert(scratch, preds, data.predictions)
    insert(scratch, labels, data.labels)
    # A billion bins: no two of these few scores share one, so the AUC is exact.
    spec = replace(spec_for(preds, labels, task), segments=(), version=None, auc_bins=10**9)

    got = window_metrics(Counting(scratch), spec, START, END)

    rows = read_back(scratch, preds, labels)
    assert got.predictions == len(rows)
    assert got.labelled == sum(r.label is not None for r in rows)
    assert_metrics(got.realized, expected_realized(task, rows, spec), where=task)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_many_slice_combinations_give_the_same_metrics(
    duckdb_warehouse: Warehouse, task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past CROSS_LIMIT slice-key combinations the rows are repeated per slice dimension
    instead of grouped by every combination; both ways must give the same numbers."""
    from osemn.checks import _model_slices

    preds, labels, _ = loaded(duckdb_warehouse, task)
    spec = spec_for(preds, labels, task)
    crossed = window_metrics(Counting(duckdb_warehouse.engine), spec, START, END)
    monkeypatch.setattr(_model_slices, "CROSS_LIMIT", 0)
    expanded = window_metrics(Counting(duckdb_warehouse.engine), spec, START, END)
    assert crossed.by_segment and crossed.by_version
    assert_same(expanded, crossed, where="window")
    assert set(expanded.by_segment) == set(crossed.by_segment)
    for key, part in crossed.by_segment.items():
        assert_same(expanded.by_segment[key], part, where=str(key))
    assert set(expanded.by_version) == set(crossed.by_version)
    for key, part in crossed.by_version.items():
        assert_same(expanded.by_version[key], part, where=key)


def assert_same(got: WindowMetrics, expected: WindowMetrics, *, where: str) -> None:
    """Equal counts; metrics equal up to the order floating-point sums were taken in."""
    counts = ("predictions", "labelled", "good", "bad", "latency_good", "latency_bad")
    assert [getattr(got, c) for c in counts] == [getattr(expected, c) for c in counts], where
    for part in ("realized", "estimated", "label_delay", "latency"):
        assert getattr(got, part) == pytest.approx(getattr(expected, part), rel=EXACT), where
