"""Feast with a PostgreSQL offline source and the Redis online store (127.0.0.1:6379).

Each test has its own PostgreSQL schema and Feast project (which suffixes every
Redis key), and deletes both afterwards. A server that is down fails the tests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from feast import FeatureStore
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)

from osemn.checks.featurestore import FeatureStoreChecks, OnlineProber, ProbeStatus
from osemn.results import Status
from tests.featurestore.helpers import (
    NOW,
    REDIS,
    FrozenClock,
    PgRepo,
    by_check,
    driver_objects,
    postgres_redis_repo,
)
from tests.servers import free_port


@pytest.fixture
def pg_repo(tmp_path: Path) -> Iterator[PgRepo]:
    with postgres_redis_repo(tmp_path) as repo:
        yield repo


def test_offline_checks_run_in_postgres_tagged(pg_repo: PgRepo) -> None:
    source = pg_repo.source()
    (view,) = source.views()
    assert view.batch_source.type == "postgres"
    assert view.batch_source.table == f"{pg_repo.schema}.drivers"
    sent: list[str] = []
    engine = source.offline(view).warehouse.engine
    sa.event.listen(engine, "after_cursor_execute", lambda c, cur, stmt, *a: sent.append(stmt))

    results = by_check(FeatureStoreChecks(source, clock=FrozenClock(NOW)).run())
    fresh = results["event_timestamp:freshness(max_age=1d)"]
    assert (fresh.status, fresh.measurement("freshness_seconds")) == (Status.PASS, 3600.0)
    ratios = {
        f: results[f"{f}:completeness(min=0)"].measurement("completeness_ratio", column=f)
        for f in ("conv_rate", "trips", "city")
    }
    assert ratios == {"conv_rate": 0.75, "trips": 1.0, "city": 0.75}
    dtypes = [r.status for name, r in results.items() if ":dtype(" in name]
    assert dtypes == [Status.PASS] * 4
    mat = results["materialization:freshness(max_age=1d)"]
    assert mat.measurement("materialization_lag_seconds") == 1800.0
    parity = results["trips:online_parity(tolerance=0)"]
    assert (parity.status, parity.rows, parity.failed_rows) == (Status.PASS, 3, 0)
    queries = [s for s in sent if "drivers" in s]
    assert len(queries) == 2  # one aggregate scan, one parity sample
    assert all(s.startswith("/* osemn */") for s in sent)


def test_an_offline_change_not_materialized_shows_as_skew(pg_repo: PgRepo) -> None:
    with pg_repo.engine.begin() as conn:
        conn.execute(
            sa.text(f'UPDATE "{pg_repo.schema}".drivers SET conv_rate = 0.9 WHERE driver_id = 1')
        )
    results = by_check(FeatureStoreChecks(pg_repo.source(), clock=FrozenClock(NOW)).run())
    conv = results["conv_rate:online_parity(tolerance=0)"]
    # Both of driver 1's rows changed; the online store holds 0.75, the latest materialized.
    assert (conv.status, conv.rows, conv.failed_rows) == (Status.FAIL, 3, 1)
    assert conv.failures == (
        {"driver_id": 1, "offline": 0.9, "online": 0.75, "online_status": "present"},
    )
    assert results["trips:online_parity(tolerance=0)"].failed_rows == 0


def test_flushed_redis_keys_are_up_but_skewed(pg_repo: PgRepo) -> None:
    client = redis.Redis.from_url(REDIS)
    deleted = sum(
        client.delete(key) for key in client.scan_iter(match=b"*" + pg_repo.project.encode())
    )
    client.close()
    assert deleted == 3
    source = pg_repo.source()
    (probe,) = OnlineProber(source, clock=FrozenClock(NOW)).probe_all()
    assert (probe.status, probe.found_ratio, probe.entities) == (ProbeStatus.UP, 0.0, 3)
    results = by_check(FeatureStoreChecks(source, clock=FrozenClock(NOW)).run())
    for feature in ("conv_rate", "trips", "city"):
        parity = results[f"{feature}:online_parity(tolerance=0)"]
        assert (parity.status, parity.failed_rows) == (Status.FAIL, 3)


def test_redis_on_a_closed_port_is_down_and_offline_checks_go_on(pg_repo: PgRepo) -> None:
    pg_repo.set_redis_port(free_port())
    source = pg_repo.source(probe={"timeout": "1s"})
    (probe,) = OnlineProber(source, clock=FrozenClock(NOW)).probe_all()
    assert probe.status is ProbeStatus.DOWN and (probe.good, probe.bad) == (0, 1)
    # redis-py retries a refused connection with backoff: a refusal or the deadline.
    assert "ConnectionError" in (probe.error or "") or "within 1s" in (probe.error or "")
    results = FeatureStoreChecks(source, clock=FrozenClock(NOW)).run()
    statuses = {r.check: r.status for r in results}
    assert statuses["trips:online_parity(tolerance=0)"] is Status.ERROR
    assert statuses["event_timestamp:freshness(max_age=1d)"] is Status.PASS


def test_a_hanging_online_store_times_out_as_down(pg_repo: PgRepo) -> None:
    # A socket that accepts connections into its backlog and never answers.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        pg_repo.set_redis_port(blackhole.getsockname()[1])
        source = pg_repo.source(probe={"timeout": "300ms"})
        prober = OnlineProber(source, clock=FrozenClock(NOW))
        started = time.perf_counter()
        first, second = prober.probe_all() + prober.probe_all()
        elapsed = time.perf_counter() - started
    assert first.status is ProbeStatus.DOWN and "within 0.3s" in (first.error or "")
    assert second.status is ProbeStatus.DOWN and "still running" in (second.error or "")
    assert elapsed < 2.0


def test_a_query_source_is_checked_without_dtypes(pg_repo: PgRepo) -> None:
    store = FeatureStore(repo_path=str(pg_repo.repo))
    query = f'SELECT * FROM "{pg_repo.schema}".drivers WHERE trips < 30'
    entity, view = driver_objects(
        PostgreSQLSource(name="recent", query=query, timestamp_field="event_timestamp")
    )
    view.name = "driver_recent"
    store.apply([entity, view])
    results = [
        r
        for r in FeatureStoreChecks(pg_repo.source(), clock=FrozenClock(NOW)).run()
        if r.dataset == "driver_recent"
    ]
    checks = by_check(results)
    assert checks["conv_rate:completeness(min=0)"].measurement(
        "completeness_ratio", column="conv_rate"
    ) == pytest.approx(2 / 3)
    assert checks["event_timestamp:freshness(max_age=1d)"].measurement("freshness_seconds") == 3600
    assert not [r for r in results if ":dtype(" in r.check]
    assert checks["materialization:freshness(max_age=1d)"].status is Status.FAIL
    assert checks["trips:online_parity(tolerance=0)"].status is Status.INSUFFICIENT_DATA
