"""The ``lineage`` section of osemn.yaml: what to scan, how often, and where events go.

Kept apart from ``config.py`` so that module stays readable; ``config`` re-exports
these models and checks their cross-references (roots, sources).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

if TYPE_CHECKING:
    from osemn.config import Schedule

__all__ = ["LineageConfig", "OpenLineageConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenLineageConfig(_Model):
    """``lineage.openlineage``: where OpenLineage events go.

    ``transport`` is the ``transport:`` block of an ``openlineage.yml``, e.g.
    ``{type: http, url: http://marquez:5000, endpoint: api/v1/lineage}`` or
    ``{type: file, log_file_path: events.jsonl}``; without it the client is
    configured the standard way (``OPENLINEAGE_CONFIG``, ``openlineage.yml``,
    ``OPENLINEAGE_URL``). ``namespace`` is the namespace of osemn's jobs.
    """

    transport: dict[str, Any] | None = None
    namespace: str = "osemn"


class LineageConfig(_Model):
    """``lineage:``: the scan and its schedule.

    ``sources`` limits the scan to some warehouses (all by default); ``schemas``
    to some schemas (by default the default schema and those of the configured
    datasets). ``roots`` are datasets known to have no upstream (loaded from
    outside), so that they count as covered. ``query_history`` reads
    PostgreSQL's ``pg_stat_statements`` when the extension is there.
    """

    schedule: Annotated[Schedule, BeforeValidator(lambda v: _schedule(v))] = Field(
        default_factory=lambda: _schedule("every 1h")
    )
    sources: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    dbt_manifest: str | None = None
    query_history: bool = True
    history_limit: int = Field(default=5000, ge=1, le=100_000)
    openlineage: OpenLineageConfig | None = None


def _schedule(value: object) -> Schedule:
    # config imports this module, so Schedule is looked up when a value is validated;
    # config.py rebuilds LineageConfig once Schedule exists.
    from osemn.config import Schedule

    return Schedule.parse(value)
