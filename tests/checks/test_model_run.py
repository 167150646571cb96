"""A model run end to end in the agent: windows, late labels, label health, SLI events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from osemn.agent.agent import Agent
from osemn.results import CheckKind, CheckResult, Status
from tests.agent.helpers import FrozenClock, make_agent
from tests.conftest import Warehouse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

# Ten predictions in [NOW - 1h, NOW): score, predicted class, true label, country, version.
PREDICTIONS = [
    (0.91, 1, 1, "DE", "v1"),
    (0.15, 0, 0, "DE", "v1"),
    (0.62, 1, 0, "DE", "v1"),
    (0.35, 0, 1, "DE", "v2"),
    (0.80, 1, 1, "FR", "v2"),
    (0.05, 0, 0, "FR", "v2"),
    (0.55, 1, 1, "FR", "v1"),
    (0.45, 0, 0, "US", "v1"),
    (0.70, 1, 0, "US", "v2"),
    (0.25, 0, 0, "JP", "v1"),
]


def tables(wh: Warehouse) -> tuple[sa.Table, sa.Table]:
    metadata = sa.MetaData()
    schema = wh.schema if wh.dialect != "duckdb" else None
    preds = sa.Table(
        "preds",
        metadata,
        sa.Column("request_id", sa.Integer),
        sa.Column("ts", sa.DateTime),
        sa.Column("p", sa.Double),
        sa.Column("predicted", sa.Integer),
        sa.Column("country", sa.String(8)),
        sa.Column("version", sa.String(8)),
        sa.Column("latency", sa.Double),
        schema=schema,
    )
    labels = sa.Table(
        "labels",
        metadata,
        sa.Column("request_id", sa.Integer),
        sa.Column("churned", sa.Integer),
        sa.Column("labelled_at", sa.DateTime),
        schema=schema,
    )
    metadata.create_all(wh.engine)
    return preds, labels


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def load_predictions(wh: Warehouse, preds: sa.Table) -> None:
    rows = [
        {
            "request_id": i,
            "ts": naive(NOW - HOUR + timedelta(minutes=2 + 5 * i)),
            "p": p,
            "predicted": yhat,
            "country": country,
            "version": version,
            "latency": (i + 1) / 20,  # 0.05 .. 0.5 s
        }
        for i, (p, yhat, _y, country, version) in enumerate(PREDICTIONS)
    ]
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(preds), rows)


def add_labels(wh: Warehouse, labels: sa.Table, ids: list[int], at: datetime) -> None:
    rows = [{"request_id": i, "churned": PREDICTIONS[i][2], "labelled_at": naive(at)} for i in ids]
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(labels), rows)


def write_config(tmp_path: Path, wh: Warehouse, extra: str = "", slos: bool = True) -> Path:
    path = tmp_path / "osemn.yaml"
    text = f"""
version: 1
agent:
  state: sqlite:///{tmp_path / "state.db"}
sources:
  wh:
    url: {wh.url}
datasets:
  preds: {{source: wh, table: {wh.qualified("preds")}, timestamp: ts}}
  labels: {{source: wh, table: {wh.qualified("labels")}, timestamp: labelled_at}}
models:
  churn:
    predictions:
      dataset: preds
      id: request_id
      score: p
      prediction: predicted
      version: version
      latency: latency
      segments: [country]
    labels: {{dataset: labels, id: request_id, label: churned}}
    task: binary
    window: 1h
    relabel_windows: 2
    latency_threshold: 0.3
    top_k: 2
{extra}"""
    if slos:
        text += """
slos:
  - {name: churn-accurate, model: churn, sli: accuracy, objective: 90%}
  - {name: churn-fast, model: churn, sli: latency, objective: 90%}
"""
    path.write_text(text)
    return path


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    assert all(r.kind is CheckKind.MODEL and r.dataset == "churn" for r in results)
    return {r.check: r for r in results}


def sklearn_binary(ids: list[int]) -> dict[str, float]:
    y = [PREDICTIONS[i][2] for i in ids]
    yhat = [PREDICTIONS[i][1] for i in ids]
    p = [PREDICTIONS[i][0] for i in ids]
    return {
        "accuracy": accuracy_score(y, yhat),
        "precision": precision_score(y, yhat),
        "recall": recall_score(y, yhat),
        "f1": f1_score(y, yhat),
        "auc": roc_auc_score(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier_score_loss(y, p),
    }


def realized(result: CheckResult, metric: str, segment: str = "all") -> float | None:
    return result.measurement("model_metric", metric=metric, kind="realized", segment=segment)


def events(agent: Agent) -> dict[tuple[str, str], int]:
    assert agent.slos is not None
    return dict(agent.slos.totals)


def test_late_labels_update_a_window_and_events_count_once(
    duckdb_or_pg: Warehouse, tmp_path: Path
) -> None:
    wh = duckdb_or_pg
    preds, labels = tables(wh)
    load_predictions(wh, preds)
    early = [0, 3, 8]  # 30% coverage at the first run
    add_labels(wh, labels, early, NOW - timedelta(minutes=10))
    clock = FrozenClock(NOW)
    agent = make_agent(write_config(tmp_path, wh), clock, wh=wh)
    try:
        first = by_check(agent.run_model("churn"))
        labels_result = first["model:labels"]
        assert labels_result.status is Status.PASS
        assert labels_result.measurement("predictions") == 10
        assert labels_result.measurement("label_coverage_ratio") == pytest.approx(0.3)
        assert labels_result.details is not None
        assert labels_result.details["window_start"] == (NOW - HOUR).isoformat()
        assert labels_result.details["window_end"] == NOW.isoformat()
        # Label delay: label time minus prediction time, 48, 33 and 8 minutes.
        delays = {
            q: labels_result.measurement("label_delay_seconds", percentile=q)
            for q in ("50", "95", "100")
        }
        assert delays["50"] == pytest.approx(33 * 60)
        assert delays["100"] == pytest.approx(48 * 60)
        expected = sklearn_binary(early)
        for metric in ("accuracy", "precision", "recall", "f1", "log_loss", "brier"):
            result = first[f"model:{metric}"]
            assert result.status is Status.PASS, metric
            assert realized(result, metric) == pytest.approx(expected[metric], abs=1e-9), metric
        assert realized(first["model:auc"], "auc") == pytest.approx(expected["auc"], abs=1e-3)
        # Seven unlabelled predictions: accuracy is also estimated from their scores.
        estimated = first["model:accuracy"].measurement(
            "model_metric", metric="accuracy", kind="estimated", segment="all"
        )
        unlabelled = [i for i in range(10) if i not in early]
        expected_acc = sum(
            PREDICTIONS[i][0] if PREDICTIONS[i][1] == 1 else 1 - PREDICTIONS[i][0]
            for i in unlabelled
        ) / len(unlabelled)
        assert estimated == pytest.approx(expected_acc)
        # The first run counts the labels that arrived within one window.
        good = sum(PREDICTIONS[i][1] == PREDICTIONS[i][2] for i in early)
        totals = events(agent)
        assert totals[("churn-accurate", "good")] == good
        assert totals[("churn-accurate", "bad")] == len(early) - good
        # Latency: 0.05 .. 0.5 s, threshold 0.3 s: six under it, four over.
        assert totals[("churn-fast", "good")] == 6
        assert totals[("churn-fast", "bad")] == 4
        assert first["model:latency"].failed_rows == 4
        assert first["model:window-1"].status is Status.INSUFFICIENT_DATA

        # The rest of the labels land; an hour later that window is window-1.
        late = [i for i in range(10) if i not in early]
        add_labels(wh, labels, late, NOW + timedelta(minutes=30))
        clock.advance(HOUR)
        second = by_check(agent.run_model("churn"))
        assert second["model:accuracy"].status is Status.INSUFFICIENT_DATA
        assert second["model:labels"].status is Status.INSUFFICIENT_DATA
        window = second["model:window-1"]
        assert window.status is Status.PASS
        assert window.details is not None
        assert window.details["window_start"] == (NOW - HOUR).isoformat()
        assert window.details["label_coverage_ratio"] == 1.0
        full = sklearn_binary(list(range(10)))
        for metric in ("accuracy", "precision", "recall", "f1", "log_loss", "brier"):
            assert window.details["realized"][metric] == pytest.approx(full[metric]), metric
        assert window.details["realized"]["auc"] == pytest.approx(full["auc"], abs=1e-3)
        # Each labelled prediction is one event, counted in the run after its label landed.
        all_good = sum(p[1] == p[2] for p in PREDICTIONS)
        totals = events(agent)
        assert totals[("churn-accurate", "good")] == all_good
        assert totals[("churn-accurate", "bad")] == 10 - all_good
        assert (totals[("churn-fast", "good")], totals[("churn-fast", "bad")]) == (6, 4)

        # Nothing new: the same run again adds no event.
        agent.run_model("churn")
        assert events(agent) == totals
    finally:
        agent.close()


def test_segments_versions_bounds_and_metrics(duckdb_or_pg: Warehouse, tmp_path: Path) -> None:
    wh = duckdb_or_pg
    preds, labels = tables(wh)
    load_predictions(wh, preds)
    add_labels(wh, labels, list(range(10)), NOW - timedelta(minutes=1))
    path = write_config(tmp_path, wh, "    min: {accuracy: 0.9}\n    max: {brier: 0.5}\n")
    agent = make_agent(path, FrozenClock(NOW), wh=wh)
    try:
        results = by_check(agent.run_model("churn"))
        accuracy = results["model:accuracy"]
        assert accuracy.status is Status.FAIL
        assert accuracy.note == "accuracy 0.7 is below the minimum 0.9"
        assert results["model:brier"].status is Status.PASS
        # Top 2 countries (DE 4, FR 3), the rest folded into "other"; both versions.
        segments = {dict(m.labels)["segment"] for m in accuracy.measurements}
        assert segments == {
            "all",
            "country=DE",
            "country=FR",
            "country=other",
            "version=v1",
            "version=v2",
        }
        de = [0, 1, 2, 3]
        assert realized(accuracy, "accuracy", "country=DE") == pytest.approx(
            accuracy_score([PREDICTIONS[i][2] for i in de], [PREDICTIONS[i][1] for i in de])
        )
        v2 = [i for i, p in enumerate(PREDICTIONS) if p[4] == "v2"]
        assert realized(accuracy, "accuracy", "version=v2") == pytest.approx(
            accuracy_score([PREDICTIONS[i][2] for i in v2], [PREDICTIONS[i][1] for i in v2])
        )
        scrape = generate_latest(agent.registry).decode()
        assert (
            'osemn_model_metric{kind="realized",metric="accuracy",model="churn",segment="all"} 0.7'
            in scrape
        )
        assert 'osemn_model_label_coverage_ratio{model="churn"} 1.0' in scrape
        assert 'osemn_model_predictions{model="churn"} 10.0' in scrape
        assert 'osemn_model_latency_seconds{model="churn",percentile="99"}' in scrape
        assert 'osemn_model_label_delay_seconds{model="churn",percentile="50"}' in scrape
        doc = agent.results_document()
        checks = {(r["dataset"], r["kind"], r["check"]) for r in doc["results"]}
        assert ("churn", "model", "model:accuracy") in checks
        assert ("churn", "model", "model:window-2") in checks
    finally:
        agent.close()


def test_empty_window_is_insufficient_data_and_bad_input_is_an_error(
    duckdb_or_pg: Warehouse, tmp_path: Path
) -> None:
    wh = duckdb_or_pg
    preds, labels = tables(wh)
    agent = make_agent(write_config(tmp_path, wh, slos=False), FrozenClock(NOW), wh=wh)
    try:
        results = agent.run_model("churn")
        assert {r.status for r in results} == {Status.INSUFFICIENT_DATA}
        assert len(results) == 8 + 1 + 1 + 2  # metrics, labels, latency, two past windows

        # A score outside [0, 1] in the current window: every check errors, saying why.
        load_predictions(wh, preds)
        with wh.engine.begin() as conn:
            conn.execute(sa.update(preds).where(preds.c.request_id == 4).values(p=1.5))
        add_labels(wh, labels, [4], NOW - timedelta(minutes=1))
        results = agent.run_model("churn")
        assert {r.status for r in results} == {Status.ERROR}
        assert all("a score outside [0, 1]" in (r.error or "") for r in results)
    finally:
        agent.close()


def test_a_missing_column_names_the_table_and_what_it_has(
    duckdb_or_pg: Warehouse, tmp_path: Path
) -> None:
    wh = duckdb_or_pg
    tables(wh)
    path = write_config(tmp_path, wh, slos=False)
    path.write_text(path.read_text().replace("segments: [country]", "segments: [region]"))
    agent = make_agent(path, FrozenClock(NOW), wh=wh)
    try:
        results = agent.run_model("churn")
        assert {r.status for r in results} == {Status.ERROR}
        assert "'region'" in (results[0].error or "")
        assert "country" in (results[0].error or "")
    finally:
        agent.close()


def test_osemn_check_runs_models_without_taking_their_events(
    duckdb_or_pg: Warehouse, tmp_path: Path
) -> None:
    wh = duckdb_or_pg
    preds, labels = tables(wh)
    load_predictions(wh, preds)
    add_labels(wh, labels, list(range(10)), NOW - timedelta(minutes=1))
    path = write_config(tmp_path, wh)
    config_text = path.read_text()
    from osemn.config import parse_config

    once = Agent(
        parse_config(config_text, path=str(path)),
        clock=FrozenClock(NOW),
        engines={"wh": wh.engine} if wh.dialect == "duckdb" else None,
        record_sli=False,
    )
    once.open()
    try:
        results = once.run_once()
        models = [r for r in results if r.kind is CheckKind.MODEL]
        assert {r.check for r in models} >= {"model:accuracy", "model:labels"}
        assert once.state.get_watermark("model:churn") is None
    finally:
        once.close()
    agent = make_agent(path, FrozenClock(NOW), wh=wh)
    try:
        agent.run_model("churn")
        totals: dict[Any, int] = events(agent)
        assert totals[("churn-accurate", "good")] + totals[("churn-accurate", "bad")] == 10
    finally:
        agent.close()
