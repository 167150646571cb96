"""The contract suite: the same checks on DuckDB, SQLite, PostgreSQL and MariaDB, exact counts."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandera.pandas as pa
import pytest
import sqlalchemy as sa

from osemn.results import CheckKind, CheckResult, Status
from tests.agent.helpers import (
    EXPECTED_FAILED,
    FrozenClock,
    load_orders,
    make_agent,
    order_rows,
    orders_schema,
    write_config,
)
from tests.conftest import Warehouse


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check: r for r in results}


def test_contract_exact_counts(warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(warehouse)
    agent = make_agent(write_config(tmp_path, warehouse), wh=warehouse)
    try:
        results = by_check(agent.run_once(full=True))
    finally:
        agent.close()
    for check, failed in EXPECTED_FAILED.items():
        assert results[check].failed_rows == failed, (check, results[check])
        assert results[check].status is (Status.FAIL if failed else Status.PASS)
        assert results[check].rows == 10
    assert results["id:unique"].note is not None
    assert results["id:unique"].note.startswith("proven by constraint")
    assert results["id:not_null"].note == "proven by constraint (primary key id)"
    validity = results["validity"]
    # rows breaking at least one row rule: ids 3,4,5,6,7,8,9 (email dup is not a row rule)
    assert validity.failed_rows == 7
    assert validity.measurement("validity_ratio") == pytest.approx(0.3)
    assert validity.measurement("completeness_ratio", column="email") == pytest.approx(0.9)
    assert validity.measurement("completeness_ratio", column="amount") == pytest.approx(0.9)
    assert validity.measurement("completeness_ratio", column="id") == pytest.approx(1.0)
    fresh = results["created_at:freshness(max_age=15m)"]
    assert fresh.status is Status.PASS
    assert fresh.measurement("freshness_seconds") == pytest.approx(60.0)
    volume = results["volume(window=1h, min_rows=5)"]
    assert volume.status is Status.PASS and volume.rows == 10
    assert results["schema_change"].status is Status.PASS
    # dtypes of every column match by logical kind
    dtypes = [r for r in results.values() if ":dtype(" in r.check]
    assert len(dtypes) == 6 and all(r.status is Status.PASS for r in dtypes), dtypes
    # failure samples: bounded, masked email, key and timestamp shown
    sample = results["amount:in_range(0, 100)"].failures
    assert len(sample) == 2
    assert {row["id"] for row in sample} == {3, 4}
    regex = results["email:str_matches('^[^@]+@[^@]+$')"].failures
    assert regex[0]["email"].startswith("hmac:") and "bad" not in str(regex)
    dup = results["email:unique"].failures
    assert dup[0]["occurrences"] == 2 and dup[0]["email"].startswith("hmac:")


def count_statements(engine: sa.Engine, table: str) -> list[str]:
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        del conn, cursor, args
        if table in statement and "information_schema" not in statement.lower():
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    return seen


def test_statements_per_run(duckdb_or_pg: Warehouse, tmp_path: Path) -> None:
    wh = duckdb_or_pg
    load_orders(wh)
    agent = make_agent(write_config(tmp_path, wh), wh=wh)
    seen = count_statements(agent.warehouses["wh"].engine, "orders")
    results = agent.run_once(full=True)
    agent.close()
    data = [s for s in seen if "pg_catalog" not in s and "duckdb_" not in s]
    assert all(s.startswith("/* osemn */") for s in seen)
    failing_row_rules = sum(
        1 for r in results if r.status is Status.FAIL and r.failures and r.check != "email:unique"
    )
    # 1 fused scan + 1 grouped uniqueness statement (email) + 1 sample of the 5 failing
    # row rules + 1 sample of duplicated emails; id:unique costs nothing (primary key).
    # DuckDB answers max(created_at) from its statistics, apart from the scan.
    assert failing_row_rules == 5
    newest = [s for s in data if "max(" in s]
    assert len(newest) == 1 and ("count(" in newest[0]) is (wh.dialect != "duckdb")
    assert len(data) == 1 + 1 + 1 + 1 + (wh.dialect == "duckdb"), data
    assert sum(1 for s in data if "GROUP BY" in s and "HAVING" in s) == 2
    assert sum(1 for s in data if "UNION ALL" in s and s.count("LIMIT") == 5) == 1
    # The regex is evaluated once per row: DuckDB merges the repeated predicates of
    # count_if(a OR b ...); on PostgreSQL the "any" count runs it again only behind
    # "another rule is broken", which AND stops at on every other row.
    scan = next(s for s in data if "count(" in s)
    assert "GROUP BY" not in scan, scan
    if wh.dialect == "duckdb":
        assert scan.count("regexp_matches(") == 2, scan
    else:
        assert scan.count(" !~ ") == 2, scan
        guard = scan[scan.rindex(") IS true AND ") :]
        assert guard.count(" !~ ") == 1 and ") IS NOT true)" in guard, scan


def test_healthy_runs_leave_the_any_count_out(warehouse: Warehouse, tmp_path: Path) -> None:
    """After a run with at most one failing rule, the scan leaves the "any" count out;
    a run that then finds several failing rules counts it over their rows (one statement)."""
    rows = order_rows()
    table = load_orders(warehouse, [rows[i] for i in (0, 1, 2, 9)])  # 2: amount out of range
    agent = make_agent(write_config(tmp_path, warehouse), wh=warehouse)
    seen = count_statements(agent.warehouses["wh"].engine, "orders")

    def run() -> tuple[int | None, list[str]]:
        seen.clear()
        results = by_check(agent.run_once(full=True))
        counting = [s for s in seen if "count(" in s and "HAVING" not in s and "pg_" not in s]
        return results["validity"].failed_rows, counting

    def aggregates(statement: str) -> int:
        return statement.count(" AS a")

    deferred = warehouse.dialect != "duckdb"  # DuckDB's "any" count costs nothing: kept
    try:
        first, (scan,) = run()
        second, (lean,) = run()
        assert (first, second) == (1, 1)
        assert aggregates(lean) == aggregates(scan) - deferred, (scan, lean)
        more = order_rows(11)
        with warehouse.engine.begin() as conn:  # a null customer, an unknown status
            conn.execute(sa.insert(table), [more[4], more[8] | {"email": "z@x.io"}])
        third, statements = run()
        assert third == 3
        assert len(statements) == 1 + deferred
        if deferred:  # the union of the three failing rules' rows, counted afterwards
            union = statements[-1]
            assert aggregates(union) == 1 and union.count(" OR ") >= 2, union
        fourth, (full,) = run()  # several rules failed last time: the count is back in
        assert fourth == 3 and aggregates(full) == aggregates(scan)
    finally:
        agent.close()


def test_empty_table_counts_zero_everywhere(duckdb_or_pg: Warehouse, tmp_path: Path) -> None:
    """No rows: no groups on PostgreSQL, NULL count_if on DuckDB; every count is still 0."""
    table = load_orders(duckdb_or_pg)
    with duckdb_or_pg.engine.begin() as conn:
        conn.execute(sa.delete(table))
    agent = make_agent(write_config(tmp_path, duckdb_or_pg), wh=duckdb_or_pg)
    results = by_check(agent.run_once(full=True))
    agent.close()
    assert not [r for r in results.values() if r.status is Status.ERROR]
    for check in EXPECTED_FAILED:
        assert results[check].failed_rows == 0, check
    assert results["validity"].failed_rows == 0 and results["validity"].rows == 0
    assert results["validity"].status is Status.PASS


def test_newest_is_read_apart_where_an_index_answers_it(
    pg_warehouse: Warehouse, tmp_path: Path
) -> None:
    """With an index on the event time PostgreSQL reads max() off the index, not the scan."""
    wh = pg_warehouse
    table = load_orders(wh)
    with wh.engine.begin() as conn:
        sa.Index("ix_created", table.c.created_at).create(conn)
    agent = make_agent(write_config(tmp_path, wh), wh=wh)
    seen = count_statements(agent.warehouses["wh"].engine, "orders")
    results = by_check(agent.run_once(full=True))
    fresh = results["created_at:freshness(max_age=15m)"]
    assert fresh.status is Status.PASS
    assert fresh.measurement("freshness_seconds") == pytest.approx(60.0)
    data = [s for s in seen if "pg_catalog" not in s]
    assert [s for s in data if "max(" in s and "count(" not in s]
    assert not [s for s in data if "max(" in s and "count(" in s]
    # An incremental run scans a window already: max() stays in its scan.
    seen.clear()
    agent.run_once()
    agent.close()
    assert [s for s in seen if "max(" in s and "count(" in s]


def test_bad_expression_is_isolated(duckdb_or_pg: Warehouse, tmp_path: Path) -> None:
    """A rule the database rejects is the only error; the others keep their counts."""
    wh = duckdb_or_pg
    load_orders(wh)
    schema = orders_schema().update_column(
        "status", checks=[pa.Check.isin(["new", "paid", "shipped"]), pa.Check.gt(5)]
    )
    agent = make_agent(write_config(tmp_path, wh, schema=schema), wh=wh)
    results = by_check(agent.run_once(full=True))
    statements = agent.runners["orders"].last_statements
    agent.close()
    bad = results["status:greater_than(5)"]
    assert bad.status is Status.ERROR and bad.error
    for check, failed in EXPECTED_FAILED.items():
        assert results[check].failed_rows == failed, check
    assert results["validity"].failed_rows == 7
    assert results["validity"].status is Status.FAIL
    # 1 failed fused scan, 1 probe, a bisection, 1 validity recount, 5 samples, 2 unique
    assert statements <= 20, statements


def test_incremental_scans_only_new_rows(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    wh = duckdb_warehouse
    table = load_orders(wh)
    clock = FrozenClock()
    path = write_config(tmp_path, wh)
    path.write_text(path.read_text().replace("    failures:", "    lateness: 5m\n    failures:"))
    agent = make_agent(path, clock, wh=wh)
    first = by_check(agent.run_once())
    assert first["validity"].rows == 10
    # Two hours later, 10 new rows arrive. The watermark is NOW-1m and lateness 5m, so
    # the run reads rows since NOW-6m: the 6 newest old rows (ids 5..10) and the new ones.
    clock.advance(timedelta(hours=2))
    with wh.engine.begin() as conn:
        conn.execute(sa.insert(table), order_rows(start_id=100, at=clock.now))
    second = by_check(agent.run_once())
    assert second["validity"].rows == 16
    assert second["amount:in_range(0, 100)"].failed_rows == 2  # ids 102, 103
    assert second["amount:not_null"].failed_rows == 2  # ids 6 and 105
    # Duplicates count against the whole table, for keys seen in the window: every
    # non-null email now occurs at least twice (ids 1..10 and 100..109, 2 nulls).
    assert second["email:unique"].failed_rows == 18
    assert second["volume(window=1h, min_rows=5)"].rows == 10
    full = by_check(agent.run_once(full=True))
    assert full["validity"].rows == 20
    agent.close()


def test_freshness_and_volume_fail(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    clock = FrozenClock()
    agent = make_agent(write_config(tmp_path, duckdb_warehouse), clock, wh=duckdb_warehouse)
    agent.run_once()
    clock.advance(timedelta(hours=3))
    results = by_check(agent.run_once())
    fresh = results["created_at:freshness(max_age=15m)"]
    assert fresh.status is Status.FAIL
    assert fresh.measurement("freshness_seconds") == pytest.approx(3 * 3600 + 60)
    volume = results["volume(window=1h, min_rows=5)"]
    assert volume.status is Status.FAIL and volume.rows == 0
    agent.close()


def test_schema_change_detected_once(duckdb_warehouse: Warehouse, tmp_path: Path) -> None:
    load_orders(duckdb_warehouse)
    agent = make_agent(write_config(tmp_path, duckdb_warehouse), wh=duckdb_warehouse)
    assert by_check(agent.run_once())["schema_change"].note == "first snapshot recorded"
    with duckdb_warehouse.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE orders ADD COLUMN coupon VARCHAR"))
        conn.execute(sa.text("ALTER TABLE orders ALTER COLUMN customer_id TYPE VARCHAR"))
    changed = by_check(agent.run_once())["schema_change"]
    assert changed.status is Status.FAIL
    assert {(c["column"], c["change"]) for c in changed.failures} == {
        ("coupon", "added"),
        ("customer_id", "retyped"),
    }
    results = by_check(agent.run_once())
    assert results["schema_change"].status is Status.PASS
    assert results["customer_id:dtype('int64')"].status is Status.FAIL
    agent.close()


def test_missing_table_is_an_error_and_others_run(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    load_orders(duckdb_warehouse)
    datasets = """
  orders:
    source: wh
    table: orders
    schema: orders.yaml
  ghost:
    source: wh
    table: main.no_such_table
    timestamp: created_at
    freshness: {max_age: 1h}
"""
    agent = make_agent(
        write_config(tmp_path, duckdb_warehouse, datasets=datasets), wh=duckdb_warehouse
    )
    results = agent.run_once()
    agent.close()
    ghost = [r for r in results if r.dataset == "ghost"]
    assert {r.status for r in ghost} == {Status.ERROR}
    assert {r.kind for r in ghost} == {CheckKind.FRESHNESS, CheckKind.SCHEMA_CHANGE}
    assert "no_such_table" in (ghost[0].error or "") and "orders" in (ghost[0].error or "")
    orders = by_check([r for r in results if r.dataset == "orders"])
    assert orders["amount:in_range(0, 100)"].failed_rows == 2


def test_unreachable_source_is_error_not_fail(tmp_path: Path) -> None:
    wh = Warehouse(
        "postgresql",
        "postgresql+psycopg://osemn:s3cret@127.0.0.1:1/x",
        sa.create_engine("sqlite://"),
        None,
    )
    datasets = """
  orders:
    source: wh
    table: orders
    timestamp: created_at
    freshness: {max_age: 1h}
"""
    agent = make_agent(write_config(tmp_path, wh, datasets=datasets))
    results = agent.run_once()
    assert {r.status for r in results} == {Status.ERROR}
    assert all("s3cret" not in (r.error or "") for r in results)
    assert agent.warehouses["wh"].up is False
    agent.close()


def test_uniqueness_is_exact_on_strings(warehouse: Warehouse, tmp_path: Path) -> None:
    """Case and trailing spaces make keys differ, as in pandas, on every dialect."""
    rows = order_rows()[:5]
    for row, email in zip(rows, ["a@x.io", "A@x.io", "a@x.io ", "b@x.io", "b@x.io"], strict=True):
        row["email"] = email
    load_orders(warehouse, rows)
    agent = make_agent(write_config(tmp_path, warehouse), wh=warehouse)
    results = by_check(agent.run_once(full=True))
    agent.close()
    dup = results["email:unique"]
    assert dup.failed_rows == 2
    assert dup.failures[0]["occurrences"] == 2


def test_rejected_regex_and_raising_check_are_isolated(
    duckdb_or_pg: Warehouse, tmp_path: Path
) -> None:
    """A regex the dialect refuses and a custom check that raises: two errors, nothing else."""
    wh = duckdb_or_pg
    load_orders(wh)
    path = write_config(tmp_path, wh)
    # pandera's YAML cannot hold Python checks, so this schema is a module:attribute
    (tmp_path / "bad_checks_schema.py").write_text(
        textwrap.dedent(
            """
            import pandera.pandas as pa
            from tests.agent.helpers import orders_schema

            def explode(series):
                raise RuntimeError("boom")

            SCHEMA = orders_schema().update_column("status", checks=[
                pa.Check.isin(["new", "paid", "shipped"]),
                pa.Check.str_matches("(?P<x>a)(?=b)"),  # PostgreSQL: no (?P; RE2: no lookahead
                pa.Check(lambda s: s.str.len() < 5, name="short"),
                pa.Check(explode, name="explode"),
            ])
            """
        )
    )
    path.write_text(
        path.read_text().replace("schema: orders.yaml", "schema: bad_checks_schema:SCHEMA")
    )
    agent = make_agent(path, wh=wh)
    results = by_check(agent.run_once(full=True))
    agent.close()
    regex = results["status:str_matches('(?P<x>a)(?=b)')"]
    assert regex.status is Status.ERROR and regex.error
    exploded = results["status:explode"]
    assert exploded.status is Status.ERROR and 'RuntimeError("boom")' in (exploded.error or "")
    short = results["status:short"]
    # 'shipped' (7) and 'paid ' (5) are not shorter than 5: pandera on the sample says 2
    assert short.failed_rows == 2 and short.note and short.note.startswith("sampled (10 rows")
    for check, failed in EXPECTED_FAILED.items():
        assert results[check].failed_rows == failed, check


def test_missing_timestamp_column_names_what_the_table_has(
    duckdb_warehouse: Warehouse, tmp_path: Path
) -> None:
    load_orders(duckdb_warehouse)
    path = write_config(tmp_path, duckdb_warehouse)
    path.write_text(path.read_text().replace("timestamp: created_at", "timestamp: created"))
    agent = make_agent(path, wh=duckdb_warehouse)
    results = agent.run_once()
    agent.close()
    assert {r.status for r in results} == {Status.ERROR}
    error = results[0].error or ""
    assert "'created'" in error and "'created_at'" in error
