"""Differential test: SQL rules count exactly the failures pandera itself reports.

hypothesis draws small frames (ints, floats, strings, with nulls) and schemas
that use every built-in check with random arguments, ``ignore_na``,
``nullable`` and ``unique``; the frame is loaded into DuckDB and PostgreSQL,
every compiled rule is counted in SQL, and the counts are compared with
``schema.validate(frame, lazy=True).failure_cases`` per check; the fused scan
(grouped by costly predicates on PostgreSQL, ``count_if`` on DuckDB) must give
the same counts and the number of rows pandera lists under any row-level check.

Nulls are ``None``, never float NaN, and no value is infinite: pandas reads NaN
as a null but PostgreSQL and DuckDB store it as a number, so a NaN row would
test that ambiguity (covered in ``test_compile``), not the compiler.
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.errors import SchemaErrors

from osemn.checks.compile import compile_schema
from osemn.checks.fused import Aggregate, Predicate, fused_scan
from tests.checks.test_compile import failing
from tests.conftest import Warehouse

Check = pa.Check

SQL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "i": sa.BigInteger(),
    "f": sa.Double(),
    "s": sa.String(16),
}
# float64 for the int column keeps pandas' NaN null semantics (Int64's NA differs).
PANDAS_DTYPES = {"i": "float64", "f": "float64", "s": "str"}

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "i": st.integers(-4, 4),
    "f": st.one_of(
        st.sampled_from([-2.5, 0.0, 0.5, 1.0, 3.25]),
        st.floats(-10, 10, allow_nan=False, allow_infinity=False),
    ).map(lambda x: x + 0.0),  # -0.0 -> 0.0: engines and pandas group signed zeros alike
    "s": st.text(alphabet="aAbB .%_é日", max_size=4),
}

# Regexes whose meaning is the same in Python's re, PostgreSQL's ARE and DuckDB's RE2;
# no capture groups, on which pandas' str.contains warns (an error under pytest).
PATTERNS = [
    "a", "^a", "a$", "[ab]", "A", "b.", ".", "é", "日", r"\.", "a|b", "(?:a)(?:b)?",
    "%", "_", "^$", " ", "a+b*", "[^a]", "a{2}", r"\s",
]  # fmt: skip

COMMON = [
    "equal_to", "not_equal_to", "greater_than", "greater_than_or_equal_to", "less_than",
    "less_than_or_equal_to", "in_range", "isin", "notin", "unique_values_eq",
]  # fmt: skip
STRING_ONLY = ["str_matches", "str_contains", "str_startswith", "str_endswith", "str_length"]


@st.composite
def checks(draw: st.DrawFn, column: str) -> Check:
    """One built-in check on ``column`` with random arguments and ``ignore_na``."""
    value = VALUES[column]
    name = draw(st.sampled_from(COMMON + (STRING_ONLY if column == "s" else [])))
    kw: dict[str, Any] = {"ignore_na": draw(st.booleans())}
    if name in {"equal_to", "not_equal_to"}:
        return getattr(Check, name)(draw(value), **kw)
    if name.startswith(("greater", "less")):
        return getattr(Check, name)(draw(value), **kw)
    if name == "in_range":
        low, high = sorted([draw(value), draw(value)])
        ends = (True, True) if low == high else (draw(st.booleans()), draw(st.booleans()))
        return Check.in_range(low, high, include_min=ends[0], include_max=ends[1], **kw)
    if name in {"isin", "notin", "unique_values_eq"}:
        return getattr(Check, name)(draw(st.lists(value, max_size=4)), **kw)
    if name in {"str_matches", "str_contains"}:
        return getattr(Check, name)(draw(st.sampled_from(PATTERNS)), **kw)
    if name in {"str_startswith", "str_endswith"}:
        return getattr(Check, name)(draw(VALUES["s"]), **kw)
    low, high = sorted([draw(st.integers(0, 4)), draw(st.integers(0, 4))])
    bounds = draw(
        st.sampled_from(
            [
                {"exact_value": low},
                {"min_value": low},
                {"max_value": high},
                {"min_value": low, "max_value": high},
            ]
        )
    )
    return Check.str_length(**bounds, **kw)


REPORTS = st.sampled_from(["all", "exclude_first", "exclude_last"])


@st.composite
def cases(draw: st.DrawFn) -> tuple[pd.DataFrame, pa.DataFrameSchema]:
    """A frame of 0-8 rows and a schema using random built-in checks on it."""
    rows = draw(
        st.lists(
            st.fixed_dictionaries({c: st.one_of(st.none(), v) for c, v in VALUES.items()}),
            max_size=8,
        )
    )
    frame = pd.DataFrame(
        {c: pd.Series([r[c] for r in rows], dtype=PANDAS_DTYPES[c]) for c in SQL_TYPES}
    )
    columns = {
        c: pa.Column(
            checks=draw(st.lists(checks(c), max_size=4)),
            nullable=draw(st.booleans()),
            unique=draw(st.booleans()),
            report_duplicates=draw(REPORTS),
        )
        for c in SQL_TYPES
    }
    unique = draw(
        st.one_of(
            st.none(),
            st.lists(st.sampled_from(list(SQL_TYPES)), min_size=1, max_size=3, unique=True),
        )
    )
    return frame, pa.DataFrameSchema(columns, unique=unique, report_duplicates=draw(REPORTS))


def pandera_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        return exc.failure_cases
    return pd.DataFrame(columns=["column", "check", "check_number", "index"])


def expected_counts(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, compiled: Any
) -> dict[str, int]:
    """pandera's failure cases per compiled rule name (failed aggregate checks count 1)."""
    cases = pandera_failures(schema, frame)
    expected: dict[str, int] = {}
    for column, spec in schema.columns.items():
        of_column = cases[cases["column"] == column]
        rows = iter(
            r for r in compiled.row_rules if r.column == column and r.name != f"{column}:not_null"
        )
        aggregates = iter(r for r in compiled.aggregate_rules if r.column == column)
        if not spec.nullable:
            expected[f"{column}:not_null"] = int((of_column["check"] == "not_nullable").sum())
        if spec.unique:
            expected[f"{column}:unique"] = int((of_column["check"] == "field_uniqueness").sum())
        for number, check in enumerate(spec.checks):
            rule = next(aggregates) if check.name == "unique_values_eq" else next(rows)
            expected[rule.name] = int((of_column["check_number"] == number).sum())
    return expected


def rows_failing_any(schema: pa.DataFrameSchema, frame: pd.DataFrame, compiled: Any) -> int:
    """Rows pandera lists under at least one row-level check (nulls included, uniqueness not)."""
    cases = pandera_failures(schema, frame)
    failing_rows: set[Any] = set()
    for column, spec in schema.columns.items():
        of_column = cases[cases["column"] == column]
        numbers = [i for i, check in enumerate(spec.checks) if check.name != "unique_values_eq"]
        row_level = (of_column["check"] == "not_nullable") | of_column["check_number"].isin(numbers)
        failing_rows |= set(of_column.loc[row_level, "index"])
    return len(failing_rows)


def scan_counts(wh: Warehouse, table: sa.Table, compiled: Any) -> dict[str, int]:
    """Every row rule's count and the rows failing any, from the fused scan itself."""
    with wh.engine.connect() as conn:
        outcome = fused_scan(
            lambda stmt: conn.execute(stmt).all(),
            table,
            [Aggregate(key="rows", expr=sa.func.count(), combine="count")],
            dialect=wh.engine.dialect,
            predicates=[Predicate(key=r.name, fails=r.fails) for r in compiled.row_rules],
            any_key="any",
        )
    assert outcome.errors == {}
    return {k: int(v) for k, v in outcome.values.items()}


def check_schema_unique(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, compiled: Any, counts: dict[str, int]
) -> None:
    """Schema-level ``unique``: pandas' ``duplicated`` with NaN keys equal, as pandera calls it."""
    if not schema.unique:
        return
    keep = {"all": False, "exclude_first": "first", "exclude_last": "last"}[
        schema.report_duplicates
    ]
    duplicated = frame.duplicated(subset=schema.unique, keep=keep)
    rule = compiled.unique_rules[-1]  # named like a column's own when it is one column
    assert (rule.columns, rule.nulls_distinct) == (tuple(schema.unique), False)
    assert counts[rule.name] == int(duplicated.sum())
    # pandera lists a duplicated row unless every key cell of it is null.
    cases = pandera_failures(schema, frame)
    listed = set(cases.loc[cases["check"] == "multiple_fields_uniqueness", "index"])
    shown = duplicated & frame[schema.unique].notna().any(axis=1)
    assert listed == set(frame.index[shown])


def run_case(wh: Warehouse, frame: pd.DataFrame, schema: pa.DataFrameSchema) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "t_" + uuid.uuid4().hex[:10],
        metadata,
        *(sa.Column(c, t) for c, t in SQL_TYPES.items()),
        schema=wh.schema,
    )
    metadata.create_all(wh.engine)
    try:
        records = [
            {c: None if pd.isna(v) else v for c, v in row.items()}
            for row in frame.astype(object).to_dict("records")
        ]
        if records:
            with wh.engine.begin() as conn:
                conn.execute(table.insert(), records)
        compiled = compile_schema(schema, table, dialect=wh.engine.dialect)
        assert compiled.custom_rules == ()
        counts = failing(wh, table, compiled)
        expected = expected_counts(schema, frame, compiled)
        assert {k: v for k, v in counts.items() if k in expected} == expected
        check_schema_unique(schema, frame, compiled, counts)
        scanned = scan_counts(wh, table, compiled)
        assert scanned == {
            "rows": len(frame),
            **{r.name: counts[r.name] for r in compiled.row_rules},
            **({"any": rows_failing_any(schema, frame, compiled)} if compiled.row_rules else {}),
        }
    finally:
        metadata.drop_all(wh.engine)


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the repository; failures print their example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("fixture", ["duckdb_warehouse", "pg_warehouse"])
def test_sql_counts_equal_pandera_counts(fixture: str, request: pytest.FixtureRequest) -> None:
    wh: Warehouse = request.getfixturevalue(fixture)

    @SETTINGS
    @given(case=cases())
    def differential(case: tuple[pd.DataFrame, pa.DataFrameSchema]) -> None:
        run_case(wh, *case)

    differential()
