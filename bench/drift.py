"""How close osemn's drift run gets to the physical limit, and how far peers stay behind.

The limit is one hand-written query histogramming the current window on the
reference's own cuts and categories: with a stored reference profile that is
all a drift run has to read. osemn's run (b) should cost at most 1.5x that
query (a); its first run (c) also profiles the reference. Peers pull both
windows into pandas: Evidently's DataDriftPreset (d) and a plain scipy loop
(e). Peak RSS of every contender is read from a fresh process of its own.

Run: ``python bench/drift.py`` (setup and figures: docs/benchmarks.md, "Drift").
It prints a report; it is not a test and asserts nothing but equal histograms.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fused_scan import PG_URL, Db, run_osemn, run_process, timed
from fused_scan import write_config as write_osemn_config

if TYPE_CHECKING:
    import pandas as pd

    from osemn.agent.agent import Agent
    from osemn.results import CheckResult

__all__ = ["main"]

PG_SCHEMA = "osemn_bench_drift"
DATASET = "events"
NUMERIC = tuple(f"n{i}" for i in range(10))
CATEGORICAL = tuple(f"c{i}" for i in range(10))
SHIFTED = ("n0", "n1", "c0")
# The run's clock: reference [NOW - 25h, NOW - 1h), current [NOW - 1h, NOW).
NOW = datetime(2026, 1, 2, tzinfo=UTC)
REFERENCE = (NOW - timedelta(hours=25), NOW - timedelta(hours=1))
CURRENT = (NOW - timedelta(hours=1), NOW)
TARGETS = {
    "b/a": "<= 1.5",
    "d/b": ">= 20",
    "rss": "<= 250 MB, flat in rows",
}

# A standard normal from two uniforms (Box-Muller): both databases have random().
_Z = "(sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))"
_LOGNORMAL_STD = 50 * ((2.718281828459045**0.25 - 1) * 2.718281828459045**0.25) ** 0.5


def _columns(shift: bool) -> list[tuple[str, str, str]]:
    """(name, SQL type, generating expression) of every column; ``shift`` moves n0, n1, c0."""
    s = 1.0 if shift else 0.0

    def skewed(k: int) -> str:
        return f"'k' || CAST(CAST(floor(random() * random() * {k}) AS INTEGER) AS VARCHAR)"

    return [
        ("n0", "DOUBLE PRECISION", f"100 + 15 * {_Z} + {0.3 * 15 * s}"),
        ("n1", "DOUBLE PRECISION", f"50 * exp(0.5 * {_Z}) + {0.3 * _LOGNORMAL_STD * s}"),
        ("n2", "DOUBLE PRECISION", _Z),
        ("n3", "DOUBLE PRECISION", "random() * 1000"),
        ("n4", "DOUBLE PRECISION", "-10 * ln(1 - random())"),
        ("n5", "BIGINT", "CAST(floor(random() * 50) AS BIGINT)"),
        ("n6", "DOUBLE PRECISION", f"1000000 + 1000 * {_Z}"),
        (
            "n7",
            "DOUBLE PRECISION",
            f"CASE WHEN random() < 0.3 THEN 5 + {_Z} ELSE 3 * {_Z} + 20 END",
        ),
        ("n8", "DOUBLE PRECISION", f"exp(2 * {_Z})"),
        ("n9", "DOUBLE PRECISION", f"CASE WHEN random() < 0.01 THEN NULL ELSE {_Z} END"),
        (
            "c0",
            "VARCHAR(20)",
            f"CASE WHEN random() < {0.4 if shift else 0.3} THEN 'a' "
            "ELSE chr(98 + CAST(floor(random() * 4) AS INTEGER)) END",
        ),
        ("c1", "VARCHAR(20)", "CASE WHEN random() < 0.5 THEN 'yes' ELSE 'no' END"),
        ("c2", "VARCHAR(20)", skewed(3)),
        ("c3", "VARCHAR(20)", skewed(5)),
        ("c4", "VARCHAR(20)", skewed(8)),
        ("c5", "VARCHAR(20)", skewed(12)),
        ("c6", "VARCHAR(20)", skewed(20)),
        ("c7", "VARCHAR(20)", skewed(50)),
        ("c8", "VARCHAR(20)", skewed(200)),
        (
            "c9",
            "VARCHAR(20)",
            f"CASE WHEN random() < 0.02 THEN NULL ELSE {skewed(1000)} END",
        ),
    ]


def _ts_literal(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.replace(tzinfo=None).isoformat(sep=' ')}'"


def _window_sql(window: tuple[datetime, datetime]) -> str:
    return f"ts >= {_ts_literal(window[0])} AND ts < {_ts_literal(window[1])}"


# -- data -------------------------------------------------------------------------


def _counts(conn: sa.Connection, table: str) -> tuple[int, int]:
    try:
        row = conn.exec_driver_sql(
            f"SELECT count(*), count(CASE WHEN {_window_sql(CURRENT)} THEN 1 END) FROM {table}"
        ).one()
    except sa.exc.DBAPIError:  # no such table yet
        return -1, -1
    return int(row[0]), int(row[1])


def prepare_table(db: Db, name: str, n: int) -> None:
    """``n`` reference and ``n`` current rows, generated in the database, or reused."""
    engine = sa.create_engine(db.url)
    table = db.table(name)
    try:
        if db.schema:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {db.schema}")
        with engine.connect() as conn:
            if _counts(conn, table) == (2 * n, n):
                print(f"  {db.name}: reusing {table} ({n:,} + {n:,} rows)")
                return
        started = time.perf_counter()
        columns = ", ".join(f"{c} {t}" for c, t, _ in _columns(False))
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            conn.exec_driver_sql(f"CREATE TABLE {table} (ts TIMESTAMP, {columns})")
            for (start, end), shift in ((REFERENCE, False), (CURRENT, True)):
                step = int((end - start) / timedelta(microseconds=1)) // n
                exprs = ", ".join(e for _, _, e in _columns(shift))
                if db.name == "duckdb":  # DuckDB multiplies an INTERVAL by an INT32 only
                    ts = f"{_ts_literal(start)} + to_microseconds(i * {step})"
                else:
                    ts = f"{_ts_literal(start)} + (i * {step}) * INTERVAL '1 microsecond'"
                source = db.range_source(0, n - 1)
                conn.exec_driver_sql(f"INSERT INTO {table} SELECT {ts}, {exprs} FROM {source}")
            if db.name == "postgresql":
                # A warehouse table with an event time has an index on it.
                conn.exec_driver_sql(f"CREATE INDEX ON {table} (ts)")
        if db.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        took = time.perf_counter() - started
        print(f"  {db.name}: built {table} ({n:,} + {n:,} rows) in {took:.1f}s")
    finally:
        engine.dispose()


def write_config(db: Db, workdir: Path, stem: str, table: str) -> Path:
    """An osemn.yaml with one dataset whose only check is drift, and its own state file."""
    columns = ", ".join((*NUMERIC, *CATEGORICAL))
    checks = (
        "    timestamp: ts\n"
        "    drift:\n"
        f"      columns: [{columns}]\n"
        "      reference: {window: 1d, offset: 1h}\n"
        "      current: {window: 1h}\n"
    )
    return write_osemn_config(db, workdir, stem, table, checks=checks, dataset=DATASET)


def state_file(config: Path) -> Path:
    return config.with_name(f"{config.stem}-state.db")


# -- osemn ----------------------------------------------------------------------------


@contextmanager
def opened_agent(config: Path) -> Iterator[Agent]:
    """An agent on ``config`` whose clock stands at NOW."""
    from osemn.agent.agent import Agent
    from osemn.config import load_config

    agent = Agent(load_config(str(config)), clock=lambda: NOW)
    agent.open()
    try:
        yield agent
    finally:
        agent.close()


class StatementLog:
    """The statements an engine sends while ``active``: their count and what they did."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[str] = []
        self.active = False
        sa.event.listen(engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.active:
            self.statements.append(statement)

    def start(self) -> None:
        self.statements, self.active = [], True

    def quantile_statements(self) -> int:
        """Statements deriving reference cuts: none when the stored profile is reused."""
        return sum("percentile_cont" in s or "quantile_cont" in s for s in self.statements)


def drift_results(results: list[CheckResult]) -> dict[str, CheckResult]:
    """Drift results by column."""
    return {r.check.removesuffix(":drift"): r for r in results if r.check.endswith(":drift")}


def flagged(results: list[CheckResult]) -> list[str]:
    return sorted(c for c, r in drift_results(results).items() if r.status.value == "fail")


def osemn_child(config: Path) -> None:
    """One osemn run in this (fresh) process; print its time and verdicts as JSON."""
    with opened_agent(config) as agent:
        seconds, results = run_osemn(agent, full=False)
    statuses = {c: r.status.value for c, r in drift_results(results).items()}
    print(json.dumps({"seconds": seconds, "statuses": statuses}))


# -- the physical limit ------------------------------------------------------------


def _reference(results: list[CheckResult], column: str) -> dict[str, Any]:
    details = drift_results(results)[column].details or {}
    return dict(details["reference"])


def limit_sql(db: Db, table: str, results: list[CheckResult], *, form: str) -> str:
    """The current window's histograms on the reference's cuts and categories, in one pass.

    ``form`` "histogram" uses DuckDB's ``histogram()`` aggregate, one per column
    (bins ``(c_{i-1}, c_i]``, osemn's rule); "filter" one ``count(*) FILTER``
    per cut and category, the query a user would write; "packed" PostgreSQL's
    fastest hand-written form found (a*): per column one ``width_bucket()``
    binary search or category ``CASE`` (behind a hashed ``IN`` past 8
    categories) and one exact NUMERIC sum of ``10^(20 * bin)``, whose 20-digit
    groups are the counts. It beat the filter form, ``GROUPING SETS`` over bin
    indexes (sorted, not hashed: PostgreSQL estimates a bin index's groups as
    its column's distinct values) and a ``LATERAL VALUES`` unpivot.
    """
    parts = ["count(*)"]
    for column in NUMERIC:
        cuts = list(_reference(results, column)["cuts"])
        if form == "histogram":
            doubles = ", ".join(f"CAST({c!r} AS DOUBLE PRECISION)" for c in cuts)
            parts.append(f"histogram({column}, [{doubles}])")
        elif form == "packed":
            # lower bounds just above each cut: width_bucket counts the cuts < x
            bounds = ", ".join(repr(math.nextafter(c, math.inf)) for c in cuts)
            index = f"width_bucket({column}, ARRAY[{bounds}]::float8[]) + 1"
            parts.append(_packed(index, len(cuts) + 1))
        else:
            parts.append(f"count({column})")
            parts += [
                f"count(*) FILTER (WHERE {column} <= CAST({c!r} AS DOUBLE PRECISION))" for c in cuts
            ]
    for column in CATEGORICAL:
        quoted = [
            "'" + str(c).replace("'", "''") + "'" for c in _reference(results, column)["categories"]
        ]
        if form == "histogram":
            parts.append(f"histogram({column})")
        elif form == "packed":
            whens = " ".join(f"WHEN {c} THEN {i + 1}" for i, c in enumerate(quoted))
            index = f"CASE {column} {whens} END"
            if len(quoted) >= 9:
                index = f"CASE WHEN {column} IN ({', '.join(quoted)}) THEN {index} END"
            parts.append(_packed(index, len(quoted)))
        else:
            parts += [f"count(*) FILTER (WHERE {column} = {c})" for c in quoted]
    return f"SELECT {', '.join(parts)} FROM {db.table(table)} WHERE {_window_sql(CURRENT)}"


def _packed(index: str, bins: int) -> str:
    weights = ", ".join(f"1e{20 * i}" for i in range(bins))
    return f"CAST(sum((ARRAY[{weights}]::numeric[])[{index}]) AS text)"


def _unpacked(value: str | None, bins: int) -> list[int]:
    total, counts = int(value or 0), []
    for _ in range(bins):
        total, count = divmod(total, 10**20)
        counts.append(count)
    return counts


def _limit_histograms(row: sa.Row[Any], results: list[CheckResult], form: str) -> list[list[int]]:
    """Per column (numeric, then categorical), the counts the limit query found."""
    values = list(row)[1:]
    out: list[list[int]] = []
    for column in (*NUMERIC, *CATEGORICAL):
        ref = _reference(results, column)
        keys = [*ref["cuts"], float("inf")] if column in NUMERIC else ref["categories"]
        if form == "histogram":
            found = values.pop(0) or {}
            out.append([int(found.get(k, 0)) for k in keys])
        elif form == "packed":
            out.append(_unpacked(values.pop(0), len(keys)))
        elif column in NUMERIC:
            present = int(values.pop(0))
            edges = [0, *(int(values.pop(0)) for _ in ref["cuts"]), present]
            out.append([edges[i + 1] - edges[i] for i in range(len(edges) - 1)])
        else:
            out.append([int(values.pop(0)) for _ in ref["categories"]])
    return out


def histogram_mismatches(row: sa.Row[Any], results: list[CheckResult], form: str) -> list[str]:
    """Where the limit query's current histograms differ from osemn's."""
    by_column = drift_results(results)
    out = []
    columns = (*NUMERIC, *CATEGORICAL)
    for column, counts in zip(columns, _limit_histograms(row, results, form), strict=True):
        current = (by_column[column].details or {})["current"]
        # osemn's categorical counts are the reference's top-K; "other" is apart.
        if counts != list(current["counts"]):
            out.append(f"{column}: query {counts}, osemn {current['counts']}")
    return out


# -- peers (each in a fresh process of its own) -------------------------------------


def _select(db: Db, table: str, window: tuple[datetime, datetime]) -> str:
    columns = ", ".join((*NUMERIC, *CATEGORICAL))
    return f"SELECT {columns} FROM {db.table(table)} WHERE {_window_sql(window)}"


def _pull(db: Db, table: str, workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both windows as pandas frames, as a user of a pandas-based tool reads them."""
    import pandas as pd

    if db.name == "duckdb":
        import duckdb

        con = duckdb.connect(str(workdir / "bench.duckdb"), read_only=True)
        try:
            ref, cur = (con.sql(_select(db, table, w)).df() for w in (REFERENCE, CURRENT))
        finally:
            con.close()
        return ref, cur
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
        with warnings.catch_warnings():  # pandas prefers SQLAlchemy; a DBAPI connection works
            warnings.simplefilter("ignore", UserWarning)
            ref, cur = (
                pd.read_sql(_select(db, table, w), conn)  # type: ignore[call-overload]
                for w in (REFERENCE, CURRENT)
            )
    return ref, cur


def _peak_rss_kb() -> int:
    """This process's peak RSS since exec.

    ``ru_maxrss`` survives ``exec``, so a child of this large process would
    report the parent's peak; Linux's ``VmHWM`` belongs to the new image.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peer_scipy(db: Db, table: str, workdir: Path) -> dict[str, Any]:
    """ks_2samp per numeric column, chi-square per categorical one, on pulled frames."""
    import pandas as pd
    from scipy import stats

    started = time.perf_counter()
    ref, cur = _pull(db, table, workdir)
    pulled = time.perf_counter()
    pvalues: dict[str, float] = {}
    for column in NUMERIC:
        pvalues[column] = float(stats.ks_2samp(ref[column].dropna(), cur[column].dropna()).pvalue)
    for column in CATEGORICAL:
        table_ = pd.concat([ref[column].value_counts(), cur[column].value_counts()], axis=1).fillna(
            0
        )
        pvalues[column] = float(stats.chi2_contingency(table_.to_numpy().T).pvalue)
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "pull": pulled - started,
        "flagged": sorted(c for c, p in pvalues.items() if p < 0.05),
        "rss_kb": _peak_rss_kb(),
    }


def peer_evidently(db: Db, table: str, workdir: Path) -> dict[str, Any]:
    """Evidently's DataDriftPreset on pulled frames, with the columns declared."""
    # imported by name: the Evidently venv has it, osemn's environment need not
    evidently = importlib.import_module("evidently")
    presets = importlib.import_module("evidently.presets")
    DataDefinition, Dataset = evidently.DataDefinition, evidently.Dataset

    started = time.perf_counter()
    ref, cur = _pull(db, table, workdir)
    pulled = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=list(NUMERIC), categorical_columns=list(CATEGORICAL)
    )
    snapshot = evidently.Report([presets.DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    done = time.perf_counter()
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        column, value, threshold = config.get("column"), metric.get("value"), None
        for test in config.get("tests") or []:
            threshold = test.get("threshold", threshold)
        if column is None or not isinstance(value, float):
            continue
        # Distances drift above their threshold; p-values below it.
        method = str(config.get("method", ""))
        threshold = float(config.get("threshold") or threshold or 0.1)
        is_pvalue = "p_value" in method or "test" in method
        if (value < threshold) if is_pvalue else (value >= threshold):
            drifted.append(column)
    return {
        "seconds": done - started,
        "pull": pulled - started,
        "flagged": sorted(drifted),
        "rss_kb": _peak_rss_kb(),
    }


def peer_sql(db: Db, sql_file: Path, workdir: Path) -> dict[str, Any]:
    """The limit query from a fresh client process (for its peak RSS)."""
    sql = sql_file.read_text()
    started = time.perf_counter()
    if db.name == "duckdb":
        import duckdb

        con = duckdb.connect(str(workdir / "bench.duckdb"), read_only=True)
        con.sql(sql).fetchall()
        con.close()
    else:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn:
            conn.execute(sql).fetchall()
    return {"seconds": time.perf_counter() - started, "rss_kb": _peak_rss_kb()}


@dataclass
class Peer:
    """What one peer process reported, or why it could not run."""

    seconds: list[float] = field(default_factory=list)
    pull: list[float] = field(default_factory=list)
    rss_kb: int = 0
    flagged: list[str] = field(default_factory=list)
    note: str = ""


def run_peer(
    python: Path, kind: str, db: Db, table: str, workdir: Path, peer: Peer, sql: Path | None = None
) -> None:
    """Run ``kind`` in a fresh ``python`` process; add its figures to ``peer``."""
    if not python.exists():
        peer.note = f"no python at {python} (see docs/benchmarks.md, Drift)"
        return
    args = [str(python), __file__, "--peer", kind, "--peer-db", db.name, "--peer-table", table]
    args += ["--workdir", str(workdir), "--pg-schema", db.schema or PG_SCHEMA]
    if sql is not None:
        args += ["--peer-sql", str(sql)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        peer.note = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return
    doc = json.loads(lines[-1])
    peer.seconds.append(float(doc["seconds"]))
    peer.pull.append(float(doc.get("pull", 0.0)))
    peer.rss_kb = max(peer.rss_kb, int(doc["rss_kb"]))
    peer.flagged = list(doc.get("flagged", []))


# -- one database ------------------------------------------------------------------------


@dataclass
class Figures:
    """What one database's run measured (seconds unless named otherwise)."""

    db: str
    rows: int
    a: list[float] = field(default_factory=list)
    a_filter: list[float] = field(default_factory=list)
    a_star: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    c: list[float] = field(default_factory=list)
    statements_b: int = 0
    statements_c: int = 0
    quantiles_b: int = 0
    flagged: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    evidently: Peer = field(default_factory=Peer)
    scipy: Peer = field(default_factory=Peer)
    sql: Peer = field(default_factory=Peer)
    rss_b_kb: int = 0
    rss_c_kb: int = 0
    big_rows: int = 0
    rss_big_b_kb: int = 0
    rss_big_c_kb: int = 0


def _child(config: Path) -> tuple[float, int]:
    """Wall time and peak RSS (KB) of one osemn run in a fresh process."""
    return run_process([sys.executable, __file__, "--osemn-child", str(config)])


def bench_db(db: Db, args: argparse.Namespace, workdir: Path) -> Figures:
    n = args.rows
    fig = Figures(db=db.name, rows=n)
    table = f"events_{n}"
    print(f"\n== {db.name}: {n:,} + {n:,} rows ==", flush=True)
    prepare_table(db, table, n)
    big_table = f"events_{args.rss_rows}"
    if args.rss_rows:
        prepare_table(db, big_table, args.rss_rows)
    config = write_config(db, workdir, f"drift-{db.name}", table)
    first = write_config(db, workdir, f"drift-{db.name}-first", table)
    evidently_python: Path = args.evidently_python or workdir / "evidently-venv" / "bin" / "python"
    sql_file = workdir / f"limit-{db.name}.sql"

    with opened_agent(config) as agent:
        engine = agent.warehouses["wh"].engine
        log = StatementLog(engine)
        log.start()
        _, results = run_osemn(agent, full=False)  # stores the reference profiles
        fig.statements_c = len(log.statements)
        form = "histogram" if db.name == "duckdb" else "filter"
        plain = limit_sql(db, table, results, form=form)
        shaped = limit_sql(db, table, results, form="filter")
        # a*: the fastest hand-written query found, where it is not a itself
        best = limit_sql(db, table, results, form="packed") if db.name == "postgresql" else None
        sql_file.write_text(plain)

        def query(sql: str) -> sa.Row[Any]:
            with engine.connect() as conn:
                if db.name != "duckdb":
                    return conn.exec_driver_sql(sql).one()
                # The limit runs with DuckDB's default memory, not the agent's cap (its
                # 20 histogram() states do not fit in 64 MB); the cap is set back after.
                cap = conn.exec_driver_sql("SELECT current_setting('memory_limit')").scalar()
                conn.exec_driver_sql("RESET memory_limit")
                try:
                    return conn.exec_driver_sql(sql).one()
                finally:
                    conn.exec_driver_sql(f"SET memory_limit = '{cap}'")

        _, row = timed(lambda: query(plain))  # warm-up
        fig.mismatches = histogram_mismatches(row, results, form)
        if best is not None:
            fig.mismatches += histogram_mismatches(query(best), results, "packed")
        for rep in range(args.reps):
            print(f"  rep {rep + 1}/{args.reps}", flush=True)
            fig.a.append(timed(lambda: query(plain))[0])
            if shaped != plain:
                fig.a_filter.append(timed(lambda: query(shaped))[0])
            if best is not None:
                fig.a_star.append(timed(lambda: query(best))[0])
            log.start()
            seconds, results = run_osemn(agent, full=False)
            log.active = False
            fig.b.append(seconds)
            fig.statements_b = len(log.statements)
            fig.quantiles_b = log.quantile_statements()
            fig.flagged = flagged(results)
            fig.statuses = {c: r.status.value for c, r in drift_results(results).items()}
            state_file(first).unlink(missing_ok=True)
            with opened_agent(first) as fresh:
                fig.c.append(run_osemn(fresh, full=False)[0])
            if rep < args.peer_reps:
                run_peer(evidently_python, "evidently", db, table, workdir, fig.evidently)
                run_peer(Path(sys.executable), "scipy", db, table, workdir, fig.scipy)

    print("  peak RSS (fresh processes)", flush=True)
    run_peer(Path(sys.executable), "sql", db, table, workdir, fig.sql, sql_file)
    fig.rss_b_kb = _child(config)[1]  # the profile stored above is reused
    state_file(first).unlink(missing_ok=True)
    fig.rss_c_kb = _child(first)[1]
    if args.rss_rows:
        fig.big_rows = args.rss_rows
        big = write_config(db, workdir, f"drift-{db.name}-big", big_table)
        fig.rss_big_c_kb = _child(big)[1]
        fig.rss_big_b_kb = _child(big)[1]
    return fig


# -- report ---------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def report(figures: list[Figures]) -> None:
    print("\n" + "=" * 78)
    for f in figures:
        a, b, c = _med(f.a), _med(f.b), _med(f.c)
        a_filter = _med(f.a_filter) if f.a_filter else a
        a_star = _med(f.a_star) if f.a_star else a
        d, e = _med(f.evidently.seconds), _med(f.scipy.seconds)
        print(f"\n{f.db}: {f.rows:,} reference + {f.rows:,} current rows x 20 columns")
        rows = [
            ("a   limit: current histograms, one query", f"{a:.3f} s", ""),
            ("a'  the same as count(*) FILTER per bin", f"{a_filter:.3f} s", ""),
            (
                "a*  fastest hand-written form found",
                f"{a_star:.3f} s",
                "packed width_bucket/CASE sums" if f.a_star else "= a",
            ),
            ("b   osemn run, stored reference", f"{b:.3f} s", ""),
            ("c   osemn first run (profiles the reference)", f"{c:.3f} s", ""),
        ]
        for label, peer, seconds in (
            ("d   Evidently DataDriftPreset (incl. pull)", f.evidently, d),
            ("e   scipy ks_2samp/chi2 loop (incl. pull)", f.scipy, e),
        ):
            if peer.seconds:
                rows.append((label, f"{seconds:.3f} s", f"pull {_med(peer.pull):.3f} s"))
            else:
                rows.append((label, "unavailable", f"({peer.note})"))
        rows += [
            (
                "b/a",
                f"{b / a:.2f}",
                f"target {TARGETS['b/a']}; b/a' {b / a_filter:.2f}; b/a* {b / a_star:.2f}",
            ),
            ("c/a", f"{c / a:.2f}", ""),
            ("d/b", f"{d / b:.1f}", f"target {TARGETS['d/b']}"),
            ("e/b", f"{e / b:.1f}", ""),
            (
                "statements per osemn run",
                f"b {f.statements_b}, c {f.statements_c}",
                f"quantile statements in b: {f.quantiles_b} (0 = profile reused)",
            ),
            (
                "peak RSS osemn b / c",
                f"{_mb(f.rss_b_kb)} / {_mb(f.rss_c_kb)}",
                f"target {TARGETS['rss']}",
            ),
        ]
        if f.big_rows:
            rows.append(
                (
                    f"peak RSS osemn b / c at {f.big_rows:,} rows",
                    f"{_mb(f.rss_big_b_kb)} / {_mb(f.rss_big_c_kb)}",
                    "",
                )
            )
        rows += [
            ("peak RSS limit query client", _mb(f.sql.rss_kb) if f.sql.seconds else "n/a", ""),
            ("peak RSS Evidently", _mb(f.evidently.rss_kb) if f.evidently.seconds else "n/a", ""),
            ("peak RSS scipy loop", _mb(f.scipy.rss_kb) if f.scipy.seconds else "n/a", ""),
            ("histograms equal to the limit query", "yes" if not f.mismatches else "NO", ""),
        ]
        for label, value, note in rows:
            print(f"  {label:<46} {value:<22} {note}")
        for m in f.mismatches:
            print(f"    mismatch {m}")
        expected = sorted(SHIFTED)
        shifted = ", ".join(expected)
        print(f"  flagged by osemn: {', '.join(f.flagged) or 'none'} (shifted: {shifted})")
        wrong = sorted(set(f.flagged) ^ set(expected))
        other = {s for c, s in f.statuses.items() if c not in expected}
        print(f"    misclassified: {', '.join(wrong) or 'none'}; the 17 others: {sorted(other)}")
        for name, peer in (("Evidently", f.evidently), ("scipy p<0.05", f.scipy)):
            if peer.seconds:
                print(f"  flagged by {name}: {', '.join(peer.flagged) or 'none'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per window")
    parser.add_argument(
        "--rss-rows", type=int, default=5_000_000, help="rows per window of the RSS check; 0: skip"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer-reps", type=int, default=3, help="repetitions of d and e")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/osemn-bench-drift"))
    parser.add_argument("--db", choices=["duckdb", "postgresql"], action="append")
    parser.add_argument(
        "--evidently-python",
        type=Path,
        default=None,
        help="python of a venv with evidently (default: WORKDIR/evidently-venv/bin/python)",
    )
    parser.add_argument("--pg-schema", default=PG_SCHEMA)
    parser.add_argument("--osemn-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peer", choices=["evidently", "scipy", "sql"], help=argparse.SUPPRESS)
    parser.add_argument("--peer-db", choices=["duckdb", "postgresql"], help=argparse.SUPPRESS)
    parser.add_argument("--peer-table", help=argparse.SUPPRESS)
    parser.add_argument("--peer-sql", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    dbs = {
        "duckdb": Db("duckdb", f"duckdb:///{workdir / 'bench.duckdb'}", None),
        "postgresql": Db("postgresql", PG_URL, args.pg_schema),
    }
    if args.osemn_child:
        osemn_child(args.osemn_child)
        return
    if args.peer:
        db = dbs[args.peer_db]
        if args.peer == "evidently":
            doc = peer_evidently(db, args.peer_table, workdir)
        elif args.peer == "scipy":
            doc = peer_scipy(db, args.peer_table, workdir)
        else:
            doc = peer_sql(db, args.peer_sql, workdir)
        print(json.dumps(doc))
        return
    figures = [bench_db(dbs[name], args, workdir) for name in args.db or list(dbs)]
    report(figures)


if __name__ == "__main__":
    main()
