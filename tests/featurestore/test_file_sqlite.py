"""A local Feast repo: parquet FileSource, SQLite online store, materialized in the test."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore, FileSource
from prometheus_client import CollectorRegistry

from osemn._feast_config import FeastSourceConfig
from osemn.checks.failures import mask_value
from osemn.checks.featurestore import (
    FeatureStoreChecks,
    FeatureStoreCollector,
    OnlineProber,
    ProbeStatus,
)
from osemn.results import CheckKind, Status
from osemn.sources.featurestore import FeatureStoreSource
from tests.featurestore.helpers import (
    NOW,
    TTL,
    FrozenClock,
    by_check,
    driver_rows,
    file_repo,
    project_name,
    write_yaml,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    file_repo(tmp_path / "feature_repo")
    return tmp_path / "feature_repo"


def open_source(repo: Path, **options: object) -> FeatureStoreSource:
    config = FeastSourceConfig.model_validate({"feast": repo.name, **options})
    return FeatureStoreSource("features", config, base_dir=repo.parent)


def test_views_come_from_the_registry(repo: Path) -> None:
    source = open_source(repo)
    (view,) = source.views()
    assert view.name == "driver_stats"
    assert view.entities == ("driver",)
    assert [(f.name, f.feast_type) for f in view.join_keys] == [("driver_id", "Int64")]
    assert [(f.name, f.feast_type) for f in view.features] == [
        ("conv_rate", "Float64"),
        ("trips", "Int64"),
        ("city", "String"),
    ]
    assert view.batch_source.type == "file"
    assert view.batch_source.path == str(repo / "data" / "drivers.parquet")
    assert view.batch_source.timestamp_field == "event_timestamp"
    assert view.ttl == TTL
    assert view.materialization_intervals == ((NOW - TTL, NOW - timedelta(minutes=30)),)
    assert view.to_json()["materialized_until"] == (NOW - timedelta(minutes=30)).isoformat()


def test_offline_checks_on_the_parquet_file(repo: Path) -> None:
    clock = FrozenClock(NOW + timedelta(minutes=30))
    results = by_check(FeatureStoreChecks(open_source(repo), clock=clock).run())

    fresh = results["event_timestamp:freshness(max_age=1d)"]
    assert fresh.kind is CheckKind.FRESHNESS and fresh.status is Status.PASS
    assert fresh.measurement("freshness_seconds") == 5400.0  # newest row NOW - 1h

    conv = results["conv_rate:completeness(min=0)"]
    assert conv.measurement("completeness_ratio", column="conv_rate") == 0.75
    assert (conv.rows, conv.failed_rows, conv.status) == (4, 1, Status.PASS)
    assert (
        results["trips:completeness(min=0)"].measurement("completeness_ratio", column="trips")
        == 1.0
    )
    assert (
        results["city:completeness(min=0)"].measurement("completeness_ratio", column="city") == 0.75
    )

    for name in ("driver_id", "trips"):
        assert results[f"{name}:dtype('Int64')"].status is Status.PASS
    assert results["conv_rate:dtype('Float64')"].status is Status.PASS
    assert results["city:dtype('String')"].status is Status.PASS

    mat = results["materialization:freshness(max_age=1d)"]
    assert mat.status is Status.PASS
    assert mat.measurement("materialization_lag_seconds") == 3600.0
    assert all(r.dataset == "driver_stats" and r.source == "features" for r in results.values())


def test_thresholds_from_config_fail_stale_and_incomplete_views(repo: Path) -> None:
    source = open_source(
        repo,
        feature_views={
            "driver_stats": {
                "freshness": "30m",
                "materialization": "45m",
                "min_completeness": "90%",
            }
        },
    )
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    fresh = results["event_timestamp:freshness(max_age=30m)"]
    assert fresh.status is Status.FAIL and fresh.measurement("freshness_seconds") == 3600.0
    assert results["conv_rate:completeness(min=0.9)"].status is Status.FAIL
    assert results["trips:completeness(min=0.9)"].status is Status.PASS
    assert results["materialization:freshness(max_age=45m)"].status is Status.PASS
    later = FeatureStoreChecks(source, clock=FrozenClock(NOW + timedelta(minutes=20))).run()
    assert by_check(later)["materialization:freshness(max_age=45m)"].status is Status.FAIL


def test_a_feast_type_the_source_does_not_hold_fails_its_dtype_check(repo: Path) -> None:
    frame = driver_rows()
    frame["trips"] = frame["trips"].astype("float64")  # a pipeline that wrote floats
    frame.to_parquet(repo / "data" / "drivers.parquet")
    results = by_check(FeatureStoreChecks(open_source(repo), clock=FrozenClock()).run())
    trips = results["trips:dtype('Int64')"]
    assert trips.status is Status.FAIL
    assert trips.failures[0]["source_type"] == "DOUBLE PRECISION"
    assert results["conv_rate:dtype('Float64')"].status is Status.PASS


def test_parity_counts_offline_changes_not_yet_materialized(repo: Path) -> None:
    source = open_source(repo)
    checks = FeatureStoreChecks(source, clock=FrozenClock())
    before = by_check(checks.run())
    for feature in ("conv_rate", "trips", "city"):
        result = before[f"{feature}:online_parity(tolerance=0)"]
        assert (result.kind, result.status) == (CheckKind.FEATURESTORE, Status.PASS)
        assert (result.rows, result.failed_rows) == (3, 0)

    frame = driver_rows()
    frame.loc[2, "trips"] = 99  # driver 3, materialized; the online store still has 30
    frame.to_parquet(repo / "data" / "drivers.parquet")
    after = by_check(checks.run())
    trips = after["trips:online_parity(tolerance=0)"]
    assert trips.status is Status.FAIL
    assert (trips.rows, trips.failed_rows) == (3, 1)
    assert trips.measurement("parity_mismatch_ratio", column="trips") == pytest.approx(1 / 3)
    assert trips.failures == (
        {"driver_id": 3, "offline": 99, "online": 30, "online_status": "present"},
    )
    assert after["conv_rate:online_parity(tolerance=0)"].failed_rows == 0
    tolerant = open_source(repo, parity={"tolerance": "40%"})
    lenient = by_check(FeatureStoreChecks(tolerant, clock=FrozenClock()).run())
    assert lenient["trips:online_parity(tolerance=0.4)"].status is Status.PASS


def test_parity_samples_show_masked_keys_and_features_as_keyed_hashes(repo: Path) -> None:
    frame = driver_rows()
    frame.loc[2, "trips"] = 99
    frame.to_parquet(repo / "data" / "drivers.parquet")
    source = open_source(repo, feature_views={"driver_stats": {"mask": ["driver_id", "trips"]}})
    key = b"k" * 32
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock(), mask_key=key).run())
    (sample,) = results["trips:online_parity(tolerance=0)"].failures
    assert sample["online_status"] == "present"
    assert sample["driver_id"] == mask_value(3, key)
    assert sample["offline"] == mask_value(99, key) and sample["online"] == mask_value(30, key)
    assert "99" not in str(sample) and "30" not in str(sample)
    assert str(sample["driver_id"]).startswith("hmac:")

    misspelt = open_source(repo, feature_views={"driver_stats": {"mask": ["trip"]}})
    results = by_check(FeatureStoreChecks(misspelt, clock=FrozenClock(), mask_key=key).run())
    for feature in ("conv_rate", "trips", "city"):
        parity = results[f"{feature}:online_parity(tolerance=0)"]
        assert parity.status is Status.ERROR and parity.failures == ()
        assert "feature_views.driver_stats.mask: 'trip' is not a join key or feature" in (
            parity.error or ""
        )
        assert "driver_id, conv_rate, trips, city" in (parity.error or "")
    # The other checks of the view still run.
    assert results["event_timestamp:freshness(max_age=1d)"].status is not Status.ERROR


def test_a_lost_online_store_is_down_and_parity_errors(repo: Path) -> None:
    source = open_source(repo)
    (repo / "online.db").unlink()
    (probe,) = OnlineProber(source, clock=FrozenClock()).probe_all()
    assert probe.status is ProbeStatus.DOWN and (probe.good, probe.bad) == (0, 1)
    assert probe.seconds is None and "no such table" in (probe.error or "")
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    conv = results["conv_rate:online_parity(tolerance=0)"]
    assert conv.status is Status.ERROR and "online store failed" in (conv.error or "")
    # The offline checks of the view go on.
    assert results["event_timestamp:freshness(max_age=1d)"].status is Status.PASS


def test_an_emptied_online_store_is_up_but_skewed(repo: Path) -> None:
    source = open_source(repo)
    with sqlite3.connect(repo / "online.db") as conn:
        (table,) = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        conn.execute(f'DELETE FROM "{table}"')
    (probe,) = OnlineProber(source, clock=FrozenClock()).probe_all()
    assert probe.status is ProbeStatus.UP and probe.found_ratio == 0.0
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    for feature in ("conv_rate", "trips", "city"):
        parity = results[f"{feature}:online_parity(tolerance=0)"]
        assert (parity.status, parity.rows, parity.failed_rows) == (Status.FAIL, 3, 3)
        assert {f["online_status"] for f in parity.failures} == {"not_found"}


def test_never_materialized_view_fails_materialization(tmp_path: Path) -> None:
    repo = tmp_path / "fresh_repo"
    file_repo(repo, materialize_until=None)
    source = FeatureStoreSource("features", FeastSourceConfig(feast=str(repo)))
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    mat = results["materialization:freshness(max_age=1d)"]
    assert mat.status is Status.FAIL and "no materialization" in (mat.note or "")
    parity = results["trips:online_parity(tolerance=0)"]
    assert parity.status is Status.INSUFFICIENT_DATA
    (probe,) = OnlineProber(source, clock=FrozenClock()).probe_all()
    assert probe.status is ProbeStatus.SKIPPED
    assert (probe.good, probe.bad) == (0, 0)


def test_probes_export_up_and_latency_on_the_given_registry(repo: Path) -> None:
    source = open_source(repo)
    prober = OnlineProber(source, clock=FrozenClock())
    probes = prober.probe_all() + prober.probe_all()
    assert [p.status for p in probes] == [ProbeStatus.UP, ProbeStatus.UP]
    assert all(p.found_ratio == 1.0 and p.entities == 3 for p in probes)
    assert sum(p.good for p in probes) == 2 and sum(p.bad for p in probes) == 0

    registry = CollectorRegistry()
    collector = FeatureStoreCollector(clock=lambda: (NOW + timedelta(hours=1)).timestamp())
    registry.register(collector)
    collector.observe_probes(probes)
    collector.observe_results("features", FeatureStoreChecks(source, clock=FrozenClock()).run())
    labels = {"store": "features", "feature_view": "driver_stats"}
    assert registry.get_sample_value("osemn_featurestore_up", labels) == 1.0
    assert registry.get_sample_value("osemn_featurestore_request_seconds_count", labels) == 2.0
    assert registry.get_sample_value("osemn_featurestore_request_seconds_sum", labels) == sum(
        p.seconds or 0.0 for p in probes
    )
    up = {**labels, "outcome": "up"}
    assert registry.get_sample_value("osemn_featurestore_probes_total", up) == 2.0
    assert (
        registry.get_sample_value("osemn_featurestore_materialization_age_seconds", labels)
        == 5400.0
    )
    assert (
        registry.get_sample_value(
            "osemn_featurestore_parity_mismatch_ratio", {**labels, "feature": "trips"}
        )
        == 0.0
    )


def test_views_read_the_file_at_query_time(repo: Path) -> None:
    source = open_source(repo)
    checks = FeatureStoreChecks(source, clock=FrozenClock())
    checks.run()
    newer = pd.concat([driver_rows(), driver_rows().tail(1).assign(event_timestamp=NOW)])
    newer.to_parquet(repo / "data" / "drivers.parquet")
    fresh = by_check(checks.run())["event_timestamp:freshness(max_age=1d)"]
    assert fresh.measurement("freshness_seconds") == 0.0


def test_incremental_materializations_merge_into_one_interval(repo: Path) -> None:
    store = FeatureStore(repo_path=str(repo))
    store.materialize(NOW - timedelta(minutes=30), NOW - timedelta(minutes=10))
    source = open_source(repo)
    (view,) = source.views()
    assert view.materialization_intervals == ((NOW - TTL, NOW - timedelta(minutes=10)),)
    mat = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    assert (
        mat["materialization:freshness(max_age=1d)"].measurement("materialization_lag_seconds")
        == 600.0
    )


def test_parity_samples_at_most_the_configured_entities(repo: Path) -> None:
    source = open_source(repo, parity={"sample": 2})
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    assert results["trips:online_parity(tolerance=0)"].rows == 2


def test_a_zoned_timestamp_feature_of_a_parquet_file_has_its_dtype(tmp_path: Path) -> None:
    from feast import Entity, FeatureView, Field, ValueType
    from feast.types import UnixTimestamp

    repo = tmp_path / "repo"
    write_yaml(repo, project=project_name(), online={"type": "sqlite"}, offline={"type": "file"})
    rows = driver_rows()
    rows["last_trip"] = rows["event_timestamp"]  # pandas writes TIMESTAMP(ns, UTC)
    (repo / "trips.parquet").write_bytes(rows.to_parquet())
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="trips",
        entities=[driver],
        schema=[Field(name="last_trip", dtype=UnixTimestamp)],
        source=FileSource(path="trips.parquet", timestamp_field="event_timestamp"),
        online=False,
    )
    FeatureStore(repo_path=str(repo)).apply([driver, view])
    results = by_check(FeatureStoreChecks(open_source(repo), clock=FrozenClock()).run())
    dtype = results["last_trip:dtype('UnixTimestamp')"]  # DuckDB reads it as TIMESTAMPTZ_NS
    assert dtype.status is Status.PASS, dtype.failures


def test_a_field_mapping_is_read_as_feast_reads_it(tmp_path: Path) -> None:
    """The parquet file names two columns differently; the view maps them to its fields."""
    repo = tmp_path / "feature_repo"
    renamed = driver_rows().rename(columns={"trips": "trip_count", "conv_rate": "rate"})
    file_repo(repo, rows=renamed, field_mapping={"trip_count": "trips", "rate": "conv_rate"})

    source = open_source(repo)
    (view,) = source.views()
    assert view.batch_source.source_column("trips") == "trip_count"
    assert view.batch_source.source_column("driver_id") == "driver_id"
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    assert not [r for r in results.values() if r.status is Status.ERROR], results
    completeness = results["conv_rate:completeness(min=0)"]
    assert completeness.measurement("completeness_ratio", column="conv_rate") == 0.75
    assert results["trips:dtype('Int64')"].status is Status.PASS
    parity = results["trips:online_parity(tolerance=0)"]
    assert (parity.status, parity.rows, parity.failed_rows) == (Status.PASS, 3, 0)

    renamed.loc[2, "trip_count"] = 99  # driver 3, materialized as 30
    renamed.to_parquet(repo / "data" / "drivers.parquet")
    after = by_check(FeatureStoreChecks(source, clock=FrozenClock()).run())
    assert after["trips:online_parity(tolerance=0)"].failures == (
        {"driver_id": 3, "offline": 99, "online": 30, "online_status": "present"},
    )
    source.close()
    # A pandera schema runs on the file's columns: a masked field masks its column.
    options = {"driver_stats": {"schema": "drivers.yaml", "mask": ["trips", "driver_id"]}}
    with_schema = open_source(repo, feature_views=options)
    dataset = with_schema.dataset_config(with_schema.views()[0])
    assert dataset is not None and dataset.failures.mask == ("trip_count", "driver_id")
    with_schema.close()
