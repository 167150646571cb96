"""osemn.yaml: the contract keys, interpolation, and errors that point at file:line: key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osemn._units import format_duration, parse_duration, parse_ratio
from osemn.config import load_config, parse_config
from osemn.errors import ConfigError

GOOD = """\
version: 1
agent:
  state: sqlite:///osemn-state.db
  listen: 127.0.0.1:9108
sources:
  warehouse:
    url: ${WAREHOUSE_URL:-duckdb:///wh.duckdb}
    max_concurrency: 2
    statement_timeout: 60s
datasets:
  orders:
    source: warehouse
    table: public.orders
    timestamp: created_at
    schedule: every 5m
    schema: schemas/orders.yaml
    freshness: {max_age: 15m}
    volume: {window: 1h, min_rows: 100}
    failures: {sample: 5, mask: [email]}
"""


def test_contract_example_parses() -> None:
    config = parse_config(GOOD, env={})
    orders = config.datasets["orders"]
    assert orders.schedule.interval == timedelta(minutes=5)
    assert orders.freshness is not None and orders.freshness.max_age == timedelta(minutes=15)
    assert orders.volume is not None and orders.volume.min_rows == 100
    assert orders.failures.mask == ("email",)
    assert orders.schema_ref == "schemas/orders.yaml"
    assert config.sources["warehouse"].url == "duckdb:///wh.duckdb"
    assert config.agent.port == 9108


def test_env_interpolation_and_secret_hidden() -> None:
    env = {"WAREHOUSE_URL": "postgresql+psycopg://u:hunter2@db/x"}
    config = parse_config(GOOD, env=env)
    source = config.sources["warehouse"]
    assert source.url.endswith("@db/x")
    assert "hunter2" not in repr(source) and "hunter2" not in source.safe_url


def test_cron_schedule() -> None:
    config = parse_config(GOOD.replace("every 5m", "'*/5 * * * *'"), env={})
    assert config.datasets["orders"].schedule.cron == "*/5 * * * *"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "max_age: 15m",
            "max_age: 15 minutes",
            "osemn.yaml:17: datasets.orders.freshness.max_age: '15 minutes' is not a duration",
        ),
        ("table:", "tabel:", "datasets.orders.tabel: unknown key in orders; valid keys: source"),
        (
            "source: warehouse",
            "source: wh",
            "osemn.yaml:12: datasets.orders.source: unknown source"
            " 'wh'; defined sources: 'warehouse'",
        ),
        (
            "${WAREHOUSE_URL:-duckdb:///wh.duckdb}",
            "${WAREHOUSE_URL}",
            "osemn.yaml:7: sources.warehouse.url: environment variable WAREHOUSE_URL is not set",
        ),
        (
            "every 5m",
            "sometimes",
            "osemn.yaml:15: datasets.orders.schedule: 'sometimes' is not a "
            "schedule; use 'every 5m' or a cron",
        ),
        ("every 5m", "'61 * * * *'", "is not a valid cron expression"),
        (
            "min_rows: 100",
            "min_rows: -1",
            "datasets.orders.volume.min_rows: Input should be greater than or equal to 0",
        ),
        ("version: 1", "version: 2", "osemn.yaml:1: version: unsupported version 2"),
        ("listen: 127.0.0.1:9108", "listen: nowhere", "agent.listen: 'nowhere' is not host:port"),
        ("max_concurrency: 2", "max_concurrency: 0", "sources.warehouse.max_concurrency"),
        ("    timestamp: created_at\n", "", "freshness needs `timestamp:`"),
        ("url: ${WAREHOUSE_URL:-duckdb:///wh.duckdb}", "url: not a url", "is not a SQLAlchemy URL"),
    ],
)
def test_bad_config_names_file_line_key(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD.replace(old, new, 1), env={})
    assert expected in str(info.value)


def test_malformed_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"osemn.yaml:3: not valid YAML"):
        parse_config("version: 1\nsources:\n  a: b: c\n", env={})


def test_duplicate_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"osemn.yaml:3: version: duplicate key"):
        parse_config("version: 1\nsources: {}\nversion: 1\n", env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_duration_round_trip(n: int, unit: str) -> None:
    value = parse_duration(f"{n}{unit}")
    assert parse_duration(format_duration(value)) == value


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_percentages(p: float) -> None:
    assert parse_ratio(f"{p}%") == pytest.approx(p / 100)


@pytest.mark.parametrize("bad", ["101%", "-1", "abc", True, None])
def test_bad_ratio(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_ratio(bad)


def test_an_empty_value_is_a_config_error_not_a_yaml_crash() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("version: 1\nsources:\n  w:\n    url:\n")
    assert str(err.value).startswith("osemn.yaml:4: sources.w.url:")


_SLO_BASE = """version: 1
sources: {w: {url: "duckdb:///x.duckdb"}}
datasets:
  orders: {source: w, table: orders, timestamp: ts, freshness: {max_age: 1h}, schedule: every 1d}
"""


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "slos:\n  - {name: a, dataset: nope, sli: freshness, objective: 99%}\n",
            "osemn.yaml:6: slos.0.dataset: unknown dataset 'nope'; defined datasets: 'orders'",
        ),
        (
            "slos:\n  - {name: a, dataset: orders, sli: speed, objective: 99%}\n",
            "osemn.yaml:6: slos.0.sli: Input should be 'freshness', 'validity', 'completeness',"
            " 'volume', 'checks', 'drift', 'accuracy', 'latency' or 'availability'",
        ),
        (
            "slos:\n  - {name: a, dataset: orders, sli: freshness, objective: 100%}\n",
            "osemn.yaml:6: slos.0.objective: objective 1 leaves no usable error budget; use a "
            "value strictly between 0% and 100%, e.g. 99.5%",
        ),
        (
            "slos:\n  - {name: a, dataset: orders, sli: freshness, objective: 0}\n",
            "osemn.yaml:6: slos.0.objective: objective 0 leaves no usable error budget",
        ),
        (
            "slos:\n  - {name: a, dataset: orders, sli: freshness, objective: 99%, window: 1d}\n",
            "osemn.yaml:6: slos.0.window: window is shorter than two check intervals of 'orders'"
            " (every 1d); lengthen the window or check more often",
        ),
        (
            "slos:\n  - {name: a, dataset: orders, sli: volume, objective: 99%}\n",
            "osemn.yaml:6: slos.0.sli: sli volume needs a `volume:` block on dataset 'orders'",
        ),
        (
            "alerting:\n  receivers:\n    h: {type: webhook, url: 'ftp://x/y', secret: s}\n",
            "osemn.yaml:7: alerting.receivers.h.url: 'ftp://x/y' is not an http(s) URL",
        ),
        (
            "alerting:\n  receivers:\n    h: {type: webhook, url: 'https://x/y'}\n",
            "osemn.yaml:7: alerting.receivers.h.secret: required key is missing",
        ),
        (
            "alerting:\n  receivers:\n    h: {type: webhook, url: 'https://x/y', secret: ''}\n",
            "osemn.yaml:7: alerting.receivers.h.secret: is empty; set it, e.g. secret: "
            "${HOOK_SECRET}",
        ),
        (
            "alerting:\n  receivers:\n    h: {type: webhook, url: 'https://x', secret: s}\n"
            "  routes:\n    - {receiver: pager}\n",
            "osemn.yaml:9: alerting.routes.0.receiver: unknown receiver 'pager'; defined "
            "receivers: 'h'",
        ),
        (
            "alerting:\n  receivers:\n    openlineage: {type: file, path: a.jsonl}\n",
            "osemn.yaml:7: alerting.receivers: the receiver name 'openlineage' is reserved for "
            "OpenLineage events",
        ),
    ],
)
def test_bad_slos_and_receivers_are_config_errors(tail: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_SLO_BASE + tail, env={})
    assert str(err.value).startswith(expected)


_MODEL_BASE = """version: 1
sources: {w: {url: "duckdb:///x.duckdb"}, v: {url: "duckdb:///y.duckdb"}}
datasets:
  preds: {source: w, table: preds, timestamp: ts}
  labels: {source: w, table: labels, timestamp: ts}
  untimed: {source: w, table: labels}
  elsewhere: {source: v, table: labels, timestamp: ts}
models:
  churn:
    predictions: {dataset: preds, id: rid, score: p, prediction: yhat}
    labels: {dataset: labels, id: rid, label: y}
    task: binary
"""


def test_a_model_parses_with_its_defaults() -> None:
    config = parse_config(_MODEL_BASE, env={})
    model = config.models["churn"]
    assert model.window == timedelta(days=1)
    assert model.relabel_windows == 3
    assert model.schedule.interval == timedelta(minutes=5)
    assert model.selected_metrics == (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "log_loss",
        "brier",
        "ece",
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "task: binary",
            "task: ranking",
            "osemn.yaml:12: models.churn.task: Input should be 'binary', 'multiclass' or "
            "'regression'",
        ),
        (
            "task: binary",
            "task: binary\n    metrics: [accuracy, mae]",
            "osemn.yaml:10: models.churn: metrics 'mae' do not apply to task binary; use some of:",
        ),
        (
            "task: binary",
            "task: binary\n    min: {r2: 0.5}",
            "osemn.yaml:10: models.churn: min names 'r2', not a reported metric",
        ),
        (
            "score: p, prediction: yhat",
            "version: v",
            "osemn.yaml:10: models.churn: a binary model needs predictions.score, "
            "predictions.prediction or both",
        ),
        (
            "score: p, prediction: yhat}\n    labels: {dataset: labels, id: rid, label: y}\n"
            "    task: binary",
            "prediction: yhat}\n    labels: {dataset: labels, id: rid, label: y}\n"
            "    task: binary\n    metrics: [accuracy, auc]",
            "osemn.yaml:10: models.churn: metrics auc need predictions.score (the probability)",
        ),
        (
            "task: binary",
            "task: regression\n    tolerance: -1",
            "osemn.yaml:13: models.churn.tolerance: Input should be greater than or equal to 0",
        ),
        (
            "task: binary",
            "task: binary\n    tolerance: 1",
            "osemn.yaml:10: models.churn: tolerance only applies to task regression",
        ),
        (
            "task: binary",
            "task: binary\n    latency_threshold: 200ms",
            "osemn.yaml:10: models.churn: latency_threshold needs predictions.latency",
        ),
        (
            "task: binary",
            "task: binary\n    windw: 1d",
            "osemn.yaml:13: models.churn.windw: unknown key in churn; valid keys: predictions,",
        ),
        (
            "id: rid, score: p",
            "id: rid, scre: q, score: p",
            "osemn.yaml:10: models.churn.predictions.scre: unknown key in predictions; "
            "valid keys: dataset, id, score",
        ),
        (
            "{dataset: preds,",
            "{dataset: nope,",
            "osemn.yaml:10: models.churn.predictions.dataset: unknown dataset 'nope'",
        ),
        (
            "{dataset: labels,",
            "{dataset: untimed,",
            "osemn.yaml:11: models.churn.labels.timestamp: needs the time a label became known: "
            "set labels.timestamp, or `timestamp:` on dataset 'untimed'",
        ),
        (
            "{dataset: labels,",
            "{dataset: elsewhere,",
            "osemn.yaml:11: models.churn.labels.dataset: labels live in source 'v' and "
            "predictions in 'w'",
        ),
        (
            "  churn:\n",
            "  preds:\n",
            "osemn.yaml:10: models.preds: model 'preds' has the name of a dataset",
        ),
    ],
)
def test_bad_models_are_config_errors(old: str, new: str, expected: str) -> None:
    text = _MODEL_BASE.replace(old, new, 1)
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert str(err.value).startswith(expected)


@pytest.mark.parametrize(
    ("slo", "expected"),
    [
        (
            "{name: a, model: nope, sli: accuracy, objective: 99%}",
            "osemn.yaml:14: slos.0.model: unknown model 'nope'; defined models: 'churn'",
        ),
        (
            "{name: a, model: churn, dataset: preds, sli: freshness, objective: 99%}",
            "osemn.yaml:14: slos.0.sli: sli freshness is about a dataset; a model's SLIs are "
            "accuracy and latency",
        ),
        (
            "{name: a, model: churn, dataset: preds, sli: accuracy, objective: 99%}",
            "osemn.yaml:14: slos.0.dataset: sli accuracy is about model 'churn'; remove `dataset:`",
        ),
        (
            "{name: a, model: churn, sli: latency, objective: 99%}",
            "osemn.yaml:14: slos.0.sli: sli latency needs predictions.latency and "
            "latency_threshold on model 'churn'",
        ),
        (
            "{name: a, model: churn, sli: accuracy, objective: 99%, window: 1d}",
            None,
        ),
    ],
)
def test_model_slos_are_checked(slo: str, expected: str | None) -> None:
    text = _MODEL_BASE + f"slos:\n  - {slo}\n"
    if expected is None:
        assert parse_config(text, env={}).slo_list[0].model == "churn"
        return
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert str(err.value).startswith(expected)


def test_accuracy_of_a_regression_model_needs_a_tolerance() -> None:
    text = _MODEL_BASE.replace("task: binary", "task: regression").replace(
        "score: p, prediction: yhat", "prediction: yhat"
    )
    slo = "slos:\n  - {name: a, model: churn, sli: accuracy, objective: 99%}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text + slo, env={})
    assert str(err.value).startswith(
        "osemn.yaml:14: slos.0.sli: sli accuracy of regression model 'churn' needs `tolerance:`"
    )
    ok = parse_config(text.replace("task: regression", "task: regression\n    tolerance: 2") + slo)
    assert ok.models["churn"].tolerance == 2


def test_lineage_block() -> None:
    config = parse_config(
        GOOD + "lineage:\n  schedule: every 2h\n  roots: [orders]\n  dbt_manifest: target/m.json\n"
        "  openlineage: {namespace: dq, transport: {type: file, log_file_path: ev.jsonl}}\n",
        env={},
    )
    assert config.lineage is not None
    assert config.lineage.schedule.interval == timedelta(hours=2)
    assert config.lineage.roots == ("orders",)
    assert config.lineage.openlineage is not None
    assert config.lineage.openlineage.transport == {"type": "file", "log_file_path": "ev.jsonl"}
    defaults = parse_config(GOOD + "lineage: {}\n", env={}).lineage
    assert defaults is not None and defaults.schedule.interval == timedelta(hours=1)
    assert parse_config(GOOD, env={}).lineage is None


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("lineage: {roots: [nope]}", "osemn.yaml:20: lineage.roots.0: unknown dataset 'nope'"),
        ("lineage: {sources: [nope]}", "osemn.yaml:20: lineage.sources.0: unknown source 'nope'"),
        (
            "lineage: {scheme: every 1h}",
            "lineage.scheme: unknown key in lineage; valid keys: "
            "schedule, sources, schemas, roots, dbt_manifest",
        ),
        (
            "lineage: {openlineage: {url: x}}",
            "lineage.openlineage.url: unknown key in openlineage; valid keys: transport, namespace",
        ),
        ("lineage: {schedule: sometimes}", "lineage.schedule: 'sometimes' is not a schedule"),
    ],
)
def test_bad_lineage_block(block: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(GOOD + block + "\n", env={})
    assert expected in str(raised.value)


_FEAST_BASE = """version: 1
sources:
  wh: {url: "duckdb:///x.duckdb"}
  features:
    feast: feature_repo
    probe: {interval: 10s}
datasets:
  orders: {source: wh, table: orders}
"""


def test_a_feast_source_beside_a_warehouse(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "osemn.yaml"
    path.parent.mkdir()
    views = "    feature_views: {driver_stats: {freshness: 2h, schema: drivers.yaml}}\n"
    path.write_text(
        _FEAST_BASE.replace("datasets:", views + "datasets:")
        + "slos:\n  - {name: up, sli: availability, source: features, objective: 99.9%}\n"
    )
    config = load_config(path)
    assert list(config.warehouse_sources) == ["wh"]
    feast = config.feast_sources["features"]
    assert feast.repo_path(config.base_dir) == tmp_path / "conf" / "feature_repo"
    assert feast.probe.interval == timedelta(seconds=10)
    assert feast.view("driver_stats").freshness == timedelta(hours=2)
    (slo,) = config.slo_list
    assert (slo.source, slo.feature_view, slo.subject) == ("features", None, "features")


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "    bogus: 1\n",
            "osemn.yaml:7: sources.features.bogus: unknown key in features; valid keys: feast, "
            "interval, max_concurrency, statement_timeout, probe, parity, feature_views",
        ),
        (
            "    feature_views: {driver_stats: {ttl: 1h}}\n",
            "osemn.yaml:7: sources.features.feature_views.driver_stats.ttl: unknown key in "
            "driver_stats; valid keys: freshness, materialization, min_completeness, "
            "parity_tolerance, schema",
        ),
        (
            "  views: {source: features, table: driver_stats}\n",
            "osemn.yaml:9: datasets.views.source: source 'features' is a Feast repo: its feature "
            "views are checked as datasets without a `datasets:` entry",
        ),
        (
            "slos:\n  - {name: up, sli: availability, source: wh, objective: 99%}\n",
            "osemn.yaml:10: slos.0.source: unknown Feast source 'wh'; sli availability is "
            "measured by the online-store probes of a `feast:` source; defined Feast sources: "
            "'features'",
        ),
        (
            "slos:\n  - {name: up, sli: availability, dataset: orders, objective: 99%}\n",
            "osemn.yaml:10: slos.0: sli availability needs `source:`",
        ),
        (
            "slos:\n  - {name: up, sli: checks, dataset: orders, source: features, "
            "objective: 99%}\n",
            "osemn.yaml:10: slos.0: `source:` and `feature_view:` only apply to sli availability",
        ),
    ],
)
def test_bad_feast_sources_are_config_errors(tail: str, expected: str) -> None:
    text = _FEAST_BASE.replace(
        "    probe: {interval: 10s}\n", "    probe: {interval: 10s}\n" + tail
    )
    if not tail.startswith("    "):
        text = _FEAST_BASE + tail
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert str(err.value).startswith(expected), str(err.value)


def test_a_source_with_neither_url_nor_feast() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("version: 1\nsources:\n  s: {max_concurrency: 2}\n", env={})
    assert str(err.value) == (
        "osemn.yaml:3: sources.s.url: a source needs `url:` (a warehouse's SQLAlchemy URL) or "
        "`feast:` (a Feast repo folder with feature_store.yaml)"
    )
