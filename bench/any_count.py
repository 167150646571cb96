"""What counting the rows that break *any* rule costs on PostgreSQL, plan by plan.

osemn reports ``validity`` (rows breaking at least one rule) from the same scan
as every rule's count. On the fused-scan table (``bench/fused_scan.py`` builds
it) the email regex is most of a scan, so a plan that runs it twice costs
nearly a second scan. This times, alternately, the hand-written limit a' (the
rule counts only) and each way of adding the "any" count:

* ``guard``: ``count(r) + count((other rules) IS TRUE AND r IS NOT TRUE)``,
  osemn's plan with one regex or function (AND stops before ``r``);
* ``flags``: GROUP BY the string rules as boolean flags (osemn's plan with
  two or more);
* ``or``: the plain ``count(*) FILTER (WHERE r1 OR r2 ...)`` (the regex twice).

a' is written as osemn writes its rule counts, so it is also what osemn's scan
costs when it leaves the "any" count out (after a run with at most one failing
rule).

Run: ``python bench/any_count.py --reps 3`` (after ``bench/fused_scan.py``).
It prints medians and each plan's ratio to a'; it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa

__all__ = ["main"]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_STATUS = "(status COLLATE \"C\") NOT IN ('new', 'paid', 'shipped', 'cancelled')"
_EMAIL = "email !~ '^(?:^[^@]+@[^@]+$)'"
_CHEAP = [
    "customer_id IS NULL",
    "customer_id < 1",
    "amount IS NULL OR amount = 'NaN'",
    "NOT (amount >= 0 AND amount <= 1000) AND amount != 'NaN'",
    "status IS NULL",
    "created_at IS NULL",
]
_RULES = [*_CHEAP, _STATUS, _EMAIL]


def _counts(rules: list[str]) -> str:
    return ", ".join(f"count(*) FILTER (WHERE {r})" for r in rules)


def plans(table: str) -> dict[str, str]:
    """The limit a' and the three plans with the "any" count, as SQL on ``table``."""
    everything = f"count(*), count(email), {_counts(_RULES)}"
    others = " OR ".join(f"({r})" for r in [*_CHEAP, _STATUS])
    flags = (
        f"CASE WHEN {_STATUS} THEN true ELSE false END, CASE WHEN {_EMAIL} THEN true ELSE false END"
    )
    cheap_any = " OR ".join(f"({r})" for r in _CHEAP)
    return {
        "a'": f"SELECT {everything} FROM {table}",
        "guard": (
            f"SELECT {everything}, count(*) FILTER (WHERE ({others}) IS TRUE "
            f"AND ({_EMAIL}) IS NOT TRUE) FROM {table}"
        ),
        "flags": (
            f"SELECT {flags}, count(*), count(email), {_counts(_CHEAP)}, "
            f"count(*) FILTER (WHERE {cheap_any}) FROM {table} GROUP BY 1, 2"
        ),
        "or": (
            f"SELECT {everything}, count(*) FILTER (WHERE "
            f"{' OR '.join(f'({r})' for r in _RULES)}) FROM {table}"
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--table", default="osemn_bench.orders")
    args = parser.parse_args(argv)
    engine = sa.create_engine(PG_URL)
    times: dict[str, list[float]] = {}
    try:
        with engine.connect() as conn:
            for rep in range(args.reps):
                for name, sql in plans(args.table).items():
                    started = time.perf_counter()
                    conn.exec_driver_sql(sql).all()
                    times.setdefault(name, []).append(time.perf_counter() - started)
                print(f"  rep {rep + 1}/{args.reps}", flush=True)
    finally:
        engine.dispose()
    limit = statistics.median(times["a'"])
    print(f"\n{args.table}, medians of {args.reps} alternating repetitions")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<6} {median:7.3f} s   {median / limit:5.2f} x a'")


if __name__ == "__main__":
    main()
