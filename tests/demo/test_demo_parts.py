"""The demo's parts on a real DuckDB file: warehouse, incident generator, config, status view."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pytest
import sqlalchemy as sa
import yaml
from pandera.errors import SchemaErrors

from osemn.agent.agent import Agent
from osemn.checks.drift import drift_windows
from osemn.config import parse_config
from osemn.demo.incidents import (
    MIN_DURATION,
    SHIFT_FACTOR,
    SHIFTED_STATUSES,
    STATUS_CODES,
    IncidentGenerator,
    IncidentKind,
    Timeline,
)
from osemn.demo.status import render_status
from osemn.demo.warehouse import (
    CHECK_INTERVAL,
    DEMO_SCHEMA_DIR,
    DRIFT_CURRENT_WINDOW,
    DRIFT_MIN_ROWS,
    FRESHNESS_MAX_AGE,
    STATUSES,
    VOLUME_MIN_ROWS,
    create_demo_warehouse,
    demo_config_text,
    demo_tables,
    model_tables,
    utc_naive,
)
from osemn.errors import ConfigError
from osemn.results import CheckKind, CheckResult, Measurement, Status
from tests.demo.helpers import SteppedClock

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


WAREHOUSE = Path("demo") / "warehouse.duckdb"


@pytest.fixture
def engine(tmp_path: Path, clock: SteppedClock) -> Iterator[sa.Engine]:
    engine = create_demo_warehouse(tmp_path / WAREHOUSE, clock=clock)
    yield engine
    engine.dispose()


def _demo_config_text(tmp_path: Path) -> str:
    state = "sqlite:///" + str(tmp_path / "state.db")
    return demo_config_text(tmp_path / WAREHOUSE, state, "127.0.0.1:0", DEMO_SCHEMA_DIR)


CUSTOMERS, ORDERS = demo_tables()
COLUMNS = sa.table(
    "columns",
    sa.column("table_name"),
    sa.column("column_name"),
    sa.column("data_type"),
    schema="information_schema",
)


def _at(offset: float) -> datetime:
    return (START + timedelta(seconds=offset)).replace(tzinfo=None)


def _scalar(engine: sa.Engine, query: sa.Select[Any]) -> Any:
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def _count(engine: sa.Engine, *where: sa.ColumnElement[bool]) -> int:
    return int(_scalar(engine, sa.select(sa.func.count()).select_from(ORDERS).where(*where)))


def _between(lo: float, hi: float) -> sa.ColumnElement[bool]:
    return ORDERS.c.created_at.between(_at(lo), _at(hi))


def _column_type(engine: sa.Engine, table: str, column: str) -> str:
    # information_schema, not sa.inspect: SQLAlchemy >= 2.0.45 reflects columns through
    # pg_catalog.pg_collation, which DuckDB lacks (duckdb/duckdb#22069).
    c = COLUMNS.c
    query = sa.select(c.data_type).where(c.table_name == table, c.column_name == column)
    return str(_scalar(engine, query))


def _frame(engine: sa.Engine, table: sa.Table) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.select(table))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def _schema(name: str) -> pa.DataFrameSchema:
    schema = pa.DataFrameSchema.from_yaml(DEMO_SCHEMA_DIR / name)
    schema.coerce = True  # DuckDB returns microsecond timestamps and pandas' default strings
    return schema


# --- warehouse -----------------------------------------------------------------


def test_warehouse_has_tables_view_primary_keys_and_history(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        constraints = sa.func.duckdb_constraints().table_valued(
            "table_name", "constraint_type", "constraint_column_names"
        )
        pks = {
            row.table_name: list(row.constraint_column_names)
            for row in conn.execute(
                sa.select(constraints).where(constraints.c.constraint_type == "PRIMARY KEY")
            )
        }
        views = sa.func.duckdb_views().table_valued("view_name", "internal")
        names = set(conn.execute(sa.select(views.c.view_name).where(~views.c.internal)).scalars())
        enriched = sa.table("orders_enriched", sa.column("order_id"))
        joined = conn.execute(sa.select(sa.func.count()).select_from(enriched)).scalar()
    assert pks == {
        "customers": ["customer_id"],
        "orders": ["order_id"],
        "predictions": ["request_id"],
    }
    assert names == {"orders_enriched"}
    assert _column_type(engine, "orders", "order_id") == "BIGINT"
    assert _column_type(engine, "orders", "amount") == "DOUBLE"
    assert _column_type(engine, "orders", "created_at") == "TIMESTAMP"

    total = _count(engine)
    assert total > 2000
    assert joined == total  # every order has its customer
    assert _count(engine, ORDERS.c.created_at < _at(-23 * 3600)) > 0  # a day of history
    assert _count(engine, ORDERS.c.created_at > _at(0)) == 0  # nothing from the future
    # The last minute is seeded at the live rate, so the volume check passes from the start.
    assert _count(engine, ORDERS.c.created_at > _at(-60)) >= VOLUME_MIN_ROWS
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(ORDERS), [{"order_id": 1, "amount": 1.0}])


def test_seeded_history_passes_the_pandera_schemas(engine: sa.Engine) -> None:
    _schema("orders.yaml").validate(_frame(engine, ORDERS), lazy=True)
    _schema("customers.yaml").validate(_frame(engine, CUSTOMERS), lazy=True)


def test_create_demo_warehouse_resets_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    first = create_demo_warehouse(path, clock=lambda: START)
    with first.begin() as conn:
        conn.execute(sa.insert(ORDERS), [{"order_id": 10**9, "amount": -1.0}])
    first.dispose()
    again = create_demo_warehouse(path, clock=lambda: START)
    try:
        assert _count(again, ORDERS.c.order_id == 10**9) == 0
    finally:
        again.dispose()


def test_schema_yamls_are_pandera_schemas_with_the_demo_rules() -> None:
    orders = pa.DataFrameSchema.from_yaml(DEMO_SCHEMA_DIR / "orders.yaml")
    customers = pa.DataFrameSchema.from_yaml(DEMO_SCHEMA_DIR / "customers.yaml")
    assert set(orders.columns) == {c.name for c in ORDERS.columns}
    assert set(customers.columns) == {c.name for c in CUSTOMERS.columns}
    assert orders.columns["order_id"].unique
    assert not orders.columns["email"].nullable
    assert not orders.columns["customer_id"].nullable
    checks = {(n, k.name): k.statistics for n, c in orders.columns.items() for k in c.checks}
    assert checks[("amount", "in_range")]["max_value"] == 10000
    assert checks[("status", "isin")]["allowed_values"] == list(STATUSES)
    assert "email" in {n for n, _ in checks if _ == "str_matches"}


# --- config --------------------------------------------------------------------


def test_demo_config_parses_and_points_at_the_demo(tmp_path: Path) -> None:
    text = _demo_config_text(tmp_path)
    config = parse_config(text, path=str(tmp_path / "osemn.yaml"), env={})
    assert set(config.datasets) == {
        "orders",
        "customers",
        "orders_enriched",
        "predictions",
        "labels",
    }
    assert set(config.models) == {"churn"}
    orders = config.datasets["orders"]
    assert orders.timestamp == "created_at"
    assert orders.schedule.interval == timedelta(seconds=5)
    assert orders.freshness is not None and orders.freshness.max_age == FRESHNESS_MAX_AGE
    assert orders.volume is not None and orders.volume.window == timedelta(minutes=1)
    assert orders.volume.min_rows == VOLUME_MIN_ROWS
    assert orders.failures.sample == 3 and orders.failures.mask == ("email",)
    assert orders.drift is not None and orders.drift.columns == ("amount", "status")
    assert orders.drift.current.window == DRIFT_CURRENT_WINDOW
    assert orders.drift.min_rows == DRIFT_MIN_ROWS
    assert orders.drift.reference.window is not None  # rolling, not a fixed range
    assert config.datasets["orders_enriched"].table == "main.orders_enriched"
    for ds in config.datasets.values():
        if ds.schema_ref is not None:
            pa.DataFrameSchema.from_yaml(ds.schema_ref)
    assert config.sources["warehouse"].url == f"duckdb:///{tmp_path / WAREHOUSE}"
    assert config.agent.port == 0
    assert yaml.safe_load(text)["version"] == 1


def test_seeded_history_fills_the_drift_windows_for_half_a_day(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """The reference lies in the seeded history (no live incident leaks into it) and is big."""
    config = parse_config(_demo_config_text(tmp_path), path=str(tmp_path / "o.yaml"), env={})
    drift = config.datasets["orders"].drift
    assert drift is not None
    ts = ORDERS.c.created_at
    for hours in (0, 11):
        windows = drift_windows(drift, START + timedelta(hours=hours))
        ((start, end),) = windows.reference
        assert end <= START - timedelta(minutes=2)  # before the warm minutes and the live feed
        in_reference = _count(engine, ts >= utc_naive(start), ts < utc_naive(end))
        assert in_reference >= 20 * DRIFT_MIN_ROWS, (hours, in_reference)
    current = drift_windows(drift, START).current
    assert _count(engine, ts >= utc_naive(current[0]), ts < utc_naive(current[1])) > (
        DRIFT_MIN_ROWS
    )  # the warm minutes fill the first current window


# --- incident generator --------------------------------------------------------


def test_generator_plays_every_incident_on_a_stepped_clock(
    engine: sa.Engine, clock: SteppedClock
) -> None:
    timeline = Timeline.of(
        [
            (2, 4, "null_burst"),
            (4, 6, "out_of_range"),
            (6, 9, "stalled_feed"),
            (9, 11, "column_retyped"),
        ]
    )
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline, seed=3)
    before = _count(engine)
    types: dict[float, str] = {}
    added = 0
    for tick in range(26):  # 0.0 .. 12.5 s in half seconds
        added += generator.step()
        types[tick / 2] = _column_type(engine, "orders", "status")
        clock.advance(0.5)
    assert _count(engine) == before + added
    assert added > 26  # one to four orders a tick while the feed runs

    email_null = ORDERS.c.email.is_(None)
    assert _count(engine, _between(2, 3.9), email_null) == _count(engine, _between(2, 3.9)) > 0
    assert _count(engine, email_null) == _count(engine, _between(2, 3.9), email_null)

    bad_amount = sa.or_(ORDERS.c.amount < 0, ORDERS.c.amount > 10_000)
    assert _count(engine, _between(4, 5.9), ORDERS.c.amount < 0) > 0
    assert _count(engine, _between(4, 5.9), ORDERS.c.amount > 10_000) > 0
    assert _count(engine, bad_amount) == _count(engine, _between(4, 5.9))

    # The stall outlasts nothing here, but no order is written inside it.
    assert _count(engine, _between(6, 8.9)) == 0
    assert _count(engine, _between(9, 12.5)) > 0

    assert types[8.5] == "VARCHAR"
    assert types[9.0] == types[10.5] == "INTEGER"
    assert types[11.0] == types[12.5] == "VARCHAR"
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(ORDERS.c.status).distinct()).scalars())
        enriched = sa.table("orders_enriched", sa.column("status"))
        view_rows = conn.execute(sa.select(sa.func.count()).select_from(enriched)).scalar()
    assert statuses <= set(STATUSES)  # rows written as INTEGER codes were mapped back
    assert view_rows == _count(engine)


def test_pandera_sees_the_incidents_the_generator_made(
    engine: sa.Engine, clock: SteppedClock
) -> None:
    timeline = Timeline.of([(0, 1, "null_burst"), (1, 2, "out_of_range")])
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline)
    for _ in range(4):
        generator.step()
        clock.advance(0.5)
    with pytest.raises(SchemaErrors) as caught:
        _schema("orders.yaml").validate(_frame(engine, ORDERS), lazy=True)
    failed = set(caught.value.failure_cases["column"])
    assert {"email", "amount"} <= failed


def test_a_distribution_shift_moves_amounts_and_statuses_within_the_schema(
    engine: sa.Engine, clock: SteppedClock
) -> None:
    generator = IncidentGenerator(
        engine, clock=clock, timeline=Timeline.of([(5, 25, "distribution_shift")]), seed=5
    )
    for _ in range(30):
        generator.step()
        clock.advance(1)
    amount, status = ORDERS.c.amount, ORDERS.c.status

    def stats(*where: sa.ColumnElement[bool]) -> tuple[float, float]:
        shifted = sa.func.count().filter(status.in_(SHIFTED_STATUSES))
        query = sa.select(sa.func.avg(amount), shifted / sa.func.count()).where(*where)
        with engine.connect() as conn:
            mean, share = conn.execute(query).one()
        return float(mean), float(share)

    history_mean, history_share = stats(ORDERS.c.created_at < _at(0))
    shift_mean, shift_share = stats(_between(5, 24.9))
    live_mean, live_share = stats(sa.or_(_between(0, 4.9), _between(25, 30)))
    assert 0.6 * SHIFT_FACTOR < shift_mean / history_mean < 1.5 * SHIFT_FACTOR
    assert shift_share > 0.7 > 0.2 > history_share
    # Outside the incident the live feed draws from the history's own mix.
    assert 0.5 < live_mean / history_mean < 1.5 and live_share < 0.3
    # Drift, not a schema failure: every row still passes every rule.
    _schema("orders.yaml").validate(_frame(engine, ORDERS), lazy=True)


def test_the_agent_sees_the_shift_as_drift_and_a_stall_as_insufficient_data(
    tmp_path: Path, engine: sa.Engine, clock: SteppedClock
) -> None:
    """The demo's own config on its warehouse: drift passes, fails in the shift, then no data."""
    config = parse_config(_demo_config_text(tmp_path), path=str(tmp_path / "o.yaml"), env={})
    agent = Agent(config, clock=clock, engines={"warehouse": engine})
    agent.open()
    timeline = Timeline.of([(10, 30, "distribution_shift"), (30, 80, "stalled_feed")])
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline, seed=2)
    seen: dict[int, dict[str, CheckResult]] = {}
    try:
        for tick in range(51):
            generator.step()
            if tick in (8, 28, 50):  # before, 18s into the shift, 20s into the stall
                seen[tick] = {r.check: r for r in agent.run_once(["orders"])}
            clock.advance(1)
        table = render_status(agent.latest(), now=clock(), incident=None, width=100)
    finally:
        agent.close()
    drift = ("amount:drift", "status:drift", "drift_share")
    assert [seen[8][c].status for c in drift] == [Status.PASS] * 3
    assert [seen[28][c].status for c in drift] == [Status.FAIL] * 3
    assert seen[28]["validity"].status is Status.PASS  # no schema rule sees a shift
    assert [seen[50][c].status for c in drift] == [Status.INSUFFICIENT_DATA] * 3
    assert "min_rows=50" in (seen[50]["amount:drift"].note or "")
    amount = seen[28]["amount:drift"]
    assert amount.details is not None and amount.details["method"] == "psi"
    assert sum(amount.details["current"]["counts"]) == amount.rows
    lines = {tuple(line.split()[:3]): line for line in table.splitlines()[3:]}
    assert "insufficient data" in lines[("orders", "amount:drift", "INSUFF")]
    assert "3 insufficient" in table.splitlines()[0]


def test_generator_leaves_a_retyped_column_restored_when_stopped(
    engine: sa.Engine, clock: SteppedClock
) -> None:
    generator = IncidentGenerator(
        engine, clock=clock, timeline=Timeline.of([(0, 100, "column_retyped")]), tick=0.05
    )
    generator.step()
    assert _column_type(engine, "orders", "status") == "INTEGER"
    assert _count(engine, ORDERS.c.status == STATUS_CODES["paid"]) > 0
    generator.start()
    time.sleep(0.1)
    generator.stop()
    assert _column_type(engine, "orders", "status") == "VARCHAR"


def test_generator_thread_appends_and_stops_promptly(tmp_path: Path) -> None:
    engine = create_demo_warehouse(tmp_path / "wh.duckdb", clock=lambda: datetime.now(UTC))
    try:
        before = _count(engine)
        generator = IncidentGenerator(
            engine,
            clock=lambda: datetime.now(UTC),
            timeline=Timeline.of([(0, 0.25, "null_burst")]),
            tick=0.05,
        )
        generator.start()
        generator.start()  # a second start is a no-op, not a second thread
        time.sleep(0.5)
        began = time.monotonic()
        generator.stop()
        assert time.monotonic() - began < 0.5
        after = _count(engine)
        assert after - before >= 5
        assert _count(engine, ORDERS.c.email.is_(None)) > 0
        assert _count(engine, ORDERS.c.email.is_not(None), ORDERS.c.order_id > before) > 0
        time.sleep(0.15)
        assert _count(engine) == after  # nothing is written once stopped
    finally:
        engine.dispose()


def test_current_incident_follows_the_timeline_and_cycles(
    engine: sa.Engine, clock: SteppedClock
) -> None:
    timeline = Timeline.of([(1, 2, "null_burst"), (2, 3, "stalled_feed")], period=5)
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline)
    assert generator.current_incident(START) is None  # not started
    generator.step()
    assert generator.started_at == START
    at = {s: generator.current_incident(START + timedelta(seconds=s)) for s in (0, 1.5, 2.5, 6.5)}
    assert at[0] is None
    assert at[1.5] == IncidentKind.NULL_BURST.description
    assert at[2.5] == IncidentKind.STALLED_FEED.description
    assert at[6.5] == IncidentKind.NULL_BURST.description  # the second round
    assert [i.kind for i in generator.incidents] == [
        IncidentKind.NULL_BURST,
        IncidentKind.STALLED_FEED,
    ]


def test_a_one_minute_demo_shows_every_incident_long_enough() -> None:
    timeline = Timeline.for_duration(MIN_DURATION)
    assert timeline.period is None
    assert {i.kind for i in timeline.incidents} == set(IncidentKind)
    for incident in timeline.incidents:
        assert 0 <= incident.start < incident.end <= MIN_DURATION
        assert incident.end - incident.start > 5  # longer than a check interval
    stall = next(i for i in timeline.incidents if i.kind is IncidentKind.STALLED_FEED)
    # freshness fails once the newest row is older than max_age, with a check to see it
    assert stall.end - stall.start > FRESHNESS_MAX_AGE.total_seconds() + 5
    # The accuracy decay and a materialization stall write no order: they may share slots.
    shared = (
        IncidentKind.STALLED_FEED,
        IncidentKind.ACCURACY_DECAY,
        IncidentKind.MATERIALIZATION_STALL,
    )
    others = sorted(i for i in timeline.incidents if i.kind not in shared)
    assert all(a.end <= b.start for a, b in itertools.pairwise(others))
    # A retyped column is visible only while it lasts: three checks at least.
    retype = next(i for i in timeline.incidents if i.kind is IncidentKind.COLUMN_RETYPED)
    assert retype.end - retype.start >= 15

    # Shifted rows must fill half the drift window, and a check must see them, before
    # out-of-range amounts (drift of their own) arrive.
    shift = next(i for i in timeline.incidents if i.kind is IncidentKind.DISTRIBUTION_SHIFT)
    oor = next(i for i in timeline.incidents if i.kind is IncidentKind.OUT_OF_RANGE)
    half = DRIFT_CURRENT_WINDOW.total_seconds() / 2
    assert shift.end - shift.start > half + CHECK_INTERVAL.total_seconds()
    assert shift.end <= oor.start

    endless = Timeline.for_duration(None)
    assert endless.period is not None
    assert {i.kind for i in endless.incidents} == set(IncidentKind)
    assert Timeline.for_duration(3600) == endless  # long demos cycle too
    # In the cycle, rows that move a distribution leave the drift window before the next.
    movers = sorted(
        i
        for i in endless.incidents
        if i.kind in (IncidentKind.DISTRIBUTION_SHIFT, IncidentKind.OUT_OF_RANGE)
    )
    gap = movers[1].start - movers[0].end
    assert gap >= DRIFT_CURRENT_WINDOW.total_seconds()


def test_bad_timelines_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="too short") as caught:
        Timeline.for_duration(30)
    assert caught.value.key == "duration"
    with pytest.raises(ConfigError, match="unknown incident 'fire'"):
        Timeline.of([(0, 1, "fire")])
    with pytest.raises(ConfigError, match="0 <= start < end"):
        Timeline.of([(2, 1, "null_burst")])
    with pytest.raises(ConfigError, match="after the period"):
        Timeline.of([(0, 10, "null_burst")], period=5)


# --- status view ---------------------------------------------------------------


def _result(dataset: str, kind: CheckKind, check: str, status: Status, **kw: Any) -> CheckResult:
    return CheckResult(
        dataset=dataset,
        kind=kind,
        check=check,
        status=status,
        finished_at=kw.pop("finished_at", START - timedelta(seconds=3)),
        **kw,
    )


RESULTS = [
    _result(
        "orders",
        CheckKind.SCHEMA,
        "email:not_null",
        Status.FAIL,
        rows=150,
        failed_rows=12,
        measurements=(
            Measurement(name="completeness_ratio", value=0.92, labels=(("column", "email"),)),
        ),
    ),
    _result(
        "orders",
        CheckKind.FRESHNESS,
        "freshness",
        Status.PASS,
        measurements=(
            Measurement(name="freshness_seconds", value=2.0),
            Measurement(name="newest_row_timestamp_seconds", value=1.77e9),
        ),
    ),
    _result(
        "orders_enriched",
        CheckKind.VOLUME,
        "volume",
        Status.PASS,
        rows=140,
        measurements=(Measurement(name="rows", value=140, labels=(("window", "1m"),)),),
    ),
    _result(
        "customers",
        CheckKind.SCHEMA,
        "country:isin",
        Status.ERROR,
        error="column 'country' does not exist in table 'customers';\n it has: 'id'",
        finished_at=(START - timedelta(minutes=2, seconds=5)).replace(tzinfo=None),
    ),
]


@pytest.mark.parametrize("width", [80, 100, 140])
def test_status_shows_every_dataset_check_and_the_incident(width: int) -> None:
    text = render_status(
        RESULTS, now=START, incident=IncidentKind.NULL_BURST.description, width=width
    )
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "4 checks: 2 pass, 1 fail, 1 error" in lines[0]
    assert lines[1] == f"incident: {IncidentKind.NULL_BURST.description}"
    assert lines[2].split() == ["DATASET", "CHECK", "STATUS", "ROWS", "FAILED", "VALUE", "AGE"]
    body = lines[3:]
    assert [line.split()[0] for line in body] == [
        "customers",
        "orders",
        "orders",
        "orders_enriched",
    ]
    by_dataset = {(line.split()[0], line.split()[1]): line for line in body}
    assert by_dataset[("orders", "email:not_null")].split()[2:5] == ["FAIL", "150", "12"]
    assert "freshness 2s" in by_dataset[("orders", "freshness")]
    assert "newest_row" not in text
    assert "rows[1m] 140" in by_dataset[("orders_enriched", "volume")]
    customers = by_dataset[("customers", "country:isin")]
    assert "ERROR" in customers and "column 'co" in customers
    if width >= 100:
        assert "completeness[email] 92.0%" in by_dataset[("orders", "email:not_null")]
    assert customers.endswith("2m05s")


def test_status_when_healthy_empty_and_coloured() -> None:
    healthy = render_status([], now=START, incident=None)
    assert "incident: none" in healthy and "no check has finished yet" in healthy
    coloured = render_status(RESULTS, now=START, incident="stalled feed", color=True)
    assert "\x1b[31;1mFAIL" in coloured and "\x1b[32mPASS" in coloured
    assert "\x1b[33;1mERROR" in coloured and "\x1b[1mincident: stalled feed" in coloured
    assert "\x1b[" not in render_status(RESULTS, now=START, incident="stalled feed")


def _drift_result(column: str, status: Status, **kw: Any) -> CheckResult:
    return _result("orders", CheckKind.DRIFT, f"{column}:drift", status, **kw)


def _drift_measurements(column: str, method: str, score: float, p: float) -> Any:
    labels = (("column", column), ("method", method))
    return (
        Measurement(name="drift_score", value=score, labels=labels),
        Measurement(name="drift_pvalue", value=p, labels=labels),
        Measurement(name="drift_detected", value=1.0, labels=labels),
    )


DRIFT_RESULTS = [
    _result(
        "orders",
        CheckKind.DRIFT,
        "drift_share",
        Status.FAIL,
        rows=2,
        failed_rows=2,
        measurements=(Measurement(name="drift_share", value=1.0),),
    ),
    _drift_result(
        "status",
        Status.FAIL,
        rows=75,
        measurements=_drift_measurements("status", "jensen_shannon", 0.245, 7.2e-7),
        details={"signals": ["distribution", "new_categories"]},
    ),
    _drift_result(
        "amount",
        Status.FAIL,
        rows=76,
        measurements=_drift_measurements("amount", "psi", 0.4123, 3.1e-5),
        details={"signals": ["distribution"]},
    ),
    _drift_result(
        "email",
        Status.INSUFFICIENT_DATA,
        rows=32,
        note="reference has 1432 non-null rows and current 32; at least min_rows=50 are needed",
    ),
    RESULTS[0],
]


@pytest.mark.parametrize("width", [80, 100])
def test_status_shows_drift_scores_and_insufficient_data(width: int) -> None:
    text = render_status(DRIFT_RESULTS, now=START, incident=None, width=width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert "5 checks: 0 pass, 4 fail, 0 error, 1 insufficient" in lines[0]
    # schema rows first, then drift by column, the dataset's share last
    assert [line.split()[1] for line in lines[3:]] == [
        "email:not_null",
        "amount:drift",
        "email:drift",
        "status:drift",
        "drift_share",
    ]
    rows = {line.split()[1]: line for line in lines[3:]}
    assert rows["amount:drift"].split()[2:4] == ["FAIL", "76"]
    assert "psi 0.412 p=3.1e-05" in rows["amount:drift"]
    assert "js 0.245 p=7.2e-07" in rows["status:drift"]
    assert rows["email:drift"].split()[2:4] == ["INSUFF", "32"]
    assert "insufficient data" in rows["email:drift"]
    assert "drift share 100%" in rows["drift_share"]
    if width >= 100:
        assert "new_cat" in rows["status:drift"]
    coloured = render_status(DRIFT_RESULTS, now=START, incident=None, width=width, color=True)
    assert "\x1b[2mINSUFF" in coloured


def test_a_null_burst_pages_the_validity_slo_into_the_alert_file(
    tmp_path: Path, engine: sa.Engine, clock: SteppedClock
) -> None:
    """The demo's SLOs and file receiver: the null burst burns orders-valid, a page goes out."""
    alerts_path = tmp_path / "alerts.jsonl"
    text = demo_config_text(
        tmp_path / WAREHOUSE,
        "sqlite:///" + str(tmp_path / "state.db"),
        "127.0.0.1:0",
        DEMO_SCHEMA_DIR,
        alerts_path=alerts_path,
    )
    config = parse_config(text, path=str(tmp_path / "o.yaml"), env={})
    agent = Agent(config, clock=clock, engines={"warehouse": engine})
    agent.open()
    generator = IncidentGenerator(
        engine, clock=clock, timeline=Timeline.of([(2, 30, "null_burst")]), seed=3
    )
    try:
        for tick in range(31):  # the route's group_interval is 10s: both pages are out by 30s
            generator.step()
            if tick % 5 == 0:
                agent.run_once(["orders"])
                agent.evaluate_slos()
            clock.advance(1)
        assert agent.outbox is not None
        agent.flush_alerts()
        agent.outbox.deliver_due()
        table = render_status(
            agent.latest(), now=clock(), incident=None, width=120, slos=agent.slo_document()
        )
    finally:
        agent.close()
    lines = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    pages = [
        a
        for doc in lines
        for a in doc["alerts"]
        if a["labels"]["slo"] == "orders-valid" and a["labels"]["severity"] == "page"
    ]
    assert {a["labels"]["burnrate_tier"] for a in pages} == {"1h-5m", "6h-30m"}
    assert all(a["status"] == "firing" for a in pages)
    slo_lines = {line.split()[0]: line for line in table.splitlines() if line.startswith("orders-")}
    assert "page 1h-5m" in slo_lines["orders-valid"]
    assert set(slo_lines) == {"orders-valid", "orders-complete", "orders-fresh", "orders-stable"}


def test_the_churn_model_decays_and_burns_its_accuracy_slo(
    tmp_path: Path, engine: sa.Engine, clock: SteppedClock
) -> None:
    """Seeded and live predictions with late labels; a decay fails accuracy and burns the SLO."""
    predictions, labels = model_tables()
    seeded = _scalar(engine, sa.select(sa.func.count()).select_from(predictions))
    landed = _scalar(engine, sa.select(sa.func.count()).select_from(labels))
    assert seeded == 1500
    # Labels still due after the seeding instant never land: about 40% x (a minute / 10).
    assert 0.9 * seeded < landed < seeded
    config = parse_config(_demo_config_text(tmp_path), path=str(tmp_path / "o.yaml"), env={})
    agent = Agent(config, clock=clock, engines={"warehouse": engine})
    agent.open()
    timeline = Timeline.of([(40, 80, "accuracy_decay")])
    generator = IncidentGenerator(engine, clock=clock, timeline=timeline, seed=4)
    seen: dict[int, dict[str, CheckResult]] = {}
    try:
        for tick in range(76):
            generator.step()
            if tick in (35, 75):  # healthy, then 35s into the decay
                seen[tick] = {r.check: r for r in agent.run_model("churn")}
            clock.advance(1)
        assert agent.slos is not None
        totals = dict(agent.slos.totals)
    finally:
        agent.close()
    healthy, decayed = seen[35], seen[75]
    assert healthy["model:accuracy"].status is Status.PASS
    assert decayed["model:accuracy"].status is Status.FAIL
    accuracy = decayed["model:accuracy"].measurement(
        "model_metric", metric="accuracy", kind="realized", segment="all"
    )
    assert accuracy is not None and accuracy < 0.4
    coverage = decayed["model:labels"].measurement("label_coverage_ratio")
    assert coverage is not None and 0.4 < coverage < 0.9  # late labels still due
    # The score-based estimate does not see a decay: it believes the scores.
    estimated = decayed["model:accuracy"].measurement(
        "model_metric", metric="accuracy", kind="estimated", segment="all"
    )
    assert estimated is not None and estimated > 0.7
    bad, good = totals[("churn-accurate", "bad")], totals[("churn-accurate", "good")]
    assert bad > 0 and good > 0
    assert healthy["model:window-1"].status is Status.PASS
