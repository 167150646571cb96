"""A Grafana dashboard as data: rows of panels of PromQL queries.

The panel definitions build these; ``osemn.rules.dashboards`` renders them with
the SDK. Kept free of the SDK so that importing a spec costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "BAD_WHEN_ANY",
    "BUDGET",
    "NEUTRAL",
    "RATIO",
    "Dashboard",
    "Panel",
    "Query",
    "Row",
    "Steps",
    "Style",
    "bars",
    "series",
    "stat",
    "table",
]

_BY = re.compile(r"\bby \(([^)]*)\)")

Steps = tuple[tuple[float | None, str], ...]
NEUTRAL: Steps = ((None, "blue"),)
BAD_WHEN_ANY: Steps = ((None, "green"), (1, "red"))
BUDGET: Steps = ((None, "red"), (0, "orange"), (0.25, "green"))
RATIO: Steps = ((None, "red"), (0.9, "orange"), (0.99, "green"))


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True, kw_only=True)
class Panel:
    """One panel; stat, bar gauge and table panels query instants, time series ranges."""

    kind: Literal["stat", "timeseries", "bargauge", "table"]
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    width: int = 8
    height: int = 8
    steps: Steps = NEUTRAL
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, kw_only=True)
class Dashboard:
    title: str
    description: str
    variables: tuple[tuple[str, str, str], ...]  # name, label, label_values(...) query
    rows: tuple[Row, ...]


class Style(TypedDict, total=False):
    unit: str
    width: int
    height: int
    steps: Steps
    min: float
    max: float


def _query(expr: str | Query) -> Query:
    """A query whose legend names the labels of its first ``by (...)``, ``le`` left out."""
    if isinstance(expr, Query):
        return expr
    match = _BY.search(expr)
    labels = [s.strip() for s in match.group(1).split(",")] if match else []
    return Query(expr, " ".join(f"{{{{{label}}}}}" for label in labels if label != "le"))


def stat(title: str, description: str, expr: str, **style: Unpack[Style]) -> Panel:
    """A single number; by default a count on the "Now" strip, green at 0, red from 1."""
    merged: Style = {"steps": BAD_WHEN_ANY, "width": 4, "height": 4}
    merged.update(style)
    q = (Query(expr, ""),)
    return Panel(kind="stat", title=title, description=description, queries=q, **merged)


def series(title: str, description: str, *exprs: str | Query, **style: Unpack[Style]) -> Panel:
    q = tuple(map(_query, exprs))
    return Panel(kind="timeseries", title=title, description=description, queries=q, **style)


def bars(title: str, description: str, expr: str, **style: Unpack[Style]) -> Panel:
    q = (_query(expr),)
    return Panel(kind="bargauge", title=title, description=description, queries=q, **style)


def table(title: str, description: str, expr: str, **style: Unpack[Style]) -> Panel:
    q = (_query(expr),)
    return Panel(kind="table", title=title, description=description, queries=q, **style)
