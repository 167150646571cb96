"""Loading pandera schemas from YAML files and ``module:Class`` references; every failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pandera.pandas as pa
import pytest

from osemn.checks.schema import load_schema
from osemn.errors import ConfigError, SchemaLoadError

DATA = Path(__file__).parent / "data"


def _write(tmp_path: Path, text: str, name: str = "schema.yaml") -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


def test_yaml_schema_loads_relative_to_base_dir() -> None:
    schema = load_schema("orders.yaml", base_dir=DATA)

    assert list(schema.columns) == ["id", "amount", "status", "email"]
    assert schema.columns["id"].unique
    assert schema.columns["amount"].nullable
    (in_range,) = schema.columns["amount"].checks
    assert in_range.name == "in_range"
    assert in_range.statistics == {
        "min_value": 0,
        "max_value": 99.5,
        "include_min": True,
        "include_max": False,
    }
    (matches,) = schema.columns["email"].checks
    assert (matches.name, matches.statistics, matches.ignore_na) == (
        "str_matches",
        {"pattern": "^[^@]+@"},
        False,
    )
    assert schema.strict is True
    assert schema.unique == ["id", "status"]
    assert schema.report_duplicates == "exclude_first"


def test_absolute_yaml_path_ignores_base_dir(tmp_path: Path) -> None:
    schema = load_schema(str(DATA / "orders.yaml"), base_dir=tmp_path)
    assert "status" in schema.columns


def test_dataframe_model_loads_through_to_schema() -> None:
    schema = load_schema("osemn_test_models:OrdersModel", base_dir=DATA)

    assert list(schema.columns) == ["id", "amount", "status"]
    assert schema.strict is True
    assert [c.name for c in schema.columns["status"].checks] == ["isin"]


def test_nested_model_and_schema_object_load() -> None:
    nested = load_schema("osemn_test_models:Nested.Model", base_dir=DATA)
    assert [c.name for c in nested.columns["code"].checks] == ["str_length"]

    plain = load_schema("osemn_test_models:orders_schema", base_dir=DATA)
    assert list(plain.columns) == ["id"]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError) as info:
        load_schema("schemas/nope.yaml", base_dir=tmp_path)

    err = info.value
    assert isinstance(err, ConfigError)
    assert err.path == str(tmp_path / "schemas" / "nope.yaml")
    assert "not found" in str(err)
    assert "relative to the config file's folder" in str(err)


def test_unreadable_path_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "adir.yaml").mkdir()
    with pytest.raises(SchemaLoadError, match="cannot read the schema file") as info:
        load_schema("adir.yaml", base_dir=tmp_path)
    assert info.value.path == str(tmp_path / "adir.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    name = _write(tmp_path, "columns:\n  id:\n    dtype: int64\n  amount: [\n")

    with pytest.raises(SchemaLoadError, match="not valid YAML") as info:
        load_schema(name, base_dir=tmp_path)

    assert info.value.path == str(tmp_path / name)
    assert info.value.line == 5
    assert str(info.value).startswith(f"{tmp_path / name}:5: ")


def test_misspelt_flat_check_is_refused_with_line_and_key(tmp_path: Path) -> None:
    # pandera would silently drop this check; osemn refuses to run without it.
    name = _write(tmp_path, "columns:\n  amount:\n    dtype: float64\n    greater_thn: 0\n")

    with pytest.raises(SchemaLoadError) as info:
        load_schema(name, base_dir=tmp_path)

    err = info.value
    assert (err.line, err.key) == (4, "greater_thn")
    assert "'greater_thn' in column 'amount' is neither a column option nor a pandera check" in (
        str(err)
    )
    assert "nullable" in str(err)  # lists what is valid


def test_misspelt_column_option_in_list_form_is_refused(tmp_path: Path) -> None:
    name = _write(tmp_path, "columns:\n- name: amount\n  dtype: float64\n  nulable: true\n")

    with pytest.raises(SchemaLoadError, match="'nulable' in column 'amount'") as info:
        load_schema(name, base_dir=tmp_path)
    assert info.value.line == 4


def test_misspelt_schema_option_is_refused(tmp_path: Path) -> None:
    name = _write(tmp_path, "colums:\n  amount:\n    dtype: float64\n")

    with pytest.raises(SchemaLoadError, match="'colums' is not a schema option") as info:
        load_schema(name, base_dir=tmp_path)
    assert (info.value.line, info.value.key) == (1, "colums")


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("columns:\n  a:\n    dtype: int65\n", "int65"),
        ("columns:\n  a:\n    in_range: {min_value: 5, max_value: 1}\n", "empty interval"),
        ("columns:\n  a:\n    checks:\n      greater_thn: 0\n", "greater_thn"),
    ],
    ids=["not-a-mapping", "unknown-dtype", "empty-interval", "unknown-check-in-checks"],
)
def test_pandera_rejection_is_a_load_error(tmp_path: Path, text: str, cause: str) -> None:
    name = _write(tmp_path, text)

    with pytest.raises(SchemaLoadError, match="pandera rejected the schema") as info:
        load_schema(name, base_dir=tmp_path)

    assert cause in str(info.value)
    assert info.value.path == str(tmp_path / name)
    assert isinstance(info.value.__cause__, Exception)


def test_module_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match="is not importable") as info:
        load_schema("osemn_no_such_module:Model", base_dir=tmp_path)

    assert "'osemn_no_such_module:Model'" in str(info.value)
    assert "Install the package" in str(info.value)


def test_module_that_raises_while_importing() -> None:
    with pytest.raises(
        SchemaLoadError, match="importing module 'osemn_test_broken' failed"
    ) as info:
        load_schema("osemn_test_broken:Model", base_dir=DATA)
    assert "boom while importing" in str(info.value)


def test_missing_attribute_lists_what_the_module_has() -> None:
    with pytest.raises(SchemaLoadError, match="has no attribute 'Nope'") as info:
        load_schema("osemn_test_models:Nope", base_dir=DATA)
    assert "OrdersModel" in str(info.value)


@pytest.mark.parametrize("attr", ["NotAModel", "answer"])
def test_attribute_that_is_not_a_model(attr: str) -> None:
    with pytest.raises(SchemaLoadError, match="not a pandera DataFrameModel"):
        load_schema(f"osemn_test_models:{attr}", base_dir=DATA)


def test_model_pandera_rejects() -> None:
    with pytest.raises(SchemaLoadError, match="pandera rejected the model") as info:
        load_schema("osemn_test_models:BadModel", base_dir=DATA)
    assert "no_such_field" in str(info.value)


def test_base_dir_is_off_sys_path_afterwards() -> None:
    load_schema("osemn_test_models:OrdersModel", base_dir=DATA)
    assert str(DATA.resolve()) not in sys.path


def test_loaded_schema_is_a_pandas_dataframe_schema() -> None:
    assert isinstance(load_schema("orders.yaml", base_dir=DATA), pa.DataFrameSchema)
