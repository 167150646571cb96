"""The demo's Feast repo on a real DuckDB file, parquet batch sources and SQLite online store.

Clocks start at the real now: Feast takes the first materialization's window
and the online values' ages from the wall clock, the demo's checks from the
stepped one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from osemn._feast_config import FeastSourceConfig
from osemn.agent.agent import Agent
from osemn.checks.featurestore import PROBE_CHECK, FeatureStoreChecks, OnlineProber
from osemn.config import parse_config
from osemn.demo.features import (
    FEATURE_SOURCE,
    FEATURE_TTL,
    FEATURE_VIEWS,
    MATERIALIZE_INTERVAL,
    FeaturePipeline,
    build_feature_repo,
    feature_tables,
)
from osemn.demo.incidents import MIN_DURATION, IncidentGenerator, IncidentKind, Timeline
from osemn.demo.status import render_status
from osemn.demo.warehouse import (
    CHECK_INTERVAL,
    DEMO_SCHEMA_DIR,
    create_demo_warehouse,
    demo_config_text,
    demo_tables,
    utc_naive,
)
from osemn.results import CheckKind, CheckResult, Measurement, Status
from osemn.sources.featurestore import FeatureStoreSource
from tests.demo.helpers import SteppedClock

MATERIALIZATION = f"materialization:freshness(max_age={FEATURE_TTL.total_seconds():g}s)"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def engine(tmp_path: Path, clock: SteppedClock) -> Iterator[sa.Engine]:
    engine = create_demo_warehouse(tmp_path / "demo.duckdb", clock=clock)
    yield engine
    engine.dispose()


@pytest.fixture
def features(tmp_path: Path, engine: sa.Engine, clock: SteppedClock) -> FeaturePipeline:
    return build_feature_repo(tmp_path, engine, clock=clock)


def _source(features: FeaturePipeline) -> FeatureStoreSource:
    return FeatureStoreSource(FEATURE_SOURCE, FeastSourceConfig(feast=str(features.repo)))


def _of_view(results: list[CheckResult], view: str) -> dict[str, CheckResult]:
    return {r.check: r for r in results if r.dataset == view}


def _parquet(features: FeaturePipeline, view: str) -> pd.DataFrame:
    return pd.read_parquet(features.repo / "data" / f"{view}.parquet")


def _online(features: FeaturePipeline, view: str, key: str, keys: list[Any]) -> pd.DataFrame:
    names = [c for c in _parquet(features, view).columns if c not in (key, "event_timestamp")]
    response = features.store.get_online_features(
        features=[f"{view}:{n}" for n in names], entity_rows=[{key: k} for k in keys]
    )
    return pd.DataFrame(response.to_dict())[[key, *names]]


def test_the_repo_is_applied_over_the_demo_data_and_materialized(
    tmp_path: Path, engine: sa.Engine, clock: SteppedClock, features: FeaturePipeline
) -> None:
    config = yaml.safe_load((features.repo / "feature_store.yaml").read_text())
    assert config["provider"] == "local"
    assert config["online_store"] == {"type": "sqlite", "path": str(tmp_path / "online.db")}
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["serve_features_while_materializing"] is True
    assert (features.repo / "registry.db").is_file() and (tmp_path / "online.db").is_file()

    customers = _parquet(features, "customer_stats")
    countries = _parquet(features, "country_stats")
    customer_table, _ = demo_tables()
    with engine.connect() as conn:
        known = conn.execute(sa.select(customer_table.c.customer_id, customer_table.c.country))
        country_of = dict(known.all())
    # One snapshot so far: every customer and country once, stamped with the build instant.
    assert sorted(customers["customer_id"]) == sorted(country_of)
    assert sorted(countries["country"]) == sorted(set(country_of.values()))
    assert set(customers["event_timestamp"]) == {pd.Timestamp(utc_naive(clock()))}
    # The features are the orders' own aggregates.
    _, orders = demo_tables()
    hour_ago = utc_naive(clock()) - timedelta(hours=1)
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(orders.c.customer_id, sa.func.count())
                .where(orders.c.created_at > hour_ago)
                .group_by(orders.c.customer_id)
            ).all()
        )
    by_customer = customers.set_index("customer_id")
    assert counts  # the generator's first second has orders: the comparison is not vacuous
    assert {c: int(n) for c, n in by_customer["orders_1h"].items() if n} == counts
    assert (by_customer.loc[list(counts), "amount_1h"] > 0).all()

    source = _source(features)
    views = source.views()
    assert tuple(v.name for v in views) == FEATURE_VIEWS
    assert all(v.ttl == FEATURE_TTL and v.materialized_until == clock() for v in views)
    assert {f.name: f.feast_type for v in views for f in v.features} == {
        "orders_5m": "Int64",
        "avg_amount_5m": "Float64",
        "orders_1h": "Int64",
        "amount_1h": "Float64",
        "last_order_at": "UnixTimestamp",
    }

    # Online values are the latest offline ones, for every entity of both views.
    online = _online(features, "customer_stats", "customer_id", sorted(country_of))
    offline = customers.sort_values("customer_id").reset_index(drop=True)
    assert online["orders_1h"].tolist() == offline["orders_1h"].tolist()
    assert online["amount_1h"].tolist() == pytest.approx(offline["amount_1h"].tolist())
    assert [t.replace(tzinfo=None) for t in online["last_order_at"]] == [
        t.to_pydatetime() for t in offline["last_order_at"]
    ]
    names = sorted(set(country_of.values()))
    online = _online(features, "country_stats", "country", names)
    offline = countries.set_index("country").loc[names]
    assert online["orders_5m"].tolist() == offline["orders_5m"].tolist()
    assert online["avg_amount_5m"].tolist() == pytest.approx(offline["avg_amount_5m"].tolist())

    results = FeatureStoreChecks(source, clock=clock).run()
    assert {r.dataset for r in results} == set(FEATURE_VIEWS)
    assert [r for r in results if r.status is not Status.PASS] == []
    parity = [r for r in results if "online_parity" in r.check]
    assert len(parity) == 5 and all(r.rows for r in parity)
    source.close()


def test_a_materialization_stall_fails_the_materialization_check_for_its_span(
    engine: sa.Engine, clock: SteppedClock, features: FeaturePipeline
) -> None:
    start = clock()
    timeline = Timeline.of([(10, 50, IncidentKind.MATERIALIZATION_STALL.value)])
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline, features=features)
    source = _source(features)
    checks = FeatureStoreChecks(source, clock=clock)
    seen: dict[int, dict[str, CheckResult]] = {}
    materialized: dict[int, datetime] = {}
    newest: dict[int, Any] = {}
    table = ""
    for tick in range(61):
        generator.step()
        materialized[tick] = features.materialized_until
        newest[tick] = _parquet(features, "customer_stats")["event_timestamp"].max()
        if tick in (8, 45, 55):
            results = checks.run()
            seen[tick] = _of_view(results, "customer_stats")
            if tick == 45:
                probes = [p.to_result() for p in OnlineProber(source, clock=clock).probe_all()]
                table = render_status(
                    [*results, *probes], now=clock(), incident=None, feature_stores=["features"]
                )
        clock.advance(1)
    source.close()

    # Materialized every 10s outside the stall, never inside it, at once after it.
    assert materialized[9] == start
    assert materialized[49] == start
    assert materialized[50] == start + timedelta(seconds=50)
    assert materialized[60] == start + timedelta(seconds=60)
    # The exports went on.
    assert newest[45] == pd.Timestamp(utc_naive(start + timedelta(seconds=45)))

    before, during, after = seen[8], seen[45], seen[55]
    assert before[MATERIALIZATION].status is Status.PASS
    assert during[MATERIALIZATION].status is Status.FAIL
    assert during[MATERIALIZATION].measurement("materialization_lag_seconds") == 45.0
    assert after[MATERIALIZATION].status is Status.PASS
    assert after[MATERIALIZATION].measurement("materialization_lag_seconds") == 5.0
    # The batch source stayed fresh, and after the stall online values match offline again.
    assert during["event_timestamp:freshness(max_age=30s)"].status is Status.PASS
    parity = [r for name, r in after.items() if "online_parity" in name]
    assert len(parity) == 3 and all(r.status is Status.PASS for r in parity)

    lines = {line.split()[0]: line for line in table.splitlines() if "_stats" in line}
    assert lines["customer_stats"].split()[1:5] == ["FAIL", "lag", "45s", "up"]
    assert "newest 0s" in lines["customer_stats"]


def test_the_agent_watches_the_feature_repo_through_the_demo_config(
    tmp_path: Path, engine: sa.Engine, clock: SteppedClock, features: FeaturePipeline
) -> None:
    text = demo_config_text(
        tmp_path / "demo.duckdb",
        "sqlite:///" + str(tmp_path / "state.db"),
        "127.0.0.1:0",
        DEMO_SCHEMA_DIR,
        feature_repo=features.repo,
    )
    config = parse_config(text, path=str(tmp_path / "osemn.yaml"), env={})
    feast = config.feast_sources[FEATURE_SOURCE]
    assert feast.repo_path(tmp_path) == features.repo
    assert feast.interval == feast.probe.interval == CHECK_INTERVAL
    agent = Agent(config, clock=clock, engines={"warehouse": engine})
    agent.open()
    timeline = Timeline.of([(0, 40, IncidentKind.MATERIALIZATION_STALL.value)])
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline, features=features)
    try:
        for _ in range(36):
            generator.step()
            clock.advance(1)
        stalled = _of_view(agent.run_once([FEATURE_SOURCE]), "country_stats")
        table = render_status(
            agent.latest(), now=clock(), incident=None, feature_stores=[FEATURE_SOURCE]
        )
    finally:
        agent.close()
    assert stalled[MATERIALIZATION].status is Status.FAIL
    assert all(r.source == FEATURE_SOURCE for r in stalled.values())
    lines = [line for line in table.splitlines() if line.startswith("country_stats")]
    assert len(lines) == 1 and "FAIL lag 36s" in lines[0] and "up" in lines[0]


def test_the_demo_timeline_stalls_materialization_past_the_ttl_and_recovers() -> None:
    for duration in (MIN_DURATION, 120.0, None):
        timeline = Timeline.for_duration(duration)
        (stall,) = [i for i in timeline.incidents if i.kind is IncidentKind.MATERIALIZATION_STALL]
        span = stall.end - stall.start
        # Even right after a materialization, the lag passes the TTL with checks to see it.
        assert span > (FEATURE_TTL + CHECK_INTERVAL + MATERIALIZE_INTERVAL).total_seconds()
        end = duration if duration is not None else timeline.period
        assert end is not None and end - stall.end > 2 * CHECK_INTERVAL.total_seconds()


def test_the_feature_tables_hold_a_snapshot_per_entity_and_export(
    engine: sa.Engine, clock: SteppedClock, features: FeaturePipeline
) -> None:
    """Snapshots accumulate in the warehouse (parity needs past ones) and old ones go."""
    customer_stats, _ = feature_tables()
    for _ in range(3):
        clock.advance(CHECK_INTERVAL.total_seconds())
        features.export(clock())
    with engine.connect() as conn:
        stamps = conn.execute(
            sa.select(customer_stats.c.event_timestamp, sa.func.count()).group_by(
                customer_stats.c.event_timestamp
            )
        ).all()
    assert len(stamps) == 4 and {n for _, n in stamps} == {250}
    assert len(_parquet(features, "customer_stats")) == 4 * 250
    clock.advance(timedelta(minutes=11).total_seconds())
    features.export(clock())
    assert len(_parquet(features, "customer_stats")) == 250  # older than the retention: gone


def test_the_demo_imports_feast_only_to_build_the_repo() -> None:
    code = "import sys, osemn.demo.run, osemn.cli; print('feast' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _feature_result(view: str, check: str, status: Status, **kw: Any) -> CheckResult:
    return CheckResult(
        dataset=view,
        kind=CheckKind.FEATURESTORE,
        check=check,
        status=status,
        finished_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        source=FEATURE_SOURCE,
        **kw,
    )


FEATURE_RESULTS = [
    _feature_result(
        "customer_stats",
        MATERIALIZATION,
        Status.FAIL,
        measurements=(Measurement(name="materialization_lag_seconds", value=41.5),),
    ),
    _feature_result(
        "customer_stats",
        PROBE_CHECK,
        Status.PASS,
        measurements=(Measurement(name="request_seconds", value=0.0042),),
    ),
    *(
        _feature_result(
            "customer_stats",
            f"{name}:online_parity(tolerance=0)",
            Status.PASS if share == 0 else Status.FAIL,
            measurements=(
                Measurement(name="parity_mismatch_ratio", value=share, labels=(("column", name),)),
            ),
        )
        for name, share in (("orders_1h", 0.0), ("amount_1h", 0.25))
    ),
    _feature_result(
        "customer_stats",
        "event_timestamp:freshness(max_age=30s)",
        Status.PASS,
        measurements=(Measurement(name="freshness_seconds", value=3.0),),
    ),
    _feature_result("customer_stats", "orders_1h:dtype('Int64')", Status.PASS),
    _feature_result("country_stats", PROBE_CHECK, Status.INSUFFICIENT_DATA),
    _feature_result("country_stats", "country:dtype('String')", Status.ERROR, error="gone"),
    CheckResult(
        dataset="orders",
        kind=CheckKind.FRESHNESS,
        check="created_at:freshness(max_age=15s)",
        status=Status.PASS,
        finished_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        source="warehouse",
    ),
]


@pytest.mark.parametrize("width", [80, 120])
def test_status_folds_feature_store_results_into_a_line_per_view(width: int) -> None:
    now = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    text = render_status(
        FEATURE_RESULTS, now=now, incident=None, width=width, feature_stores=[FEATURE_SOURCE]
    )
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "9 checks: 5 pass, 2 fail, 1 error, 1 insufficient" in lines[0]
    assert [line.split()[0] for line in lines[3:] if line] == [
        "orders",
        "FEATURE",
        "country_stats",
        "customer_stats",
    ]
    views = {line.split()[0]: line.split() for line in lines if "_stats" in line}
    assert views["customer_stats"][1:] == [
        *("FAIL", "lag", "42s", "up", "4.2ms", "FAIL", "skew", "25%", "PASS", "newest", "3s"),
    ]
    assert views["country_stats"][1:] == ["-", "skipped", "-", "ERROR"]
    coloured = render_status(
        FEATURE_RESULTS, now=now, incident=None, color=True, feature_stores=[FEATURE_SOURCE]
    )
    (line,) = [line for line in coloured.splitlines() if line.startswith("customer_stats")]
    assert "\x1b[31;1mFAIL\x1b[0m lag 42s" in line and "\x1b[32mup\x1b[0m 4.2ms" in line
    # Without feature stores named, their results are rows like any other.
    plain = render_status(FEATURE_RESULTS, now=now, incident=None, width=width)
    assert "FEATURE VIEW" not in plain
    assert sum(line.startswith("customer_stats") for line in plain.splitlines()) == 6
