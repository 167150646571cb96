"""SLO evaluation at scale: N SLOs with a month of SLI events in the state store.

For each state store (SQLite file, PostgreSQL schema) and each N, a fresh process
opens the agent's SLO evaluator on the stored history (load time, cold and from
the series the agent saves every hour), runs one full
evaluation cycle of every burn rate, budget and alert (CPU time, median of
--cycles), and reports its peak RSS. Target: one cycle <= 1 s of CPU for 1,000
SLOs, growing linearly. Events: one every 5 minutes per SLO for 30 days, 0.2% bad
against a 99.5% objective, a burst of bad events in the last hour for every tenth
SLO (so alerts fire).

    python bench/slo.py --slos 250 500 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
STEP = 300  # seconds between events
DAYS = 30
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def config_text(n: int) -> str:
    datasets = "\n".join(
        f"  d{i}: {{source: w, table: t{i}, schedule: every 5m}}" for i in range(max(1, n // 10))
    )
    slos = "\n".join(
        f"  - {{name: slo-{i}, dataset: d{i % max(1, n // 10)}, sli: checks, objective: 99.5%,"
        f" window: 30d}}"
        for i in range(n)
    )
    return (
        'version: 1\nsources: {w: {url: "duckdb:///unused.duckdb"}}\n'
        f"datasets:\n{datasets}\nslos:\n{slos}\n"
    )


def state_url(kind: str, workdir: Path, n: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'state-{n}.db'}"
    return f"{PG_URL}?options=-csearch_path%3Dosemn_bench_slo_{n}"


def fill(url: str, n: int) -> int:
    """Create the state store and write a month of events for n SLOs (skipped if present)."""
    from osemn.agent._state_schema import _sli_events, _sli_rollups
    from osemn.agent.state import StateStore

    if url.startswith("postgresql"):
        schema = url.rsplit("%3D", 1)[1]
        with sa.create_engine(PG_URL).begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    state = StateStore(url)
    state.open()
    with state.engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(_sli_events)).scalar_one()
    end = int(NOW.timestamp())
    times = range(end - DAYS * 86400 + STEP, end + 1, STEP)
    with state.engine.begin() as conn:
        conn.execute(sa.delete(_sli_rollups))  # every run starts cold
    if have == n * len(times):
        state.close()
        return int(have)
    with state.engine.begin() as conn:
        conn.execute(sa.delete(_sli_events))
        for i in range(n):
            burst = i % 10 == 0
            rows = [
                {
                    "slo": f"slo-{i}",
                    "t": t,
                    "good": 998 if not (burst and t > end - 3600) else 700,
                    "bad": 2 if not (burst and t > end - 3600) else 300,
                }
                for t in times
            ]
            conn.execute(sa.insert(_sli_events), rows)
    state.close()
    return n * len(times)


def child(url: str, n: int, cycles: int) -> None:
    """Measure in a fresh process: load, cycles of evaluate, peak RSS."""
    from osemn.agent.state import StateStore
    from osemn.config import parse_config
    from osemn.rules.evaluator import SloEvaluator

    config = parse_config(config_text(n))
    state = StateStore(url, clock=lambda: NOW)
    state.open()
    evaluator = SloEvaluator(config, state, clock=lambda: NOW)
    t0 = time.perf_counter()
    rows = evaluator.open()
    load = time.perf_counter() - t0
    cpu = []
    firing = 0
    for _ in range(cycles):
        c0 = time.process_time()
        statuses, alerts = evaluator.evaluate()
        cpu.append(time.process_time() - c0)
        firing = sum(1 for a in alerts if a.state.value == "firing")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    evaluator.events.compact(NOW)  # the agent's hourly housekeeping saves every series
    warm = SloEvaluator(config, state, clock=lambda: NOW)
    t0 = time.perf_counter()
    warm_rows = warm.open()
    warm_load = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "load_s": load,
                "rows_read": rows,
                "warm_load_s": warm_load,
                "warm_rows": warm_rows,
                "cycle_cpu_s": statistics.median(cpu),
                "rss_mb": rss,
                "firing": firing,
                "slos": len(statuses),
            }
        )
    )
    state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slos", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/osemn-bench-slo"))
    parser.add_argument("--child", nargs=2, metavar=("URL", "N"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.cycles)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"{'store':<11} {'SLOs':>5} {'events':>10} {'cold load s':>11} {'rows':>8} "
        f"{'saved load s':>12} {'rows':>5} {'cycle CPU s':>11} {'per SLO ms':>10} "
        f"{'RSS MB':>7} {'firing':>6}"
    )
    for kind in args.stores:
        base = None
        for n in args.slos:
            url = state_url(kind, args.workdir, n)
            events = fill(url, n)
            out = subprocess.run(
                [sys.executable, __file__, "--child", url, str(n), "--cycles", str(args.cycles)],
                check=True,
                capture_output=True,
                text=True,
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
            per = 1000 * m["cycle_cpu_s"] / n
            base = base or per
            print(
                f"{kind:<11} {n:>5} {events:>10} {m['load_s']:>11.2f} {m['rows_read']:>8} "
                f"{m['warm_load_s']:>12.2f} {m['warm_rows']:>5} {m['cycle_cpu_s']:>11.4f} "
                f"{per:>10.4f} {m['rss_mb']:>7.0f} {m['firing']:>6}"
            )
        print(f"{kind}: target one cycle <= 1 s CPU at 1,000 SLOs; per-SLO cost should stay flat")


if __name__ == "__main__":
    main()
