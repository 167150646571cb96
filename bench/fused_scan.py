"""How close osemn's fused scan gets to the physical limit, on DuckDB and PostgreSQL.

The limit is one hand-written aggregate query computing the same failing counts
(a peer like Soda Core reaches at best that, including ``count(DISTINCT id)``
for uniqueness). osemn should cost no more than that query, and less when a
PRIMARY KEY proves uniqueness; an incremental run should cost a fraction of a
full scan, and the agent's memory must not grow with the table.

Run: ``python bench/fused_scan.py --rows 10000000`` (see bench/README.md).
It prints a report; it is not a test and asserts nothing but equal counts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["main"]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "osemn_bench"
SMALL_ROWS = 1_000_000
NEW_ROWS = 10_000
STATUSES = ("new", "paid", "shipped", "cancelled")
EMAIL_RE = "^[^@]+@[^@]+$"
AMOUNT_MAX = 1000
TARGETS = {
    "b/a": "<= 1.1",
    "b/a_nounique": "<= 1.1 (no uniqueness to compute: same work)",
    "b/a (PK)": "<= 0.5 (uniqueness proven by the PRIMARY KEY)",
    "incremental/full": "<= 0.05",
    "peak RSS": "<= 250 MB, flat 1M -> 10M",
    "start-up": "< 1.5 s",
}

# The rows: every bad kind at a known period, so both sides must find the same counts.
_ROW_SELECT = """
SELECT i AS id,
  CASE WHEN mod(i, 1000) = 7 THEN NULL WHEN mod(i, 5000) = 11 THEN 0
       ELSE mod(i * 7919, 100000) + 1 END AS customer_id,
  CASE WHEN mod(i, 500) = 3 THEN NULL WHEN mod(i, 400) = 5 THEN -1.0 - mod(i, 100)
       WHEN mod(i, 700) = 9 THEN 5000.0 + mod(i, 100)
       ELSE mod(i * 37, 100000) / 100.0 END AS amount,
  CASE WHEN mod(i, 10000) = 13 THEN 'lost' WHEN mod(i, 4) = 0 THEN 'new'
       WHEN mod(i, 4) = 1 THEN 'paid' WHEN mod(i, 4) = 2 THEN 'shipped'
       ELSE 'cancelled' END AS status,
  CASE WHEN mod(i, 2000) = 17 THEN NULL
       WHEN mod(i, 300) = 19 THEN 'user' || CAST(i AS VARCHAR) || '.example.com'
       ELSE 'user' || CAST(i AS VARCHAR) || '@example.com' END AS email,
  TIMESTAMP '2026-01-01 00:00:00' + i * INTERVAL '1 second' AS created_at
FROM {source}
"""
_CREATE = """
CREATE TABLE {table} (
  id BIGINT PRIMARY KEY, customer_id BIGINT, amount DOUBLE PRECISION,
  status VARCHAR(20), email VARCHAR(100), created_at TIMESTAMP)
"""


@dataclass(frozen=True)
class Db:
    """One database under test: how to reach it and name its tables."""

    name: str
    url: str
    schema: str | None

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def range_source(self, lo: int, hi: int) -> str:
        if self.name == "duckdb":
            return f"range({lo}, {hi + 1}) t(i)"
        return f"generate_series(CAST({lo} AS BIGINT), {hi}) AS t(i)"


@dataclass
class Figures:
    """What one database's run measured (seconds unless named otherwise)."""

    db: str
    rows: int
    a: list[float] = field(default_factory=list)
    a_nounique: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    b_process: list[float] = field(default_factory=list)
    a_small: list[float] = field(default_factory=list)
    b_small: list[float] = field(default_factory=list)
    c_small: float | None = None
    c_note: str = ""
    statements: int = 0
    runner_statements: int = 0
    incremental: list[float] = field(default_factory=list)
    incremental_warm: list[float] = field(default_factory=list)
    rss_kb: int = 0
    rss_small_kb: int = 0
    mismatches: list[str] = field(default_factory=list)


# -- data -------------------------------------------------------------------------


def _write_engine(db: Db, workdir: Path) -> sa.Engine:
    """A read-write engine (the agent's own sessions are read-only)."""
    return sa.create_engine(db.url)


def _count(conn: sa.Connection, table: str, n: int) -> tuple[int, int]:
    try:
        row = conn.exec_driver_sql(
            f"SELECT count(*), count(CASE WHEN id > {n} THEN 1 END) FROM {table}"
        ).one()
    except sa.exc.DBAPIError:  # no such table yet
        return -1, -1
    return int(row[0]), int(row[1])


def prepare_table(db: Db, workdir: Path, name: str, n: int) -> None:
    """Create ``name`` with ``n`` rows in-database, or reuse it when it already has them."""
    engine = _write_engine(db, workdir)
    table = db.table(name)
    try:
        if db.schema:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {db.schema}")
        with engine.connect() as conn:
            total, extra = _count(conn, table, n)
        with engine.begin() as conn:
            if total - extra == n:
                if extra:
                    conn.exec_driver_sql(f"DELETE FROM {table} WHERE id > {n}")
                print(f"  {db.name}: reusing {table} ({n:,} rows)")
                return
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            conn.exec_driver_sql(_CREATE.format(table=table))
            source = _ROW_SELECT.format(source=db.range_source(1, n))
            conn.exec_driver_sql(f"INSERT INTO {table} {source}")
            if db.name == "postgresql":
                # A warehouse table with an event time has an index on it.
                conn.exec_driver_sql(f"CREATE INDEX ON {table} (created_at)")
        if db.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        print(f"  {db.name}: built {table} ({n:,} rows) in {time.perf_counter() - started:.1f}s")
    finally:
        engine.dispose()


def append_rows(
    db: Db, workdir: Path, name: str, lo: int, hi: int, *, engine: sa.Engine | None = None
) -> None:
    """Insert rows ``lo..hi`` with created_at after every existing row (through ``engine``)."""
    writer = engine or _write_engine(db, workdir)
    try:
        with writer.begin() as conn:
            source = _ROW_SELECT.format(source=db.range_source(lo, hi))
            conn.exec_driver_sql(f"INSERT INTO {db.table(name)} {source}")
    finally:
        if engine is None:
            writer.dispose()


def delete_above(
    db: Db, workdir: Path, name: str, n: int, *, engine: sa.Engine | None = None
) -> None:
    writer = engine or _write_engine(db, workdir)
    try:
        with writer.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {db.table(name)} WHERE id > {n}")
    finally:
        if engine is None:
            writer.dispose()


# -- the suite ----------------------------------------------------------------------


def write_schema(workdir: Path) -> Path:
    """The pandera YAML schema: 10 checks over 6 columns."""
    import pandera.pandas as pa

    schema = pa.DataFrameSchema(
        {
            "id": pa.Column(int, unique=True),
            "customer_id": pa.Column(int, pa.Check.ge(1)),
            "amount": pa.Column(float, pa.Check.in_range(0, AMOUNT_MAX)),
            "status": pa.Column(str, pa.Check.isin(list(STATUSES))),
            "email": pa.Column(str, pa.Check.str_matches(EMAIL_RE), nullable=True),
            "created_at": pa.Column("datetime64[ns]"),
        }
    )
    path = workdir / "orders.yaml"
    path.write_text(schema.to_yaml() or "")
    return path


# DuckDB caps memory per database instance, and the hand-written query shares osemn's
# in-process instance: its count(DISTINCT) needs more than osemn's default cap, so the
# timed configs raise it for both sides alike; the RSS runs use osemn's default.
TIMED_DUCKDB_MEMORY = "?memory_limit=4GB"


def write_config(
    db: Db,
    workdir: Path,
    stem: str,
    table: str,
    *,
    url_suffix: str = "",
    checks: str = "    timestamp: created_at\n    schema: orders.yaml\n"
    "    failures: {sample: 5, mask: [email]}\n",
    dataset: str = "orders",
) -> Path:
    """An osemn.yaml named ``stem`` with one dataset on ``table`` and its own state file.

    ``checks`` is the YAML of the dataset's checks, indented by four spaces.
    """
    state = workdir / f"{stem}-state.db"
    state.unlink(missing_ok=True)
    path = workdir / f"{stem}.yaml"
    path.write_text(
        f"""version: 1
agent:
  state: sqlite:///{state}
  listen: 127.0.0.1:0
sources:
  wh:
    url: {db.url}{url_suffix}
    statement_timeout: 10m
datasets:
  {dataset}:
    source: wh
    table: {db.table(table)}
{checks}"""
    )
    return path


def fused_sql(db: Db, table: str, *, unique: bool) -> str:
    """The physical limit: every failing count of the suite in one hand-written query."""
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    if db.name == "duckdb":
        bad_email = f"NOT regexp_matches(email, '{EMAIL_RE}')"
    else:
        bad_email = f"email !~ '{EMAIL_RE}'"
    parts = [
        "count(*) AS rows",
        "count(*) - count(id) AS id_not_null",
        "count(*) - count(customer_id) AS customer_id_not_null",
        "sum(CASE WHEN customer_id < 1 THEN 1 ELSE 0 END) AS customer_id_ge",
        "count(*) - count(amount) AS amount_not_null",
        f"sum(CASE WHEN amount < 0 OR amount > {AMOUNT_MAX} THEN 1 ELSE 0 END) AS amount_in_range",
        "count(*) - count(status) AS status_not_null",
        f"sum(CASE WHEN status NOT IN ({statuses}) THEN 1 ELSE 0 END) AS status_isin",
        f"sum(CASE WHEN {bad_email} THEN 1 ELSE 0 END) AS email_str_matches",
        "count(*) - count(created_at) AS created_at_not_null",
    ]
    if unique:
        parts.append("count(*) - count(DISTINCT id) AS id_unique")
    return f"SELECT {', '.join(parts)} FROM {table}"


# -- measuring ------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


class StatementCounter:
    """Counts the statements an engine sends while ``active``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.active = False
        sa.event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *args: Any) -> None:
        if self.active:
            self.count += 1


@contextmanager
def opened_agent(config: Path, engine: sa.Engine | None = None) -> Iterator[Any]:
    """An open agent on ``config``; ``engine``, if given, is handed in as source ``wh``."""
    from osemn.agent.agent import Agent
    from osemn.config import load_config

    agent = Agent(load_config(str(config)), engines={"wh": engine} if engine else None)
    agent.open()
    try:
        yield agent
    finally:
        agent.close()


def run_osemn(agent: Any, *, full: bool) -> tuple[float, list[Any]]:
    """One in-process run; its time is the longest ``duration_seconds`` reported."""
    results = agent.run_once(full=full)
    return max(r.duration_seconds for r in results), results


# A fresh small parent: a child forked from this (large) process would inherit its
# RSS into ru_maxrss before exec, so the peak is read by a wrapper of its own.
_RSS_WRAPPER = """
import resource, subprocess, sys, time
t = time.perf_counter()
out = subprocess.run(sys.argv[1:], capture_output=True)
t = time.perf_counter() - t
# Exit 1 is "a check failed" only when a summary was printed (a crash exits 1 too).
code = out.returncode if out.returncode != 1 or b"failed" in out.stdout else 99
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code, t)
"""


def run_process(args: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (KB) of one run of ``args``, as the wrapper saw them."""
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *args], capture_output=True, text=True, check=True
    )
    rss, code, wall = proc.stdout.split()
    if int(code) not in (0, 1):
        raise RuntimeError(f"{' '.join(args)} exited {code}")
    return float(wall), int(rss)


def osemn_command() -> list[str]:
    """The console script pip installed beside this interpreter.

    Not the first ``osemn`` on PATH: under pyenv that is a shell shim that costs
    a tenth of a second of its own before Python starts.
    """
    beside = Path(sys.executable).with_name("osemn")
    exe = str(beside) if beside.exists() else shutil.which("osemn")
    return [exe] if exe else [sys.executable, "-m", "osemn"]


def compare_counts(results: list[Any], row: sa.Row[Any]) -> list[str]:
    """Where osemn's failing counts differ from the hand-written query's."""
    mapping = row._mapping
    out = []
    for r in results:
        column, _, rule = r.check.partition(":")
        kind = rule.split("(")[0]
        key = f"{column}_{'ge' if kind == 'greater_than_or_equal_to' else kind}"
        if key in mapping and r.failed_rows is not None and int(mapping[key]) != r.failed_rows:
            out.append(f"{r.check}: osemn {r.failed_rows}, query {mapping[key]}")
    return out


def pandera_ibis(db: Db, workdir: Path, table: str, python: Path) -> tuple[float | None, str]:
    """pandera's ibis backend on ``table``, in the peers venv (``--peer`` mode)."""
    if not python.exists():
        return None, f"no peers venv at {python.parent.parent} (see bench/README.md)"
    proc = subprocess.run(
        [
            str(python),
            __file__,
            *("--peer", db.name, "--peer-table", table),
            *("--workdir", str(workdir), "--pg-schema", db.schema or PG_SCHEMA),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return None, (proc.stderr.strip().splitlines() or ["no output"])[-1]
    doc = json.loads(lines[-1])
    return (float(doc["seconds"]) if "seconds" in doc else None), str(doc.get("note", ""))


def peer_main(db_name: str, table: str, workdir: Path, pg_schema: str) -> None:
    """Validate ``table`` with pandera's ibis backend; print {"seconds"} or {"note"} as JSON."""
    try:  # imported by name: the peers venv has ibis, osemn's environment need not
        ibis = importlib.import_module("ibis")
        dt = importlib.import_module("ibis.expr.datatypes")
        pa = importlib.import_module("pandera.ibis")
    except ImportError as exc:
        print(json.dumps({"note": f"import failed: {exc}"}))
        return
    schema = pa.DataFrameSchema(
        {
            "id": pa.Column(dt.int64, unique=True),
            "customer_id": pa.Column(dt.int64, pa.Check.ge(1)),
            "amount": pa.Column(dt.float64, pa.Check.in_range(0, AMOUNT_MAX)),
            "status": pa.Column(dt.string, pa.Check.isin(list(STATUSES))),
            "email": pa.Column(dt.string, pa.Check.str_matches(EMAIL_RE), nullable=True),
            "created_at": pa.Column(dt.timestamp),
        }
    )
    if db_name == "duckdb":
        con = ibis.duckdb.connect(str(workdir / "bench.duckdb"), read_only=True)
        expr = con.table(table)
    else:
        con = ibis.postgres.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
        expr = con.table(table, database=pg_schema)
    started = time.perf_counter()
    note = "passed"
    try:
        schema.validate(expr, lazy=True)
    except pa.errors.SchemaErrors as exc:
        note = f"{len(exc.schema_errors)} schema errors (expected)"
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "note": note}))


# -- one database ------------------------------------------------------------------------


def bench_db(db: Db, args: argparse.Namespace, workdir: Path, peers_python: Path) -> Figures:
    n = args.rows
    fig = Figures(db=db.name, rows=n)
    print(f"\n== {db.name}: {n:,} rows ==")
    prepare_table(db, workdir, "orders", n)
    prepare_table(db, workdir, "orders_1m", min(SMALL_ROWS, n))
    suffix = TIMED_DUCKDB_MEMORY if db.name == "duckdb" else ""
    big = write_config(db, workdir, f"osemn-{db.name}", "orders", url_suffix=suffix)
    small = write_config(db, workdir, f"osemn-{db.name}-1m", "orders_1m", url_suffix=suffix)
    rss_configs = {
        "orders": write_config(db, workdir, f"osemn-{db.name}-rss", "orders"),
        "orders_1m": write_config(db, workdir, f"osemn-{db.name}-1m-rss", "orders_1m"),
    }
    osemn = osemn_command()

    for config, table, a_times, b_times in (
        (big, "orders", fig.a, fig.b),
        (small, "orders_1m", fig.a_small, fig.b_small),
    ):
        with opened_agent(config) as agent:
            engine = agent.warehouses["wh"].engine
            counter = StatementCounter(engine)
            with_unique = fused_sql(db, db.table(table), unique=True)
            no_unique = fused_sql(db, db.table(table), unique=False)

            def query(sql: str, engine: sa.Engine = engine) -> sa.Row[Any]:
                with engine.connect() as conn:
                    return conn.exec_driver_sql(sql).one()

            # Warm-up: reflection, catalog and buffer caches for both sides.
            _, row = timed(lambda sql=with_unique: query(sql))  # type: ignore[misc]
            _, results = run_osemn(agent, full=True)
            fig.mismatches += compare_counts(results, row)
            for rep in range(args.reps):
                print(f"  {table} rep {rep + 1}/{args.reps}", flush=True)
                a_times.append(timed(lambda sql=with_unique: query(sql))[0])  # type: ignore[misc]
                if table == "orders":
                    fig.a_nounique.append(timed(lambda sql=no_unique: query(sql))[0])  # type: ignore[misc]
                    counter.count, counter.active = 0, True
                b_times.append(run_osemn(agent, full=True)[0])
                if table == "orders":
                    counter.active = False
                    fig.statements = counter.count
                    fig.runner_statements = agent.runners["orders"].last_statements
                    rss_config = str(rss_configs[table])
                    wall, rss = run_process([*osemn, "check", "-c", rss_config, "--full"])
                    fig.b_process.append(wall)
                    fig.rss_kb = max(fig.rss_kb, rss)
        if table == "orders_1m":
            _, rss = run_process([*osemn, "check", "-c", str(rss_configs[table]), "--full"])
            fig.rss_small_kb = rss

    print("  pandera-ibis on orders_1m", flush=True)
    fig.c_small, fig.c_note = pandera_ibis(db, workdir, "orders_1m", peers_python)

    print("  incremental", flush=True)
    fig.incremental = incremental_runs(db, workdir, big, n, args.reps, warm=False)
    # A state of its own: the fresh agents' watermark is past the rows they saw (deleted).
    warm = write_config(db, workdir, f"osemn-{db.name}-warm", "orders", url_suffix=suffix)
    fig.incremental_warm = incremental_runs(db, workdir, warm, n, args.reps, warm=True)
    return fig


def incremental_runs(
    db: Db, workdir: Path, config: Path, n: int, reps: int, *, warm: bool
) -> list[float]:
    """Runs after ``NEW_ROWS`` newer rows each, on a fresh agent or on one kept open.

    A fresh agent's first run also opens the source and compiles the schema. The
    long-running agent keeps them: the same agent runs again after each insert, its
    DuckDB engine handed in read-write so that the rows go in through it (DuckDB
    lets one process open a file in one mode only).
    """
    times: list[float] = []
    shared = None
    if warm and db.name == "duckdb":
        shared = sa.create_engine(db.url, connect_args={"config": {"memory_limit": "4GB"}})
    try:
        with opened_agent(config, shared) as agent:
            run_osemn(agent, full=True)  # sets the watermark
            for rep in range(reps if warm else 0):
                lo = n + rep * NEW_ROWS + 1
                append_rows(db, workdir, "orders", lo, lo + NEW_ROWS - 1, engine=shared)
                times.append(run_osemn(agent, full=False)[0])
        for rep in range(0 if warm else reps):
            lo = n + rep * NEW_ROWS + 1
            append_rows(db, workdir, "orders", lo, lo + NEW_ROWS - 1)
            with opened_agent(config) as fresh:
                times.append(run_osemn(fresh, full=False)[0])
        delete_above(db, workdir, "orders", n, engine=shared)
    finally:
        if shared is not None:
            shared.dispose()
    return times


# -- start-up -----------------------------------------------------------------------------


@dataclass
class Startup:
    import_cli: float
    floor: float
    help: float
    tiny_check: float
    top_imports: list[tuple[str, float]]


def bench_startup(workdir: Path, reps: int) -> Startup:
    """Import and ``osemn check`` start-up on a 10-row DuckDB table."""
    tiny = Db("duckdb", f"duckdb:///{workdir / 'tiny.duckdb'}", None)
    prepare_table(tiny, workdir, "orders", 10)
    config = write_config(tiny, workdir, "osemn-tiny", "orders")
    osemn = osemn_command()

    def median_wall(cmd: list[str]) -> float:
        return statistics.median(run_process(cmd)[0] for _ in range(max(reps, 3)))

    import_cli = median_wall([sys.executable, "-c", "import osemn.cli"])
    # What any pandera-on-SQL tool loads before it does anything: the floor.
    floor = median_wall([sys.executable, "-c", "import pandera.pandas, sqlalchemy, duckdb"])
    help_ = median_wall([*osemn, "check", "--help"])
    tiny_check = median_wall([*osemn, "check", "-c", str(config)])
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "osemn", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    top: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if match and len(match.group(2)) <= 1:
            top.append((match.group(3), int(match.group(1)) / 1e6))
    top.sort(key=lambda item: -item[1])
    return Startup(import_cli, floor, help_, tiny_check, top[:6])


# -- report ---------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(figures: list[Figures], startup: Startup | None) -> None:
    print("\n" + "=" * 78)
    for f in figures:
        a, a_nu, b = _med(f.a), _med(f.a_nounique), _med(f.b)
        inc, inc_warm = _med(f.incremental), _med(f.incremental_warm)
        print(f"\n{f.db}: {f.rows:,} rows, medians of {len(f.b)} alternating repetitions")
        rows = [
            ("a   fused query incl. count(DISTINCT id)", f"{a:.3f} s", ""),
            ("a'  fused query without uniqueness", f"{a_nu:.3f} s", ""),
            ("b   osemn run_once(full) duration_seconds", f"{b:.3f} s", ""),
            ("    osemn check --full, process wall", f"{_med(f.b_process):.3f} s", ""),
            ("b/a", f"{b / a:.2f}", f"target {TARGETS['b/a']}; PK: {TARGETS['b/a (PK)']}"),
            ("b/a_nounique", f"{b / a_nu:.2f}", f"target {TARGETS['b/a_nounique']}"),
            ("1M: a / b", f"{_med(f.a_small):.3f} s / {_med(f.b_small):.3f} s", ""),
            ("1M: b/a", f"{_med(f.b_small) / _med(f.a_small):.2f}", ""),
        ]
        if f.c_small is None:
            rows.append(("c   pandera-ibis (1M)", "unavailable", f"({f.c_note})"))
        else:
            rows.append(("c   pandera-ibis (1M)", f"{f.c_small:.3f} s", f.c_note))
            rows.append(("c/a (1M)", f"{f.c_small / _med(f.a_small):.2f}", ""))
        rows += [
            (
                "statements per osemn run",
                f"{f.statements}",
                f"runner {f.runner_statements}, catalog {f.statements - f.runner_statements}",
            ),
            (
                f"incremental (+{NEW_ROWS:,} rows) / full",
                f"{inc:.3f} s / {b:.3f} s = {inc / b:.3f}",
                f"target {TARGETS['incremental/full']}; a fresh agent per run",
            ),
            (
                "    the same, agent kept open",
                f"{inc_warm:.3f} s / {b:.3f} s = {inc_warm / b:.3f}",
                "as the long-running agent runs",
            ),
            (
                "peak RSS of osemn check, 1M -> full",
                f"{f.rss_small_kb / 1024:.0f} MB -> {f.rss_kb / 1024:.0f} MB",
                f"target {TARGETS['peak RSS']}",
            ),
            ("counts equal to the fused query", "yes" if not f.mismatches else "NO", ""),
        ]
        for label, value, note in rows:
            print(f"  {label:<44} {value:<24} {note}")
        for m in f.mismatches:
            print(f"    mismatch {m}")
    if startup is not None:
        print("\nstart-up (median wall)")
        print(f"  {'python -c import osemn.cli':<44} {startup.import_cli:.3f} s")
        print(
            f"  {'python -c import pandera.pandas, sqlalchemy, duckdb':<44} {startup.floor:.3f} s"
        )
        print(f"  {'osemn check --help':<44} {startup.help:.3f} s")
        print(
            f"  {'osemn check (10-row DuckDB table)':<44} {startup.tiny_check:.3f} s"
            f"{'':<14} target {TARGETS['start-up']}"
        )
        print(
            f"  {'osemn check (10-row) / library imports':<44} "
            f"{startup.tiny_check / startup.floor:.2f}"
        )
        imports = ", ".join(f"{name} {sec:.2f}s" for name, sec in startup.top_imports)
        print(f"  top imports of osemn check: {imports}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/osemn-bench"))
    parser.add_argument("--db", choices=["duckdb", "postgresql"], action="append")
    parser.add_argument(
        "--peers-python",
        type=Path,
        default=None,
        help="python of a venv with pandera[ibis] (default: WORKDIR/peers-venv/bin/python)",
    )
    parser.add_argument("--pg-schema", default=PG_SCHEMA)
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--peer", choices=["duckdb", "postgresql"], help=argparse.SUPPRESS)
    parser.add_argument("--peer-table", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if args.peer:
        peer_main(args.peer, args.peer_table, workdir, args.pg_schema)
        return
    peers_python = args.peers_python or workdir / "peers-venv" / "bin" / "python"
    dbs = {
        "duckdb": Db("duckdb", f"duckdb:///{workdir / 'bench.duckdb'}", None),
        "postgresql": Db("postgresql", PG_URL, args.pg_schema),
    }
    write_schema(workdir)
    figures = [bench_db(dbs[name], args, workdir, peers_python) for name in args.db or list(dbs)]
    startup = None if args.no_startup else bench_startup(workdir, args.reps)
    report(figures, startup)


if __name__ == "__main__":
    main()
