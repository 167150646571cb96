"""How close osemn's model run gets to the physical limit, and how far pandas stays behind.

The limit (a) is one hand-written join-and-aggregate: predictions of the day
left-joined to the latest label of their id, folded into the binary confusion
matrix. osemn's model run (b) is ``window_metrics`` on the agent's own
``Warehouse`` (DuckDB with its memory cap), which computes far more than the
confusion matrix: AUC histograms, log loss, Brier, ECE, label-delay and latency
percentiles, CBPE for the unlabelled part and all that per segment and version.
The diagnostics time b's two statements and leaner specs to say which part
costs. What users do today (c) pulls both tables into pandas, keeps each id's
latest label, merges and calls scikit-learn; it runs once, in a fresh process.

Run: ``python bench/accuracy.py --rows 10000000`` (see bench/README.md).
It prints a report; it is not a test and asserts nothing but equal counts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from drift import _Z, _peak_rss_kb, _ts_literal
from fused_scan import PG_URL, Db, timed

if TYPE_CHECKING:
    from osemn.checks.model_metrics import ModelTables, WindowMetrics
    from osemn.sources.warehouse import Warehouse

__all__ = ["main"]

PG_SCHEMA = "osemn_bench_acc"
SMALL_ROWS = 1_000_000
# The window is one day of prediction time: [NOW - 1d, NOW).
NOW = datetime(2026, 1, 2, tzinfo=UTC)
START = NOW - timedelta(days=1)
LATENCY_THRESHOLD = 0.05  # seconds: the latency SLI's good events
TARGETS = {"b/a": "<= 1.5", "c/b": ">= 10", "rss": "<= 250 MB, flat in rows"}
METRICS = ("accuracy", "precision", "recall", "f1", "auc", "log_loss")


# -- data -------------------------------------------------------------------------


def _seconds_after(db: Db, ts: str, seconds: str) -> str:
    if db.name == "duckdb":  # DuckDB multiplies an INTERVAL by an INT32 only
        return f"{ts} + to_microseconds(CAST({seconds} * 1000000 AS BIGINT))"
    return f"{ts} + ({seconds}) * INTERVAL '1 second'"


def _predictions_sql(db: Db, table: str, n: int) -> str:
    """``n`` predictions spread over the day; the score is a calibrated probability."""
    step = int(timedelta(days=1) / timedelta(microseconds=1)) // n
    if db.name == "duckdb":
        ts = f"{_ts_literal(START)} + to_microseconds(i * {step})"
    else:
        ts = f"{_ts_literal(START)} + (i * {step}) * INTERVAL '1 microsecond'"
    segment = "'s' || CAST(CAST(floor(random() * random() * 30) AS INTEGER) AS VARCHAR)"
    return f"""
INSERT INTO {table}
SELECT i, ts, score, CASE WHEN score >= 0.5 THEN 1 ELSE 0 END, version, segment, latency
FROM (
  SELECT i, {ts} AS ts, 1 / (1 + exp(-2 * {_Z})) AS score,
    CASE WHEN random() < 0.6 THEN 'v1' WHEN random() < 0.75 THEN 'v2' ELSE 'v3' END AS version,
    {segment} AS segment, 0.02 * exp(0.5 * {_Z}) AS latency
  FROM {db.range_source(0, n - 1)}
) s"""


def _labels_sql(db: Db, table: str, predictions: str, n: int) -> list[str]:
    """Bernoulli(score) labels for 8 ids in 10, a few hours later; 1 in 50 ids also
    has an older, overridden label (latest wins); and labels of 1% unknown ids."""
    delay = "(-21600 * ln(1 - random()))"  # exponential, mean 6 hours
    later = _seconds_after(db, "ts", delay)
    unknown = db.range_source(n, n + n // 100 - 1)
    return [
        f"INSERT INTO {table} SELECT id, CASE WHEN random() < score THEN 1 ELSE 0 END, {later} "
        f"FROM {predictions} WHERE mod(id, 10) < 8",
        f"INSERT INTO {table} SELECT id, CASE WHEN random() < 0.5 THEN 1 ELSE 0 END, ts "
        f"FROM {predictions} WHERE mod(id, 50) = 1",
        f"INSERT INTO {table} SELECT i, CASE WHEN random() < 0.5 THEN 1 ELSE 0 END, "
        f"{_ts_literal(START)} FROM {unknown}",
    ]


def label_rows(n: int) -> int:
    labelled = n // 10 * 8 + min(n % 10, 8)
    return labelled + n // 50 + (n % 50 > 1) + n // 100


def prepare_tables(db: Db, n: int) -> tuple[str, str]:
    """``predictions_<n>`` and ``labels_<n>``, generated in the database, or reused."""
    preds, labels = db.table(f"predictions_{n}"), db.table(f"labels_{n}")
    engine = sa.create_engine(db.url)
    try:
        if db.schema:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {db.schema}")
        with engine.connect() as conn:
            try:
                have = conn.exec_driver_sql(
                    f"SELECT (SELECT count(*) FROM {preds}), (SELECT count(*) FROM {labels})"
                ).one()
            except sa.exc.DBAPIError:  # no such table yet
                have = None
        if have is not None and tuple(have) == (n, label_rows(n)):
            print(f"  {db.name}: reusing {preds} and {labels}")
            return preds, labels
        started = time.perf_counter()
        with engine.begin() as conn:
            for table in (labels, preds):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            conn.exec_driver_sql(
                f"CREATE TABLE {preds} (id BIGINT, ts TIMESTAMP, score DOUBLE PRECISION, "
                "predicted INTEGER, version VARCHAR(10), segment VARCHAR(20), "
                "latency DOUBLE PRECISION)"
            )
            conn.exec_driver_sql(
                f"CREATE TABLE {labels} (id BIGINT, label INTEGER, label_ts TIMESTAMP)"
            )
            conn.exec_driver_sql(_predictions_sql(db, preds, n))
            for sql in _labels_sql(db, labels, preds, n):
                conn.exec_driver_sql(sql)
            if db.name == "postgresql":
                # A warehouse table with an event time has an index on it.
                conn.exec_driver_sql(f"CREATE INDEX ON {preds} (ts)")
                conn.exec_driver_sql(f"CREATE INDEX ON {labels} (label_ts)")
        if db.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in (preds, labels):
                    conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        took = time.perf_counter() - started
        print(f"  {db.name}: built {preds} ({n:,}) and {labels} ({label_rows(n):,}) in {took:.1f}s")
    finally:
        engine.dispose()
    return preds, labels


# -- the physical limit ---------------------------------------------------------------


def limit_sql(db: Db, preds: str, labels: str) -> str:
    """The day's confusion matrix with each id's latest label, in one statement.

    Latest wins as in osemn: greatest label time, then greatest label. DuckDB
    has ``arg_max``; on PostgreSQL the fastest form found packs (time, label)
    into one number whose ``max`` is a hash aggregate (``DISTINCT ON`` sorts).
    """
    if db.name == "duckdb":
        latest = f"SELECT id, arg_max(label, (label_ts, label)) AS label FROM {labels} GROUP BY id"
    else:
        packed = "extract(epoch FROM label_ts) * 1000000 * 2 + label"
        latest = (
            f"SELECT id, CAST(mod(max({packed}), 2) AS INTEGER) AS label "
            f"FROM {labels} WHERE label IS NOT NULL GROUP BY id"
        )
    window = f"p.ts >= {_ts_literal(START)} AND p.ts < {_ts_literal(NOW)}"

    def cell(y: int, yhat: int) -> str:
        return f"sum(CASE WHEN l.label = {y} AND p.predicted = {yhat} THEN 1 ELSE 0 END)"

    return (
        f"WITH l AS ({latest}) "
        f"SELECT count(*) AS n, count(l.label) AS labelled, {cell(1, 1)} AS tp, "
        f"{cell(0, 1)} AS fp, {cell(1, 0)} AS fn, {cell(0, 0)} AS tn "
        f"FROM {preds} p LEFT JOIN l ON l.id = p.id WHERE {window}"
    )


# -- osemn --------------------------------------------------------------------------------


def with_memory(db: Db, memory: str | None) -> Db:
    """``db`` with DuckDB's ``memory_limit`` set in the URL; None: the agent's cap."""
    if db.name != "duckdb" or memory is None:
        return db
    return dataclasses.replace(db, url=f"{db.url}?memory_limit={memory}")


def open_warehouse(db: Db) -> Warehouse:
    """The agent's Warehouse on ``db``: read-only, time-limited, DuckDB memory capped
    (``DUCKDB_MEMORY_LIMIT`` unless the URL sets ``memory_limit``)."""
    from osemn.config import SourceConfig
    from osemn.sources.warehouse import Warehouse

    return Warehouse("wh", SourceConfig(url=db.url, statement_timeout=timedelta(minutes=30)))


def model_spec(wh: Warehouse, preds: str, labels: str) -> ModelTables:
    """The full binary model: score, class, version, latency and one segment column."""
    from osemn.checks.model_metrics import ModelTables

    return ModelTables(
        predictions=wh.describe(preds).table,
        labels=wh.describe(labels).table,
        prediction_id="id",
        prediction_time="ts",
        score="score",
        prediction="predicted",
        version="version",
        latency="latency",
        segments=("segment",),
        label_id="id",
        label="label",
        label_time="label_ts",
        task="binary",
        latency_threshold=LATENCY_THRESHOLD,
    )


class TimedRun:
    """A ``run`` for ``window_metrics`` on ``wh`` that keeps each statement's seconds."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.seconds: list[float] = []

    def __call__(self, statement: sa.Executable) -> list[sa.Row[Any]]:
        took, rows = timed(lambda: self.wh.execute(statement))
        self.seconds.append(took)
        return list(rows)


def osemn_run(wh: Warehouse, spec: ModelTables) -> tuple[float, list[float], WindowMetrics]:
    """One ``window_metrics`` over the day: total seconds, per statement, the metrics."""
    from osemn.checks.model_metrics import window_metrics

    run = TimedRun(wh)
    took, metrics = timed(lambda: window_metrics(run, spec, START, NOW))
    return took, run.seconds, metrics


@contextlib.contextmanager
def no_percentiles() -> Iterator[None]:
    """Diagnostics only: osemn's statements with every percentile_cont replaced by NULL."""
    from osemn.checks import _model_sql

    saved = _model_sql._quantile
    _model_sql._quantile = lambda value, fraction: sa.null()  # type: ignore[assignment,return-value]
    try:
        yield
    finally:
        _model_sql._quantile = saved


def diagnostics(spec: ModelTables) -> list[tuple[str, ModelTables, bool]]:
    """Leaner specs (and the percentile switch) that show which part of b costs."""
    lean = dataclasses.replace(spec, segments=(), version=None)
    bare = dataclasses.replace(lean, latency=None, latency_threshold=None)
    return [
        ("b, percentiles off", spec, True),
        ("no segment/version", lean, False),
        ("no slices, no latency", bare, False),
        ("no slices, no latency, no score", dataclasses.replace(bare, score=None), False),
        ("  the same, percentiles off", dataclasses.replace(bare, score=None), True),
    ]


def write_config(db: Db, workdir: Path, preds: str, labels: str) -> Path:
    """An osemn.yaml with the model (default relabel_windows: 3 older windows too)."""
    state = workdir / f"agent-{db.name}-state.db"
    state.unlink(missing_ok=True)
    path = workdir / f"agent-{db.name}.yaml"
    path.write_text(
        f"""version: 1
agent:
  state: sqlite:///{state}
  listen: 127.0.0.1:0
sources:
  wh:
    url: {db.url}
    statement_timeout: 30m
datasets:
  predictions: {{source: wh, table: {preds}, timestamp: ts}}
  labels: {{source: wh, table: {labels}, timestamp: label_ts}}
models:
  churn:
    predictions: {{dataset: predictions, id: id, score: score, prediction: predicted,
                  version: version, latency: latency, segments: [segment]}}
    labels: {{dataset: labels, id: id, label: label}}
    task: binary
    window: 1d
    latency_threshold: 50ms
"""
    )
    return path


def runner_seconds(config: Path) -> float:
    """Wall time of ``Agent.run_model``: ModelRunner with reflection and 3 older windows."""
    from osemn.agent.agent import Agent
    from osemn.config import load_config

    agent = Agent(load_config(str(config)), clock=lambda: NOW)
    agent.open()
    try:
        took, results = timed(lambda: agent.run_model("churn"))
    finally:
        agent.close()
    errors = [r for r in results if r.status.value == "error"]
    if errors:
        raise RuntimeError(f"ModelRunner: {errors[0].check}: {errors[0].note}")
    return took


def osemn_child(db: Db, n: int) -> None:
    """One ``window_metrics`` in this fresh process; print seconds and peak RSS as JSON."""
    wh = open_warehouse(db)
    try:
        spec = model_spec(wh, db.table(f"predictions_{n}"), db.table(f"labels_{n}"))
        took, _, metrics = osemn_run(wh, spec)
    finally:
        wh.close()
    print(json.dumps({"seconds": took, "rss_kb": _peak_rss_kb(), "labelled": metrics.labelled}))


# -- what users do today ----------------------------------------------------------------


def pandas_child(db: Db, n: int, workdir: Path) -> None:
    """Pull both tables, keep each id's latest label, merge, scikit-learn; print JSON."""
    import pandas as pd
    from sklearn import metrics as skm

    window = f"ts >= {_ts_literal(START)} AND ts < {_ts_literal(NOW)}"
    preds_sql = (
        f"SELECT id, ts, score, predicted FROM {db.table(f'predictions_{n}')} WHERE {window}"
    )
    labels_sql = f"SELECT id, label, label_ts FROM {db.table(f'labels_{n}')}"
    started = time.perf_counter()
    if db.name == "duckdb":  # DuckDB's own .df() is far faster than pd.read_sql
        import duckdb

        con = duckdb.connect(str(workdir / "bench.duckdb"), read_only=True)
        try:
            preds, labels = con.sql(preds_sql).df(), con.sql(labels_sql).df()
        finally:
            con.close()
    else:
        import psycopg

        with (
            psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test") as conn,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy
            preds = pd.read_sql(preds_sql, conn)  # type: ignore[call-overload]
            labels = pd.read_sql(labels_sql, conn)  # type: ignore[call-overload]
    pulled = time.perf_counter()
    latest = (
        labels.dropna(subset=["label"])
        .sort_values(["id", "label_ts", "label"])
        .drop_duplicates("id", keep="last")
    )
    joined = preds.merge(latest[["id", "label"]], on="id", how="left")
    done = joined[joined["label"].notna()]
    y, yhat, p = done["label"].astype(int), done["predicted"], done["score"]
    found = {
        "accuracy": skm.accuracy_score(y, yhat),
        "precision": skm.precision_score(y, yhat),
        "recall": skm.recall_score(y, yhat),
        "f1": skm.f1_score(y, yhat),
        "auc": skm.roc_auc_score(y, p),
        "log_loss": skm.log_loss(y, p),
    }
    doc = {
        "seconds": time.perf_counter() - started,
        "pull": pulled - started,
        "labelled": len(done),
        "metrics": {k: float(v) for k, v in found.items()},
        "rss_kb": _peak_rss_kb(),
    }
    print(json.dumps(doc))


def run_child(args: list[str]) -> dict[str, Any]:
    """Run this script in a fresh process with ``args``; its JSON line."""
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"child {' '.join(args)} failed: {tail}")
    doc: dict[str, Any] = json.loads(lines[-1])
    return doc


# -- one database ------------------------------------------------------------------------


@dataclass
class Figures:
    """What one database's run measured (seconds unless named otherwise)."""

    db: str
    rows: int
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    b_statements: list[list[float]] = field(default_factory=list)
    runner: list[float] = field(default_factory=list)
    diag: dict[str, list[float]] = field(default_factory=dict)
    c: dict[str, Any] = field(default_factory=dict)
    rss: dict[tuple[str, int], int] = field(default_factory=dict)
    rss_notes: list[str] = field(default_factory=list)
    limit: dict[str, int] = field(default_factory=dict)
    osemn: dict[str, float] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)


def compare(limit: dict[str, int], m: WindowMetrics) -> list[str]:
    """Where osemn's counts and ratios differ from the limit query's confusion matrix."""
    tp, fp, fn, tn = (limit[k] for k in ("tp", "fp", "fn", "tn"))
    expected = {
        "predictions": (limit["n"], m.predictions),
        "labelled": (limit["labelled"], m.labelled),
        "good": (tp + tn, m.good),
    }
    out = [f"{k}: query {q}, osemn {o}" for k, (q, o) in expected.items() if q != o]
    ratios = {"precision": tp / (tp + fp), "recall": tp / (tp + fn)}
    for k, q in ratios.items():
        if abs(q - m.realized[k]) > 1e-12:
            out.append(f"{k}: query {q}, osemn {m.realized[k]}")
    return out


def bench_db(db: Db, args: argparse.Namespace, workdir: Path) -> Figures:
    n = args.rows
    fig = Figures(db=db.name, rows=n)
    print(f"\n== {db.name}: {n:,} predictions ==", flush=True)
    sizes = sorted({SMALL_ROWS, n})
    tables = {size: prepare_tables(db, size) for size in sizes}
    preds, labels = tables[n]
    timed_db = with_memory(db, args.duckdb_memory)
    config = write_config(timed_db, workdir, preds, labels)
    wh = open_warehouse(timed_db)
    try:
        spec = model_spec(wh, preds, labels)
        sql = sa.text(limit_sql(db, preds, labels))

        def query() -> dict[str, int]:
            return {k: int(v) for k, v in wh.execute(sql)[0]._mapping.items()}

        fig.limit = query()  # warm-up of both sides
        _, _, metrics = osemn_run(wh, spec)
        fig.mismatches = compare(fig.limit, metrics)
        fig.osemn = {k: metrics.realized[k] for k in METRICS if k in metrics.realized}
        for rep in range(args.reps):
            print(f"  rep {rep + 1}/{args.reps}", flush=True)
            fig.a.append(timed(query)[0])
            took, statements, _ = osemn_run(wh, spec)
            fig.b.append(took)
            fig.b_statements.append(statements)
            fig.runner.append(runner_seconds(config))
            if rep < args.diag_reps:
                for label, variant, off in diagnostics(spec):
                    with no_percentiles() if off else contextlib.nullcontext():
                        fig.diag.setdefault(label, []).append(osemn_run(wh, variant)[0])
    finally:
        wh.close()
    print("  peak RSS of osemn (fresh processes)", flush=True)
    caps = [None, args.duckdb_memory] if db.name == "duckdb" else [None]
    for cap in caps:
        for size in sizes:
            child = ["--osemn-child", db.name, "--child-rows", str(size), *_common(args)]
            try:
                doc = run_child([*child, *(["--child-memory", cap] if cap else [])])
            except RuntimeError as exc:
                fig.rss_notes.append(f"{_cap(db, cap)}, {size:,} rows: {exc}")
                continue
            fig.rss[(_cap(db, cap), size)] = int(doc["rss_kb"])
    if not args.no_pandas:
        print("  pandas + scikit-learn (fresh process, once)", flush=True)
        fig.c = run_child(["--pandas-child", db.name, "--child-rows", str(n), *_common(args)])
    return fig


def _cap(db: Db, memory: str | None) -> str:
    from osemn.sources._dialects import DUCKDB_MEMORY_LIMIT

    if db.name != "duckdb":
        return "no cap"
    return f"memory_limit {memory or DUCKDB_MEMORY_LIMIT}"


def _common(args: argparse.Namespace) -> list[str]:
    return ["--workdir", str(args.workdir), "--pg-schema", args.pg_schema]


# -- report ---------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def report(figures: list[Figures]) -> None:
    print("\n" + "=" * 78)
    for f in figures:
        a, b = _med(f.a), _med(f.b)
        per_statement = [
            _med([s[i] for s in f.b_statements]) for i in range(len(f.b_statements[0]))
        ]
        l_ = f.limit
        print(
            f"\n{f.db}: {l_['n']:,} predictions, {l_['labelled']:,} labelled; "
            f"medians of {len(f.b)} alternating repetitions"
        )
        rows: list[tuple[str, str, str]] = [
            ("a   limit: confusion matrix, one query", f"{a:.3f} s", ""),
            ("b   osemn window_metrics (Warehouse)", f"{b:.3f} s", ""),
            (
                "    b's statements",
                " + ".join(f"{s:.3f}" for s in per_statement) + " s",
                "1: slice value counts, 2: every slice in one join, 3: percentiles",
            ),
            ("    ModelRunner via Agent.run_model", f"{_med(f.runner):.3f} s", "+3 older windows"),
            ("b/a", f"{b / a:.2f}", f"target {TARGETS['b/a']}"),
        ]
        if f.c:
            c = float(f.c["seconds"])
            rows += [
                ("c   pandas + scikit-learn (once)", f"{c:.3f} s", f"pull {f.c['pull']:.3f} s"),
                ("c/b", f"{c / b:.1f}", f"target {TARGETS['c/b']}"),
            ]
        for cap in dict.fromkeys(c for c, _ in f.rss):
            rss = " -> ".join(
                f"{_mb(kb)} ({size / 1e6:g}M)" for (c, size), kb in f.rss.items() if c == cap
            )
            rows.append((f"peak RSS osemn, {cap}", rss, f"target {TARGETS['rss']}"))
        if f.c:
            rows.append(("peak RSS pandas + scikit-learn", _mb(int(f.c["rss_kb"])), ""))
        rows.append(("counts equal to the limit query", "yes" if not f.mismatches else "NO", ""))
        for label, value, note in rows:
            print(f"  {label:<42} {value:<26} {note}")
        for m in f.mismatches:
            print(f"    mismatch {m}")
        for note in f.rss_notes:
            print(f"    osemn child failed: {note}")
        if f.diag:
            print("  diagnostics (which part of b costs; median seconds, x a):")
            for label, seconds in f.diag.items():
                s = _med(seconds)
                print(f"    {label:<40} {s:.3f} s   {s / a:.2f}x a")
        if f.c:
            sk = f.c["metrics"]
            diffs = ", ".join(f"{k} {abs(f.osemn[k] - sk[k]):.1e}" for k in METRICS if k in f.osemn)
            print(f"  |osemn - scikit-learn|: {diffs}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="predictions")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--diag-reps", type=int, default=1, help="repetitions of diagnostics")
    parser.add_argument("--no-pandas", action="store_true", help="skip c")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/osemn-bench-acc"))
    parser.add_argument("--db", choices=["duckdb", "postgresql"], action="append")
    parser.add_argument("--pg-schema", default=PG_SCHEMA)
    parser.add_argument(
        "--duckdb-memory",
        default="4GB",
        help="DuckDB memory_limit of the timed runs (a and b alike); RSS is also read at "
        "the agent's own cap",
    )
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    parser.add_argument("--osemn-child", choices=["duckdb", "postgresql"], help=argparse.SUPPRESS)
    parser.add_argument("--pandas-child", choices=["duckdb", "postgresql"], help=argparse.SUPPRESS)
    parser.add_argument("--child-rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    dbs = {
        "duckdb": Db("duckdb", f"duckdb:///{workdir / 'bench.duckdb'}", None),
        "postgresql": Db("postgresql", PG_URL, args.pg_schema),
    }
    if args.osemn_child:
        osemn_child(with_memory(dbs[args.osemn_child], args.child_memory), args.child_rows)
        return
    if args.pandas_child:
        pandas_child(dbs[args.pandas_child], args.child_rows, workdir)
        return
    figures = [bench_db(dbs[name], args, workdir) for name in args.db or list(dbs)]
    report(figures)


if __name__ == "__main__":
    main()
