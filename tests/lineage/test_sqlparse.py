"""SQL text to lineage: views and the statements query history shows."""

from __future__ import annotations

import pytest

from osemn.lineage.sqlparse import LineageParseError, parse_query, parse_statement

SCHEMA = {
    "public": {
        "orders": {"id": "INT", "amount": "INT", "customer_id": "INT"},
        "customers": {"id": "INT", "name": "TEXT"},
        "totals": {"customer_id": "INT", "total": "INT"},
    }
}
KW = {"node": "q", "dialect": "postgres", "schema": SCHEMA, "default_schema": "public"}


def test_a_view_gives_tables_columns_and_indirect_columns() -> None:
    parsed = parse_query(
        "SELECT o.id, o.amount * 2 AS doubled, c.name FROM orders o "
        "JOIN customers c ON c.id = o.customer_id WHERE o.amount > 0",
        **KW,  # type: ignore[arg-type]
    )
    assert parsed.tables == ("public.orders", "public.customers")
    assert parsed.columns == {
        "id": (("public.orders", "id"),),
        "doubled": (("public.orders", "amount"),),
        "name": (("public.customers", "name"),),
    }
    assert set(parsed.indirect) == {
        ("public.orders", "amount"),
        ("public.customers", "id"),
        ("public.orders", "customer_id"),
    }


def test_ctes_and_star_are_followed_to_tables() -> None:
    parsed = parse_query(
        "WITH big AS (SELECT * FROM orders WHERE amount > 10) SELECT customer_id, sum(amount) AS s "
        "FROM big GROUP BY customer_id",
        **KW,  # type: ignore[arg-type]
    )
    assert parsed.tables == ("public.orders",)
    assert parsed.columns["s"] == (("public.orders", "amount"),)


@pytest.mark.parametrize(
    ("sql", "target", "tables"),
    [
        (
            "INSERT INTO totals (customer_id, total) SELECT customer_id, sum(amount) FROM orders "
            "GROUP BY customer_id",
            "public.totals",
            ("public.orders",),
        ),
        (
            "CREATE TABLE public.snap AS SELECT id, name FROM customers",
            "public.snap",
            ("public.customers",),
        ),
        (
            "MERGE INTO totals t USING orders o ON o.customer_id = t.customer_id "
            "WHEN MATCHED THEN UPDATE SET total = t.total + o.amount",
            "public.totals",
            ("public.orders",),
        ),
        (
            "UPDATE customers SET name = o.amount::text FROM orders o WHERE o.customer_id = "
            "customers.id",
            "public.customers",
            ("public.orders",),
        ),
    ],
)
def test_statements_that_move_data(sql: str, target: str, tables: tuple[str, ...]) -> None:
    parsed = parse_statement(sql, **KW)  # type: ignore[arg-type]
    assert parsed is not None
    assert parsed.target == target
    assert parsed.tables == tables


def test_ctes_of_an_insert_are_followed() -> None:
    parsed = parse_statement(
        "WITH big AS (SELECT customer_id, amount FROM orders WHERE amount > $1) "
        "INSERT INTO totals SELECT customer_id, amount FROM big",
        **KW,  # type: ignore[arg-type]
    )
    assert parsed is not None
    assert (parsed.target, parsed.tables) == ("public.totals", ("public.orders",))
    # totals has no column `amount`: the SELECT's second column fills its second, `total`
    assert parsed.columns["total"] == (("public.orders", "amount"),)


def test_insert_columns_are_renamed_by_position() -> None:
    parsed = parse_statement(
        "INSERT INTO totals (customer_id, total) SELECT customer_id, amount FROM orders",
        **KW,  # type: ignore[arg-type]
    )
    assert parsed is not None
    assert parsed.columns == {
        "customer_id": (("public.orders", "customer_id"),),
        "total": (("public.orders", "amount"),),
    }


def test_statements_that_move_nothing_are_none() -> None:
    assert parse_statement("SELECT 1", **KW) is None  # type: ignore[arg-type]
    assert parse_statement("INSERT INTO totals VALUES (1, 2)", **KW) is None  # type: ignore[arg-type]


def test_sql_sqlglot_cannot_read_says_which_view() -> None:
    with pytest.raises(LineageParseError) as raised:
        parse_query("SELECT (@-@ segs.seg) AS len FROM segs", **{**KW, "node": "w/public.v"})  # type: ignore[arg-type]
    assert raised.value.node == "w/public.v"
    assert "cannot parse the SQL of w/public.v" in str(raised.value)


def test_insert_without_a_column_list_fills_the_targets_columns_in_order() -> None:
    parsed = parse_statement(
        "INSERT INTO totals SELECT customer_id, sum(amount) FROM orders GROUP BY customer_id",
        **KW,  # type: ignore[arg-type]
    )
    assert parsed is not None
    assert parsed.columns == {
        "customer_id": (("public.orders", "customer_id"),),
        "total": (("public.orders", "amount"),),
    }
