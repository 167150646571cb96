"""The fused scan's count of rows breaking any rule, by each of its three plans.

Outside DuckDB the plan depends on how many predicates call a function: none
(repeat them in one OR), one (count it, then count the others behind
``IS TRUE AND ... IS NOT TRUE``), more (GROUP BY flags). Every subset of four
predicates over every combination of values, NULLs included, must give the
counts three-valued logic gives, on every dialect; so must the deferred count
(``any_after``), which takes a second statement only when two rules fail.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations, product
from typing import Any

import pytest
import sqlalchemy as sa

from osemn.checks.fused import Aggregate, Predicate, fused_scan
from tests.conftest import Warehouse

NUMBERS = (None, -1, 1)
TEXTS = (None, "ab", "abcde", "X", "x")

Truth = Callable[[int | None, str | None], bool | None]

# name -> (SQL "fails" expression builder, the same in Python; None is a pass)
RULES: dict[str, tuple[Callable[[sa.Table], Any], Truth]] = {
    "neg": (lambda t: t.c.n < 0, lambda n, s: None if n is None else n < 0),
    "null": (lambda t: t.c.n.is_(None), lambda n, s: n is None),
    "long": (
        lambda t: sa.func.length(t.c.s) > 3,
        lambda n, s: None if s is None else len(s) > 3,
    ),
    "starts": (
        lambda t: sa.func.substr(t.c.s, 1, 1) == "a",
        lambda n, s: None if s is None else s[:1] == "a",
    ),
}
SUBSETS = [c for k in range(1, len(RULES) + 1) for c in combinations(RULES, k)]


@pytest.fixture
def table(warehouse: Warehouse) -> sa.Table:
    meta = sa.MetaData(schema=warehouse.schema)
    table = sa.Table("rows", meta, sa.Column("n", sa.Integer), sa.Column("s", sa.String(8)))
    meta.create_all(warehouse.engine)
    with warehouse.engine.begin() as conn:
        conn.execute(table.insert(), [{"n": n, "s": s} for n, s in product(NUMBERS, TEXTS)])
    return table


def scan(
    warehouse: Warehouse, table: sa.Table, names: tuple[str, ...], *, any_after: bool
) -> tuple[dict[str, int], list[str]]:
    """The fused scan of the named rules: its counts and the statements it sent."""
    statements: list[str] = []
    predicates = [Predicate(key=name, fails=RULES[name][0](table)) for name in names]
    with warehouse.engine.connect() as conn:

        def execute(stmt: sa.Executable) -> Any:
            statements.append(str(stmt.compile(dialect=conn.dialect)))  # type: ignore[attr-defined]
            return conn.execute(stmt).all()

        outcome = fused_scan(
            execute,
            table,
            [Aggregate(key="rows", expr=sa.func.count(), combine="count")],
            dialect=warehouse.engine.dialect,
            predicates=predicates,
            any_key="any",
            any_after=any_after,
        )
    assert outcome.errors == {}
    return {k: int(v) for k, v in outcome.values.items()}, statements


def truth(names: tuple[str, ...]) -> dict[str, int]:
    """Each rule's count and the rows breaking any, by three-valued logic in Python."""
    rows = list(product(NUMBERS, TEXTS))
    want = {name: sum(RULES[name][1](n, s) is True for n, s in rows) for name in names}
    want["any"] = sum(any(RULES[name][1](n, s) is True for name in names) for n, s in rows)
    want["rows"] = len(rows)
    return want


def test_any_count_by_every_plan(warehouse: Warehouse, table: sa.Table) -> None:
    plans = {}
    for names in SUBSETS:
        got, statements = scan(warehouse, table, names, any_after=False)
        assert got == truth(names), names
        assert len(statements) == 1  # the "any" count is in the scan
        plans[names] = statements[0]
    if warehouse.dialect != "duckdb":  # each plan was taken where it should be
        assert "GROUP BY" in plans[("long", "starts")]
        assert "GROUP BY" not in plans[("neg", "long")] and " AND " in plans[("neg", "long")]
        assert "GROUP BY" not in plans[("neg", "null")]


def test_any_count_afterwards_only_when_two_rules_fail(
    warehouse: Warehouse, table: sa.Table
) -> None:
    for names in SUBSETS:
        want = truth(names)
        got, statements = scan(warehouse, table, names, any_after=True)
        assert got == want, names
        failing = sum(1 for name in names if want[name])
        afterwards = warehouse.dialect != "duckdb" and failing >= 2
        assert len(statements) == 1 + afterwards, (names, statements)
