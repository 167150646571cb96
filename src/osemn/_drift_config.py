"""The ``drift`` block of a dataset: columns, reference and current windows, methods.

Kept apart from ``config.py`` so that module stays readable; ``config`` re-exports
these models.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from osemn._units import parse_duration, parse_ratio

__all__ = [
    "DRIFT_SHARE",
    "CurrentWindow",
    "DriftConfig",
    "ReferenceWindow",
    "SeasonalReference",
    "drift_name",
]

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Ratio = Annotated[float, BeforeValidator(parse_ratio)]
DriftMethod = Literal["psi", "jensen_shannon", "hellinger", "wasserstein", "chi2", "ks"]


DRIFT_SHARE = "drift_share"  # the dataset-level drift result's check name


def drift_name(column: str) -> str:
    """The stable check name of a column's drift, e.g. ``amount:drift``."""
    return f"{column}:drift"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SeasonalReference(_Model):
    """The same time of ``period`` over the last ``cycles`` periods (e.g. hour of week)."""

    period: Duration
    cycles: int = Field(ge=1, le=52)


class ReferenceWindow(_Model):
    """Where "normal" comes from: a rolling window, a fixed range, or a seasonal one.

    A rolling or seasonal reference ends at ``now - offset`` floored to
    ``refresh``, so its stored profile is reused until that boundary passes.
    """

    window: Duration | None = None
    offset: Duration = timedelta(0)
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    seasonal: SeasonalReference | None = None
    refresh: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _one_kind(self) -> ReferenceWindow:
        kinds = [
            self.window is not None,
            self.from_ is not None or self.to is not None,
            self.seasonal is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one of {window: 7d, offset: 1d}, {from: 2026-01-01, to: 2026-02-01} "
                "or {seasonal: {period: 1w, cycles: 4}}"
            )
        if (self.from_ is None) != (self.to is None):
            raise ValueError("a fixed reference needs both `from` and `to`")
        if self.from_ is not None and self.to is not None and self.from_ >= self.to:
            raise ValueError(f"`from` {self.from_} is not before `to` {self.to}")
        if self.refresh <= timedelta(0):
            raise ValueError("refresh must be positive, e.g. 1h")
        return self

    @property
    def fixed(self) -> tuple[datetime, datetime] | None:
        if self.from_ is None or self.to is None:
            return None
        return _aware(self.from_), _aware(self.to)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CurrentWindow(_Model):
    """The window compared with the reference: the last ``window`` before now."""

    window: Duration = timedelta(hours=1)


class DriftConfig(_Model):
    """``drift:`` of a dataset. Methods and thresholds may be set per column."""

    columns: tuple[str, ...] = Field(min_length=1)
    reference: ReferenceWindow
    current: CurrentWindow = CurrentWindow()
    methods: dict[str, DriftMethod] = {}
    thresholds: dict[str, float] = {}
    bins: int = Field(default=20, ge=2, le=200)
    top_k: int = Field(default=20, ge=1, le=1000)
    min_rows: int = Field(default=1000, ge=1)
    fdr: Ratio = 0.05
    ks_sample: int = Field(default=0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _known_columns(self) -> DriftConfig:
        for key, what in ((self.methods, "methods"), (self.thresholds, "thresholds")):
            unknown = sorted(set(key) - set(self.columns))
            if unknown:
                raise ValueError(
                    f"{what} names {', '.join(map(repr, unknown))}, not in columns "
                    f"{list(self.columns)}; add them to columns or remove them"
                )
        return self
