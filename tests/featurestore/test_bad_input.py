"""Bad input: repos that do not load, sources that vanish, options that make no sense."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from osemn._feast_config import FeastSourceConfig
from osemn.checks.featurestore import FeatureStoreChecks
from osemn.errors import ConfigError
from osemn.results import Status
from osemn.sources.featurestore import FeatureStoreSource
from tests.featurestore.helpers import FrozenClock, file_repo, project_name, write_yaml


def load(path: Path) -> FeatureStoreSource:
    return FeatureStoreSource("features", FeastSourceConfig(feast=str(path)))


def test_a_missing_repo_folder_names_it_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "nowhere")
    assert err.value.path == str(tmp_path / "nowhere")
    assert "does not exist" in str(err.value) and "`feast:`" in str(err.value)


def test_a_folder_without_feature_store_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert err.value.path == str(tmp_path / "feature_store.yaml")
    assert "no feature_store.yaml" in str(err.value)


def test_an_invalid_feature_store_yaml_names_the_file_and_feasts_error(tmp_path: Path) -> None:
    write_yaml(
        tmp_path, project=project_name(), online={"type": "sqlite"}, offline={"type": "file"}
    )
    text = (tmp_path / "feature_store.yaml").read_text()
    (tmp_path / "feature_store.yaml").write_text(text.replace("provider: local", "provider: 42"))
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'feature_store.yaml'}: Feast cannot load the repo")
    assert "provider" in message and "feast plan" in message


def test_an_unreadable_registry_says_to_run_feast_apply(tmp_path: Path) -> None:
    write_yaml(
        tmp_path, project=project_name(), online={"type": "sqlite"}, offline={"type": "file"}
    )
    (tmp_path / "registry.db").write_bytes(b"not a registry")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert err.value.path == str(tmp_path / "feature_store.yaml")
    assert "cannot read the registry" in str(err.value) and "feast apply" in str(err.value)


def test_a_missing_batch_file_errors_its_checks_and_keeps_the_others(tmp_path: Path) -> None:
    file_repo(tmp_path / "repo")
    (tmp_path / "repo" / "data" / "drivers.parquet").unlink()
    results = FeatureStoreChecks(load(tmp_path / "repo"), clock=FrozenClock()).run()
    by_status: dict[Status, list[str]] = {}
    for r in results:
        by_status.setdefault(r.status, []).append(r.check)
    assert by_status[Status.PASS] == ["materialization:freshness(max_age=1d)"]
    assert sorted(by_status[Status.ERROR]) == sorted(
        [
            "event_timestamp:freshness(max_age=1d)",
            *(f"{f}:completeness(min=0)" for f in ("conv_rate", "trips", "city")),
            *(f"{f}:online_parity(tolerance=0)" for f in ("conv_rate", "trips", "city")),
        ]
    )
    error = next(r.error for r in results if r.status is Status.ERROR)
    assert "drivers.parquet" in (error or "")


def test_a_column_the_view_declares_but_the_file_lacks(tmp_path: Path) -> None:
    file_repo(tmp_path / "repo")
    path = tmp_path / "repo" / "data" / "drivers.parquet"
    pd.read_parquet(path).drop(columns=["city"]).to_parquet(path)
    results = FeatureStoreChecks(load(tmp_path / "repo"), clock=FrozenClock()).run()
    errors = {r.error for r in results if r.status is Status.ERROR}
    (error,) = errors
    assert f"column 'city' does not exist in table {str(path)!r}" in (error or "")


@pytest.mark.parametrize(
    ("options", "wrong"),
    [
        ({"probe": {"timeout": "0s"}}, "must be positive"),
        ({"probe": {"interval": "soon"}}, "not a duration"),
        ({"parity": {"tolerance": "150%"}}, "tolerance"),
        ({"feature_views": {"v": {"max_age": "1h"}}}, "max_age"),
    ],
)
def test_options_are_validated(options: dict[str, object], wrong: str) -> None:
    with pytest.raises(ValidationError) as err:
        FeastSourceConfig.model_validate({"feast": "./repo", **options})
    assert wrong in str(err.value)


def test_a_repo_never_applied_is_refused_not_given_an_empty_registry(tmp_path: Path) -> None:
    write_yaml(
        tmp_path, project=project_name(), online={"type": "sqlite"}, offline={"type": "file"}
    )
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert "registry" in str(err.value) and "does not exist" in str(err.value)
    assert "`feast apply`" in str(err.value)
    assert not (tmp_path / "registry.db").exists()


def test_a_rejected_feature_store_yaml_never_shows_a_password(tmp_path: Path) -> None:
    offline = {"type": "postgres", "host": "h", "database": "d", "user": "u"}
    write_yaml(
        tmp_path,
        project=project_name(),
        online={"type": "sqlite"},
        offline={**offline, "password": ["hunter2"]},
    )
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert "password" in str(err.value) and "hunter2" not in str(err.value)


def test_a_yaml_syntax_error_gives_the_line_not_the_text(tmp_path: Path) -> None:
    offline = {"type": "postgres", "host": "h", "database": "d", "user": "u"}
    write_yaml(tmp_path, project=project_name(), online={"type": "sqlite"}, offline=offline)
    path = tmp_path / "feature_store.yaml"
    path.write_text(path.read_text().replace("user: u", "user: u\n  password: [hunter2"))
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert re.search(r"ParserError: line \d+, column \d+: expected", str(err.value))
    assert "hunter2" not in str(err.value)


def test_an_expired_online_value_agrees_when_hidden_or_equal() -> None:
    """Past the TTL a store may hide the value or keep serving it; only a different value
    is skew."""
    from osemn.checks._featurestore_parity import _agrees

    assert _agrees(3, None, "expired", expired=True)
    assert _agrees(3, None, "not_found", expired=True)
    assert _agrees(3, 3, "present", expired=True)
    assert not _agrees(3, 4, "present", expired=True)
    assert not _agrees(3, None, "not_found", expired=False)
