"""MetricsCollector against a real registry, the real parser and the real promtool."""

from __future__ import annotations

import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from osemn.exporters.metrics import DURATION_BUCKETS, MetricsCollector
from osemn.results import CheckKind, CheckResult, Measurement, Status

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FrozenClock:
    """Unix time that only moves when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def result(
    check: str,
    *,
    dataset: str = "orders",
    kind: CheckKind = CheckKind.SCHEMA,
    status: Status = Status.PASS,
    rows: int | None = 100,
    failed_rows: int | None = 0,
    duration: float = 0.2,
    finished_at: datetime = T0,
    measurements: tuple[Measurement, ...] = (),
) -> CheckResult:
    return CheckResult(
        dataset=dataset,
        kind=kind,
        check=check,
        status=status,
        rows=rows,
        failed_rows=failed_rows,
        duration_seconds=duration,
        finished_at=finished_at,
        measurements=measurements,
    )


def freshness(newest: datetime, *, dataset: str = "orders", duration: float = 0.2) -> CheckResult:
    m = Measurement(name="newest_row_timestamp_seconds", value=newest.timestamp())
    return result(
        "freshness",
        dataset=dataset,
        kind=CheckKind.FRESHNESS,
        rows=None,
        failed_rows=None,
        duration=duration,
        measurements=(m,),
    )


def volume(rows: int, *, dataset: str = "orders", window: str = "1h") -> CheckResult:
    m = Measurement(name="rows", value=float(rows), labels=(("window", window),))
    return result("volume", dataset=dataset, kind=CheckKind.VOLUME, rows=rows, measurements=(m,))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0.timestamp())


@pytest.fixture
def collector(clock: FrozenClock) -> MetricsCollector:
    return MetricsCollector(version="1.2.3", clock=clock)


@pytest.fixture
def registry(collector: MetricsCollector) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(collector)
    return reg


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def promtool_check(exposition: bytes) -> subprocess.CompletedProcess[bytes]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (or run .ci/run)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )


def test_build_info_and_source_up(registry: CollectorRegistry, collector: MetricsCollector) -> None:
    assert value(registry, "osemn_build_info", version="1.2.3") == 1
    collector.set_source_up("warehouse", True)
    collector.set_source_up("features", False)
    assert value(registry, "osemn_source_up", source="warehouse") == 1
    assert value(registry, "osemn_source_up", source="features") == 0
    collector.set_source_up("features", True)
    assert value(registry, "osemn_source_up", source="features") == 1


def test_run_counters_accumulate_and_start_at_zero(
    registry: CollectorRegistry, collector: MetricsCollector
) -> None:
    collector.observe([result("id:not_null"), result("amount:ge(0)", status=Status.FAIL)])
    # every status exists from the first run, so increase() sees the first failure
    assert (
        value(
            registry, "osemn_check_runs_total", dataset="orders", check="id:not_null", status="fail"
        )
        == 0
    )
    collector.observe([result("id:not_null"), result("amount:ge(0)", status=Status.ERROR)])
    collector.observe([result("id:not_null", status=Status.FAIL), result("amount:ge(0)")])

    def runs(check: str, status: str) -> float | None:
        return value(
            registry, "osemn_check_runs_total", dataset="orders", check=check, status=status
        )

    assert (runs("id:not_null", "pass"), runs("id:not_null", "fail")) == (2, 1)
    assert runs("id:not_null", "error") == 0
    assert [runs("amount:ge(0)", s) for s in ("pass", "fail", "error")] == [1, 1, 1]


def test_duration_histogram_one_observation_per_fused_kind(
    registry: CollectorRegistry, collector: MetricsCollector
) -> None:
    fused = [result(f"c{i}", duration=0.4) for i in range(5)]
    collector.observe([*fused, freshness(T0, duration=0.02), volume(10)])
    collector.observe([result("c0", duration=42.0), freshness(T0, duration=0.02)])

    def hist(suffix: str, kind: str, **extra: str) -> float | None:
        return value(
            registry, f"osemn_check_duration_seconds_{suffix}", dataset="orders", kind=kind, **extra
        )

    assert hist("count", "schema") == 2  # five fused results counted once per run
    assert hist("sum", "schema") == pytest.approx(42.4)
    assert hist("bucket", "schema", le="0.5") == 1
    assert hist("bucket", "schema", le="30.0") == 1
    assert hist("bucket", "schema", le="60.0") == 2
    assert hist("bucket", "schema", le="+Inf") == 2
    assert hist("count", "freshness") == 2
    assert hist("bucket", "freshness", le="0.025") == 2
    assert hist("count", "volume") == 1
    assert hist("bucket", "volume", le="0.01") == 0
    assert DURATION_BUCKETS[0] == 0.01 and DURATION_BUCKETS[-1] == 600.0


def test_last_run_gauges(registry: CollectorRegistry, collector: MetricsCollector) -> None:
    collector.observe([result("a", rows=100, failed_rows=3, status=Status.FAIL), result("b")])
    assert value(registry, "osemn_check_rows", dataset="orders", check="a") == 100
    assert value(registry, "osemn_check_failed_rows", dataset="orders", check="a") == 3
    assert value(registry, "osemn_check_success", dataset="orders", check="a") == 0
    assert value(registry, "osemn_check_success", dataset="orders", check="b") == 1

    # an error has no counts: its rows series go away, success is 0
    collector.observe([result("a"), result("b", status=Status.ERROR, rows=None, failed_rows=None)])
    assert value(registry, "osemn_check_success", dataset="orders", check="a") == 1
    assert value(registry, "osemn_check_failed_rows", dataset="orders", check="a") == 0
    assert value(registry, "osemn_check_success", dataset="orders", check="b") == 0
    assert value(registry, "osemn_check_rows", dataset="orders", check="b") is None
    assert value(registry, "osemn_check_failed_rows", dataset="orders", check="b") is None


def test_last_run_and_last_success_timestamps(
    registry: CollectorRegistry, collector: MetricsCollector
) -> None:
    t1, t2 = T0, T0 + timedelta(minutes=5)
    collector.observe([result("a", finished_at=t1), result("b", finished_at=t1), volume(5)])
    collector.observe(
        [result("a", finished_at=t2), result("b", finished_at=t2, status=Status.FAIL)]
    )

    def stamp(name: str, kind: str) -> float | None:
        return value(
            registry, f"osemn_check_last_{name}_timestamp_seconds", dataset="orders", kind=kind
        )

    assert stamp("run", "schema") == t2.timestamp()
    assert stamp("success", "schema") == t1.timestamp()  # one rule failed at t2
    assert stamp("run", "volume") == stamp("success", "volume") == T0.timestamp()
    assert stamp("run", "freshness") is None


def test_freshness_is_computed_at_scrape_time(
    registry: CollectorRegistry, collector: MetricsCollector, clock: FrozenClock
) -> None:
    collector.observe([freshness(T0 - timedelta(minutes=10))])
    assert value(registry, "osemn_dataset_freshness_seconds", dataset="orders") == 600
    clock.now += 90  # no new run: the data keeps ageing
    assert value(registry, "osemn_dataset_freshness_seconds", dataset="orders") == 690
    collector.observe([freshness(T0 + timedelta(seconds=60))])
    assert value(registry, "osemn_dataset_freshness_seconds", dataset="orders") == 30


def test_measurements_become_their_metrics(
    registry: CollectorRegistry, collector: MetricsCollector
) -> None:
    schema = result(
        "email:not_null",
        measurements=(
            Measurement(name="completeness_ratio", value=0.98, labels=(("column", "email"),)),
            Measurement(name="completeness_ratio", value=1.0, labels=(("column", "id"),)),
            Measurement(name="validity_ratio", value=0.95),
            Measurement(name="unmapped_statistic", value=7.0),
        ),
    )
    collector.observe([schema, volume(1234, window="1h")])
    assert (
        value(registry, "osemn_column_completeness_ratio", dataset="orders", column="email") == 0.98
    )
    assert value(registry, "osemn_column_completeness_ratio", dataset="orders", column="id") == 1
    assert value(registry, "osemn_dataset_validity_ratio", dataset="orders") == 0.95
    assert value(registry, "osemn_dataset_rows", dataset="orders", window="1h") == 1234
    assert b"unmapped_statistic" not in generate_latest(registry)


def test_measurement_with_wrong_labels_is_not_exported(
    registry: CollectorRegistry, collector: MetricsCollector, caplog: pytest.LogCaptureFixture
) -> None:
    collector.observe(
        [result("x", measurements=(Measurement(name="completeness_ratio", value=0.5),))]
    )
    assert b"osemn_column_completeness_ratio{" not in generate_latest(registry)
    assert "completeness_ratio" in caplog.text and "column" in caplog.text


def test_label_values_are_escaped(registry: CollectorRegistry, collector: MetricsCollector) -> None:
    nasty = 'ord"ers\\ \n «ünïcødé» 📦'
    check = 'note:str_matches("^a\\"b$")'
    collector.observe([result(check, dataset=nasty), freshness(T0, dataset=nasty)])
    text = generate_latest(registry).decode()
    assert 'dataset="ord\\"ers\\\\ \\n «ünïcødé» 📦"' in text
    # the official parsers give back exactly what went in
    labels = {
        (s.labels.get("dataset"), s.labels.get("check"))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "dataset" in s.labels
    }
    assert (nasty, check) in labels
    om = generate_openmetrics(registry).decode()
    om_datasets = {s.labels.get("dataset") for f in parse_om(om) for s in f.samples}
    assert nasty in om_datasets
    assert promtool_check(text.encode()).returncode == 0


def test_promtool_finds_nothing(registry: CollectorRegistry, collector: MetricsCollector) -> None:
    collector.set_source_up("warehouse", False)
    collector.observe(
        [
            result("id:not_null"),
            result("amount:ge(0)", status=Status.FAIL, failed_rows=4),
            freshness(T0 - timedelta(hours=1)),
            volume(10),
            result(
                "email:not_null",
                measurements=(
                    Measurement(
                        name="completeness_ratio", value=0.9, labels=(("column", "email"),)
                    ),
                    Measurement(name="validity_ratio", value=0.96),
                ),
            ),
        ]
    )
    done = promtool_check(generate_latest(registry))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"" and done.stderr == b"", (done.stdout + done.stderr).decode()


def test_every_family_has_help_text(
    registry: CollectorRegistry, collector: MetricsCollector
) -> None:
    collector.observe([result("a"), freshness(T0), volume(1)])
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert len(families) >= 13
    for family in families:
        assert family.name.startswith("osemn_")
        assert len(family.documentation) > 20, family.name


def test_registry_refuses_a_second_collector(collector: MetricsCollector) -> None:
    reg = CollectorRegistry()
    reg.register(collector)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        reg.register(MetricsCollector(version="other"))
    assert REGISTRY.get_sample_value("osemn_build_info", {"version": "1.2.3"}) is None


def test_concurrent_observe_and_collect(
    registry: CollectorRegistry, collector: MetricsCollector
) -> None:
    def runs(ds: str) -> None:
        for _ in range(200):
            collector.observe([result("a", dataset=ds), volume(1, dataset=ds)])

    threads = [threading.Thread(target=runs, args=(f"d{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        generate_latest(registry)
    for t in threads:
        t.join()
    for i in range(4):
        assert (
            value(registry, "osemn_check_runs_total", dataset=f"d{i}", check="a", status="pass")
            == 200
        )
        assert (
            value(registry, "osemn_check_duration_seconds_count", dataset=f"d{i}", kind="volume")
            == 200
        )


def model_run(segments: dict[str, float], coverage: float) -> list[CheckResult]:
    metric = tuple(
        Measurement(
            name="model_metric",
            value=v,
            labels=(("metric", "accuracy"), ("kind", "realized"), ("segment", s)),
        )
        for s, v in segments.items()
    )
    labels = (
        Measurement(name="predictions", value=40.0),
        Measurement(name="label_coverage_ratio", value=coverage),
        Measurement(name="label_delay_seconds", value=12.5, labels=(("percentile", "50"),)),
        Measurement(name="latency_seconds", value=0.2, labels=(("percentile", "99"),)),
    )
    return [
        result("model:accuracy", dataset="churn", kind=CheckKind.MODEL, measurements=metric),
        result("model:labels", dataset="churn", kind=CheckKind.MODEL, measurements=labels),
    ]


def test_model_metrics_carry_the_model_and_drop_segments_no_longer_in_the_top_k(
    collector: MetricsCollector, registry: CollectorRegistry
) -> None:
    collector.observe(model_run({"all": 0.8, "country=DE": 0.9, "country=FR": 0.7}, 0.5))
    collector.observe(model_run({"all": 0.75, "country=DE": 0.6}, 0.6))
    accuracy = {"model": "churn", "metric": "accuracy", "kind": "realized"}
    assert value(registry, "osemn_model_metric", **accuracy, segment="all") == 0.75
    assert value(registry, "osemn_model_metric", **accuracy, segment="country=DE") == 0.6
    assert value(registry, "osemn_model_metric", **accuracy, segment="country=FR") is None
    assert value(registry, "osemn_model_label_coverage_ratio", model="churn") == 0.6
    assert value(registry, "osemn_model_predictions", model="churn") == 40
    assert (
        value(registry, "osemn_model_label_delay_seconds", model="churn", percentile="50") == 12.5
    )
    assert value(registry, "osemn_model_latency_seconds", model="churn", percentile="99") == 0.2
    assert promtool_check(generate_latest(registry)).returncode == 0
