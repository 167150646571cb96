"""pandera schemas compiled to SQL rules, counted on DuckDB, SQLite, PostgreSQL and MariaDB.

Every count below is what pandera's pandas backend reports for the same rows
(``test_differential`` proves that on random data); here the data are chosen
to hit each trap: nulls, interval ends, regex anchoring, LIKE wildcards,
unicode lengths, and MariaDB's case- and trailing-space-insensitive strings.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandera.pandas as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.sql.expression import Grouping

from osemn.checks.base import CompiledSchema, UniqueRule
from osemn.checks.builtins import BUILTINS, exact_text
from osemn.checks.compile import compile_schema
from osemn.checks.schema import load_schema
from osemn.sources._dialects import reflect_table
from tests.conftest import Warehouse, make_warehouse

Check = pa.Check


def load_table(
    wh: Warehouse, columns: Sequence[sa.Column[Any]], rows: list[dict[str, Any]]
) -> sa.Table:
    """Create a table with ``rows`` and return it as the warehouse reflects it."""
    name = "t_" + uuid.uuid4().hex[:10]
    metadata = sa.MetaData()
    table = sa.Table(name, metadata, *columns, schema=wh.schema)
    metadata.create_all(wh.engine)
    if rows:
        with wh.engine.begin() as conn:
            conn.execute(table.insert(), rows)
    with wh.engine.connect() as conn:
        reflected, _ = reflect_table(conn, wh.schema, name)
    return reflected


def duplicate_rows(
    conn: sa.Connection, table: sa.Table, rule: UniqueRule, dialect: sa.Dialect
) -> int:
    """Rows pandera reports for ``rule``: members of repeated keys, less one per key if asked."""
    key = [exact_text(table.c[c], dialect) for c in rule.columns]
    groups = sa.select(sa.func.count().label("n")).select_from(table).group_by(*key)
    if rule.nulls_distinct:
        groups = groups.where(*(table.c[c].is_not(None) for c in rule.columns))
    sizes = conn.execute(groups.having(sa.func.count() > 1)).scalars().all()
    return sum(int(n) - (0 if rule.report == "all" else 1) for n in sizes)


def failing(wh: Warehouse, table: sa.Table, compiled: CompiledSchema) -> dict[str, int]:
    """Failing rows per SQL rule (1 for a failed aggregate rule), as the fused scan counts."""
    sums = [sa.func.sum(sa.case((r.fails, 1), else_=0)) for r in compiled.row_rules]
    aggregates = [a for r in compiled.aggregate_rules for a in r.aggregates]
    # Labelled: SQLAlchemy folds unlabelled columns of one anonymous name into one.
    labelled = [e.label(f"e{i}") for i, e in enumerate([*sums, *aggregates])]
    counts: dict[str, int] = {}
    with wh.engine.connect() as conn:
        if sums or aggregates:
            values = conn.execute(sa.select(*labelled).select_from(table)).one()
            for rule, value in zip(compiled.row_rules, values, strict=False):
                counts[rule.name] = int(value or 0)
            rest = list(values[len(sums) :])
            for agg in compiled.aggregate_rules:
                got, rest = rest[: len(agg.aggregates)], rest[len(agg.aggregates) :]
                counts[agg.name] = 0 if agg.passes(got) else 1
        for unique in compiled.unique_rules:
            counts[unique.name] = duplicate_rows(conn, table, unique, wh.engine.dialect)
    return counts


def compiled_for(wh: Warehouse, schema: pa.DataFrameSchema, table: sa.Table) -> CompiledSchema:
    return compile_schema(schema, table, dialect=wh.engine.dialect)


ROWS = [
    {"n": 0, "x": 0.0, "s": "a"},
    {"n": 5, "x": 99.5, "s": "A"},
    {"n": 10, "x": -1.0, "s": "a "},
    {"n": None, "x": None, "s": None},
    {"n": 3, "x": 50.25, "s": "ab"},
    {"n": 7, "x": 100.0, "s": "日本語"},
    {"n": 5, "x": 99.4, "s": "b%_x"},
    {"n": None, "x": 2.0, "s": "xab"},
]


def mixed_table(wh: Warehouse) -> sa.Table:
    return load_table(
        wh,
        [sa.Column("n", sa.BigInteger), sa.Column("x", sa.Double), sa.Column("s", sa.String(20))],
        ROWS,
    )


def test_builtin_checks_count_as_pandera_does(warehouse: Warehouse) -> None:
    table = mixed_table(warehouse)
    schema = pa.DataFrameSchema(
        {
            "n": pa.Column(
                checks=[
                    Check.greater_than(3),
                    Check.greater_than_or_equal_to(5),
                    Check.less_than(7),
                    Check.less_than_or_equal_to(5),
                    Check.equal_to(5),
                    Check.not_equal_to(5),
                    Check.in_range(0, 7),
                    Check.in_range(0, 7, include_min=False, include_max=False),
                    Check.isin([0, 5]),
                    Check.notin([5, 10]),
                    Check.unique_values_eq([0, 3, 5, 7, 10]),
                    Check.unique_values_eq([0, 5]),
                ]
            ),
            "x": pa.Column(
                checks=[Check.in_range(0, 99.5, include_max=False), Check.le(99.5)],
                nullable=True,
            ),
            "s": pa.Column(
                checks=[
                    Check.equal_to("a"),
                    Check.equal_to("a "),
                    Check.isin(["a", "ab"]),
                    Check.notin(["a"]),
                    Check.greater_than("B"),
                    Check.str_matches("a"),
                    Check.str_matches("x|b"),
                    Check.str_contains("a"),
                    Check.str_contains("b$"),
                    Check.str_startswith("b%"),
                    Check.str_startswith("a_"),
                    Check.str_endswith("_b"),
                    Check.str_endswith("%_x"),
                    Check.str_length(2, 3),
                    Check.str_length(3),
                    Check.unique_values_eq(["a", "A", "a ", "ab", "日本語", "b%_x", "xab"]),
                ],
                nullable=True,
            ),
        }
    )

    counts = failing(warehouse, table, compiled_for(warehouse, schema, table))

    assert counts == {
        "n:not_null": 2,
        "n:greater_than(3)": 2,
        "n:greater_than_or_equal_to(5)": 2,
        "n:less_than(7)": 2,
        "n:less_than_or_equal_to(5)": 2,
        "n:equal_to(5)": 4,
        "n:not_equal_to(5)": 2,
        "n:in_range(0, 7)": 1,
        "n:in_range(0, 7, include_min=False, include_max=False)": 3,
        "n:isin([0, 5])": 3,
        "n:notin([5, 10])": 3,
        "n:unique_values_eq([0, 3, 5, 7, 10])": 0,
        "n:unique_values_eq([0, 5])": 1,
        "x:in_range(0, 99.5, include_max=False)": 3,
        "x:less_than_or_equal_to(99.5)": 1,
        # MariaDB's default collation would find 'A' and 'a ' equal to 'a'.
        "s:equal_to('a')": 6,
        "s:equal_to('a ')": 6,
        "s:isin(['a', 'ab'])": 5,
        "s:notin(['a'])": 1,
        "s:greater_than('B')": 1,  # code point order: only 'A' sorts before 'B'
        "s:str_matches('a')": 4,  # re.match: anchored at the start only
        "s:str_matches('x|b')": 5,  # the whole alternation is anchored
        "s:str_contains('a')": 3,
        "s:str_contains('b$')": 5,
        "s:str_startswith('b%')": 6,  # literal, not a LIKE wildcard
        "s:str_startswith('a_')": 7,
        "s:str_endswith('_b')": 7,
        "s:str_endswith('%_x')": 6,
        "s:str_length(2, 3)": 3,  # characters: '日本語' is 3 long, not 9 bytes
        "s:str_length(exact_value=3)": 5,
        "s:unique_values_eq(['A', 'a', 'a ', 'ab', 'b%_x', 'xab', '日本語'])": 0,
    }


def test_ignore_na_false_fails_nulls_like_pandas(warehouse: Warehouse) -> None:
    table = mixed_table(warehouse)
    schema = pa.DataFrameSchema(
        {
            "n": pa.Column(
                checks=[
                    Check.greater_than(3, ignore_na=False),
                    Check.not_equal_to(5, ignore_na=False),  # NaN != 5 is true in pandas
                    Check.notin([5], ignore_na=False),
                    Check.isin([0, 3, 5, 7, 10], ignore_na=False),
                    Check.unique_values_eq([0, 3, 5, 7, 10], ignore_na=False),
                ],
                nullable=True,
            ),
            "s": pa.Column(
                checks=[
                    Check.str_matches("a", ignore_na=False),
                    Check.str_length(1, 3, ignore_na=False),
                    # A listed None admits nulls (pandas' object and str semantics).
                    Check.isin(
                        ["a", "A", "a ", "ab", "日本語", "b%_x", "xab", None], ignore_na=False
                    ),
                ],
                nullable=True,
            ),
        }
    )

    counts = failing(warehouse, table, compiled_for(warehouse, schema, table))

    assert counts == {
        "n:greater_than(3)": 4,
        "n:not_equal_to(5)": 2,
        "n:notin([5])": 2,
        "n:isin([0, 3, 5, 7, 10])": 2,
        "n:unique_values_eq([0, 3, 5, 7, 10])": 1,
        "s:str_matches('a')": 5,
        "s:str_length(1, 3)": 2,
        "s:isin(['a', 'A', 'a ', 'ab', '日本語', 'b%_x', 'xab', None])": 0,
    }


def test_a_null_fails_expression_is_a_pass_and_only_on_a_null_value(
    warehouse: Warehouse,
) -> None:
    """Strict rules skip the null guard: their ``fails`` is NULL exactly on null rows.

    WHERE, CASE, FILTER and OR all read NULL as "not failing", so counts are those
    of the guarded form; rules that are not strict stay TRUE or FALSE.
    """
    table = mixed_table(warehouse)
    schema = pa.DataFrameSchema(
        {
            "n": pa.Column(
                checks=[Check.gt(3), Check.ne(5, ignore_na=False), Check.isin([])], nullable=True
            ),
            "x": pa.Column(checks=[Check.in_range(0, 99.5)], nullable=True),
            "s": pa.Column(checks=[Check.str_contains("a"), Check.isin(["a", None])]),
        }
    )
    compiled = compiled_for(warehouse, schema, table)

    def count(*where: sa.ColumnElement[bool]) -> int:
        stmt = sa.select(sa.func.count()).select_from(table).where(*where)
        with warehouse.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    never_null = {"n:isin([])", "s:not_null"}  # FALSE for every row; IS NULL
    assert never_null < {r.name for r in compiled.row_rules}
    for rule in compiled.row_rules:
        assert rule.column is not None
        is_null = table.c[rule.column].is_(None)
        expected_nulls = 0 if rule.name in never_null else count(is_null)
        fails_null = Grouping(rule.fails).is_(None)  # NOT x IS NULL means NOT (x IS NULL)
        assert count(fails_null) == expected_nulls, rule.name
        assert count(fails_null, sa.not_(is_null)) == 0, rule.name
        assert count(rule.fails) == count(sa.func.coalesce(rule.fails, sa.false())), rule.name


def test_unique_rules_follow_pandas_duplicated(warehouse: Warehouse) -> None:
    rows = [
        {"k": 1, "g": "a"},
        {"k": 1, "g": "a"},
        {"k": 1, "g": None},
        {"k": None, "g": None},
        {"k": None, "g": None},
        {"k": 2, "g": "b"},
        {"k": None, "g": "c"},
        {"k": 4, "g": "A"},
        {"k": 4, "g": "a "},
    ]
    table = load_table(
        warehouse, [sa.Column("k", sa.BigInteger), sa.Column("g", sa.String(5))], rows
    )
    schema = pa.DataFrameSchema(
        {
            "k": pa.Column(nullable=True, unique=True, report_duplicates="exclude_first"),
            "g": pa.Column(nullable=True, unique=True),
        },
        unique=["k", "g"],
        report_duplicates="exclude_last",
    )

    compiled = compiled_for(warehouse, schema, table)

    assert compiled.unique_rules == (
        UniqueRule(name="k:unique", columns=("k",), nulls_distinct=True, report="exclude_first"),
        UniqueRule(name="g:unique", columns=("g",), nulls_distinct=True, report="all"),
        UniqueRule(
            name="k,g:unique", columns=("k", "g"), nulls_distinct=False, report="exclude_last"
        ),
    )
    # k: 1 x3, 4 x2 (nulls never count); g: 'a' x2 ('A' and 'a ' differ);
    # (k, g): (1, 'a') x2 and (NULL, NULL) x2, less the last of each.
    assert failing(warehouse, table, compiled) == {"k:unique": 3, "g:unique": 2, "k,g:unique": 2}


def test_schema_unique_of_several_sets_and_missing_columns() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("a", sa.Integer), sa.Column("b", sa.Integer))
    schema = pa.DataFrameSchema(
        {"a": pa.Column(int), "b": pa.Column(int)}, unique=[["a", "zz"], ["zz"], ["a", "b"]]
    )

    compiled = compile_schema(schema, table, dialect=engine.dialect)

    # pandera checks a set on the columns the frame has, and skips an empty one.
    assert [(r.name, r.columns) for r in compiled.unique_rules] == [
        ("a,zz:unique", ("a",)),
        ("a,b:unique", ("a", "b")),
    ]


def test_float_nan_counts_as_null_where_the_engine_stores_it(
    request: pytest.FixtureRequest,
) -> None:
    for fixture in ("pg_warehouse", "duckdb_warehouse"):
        wh: Warehouse = request.getfixturevalue(fixture)
        rows = [{"x": 1.0}, {"x": math.nan}, {"x": None}, {"x": 3.0}]
        table = load_table(wh, [sa.Column("x", sa.Double)], rows)
        schema = pa.DataFrameSchema(
            {"x": pa.Column(checks=[Check.gt(2.0), Check.lt(2.0, ignore_na=False)])}
        )

        counts = failing(wh, table, compiled_for(wh, schema, table))

        assert counts == {"x:not_null": 2, "x:greater_than(2.0)": 1, "x:less_than(2.0)": 3}


def test_case_insensitive_pattern_and_unsupported_flags(warehouse: Warehouse) -> None:
    table = mixed_table(warehouse)
    schema = pa.DataFrameSchema(
        {
            "s": pa.Column(
                checks=[
                    Check.str_matches(re.compile("A", re.IGNORECASE)),
                    Check.str_contains(re.compile("^b", re.MULTILINE)),
                ],
                nullable=True,
            )
        }
    )

    compiled = compiled_for(warehouse, schema, table)

    assert failing(warehouse, table, compiled) == {
        "s:str_matches(re.compile('A', re.IGNORECASE))": 3
    }
    assert [r.name for r in compiled.custom_rules] == [
        "s:str_contains(re.compile('^b', re.MULTILINE))"
    ]


def test_values_are_bound_not_formatted(warehouse: Warehouse) -> None:
    table = mixed_table(warehouse)
    evil = "a'); DROP TABLE x; --"
    schema = pa.DataFrameSchema(
        {"s": pa.Column(checks=[Check.ne(evil), Check.isin([evil, "ab"])], nullable=True)}
    )
    compiled = compiled_for(warehouse, schema, table)

    for rule in compiled.row_rules:
        sql = str(sa.select(rule.fails).compile(dialect=warehouse.engine.dialect))
        assert "DROP" not in sql
        assert '"s"' in sql or "`s`" in sql or ".s" in sql
    assert failing(warehouse, table, compiled) == {
        f"s:not_equal_to({evil!r})": 0,
        f"s:isin([{evil!r}, 'ab'])": 6,
    }


def test_check_on_a_column_of_the_wrong_type_still_compiles(warehouse: Warehouse) -> None:
    table = mixed_table(warehouse)
    schema = pa.DataFrameSchema(
        {
            "s": pa.Column(checks=[Check.gt(5), Check.in_range(1, 2)]),
            "n": pa.Column(checks=Check.str_length(1)),
        }
    )

    compiled = compiled_for(warehouse, schema, table)

    assert [r.name for r in compiled.row_rules] == [
        "s:not_null",
        "s:greater_than(5)",
        "s:in_range(1, 2)",
        "n:not_null",
        "n:str_length(exact_value=1)",
    ]


TYPES: list[tuple[str, sa.types.TypeEngine[Any]]] = [
    ("big", sa.BigInteger()),
    ("dbl", sa.Double()),
    ("num", sa.Numeric(10, 2)),
    ("num0", sa.Numeric(12, 0)),
    ("vc", sa.String(10)),
    ("txt", sa.Text()),
    ("flag", sa.Boolean()),
    ("ts", sa.DateTime()),
    ("tstz", sa.DateTime(timezone=True)),
    ("day", sa.Date()),
]

DTYPE_CASES: list[tuple[str, Any, bool, bool]] = [
    # column, pandera dtype, coerce, accepted
    ("big", "int64", False, True),
    ("big", "Int32", False, True),
    ("big", "float64", False, False),
    ("big", "float64", True, True),
    ("dbl", "float64", False, True),
    ("dbl", "int64", False, False),
    ("num", "float64", False, True),
    ("num", "int64", False, False),
    ("num0", "int64", False, True),
    ("vc", str, False, True),
    ("vc", "int64", False, False),
    ("vc", "category", False, True),
    ("txt", "string[python]", False, True),
    ("flag", bool, False, True),
    ("flag", "boolean", False, True),
    ("flag", "int64", False, False),
    ("ts", "datetime64[ns]", False, True),
    ("ts", "datetime64[ns, UTC]", False, True),  # time zones are not a kind
    ("tstz", "datetime64[ns, UTC]", False, True),
    ("tstz", "datetime64[ns]", False, True),
    ("ts", "date", False, False),
    ("day", "date", False, True),
    ("day", str, False, False),
    ("day", str, True, True),
    ("day", object, False, True),
    ("day", None, False, True),
]


def test_dtype_outcomes_by_logical_kind(warehouse: Warehouse) -> None:
    table = load_table(warehouse, [sa.Column(n, t) for n, t in TYPES], [])

    for column, dtype, coerce, accepted in DTYPE_CASES:
        schema = pa.DataFrameSchema({column: pa.Column(dtype, coerce=coerce, nullable=True)})
        outcomes = compiled_for(warehouse, schema, table).static
        if dtype is None:
            assert outcomes == ()
            continue
        (outcome,) = outcomes
        assert outcome.passed is accepted, (column, dtype, outcome.detail)
        assert outcome.name == f"{column}:dtype({str(schema.columns[column].dtype)!r})"
        assert outcome.column == column


def test_dtype_detail_names_the_warehouse_type(pg_warehouse: Warehouse) -> None:
    table = load_table(pg_warehouse, [sa.Column("amount", sa.Double)], [])
    schema = pa.DataFrameSchema({"amount": pa.Column("int64")})

    (outcome,) = compiled_for(pg_warehouse, schema, table).static

    assert outcome.name == "amount:dtype('int64')"
    assert outcome.passed is False
    assert outcome.detail == "warehouse type DOUBLE PRECISION is float; schema wants int64"


@pytest.fixture
def mariadb_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    yield from make_warehouse("mariadb", tmp_path)


def test_mariadb_boolean_is_tinyint_1(mariadb_warehouse: Warehouse) -> None:
    table = load_table(
        mariadb_warehouse, [sa.Column("flag", sa.Boolean), sa.Column("tiny", sa.SmallInteger)], []
    )
    schema = pa.DataFrameSchema({"flag": pa.Column(bool), "tiny": pa.Column("int16")})

    flag, tiny = compiled_for(mariadb_warehouse, schema, table).static

    assert (flag.passed, tiny.passed) == (True, True)
    assert flag.detail == "warehouse type TINYINT(1) is boolean; schema wants bool"


def test_missing_extra_optional_and_regex_columns(warehouse: Warehouse) -> None:
    table = load_table(
        warehouse,
        [sa.Column(n, sa.Integer) for n in ("a", "b", "c_1", "c_2")],
        [{"a": 1, "b": 1, "c_1": 0, "c_2": 5}],
    )
    schema = pa.DataFrameSchema(
        {
            "a": pa.Column(int),
            "zz": pa.Column(int, checks=Check.gt(0)),
            "opt": pa.Column(int, required=False),
            r"c_\d": pa.Column(checks=Check.gt(0), regex=True),
            "q_.*": pa.Column(regex=True),
        },
        strict=True,
    )

    compiled = compiled_for(warehouse, schema, table)

    statics = {s.name: (s.column, s.passed) for s in compiled.static}
    assert statics == {
        "a:dtype('int64')": ("a", True),
        "zz:column_in_dataframe": ("zz", False),
        "q_.*:column_in_dataframe": (None, False),
        "b:column_in_schema": ("b", False),
    }
    assert "it has: 'a', 'b', 'c_1', 'c_2'" in compiled.static[1].detail
    assert compiled.columns == ("a", "c_1", "c_2")
    assert failing(warehouse, table, compiled) == {
        "a:not_null": 0,
        "c_1:not_null": 0,
        "c_1:greater_than(0)": 1,
        "c_2:not_null": 0,
        "c_2:greater_than(0)": 0,
    }

    filtered = pa.DataFrameSchema(schema.columns, strict="filter")
    assert "b:column_in_schema" not in [
        s.name for s in compiled_for(warehouse, filtered, table).static
    ]


def test_schema_wide_dtype_applies_to_every_column() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("a", sa.Integer), sa.Column("b", sa.Text))

    compiled = compile_schema(
        pa.DataFrameSchema(dtype="int64"), table, dialect=sa.create_engine("sqlite://").dialect
    )

    assert [(s.name, s.passed) for s in compiled.static] == [
        ("a:dtype('int64')", True),
        ("b:dtype('int64')", False),
    ]


def test_names_are_stable_and_unique(duckdb_warehouse: Warehouse) -> None:
    table = load_table(
        duckdb_warehouse,
        [
            sa.Column("amount", sa.Double),
            sa.Column("status", sa.String),
            sa.Column("ts", sa.DateTime),
        ],
        [],
    )
    schema = pa.DataFrameSchema(
        {
            "amount": pa.Column(
                float,
                checks=[
                    Check.in_range(0, 99.5),
                    Check.in_range(0, 99.5, include_min=False),
                    Check.gt(0, name="positive"),
                    Check(lambda s: s > 0),
                    Check(lambda s: s < 100),
                    Check.gt(0, groupby="status"),
                ],
            ),
            "status": pa.Column(
                str,
                checks=[
                    Check.isin(["new", "paid"]),
                    Check.isin(("paid", "new")),
                    Check.unique_values_eq(["paid", "new"]),
                    Check.str_matches("^[^@]+@"),
                    Check.str_length(min_value=2),
                    Check.str_length(max_value=5),
                ],
                nullable=True,
            ),
            "ts": pa.Column(checks=Check.ge(datetime(2026, 1, 2, 3, 4, 5)), nullable=True),
        },
        checks=[Check(lambda df: df["amount"] >= 0, name="rows_positive")],
    )

    compiled = compiled_for(duckdb_warehouse, schema, table)

    assert compiled.rule_names() == [
        "amount:dtype('float64')",
        # pandera names the string dtype after pandas' own (pandas 2: 'str', 3: 'string[python]')
        f"status:dtype({str(schema.columns['status'].dtype)!r})",
        "amount:not_null",
        "amount:in_range(0, 99.5)",
        "amount:in_range(0, 99.5, include_min=False)",
        "amount:positive(0)",  # a renamed built-in still runs in SQL
        "status:isin(['new', 'paid'])",
        "status:isin(('paid', 'new'))",
        "status:str_matches('^[^@]+@')",
        "status:str_length(2, None)",
        "status:str_length(None, 5)",
        "ts:greater_than_or_equal_to('2026-01-02T03:04:05')",
        "status:unique_values_eq(['new', 'paid'])",  # a set, sorted
        "amount:<lambda>",
        "amount:<lambda>#2",
        "amount:greater_than(0)",  # groupby: pandera runs it
        "rows_positive",
    ]
    custom = {r.name: r.column for r in compiled.custom_rules}
    assert custom["rows_positive"] is None
    assert custom["amount:<lambda>"] == "amount"


def test_long_argument_lists_are_cut_but_stay_distinct() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("code", sa.Integer))
    schema = pa.DataFrameSchema(
        {"code": pa.Column(checks=[Check.isin(list(range(1000))), Check.isin([*range(999), 1000])])}
    )

    compiled = compile_schema(schema, table, dialect=sa.create_engine("sqlite://").dialect)
    first, second = (r.name for r in compiled.row_rules[1:])

    assert first.startswith("code:isin([0, 1, 2, 3, ")
    assert re.fullmatch(r"code:isin\(\[0, 1, .{80,100}\.\.\. #[0-9a-f]{8}\)", second)
    assert first[:100] == second[:100] and first != second


def test_datetime_bounds_from_yaml_bind_as_datetimes(warehouse: Warehouse, tmp_path: Path) -> None:
    table = load_table(
        warehouse,
        [sa.Column("ts", sa.DateTime)],
        [{"ts": datetime(2026, 1, 1)}, {"ts": datetime(2026, 2, 1)}, {"ts": None}],
    )
    (tmp_path / "s.yaml").write_text(
        "columns:\n  ts:\n    dtype: datetime64[ns]\n    nullable: true\n"
        "    greater_than_or_equal_to: '2026-01-15 00:00:00'\n",
        encoding="utf-8",
    )
    schema = load_schema("s.yaml", base_dir=tmp_path)

    assert failing(warehouse, table, compiled_for(warehouse, schema, table)) == {
        "ts:greater_than_or_equal_to('2026-01-15T00:00:00')": 1
    }


def test_registry_holds_every_builtin() -> None:
    assert set(BUILTINS) == {
        "equal_to",
        "not_equal_to",
        "greater_than",
        "greater_than_or_equal_to",
        "less_than",
        "less_than_or_equal_to",
        "in_range",
        "isin",
        "notin",
        "str_matches",
        "str_contains",
        "str_startswith",
        "str_endswith",
        "str_length",
        "unique_values_eq",
    }
