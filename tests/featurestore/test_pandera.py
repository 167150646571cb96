"""A pandera schema given for a feature view runs on its batch source through the dataset runner."""

from __future__ import annotations

from pathlib import Path

import pandera.pandas as pa

from osemn._feast_config import FeastSourceConfig
from osemn.agent.runner import DatasetRunner
from osemn.agent.state import StateStore
from osemn.checks.schema import load_schema
from osemn.results import Status
from osemn.sources.featurestore import FeatureStoreSource
from tests.featurestore.helpers import FrozenClock, file_repo


def test_a_views_pandera_schema_runs_fused_on_the_parquet_file(tmp_path: Path) -> None:
    file_repo(tmp_path / "repo")
    schema = pa.DataFrameSchema(
        {
            "conv_rate": pa.Column(float, pa.Check.in_range(0, 0.6), nullable=True),
            "trips": pa.Column(int, pa.Check.ge(0)),
        }
    )
    (tmp_path / "drivers.yaml").write_text(schema.to_yaml() or "")
    config = FeastSourceConfig.model_validate(
        {
            "feast": "repo",
            "feature_views": {"driver_stats": {"schema": "drivers.yaml", "mask": ["conv_rate"]}},
        }
    )
    source = FeatureStoreSource("features", config, base_dir=tmp_path)
    (view,) = source.views()
    dataset = source.dataset_config(view)
    assert dataset is not None
    assert (dataset.table, dataset.timestamp, dataset.freshness) == (
        "driver_stats",
        "event_timestamp",
        None,
    )
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    state.open()
    runner = DatasetRunner(
        name=view.name,
        config=dataset,
        warehouse=source.offline(view).warehouse,
        state=state,
        schema=load_schema(dataset.schema_ref or "", base_dir=tmp_path),
        clock=FrozenClock(),
        mask_key=b"k" * 32,
    )
    results = {r.check: r for r in runner.run()}
    in_range = results["conv_rate:in_range(0, 0.6)"]
    assert (in_range.status, in_range.rows, in_range.failed_rows) == (Status.FAIL, 4, 1)
    (sample,) = in_range.failures  # the view's mask applies to its pandera samples too
    assert str(sample["conv_rate"]).startswith("hmac:") and "0.75" not in str(sample)
    assert results["trips:greater_than_or_equal_to(0)"].status is Status.PASS
    assert results["validity"].measurement("validity_ratio") == 0.75
    state.close()
    source.close()


def test_no_dataset_without_a_schema(tmp_path: Path) -> None:
    file_repo(tmp_path / "repo")
    source = FeatureStoreSource("features", FeastSourceConfig(feast=str(tmp_path / "repo")))
    (view,) = source.views()
    assert source.dataset_config(view) is None
    source.close()
