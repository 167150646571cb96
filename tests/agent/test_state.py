"""The state store on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from osemn.agent import _state_schema as state
from osemn.agent.state import StateStore
from osemn.errors import StateError, StateVersionError
from osemn.results import CheckKind, CheckResult, Measurement, Status

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


class FrozenClock:
    """A wall clock that only moves when told."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_result(
    check: str = "email:not_null",
    *,
    dataset: str = "orders",
    at: datetime = NOW,
    status: Status = Status.PASS,
    kind: CheckKind = CheckKind.SCHEMA,
    value: float = 1.0,
    **fields: Any,
) -> CheckResult:
    return CheckResult(
        dataset=dataset,
        kind=kind,
        check=check,
        status=status,
        finished_at=at,
        measurements=(
            Measurement(name="validity_ratio", value=value),
            Measurement(
                name="completeness_ratio", value=value, labels=(("column", "email"), ("b", "a"))
            ),
        ),
        **fields,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database: a SQLite file in a folder not made yet, or a PG schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'osemn-state.db'}"
    url: str = request.getfixturevalue("pg_state_url")
    return url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store(state_url: str, clock: FrozenClock) -> Iterator[StateStore]:
    opened = StateStore(state_url, clock=clock)
    opened.open()
    yield opened
    opened.close()


def test_results_round_trip_every_field(store: StateStore) -> None:
    failing = make_result(
        "amount:in_range(0, 99.5)",
        status=Status.FAIL,
        at=datetime(2026, 3, 1, 14, 0, 0, 654321, tzinfo=CEST),
        rows=1_000_000_000_000,
        failed_rows=3,
        duration_seconds=0.125,
        failures=({"id": 7, "amount": -1.5, "tags": ["a", None]}, {"id": 8, "amount": None}),
        note="proven by constraint",
        source="warehouse",
    )
    errored = CheckResult(
        dataset="orders",
        kind=CheckKind.SCHEMA_CHANGE,
        check="columns",
        status=Status.ERROR,
        finished_at=NOW,
        error='relation "orders" does not exist',
    )
    store.record_run([failing, errored])

    latest = store.latest_results()

    assert latest == [failing, errored]
    assert [r.finished_at.tzinfo for r in latest] == [UTC, UTC]
    assert latest[0].measurements[1].labels == (("column", "email"), ("b", "a"))
    assert store.history("orders", "amount:in_range(0, 99.5)") == [failing]


def test_nan_and_infinite_values_round_trip(store: StateStore) -> None:
    store.record_run([make_result("a", value=math.nan), make_result("b", value=math.inf)])

    a, b = store.latest_results()

    assert math.isnan(a.measurements[0].value)
    assert b.measurements[0].value == math.inf


def test_the_newest_result_is_latest_whatever_the_order_of_writes(store: StateStore) -> None:
    first = make_result(at=NOW - timedelta(hours=2), status=Status.FAIL)
    newest = make_result(at=NOW)
    late_arrival = make_result(at=NOW - timedelta(hours=1), status=Status.ERROR)
    other = make_result(dataset="customers")
    store.record_run([first, other])
    store.record_run([newest])
    store.record_run([late_arrival])

    assert store.latest_results("orders") == [newest]
    assert store.latest_results() == [other, newest]
    assert store.history("orders", "email:not_null") == [first, late_arrival, newest]


def test_history_and_measurements_filter_by_time_and_dataset(store: StateStore) -> None:
    times = [NOW - timedelta(hours=h) for h in (3, 2, 1)]
    store.record_run([make_result(at=t, value=float(i)) for i, t in enumerate(times)])
    store.record_run([make_result(dataset="customers", at=NOW, value=9.0)])
    store.record_run([make_result("id:unique", at=NOW)])

    since = store.history("orders", "email:not_null", since=times[1])
    values = store.measurements("completeness_ratio", dataset="orders", since=times[1])
    everywhere = store.measurements("completeness_ratio")

    assert [r.finished_at for r in since] == times[1:]
    labels = {"column": "email", "b": "a"}
    assert values == [
        (times[1], "orders", labels, 1.0),
        (times[2], "orders", labels, 2.0),
        (NOW, "orders", labels, 1.0),  # id:unique measures it too
    ]
    assert [(t, d, v) for t, d, _, v in everywhere][-2:] == [
        (NOW, "customers", 9.0),
        (NOW, "orders", 1.0),
    ]
    assert len(everywhere) == 5


def test_naive_times_are_refused(store: StateStore) -> None:
    naive = datetime(2026, 3, 1, 12, 0)

    with pytest.raises(ValueError, match="naive datetime"):
        store.record_run([make_result(at=naive)])
    with pytest.raises(ValueError, match="naive datetime"):
        store.set_watermark("orders", naive)
    with pytest.raises(ValueError, match="naive datetime"):
        store.history("orders", "email:not_null", since=naive)


def test_watermarks_upsert_and_come_back_in_utc(store: StateStore) -> None:
    assert store.get_watermark("orders") is None

    store.set_watermark("orders", datetime(2026, 3, 1, 14, 30, 0, 1, tzinfo=CEST))
    first = store.get_watermark("orders")
    store.set_watermark("orders", NOW - timedelta(days=1))

    assert first == datetime(2026, 3, 1, 12, 30, 0, 1, tzinfo=UTC)
    assert first is not None and first.tzinfo is UTC
    assert store.get_watermark("orders") == NOW - timedelta(days=1)
    assert store.get_watermark("customers") is None


def test_the_last_schema_snapshot_wins(store: StateStore) -> None:
    assert store.get_schema_snapshot("orders") is None

    store.put_schema_snapshot("orders", {"id": "BIGINT", "email": "VARCHAR"})
    store.put_schema_snapshot("orders", {"id": "BIGINT", "email": "TEXT", "amount": "NUMERIC"})

    assert store.get_schema_snapshot("orders") == {
        "id": "BIGINT",
        "email": "TEXT",
        "amount": "NUMERIC",
    }
    assert list(store.get_schema_snapshot("orders") or {}) == ["id", "email", "amount"]


def test_prune_keeps_latest_results_snapshots_and_watermarks(
    store: StateStore, clock: FrozenClock
) -> None:
    days = [NOW - timedelta(days=d) for d in (50, 40, 1)]
    store.record_run([make_result("a", at=t) for t in days])
    stale = make_result("b", at=NOW - timedelta(days=45))
    store.record_run([stale])
    for age, columns in ((40, {"v": "1"}), (35, {"v": "2"}), (32, {"v": "3"})):
        clock.now = NOW - timedelta(days=age)
        store.put_schema_snapshot("orders", columns)
    store.put_schema_snapshot("customers", {"v": "only"})
    store.set_watermark("orders", NOW - timedelta(days=90))
    clock.now = NOW

    deleted = store.prune(timedelta(days=30))

    # 2 old results of "a" with 2 measurements each, and 2 superseded snapshots.
    assert deleted == 2 + 4 + 2
    assert [r.finished_at for r in store.history("orders", "a")] == [days[2]]
    assert store.history("orders", "b") == [stale]
    assert len(store.latest_results()) == 2
    assert len(store.measurements("validity_ratio")) == 2
    assert store.get_schema_snapshot("orders") == {"v": "3"}
    assert store.get_schema_snapshot("customers") == {"v": "only"}
    assert store.get_watermark("orders") == NOW - timedelta(days=90)
    assert store.prune(timedelta(days=30)) == 0


def test_a_newer_schema_version_is_refused(state_url: str) -> None:
    url = sa.make_url(state_url)
    if url.get_backend_name() == "postgresql":
        # Trust auth ignores the password; it is only there to be hidden.
        url = url.set(password="hunter2-secret")
    rendered = url.render_as_string(hide_password=False)
    first = StateStore(rendered)
    first.open()
    first.open()  # opening again is harmless
    meta = sa.table("osemn_meta", sa.column("key"), sa.column("value"))
    with first.engine.begin() as conn:
        conn.execute(
            sa.update(meta)
            .where(meta.c.key == "schema_version")
            .values(value=str(StateStore.SCHEMA_VERSION + 1))
        )
    first.close()

    newer = StateStore(rendered)
    with pytest.raises(StateVersionError) as raised:
        newer.open()
    newer.close()

    assert raised.value.found == StateStore.SCHEMA_VERSION + 1
    assert raised.value.supported == StateStore.SCHEMA_VERSION
    assert "Upgrade osemn, or point agent.state at a new database" in str(raised.value)
    assert "hunter2-secret" not in str(raised.value)


def test_a_version_1_store_is_migrated(state_url: str) -> None:
    """Version 1 had no result details and no reference profiles; opening adds both."""
    store = StateStore(state_url)
    store.open()
    meta = sa.table("osemn_meta", sa.column("key"), sa.column("value"))
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE osemn_results DROP COLUMN details"))
        conn.execute(sa.text("DROP TABLE osemn_reference_profiles"))
        conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="1"))
    store.close()

    upgraded = StateStore(state_url)
    upgraded.open()
    upgraded.record_run([make_result(details={"reference": {"counts": [1, 2]}})])
    upgraded.put_profile("orders", "amount", "k", {"kind": "numeric"})
    assert upgraded.latest_results()[0].details == {"reference": {"counts": [1, 2]}}
    assert upgraded.get_profile("orders", "amount", "k") == {"kind": "numeric"}
    assert upgraded.get_profile("orders", "amount", "other key") is None
    with upgraded.engine.connect() as conn:
        version = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
        assert version.scalar_one() == str(StateStore.SCHEMA_VERSION)
    upgraded.close()


def test_an_unknown_kind_is_a_clear_error(store: StateStore) -> None:
    store.record_run([make_result()])
    results = sa.table("osemn_results", sa.column("kind"))
    with store.engine.begin() as conn:
        conn.execute(sa.update(results).values(kind="telepathy"))

    with pytest.raises(StateError, match=r"'telepathy' result of orders/email:not_null.*Upgrade"):
        store.latest_results()


def test_concurrent_runs_on_sqlite_do_not_lock(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'osemn-state.db'}")
    store.open()
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        start.wait()
        try:
            for run in range(15):
                at = NOW + timedelta(seconds=run)
                store.record_run([make_result(c, dataset=f"d{worker}", at=at) for c in "xyz"])
                store.set_watermark(f"d{worker}", at)
                store.latest_results(f"d{worker}")
        except BaseException as exc:  # collected to fail the test in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(store.latest_results()) == 8 * 3
    assert len(store.measurements("validity_ratio")) == 8 * 15 * 3
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
    store.close()


def test_agents_opening_one_postgresql_database_at_once(pg_state_url: str) -> None:
    stores = [StateStore(pg_state_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def open_it(store: StateStore) -> None:
        start.wait()
        try:
            store.open()
        except BaseException as exc:  # collected to fail the test in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    meta = sa.table("osemn_meta", sa.column("key"))
    with stores[0].engine.connect() as conn:
        versions = conn.execute(sa.select(sa.func.count()).select_from(meta)).scalar()
    for store in stores:
        store.close()

    assert errors == []
    assert versions == 1


def test_an_unreachable_postgresql_is_a_state_error_without_the_password() -> None:
    store = StateStore("postgresql+psycopg://osemn:s3cret-pw@127.0.0.1:1/state")

    with pytest.raises(StateError) as opening:
        store.open()
    with pytest.raises(StateError) as writing:
        store.record_run([make_result()])
    alive = store.ping()
    store.close()

    for raised in (opening.value, writing.value):
        text = str(raised)
        assert "s3cret-pw" not in text
        assert "postgresql+psycopg://osemn:***@127.0.0.1:1/state" in text
        assert "Check that the database is up and reachable" in text
    assert "cannot open the state store" in str(opening.value)
    assert alive is False


def test_a_bad_url_is_a_state_error_without_the_password() -> None:
    with pytest.raises(StateError, match="not a SQLAlchemy URL") as raised:
        StateStore("postgresql//osemn:s3cret-pw@host/db")

    assert "s3cret-pw" not in str(raised.value)
    assert raised.value.__cause__ is None


def test_ping_and_sqlite_folder(store: StateStore, state_url: str, tmp_path: Path) -> None:
    assert store.ping() is True
    if state_url.startswith("sqlite"):
        assert (tmp_path / "not-yet" / "osemn-state.db").is_file()


def test_a_handed_engine_is_never_disposed(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    pool = engine.pool
    store = StateStore("ignored when an engine is given", engine=engine)
    store.open()
    store.record_run([make_result()])

    store.close()

    assert engine.pool is pool
    assert store.safe_url == f"sqlite:///{tmp_path / 'shared.db'}"
    engine.dispose()


def test_the_portable_upsert_for_other_dialects(tmp_path: Path) -> None:
    """``_update_then_insert`` serves dialects without ON CONFLICT; SQLite runs it for real."""
    store = StateStore(f"sqlite:///{tmp_path / 'osemn-state.db'}")
    store.open()
    store.record_run([make_result(at=NOW - timedelta(hours=h)) for h in (2, 1)])
    latest = state._latest
    key = {"dataset": "orders", "kind": "schema", "check": "email:not_null"}

    with store.engine.begin() as conn:
        ids = (
            conn.execute(sa.select(state._results.c.id).order_by(state._results.c.id))
            .scalars()
            .all()
        )
        conn.execute(sa.delete(latest))
        for result_id, at in ((ids[1], NOW), (ids[0], NOW - timedelta(hours=1))):
            state._update_then_insert(
                conn,
                latest,
                key,
                {"result_id": result_id, "finished_at": at},
                guard=latest.c.finished_at <= at,
            )
        state._update_then_insert(
            conn, state._watermarks, {"dataset": "orders"}, {"value": NOW, "updated_at": NOW}
        )
        state._update_then_insert(
            conn, state._watermarks, {"dataset": "orders"}, {"value": NOW, "updated_at": NOW}
        )
        pointer = conn.execute(sa.select(latest.c.result_id, latest.c.finished_at)).all()

    assert pointer == [(ids[1], NOW)]
    assert store.get_watermark("orders") == NOW
    store.close()
