"""The options of a feature-store source: ``sources: {features: {feast: ./feature_repo}}``.

Only the repo path is required: every feature view of the repo's registry is
checked without further config, with thresholds taken from the view itself
(its TTL). The other keys tune probes, parity and single views.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from osemn._units import parse_duration, parse_ratio

__all__ = [
    "PROBE_CHECK",
    "FeastSourceConfig",
    "FeatureViewOptions",
    "ParityConfig",
    "ProbeConfig",
]

# The check name of an online-store probe: its results are the availability SLI's events.
PROBE_CHECK = "online_store:available"

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Ratio = Annotated[float, BeforeValidator(parse_ratio)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeConfig(_Model):
    """Online-store probes: ``get_online_features`` for ``sample`` known entity keys.

    A probe that has no answer after ``timeout`` counts as unavailable; the call
    cannot be cancelled, so it is left to finish in the background.
    """

    sample: int = Field(default=5, ge=1, le=1000)
    interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _positive(self) -> ProbeConfig:
        if self.interval <= timedelta(0) or self.timeout <= timedelta(0):
            raise ValueError("probe interval and timeout must be positive, e.g. 30s and 2s")
        return self


class ParityConfig(_Model):
    """Online/offline parity: ``sample`` entities, and the mismatch share a feature may have."""

    sample: int = Field(default=100, ge=1, le=10_000)
    tolerance: Ratio = 0.0


class FeatureViewOptions(_Model):
    """``feature_views: {driver_stats: {...}}``: thresholds of one view (all optional).

    ``freshness`` and ``materialization`` default to the view's TTL: a batch
    source or an online store older than the TTL serves nothing at all.
    """

    freshness: Duration | None = None
    materialization: Duration | None = None
    min_completeness: Ratio = 0.0
    parity_tolerance: Ratio | None = None
    schema_: str | None = Field(default=None, alias="schema")
    mask: tuple[str, ...] = ()
    """Join keys and features whose values parity failure samples show as keyed hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FeastSourceConfig(_Model):
    """A Feast repo folder (with ``feature_store.yaml``) and how to check its views.

    ``interval`` schedules the offline checks, materialization freshness and
    parity; probes have their own ``probe.interval``. ``max_concurrency`` and
    ``statement_timeout`` bound the statements sent to the batch sources.
    """

    feast: str
    interval: Duration = timedelta(minutes=5)
    max_concurrency: int = Field(default=2, ge=1, le=64)
    statement_timeout: Duration = timedelta(seconds=60)
    probe: ProbeConfig = ProbeConfig()
    parity: ParityConfig = ParityConfig()
    feature_views: dict[str, FeatureViewOptions] = {}

    def repo_path(self, base_dir: Path) -> Path:
        """The repo folder: ``feast`` relative to the config file's folder."""
        return (base_dir / Path(self.feast).expanduser()).resolve()

    def view(self, name: str) -> FeatureViewOptions:
        """The options of one view (the defaults when it has none)."""
        return self.feature_views.get(name, _DEFAULT_VIEW)


_DEFAULT_VIEW = FeatureViewOptions()
