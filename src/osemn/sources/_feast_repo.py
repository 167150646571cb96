"""Read a Feast repo: load its ``FeatureStore`` and describe its feature views as data.

Feast is imported here and in the other ``_feast_*`` modules only, so osemn
runs without the ``feast`` extra until a feature-store source is configured.
Every way a repo can fail to load becomes one ``ConfigError`` naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from osemn.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "BatchSourceInfo",
    "FeatureField",
    "FeatureViewInfo",
    "describe_views",
    "load_store",
    "merge_intervals",
    "one_line",
]

_YAML = "feature_store.yaml"


@dataclass(frozen=True, kw_only=True)
class FeatureField:
    """A feature or join key and its Feast type as Feast prints it (``Float64``)."""

    name: str
    feast_type: str


@dataclass(frozen=True, kw_only=True)
class BatchSourceInfo:
    """Where a view's rows come from.

    ``type`` is ``file`` (parquet ``FileSource``), ``postgres``
    (``PostgreSQLSource``) or the Feast class name of a source osemn cannot
    query. A file source has ``path`` (absolute, or a URL); a PostgreSQL source
    a ``table`` (``schema.table`` or ``table``) or a ``query``.
    """

    type: str
    timestamp_field: str
    created_timestamp_column: str | None = None
    path: str | None = None
    table: str | None = None
    query: str | None = None
    field_mapping: tuple[tuple[str, str], ...] | None = None
    """Feast's ``field_mapping``: (source column, field name) pairs, None without one."""

    def source_column(self, name: str) -> str:
        """The source's column for a join key, feature or timestamp named ``name``.

        Feast reads the source's columns under the names ``field_mapping`` gives
        them, so a view's field is the column mapped to it, or the column of its name.
        """
        for column, field_name in self.field_mapping or ():
            if field_name == name:
                return column
        return name


@dataclass(frozen=True, kw_only=True)
class FeatureViewInfo:
    """A feature view as the registry describes it; the dataset osemn checks.

    ``ttl`` is None when the view has none (Feast's ``ttl=0``): values never
    expire. ``materialization_intervals`` are (start, end) pairs in aware UTC,
    merged where they touch or overlap, oldest first.
    """

    name: str
    entities: tuple[str, ...]
    join_keys: tuple[FeatureField, ...]
    features: tuple[FeatureField, ...]
    batch_source: BatchSourceInfo
    ttl: timedelta | None
    online: bool
    materialization_intervals: tuple[tuple[datetime, datetime], ...]

    @property
    def servable(self) -> bool:
        """Whether the online store serves it: online, with features and entity keys.

        Only such a view can be probed or compared online with offline.
        """
        return self.online and bool(self.features) and bool(self.join_keys)

    @property
    def materialized_until(self) -> datetime | None:
        """The end of the last materialization: online values are as of this time."""
        if not self.materialization_intervals:
            return None
        return max(end for _, end in self.materialization_intervals)

    def to_json(self) -> dict[str, Any]:
        """The description as ``/api`` and ``osemn validate`` show it."""
        until = self.materialized_until
        return {
            "name": self.name,
            "entities": list(self.entities),
            "join_keys": {f.name: f.feast_type for f in self.join_keys},
            "features": {f.name: f.feast_type for f in self.features},
            "batch_source": {k: v for k, v in vars(self.batch_source).items() if v is not None},
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "online": self.online,
            "materialized_until": None if until is None else until.isoformat(),
        }


def load_store(repo: Path) -> FeatureStore:
    """Open the Feast repo at ``repo`` and read its registry once.

    Raises:
        ConfigError: the folder or its ``feature_store.yaml`` is missing, the YAML
            is invalid, or the registry cannot be read; it names the file and the fix.
    """
    try:
        from feast import FeatureStore
    except ImportError as exc:
        raise ConfigError(
            f"the feast package is not installed ({exc}). Install it with: "
            "pip install 'osemn[feast]'",
            path=str(repo),
        ) from None
    yaml_path = repo / _YAML
    if not repo.is_dir():
        raise ConfigError(
            "the Feast repo folder does not exist. Point `feast:` at the folder that "
            f"holds {_YAML} (relative to osemn.yaml's folder).",
            path=str(repo),
        )
    if not yaml_path.is_file():
        raise ConfigError(
            f"the Feast repo has no {_YAML}. Point `feast:` at the repo folder "
            "(the one `feast apply` runs in).",
            path=str(yaml_path),
        )
    try:
        store = FeatureStore(repo_path=str(repo))
    except Exception as exc:  # Feast raises its own, pydantic's, yaml's and OS errors here
        raise ConfigError(
            f"Feast cannot load the repo: {type(exc).__name__}: {one_line(exc)}. "
            f"Fix {_YAML} (`feast plan` in the repo shows the same error).",
            path=str(yaml_path),
        ) from None
    registry = store.config.registry
    local = Path(registry.path) if "://" not in registry.path else None
    if registry.registry_type == "file" and local is not None:
        local = local if local.is_absolute() else repo / local
        if not local.is_file():
            # Feast would create an empty registry here: a write, and no views to check.
            raise ConfigError(
                f"the registry {str(local)!r} does not exist. Run `feast apply` in the repo "
                f"first, or fix `registry:` in {_YAML}.",
                path=str(yaml_path),
            )
    try:
        _untyped(store).refresh_registry()
    except Exception as exc:
        raise ConfigError(
            f"Feast cannot read the registry {store.config.registry.path!r}: "
            f"{type(exc).__name__}: {one_line(exc)}. Run `feast apply` in the repo, or fix "
            f"`registry:` in {_YAML}.",
            path=str(yaml_path),
        ) from None
    return store


def describe_views(
    store: FeatureStore, *, source: str, refresh: bool = True
) -> tuple[FeatureViewInfo, ...]:
    """Every feature view of the registry, as data, sorted by name.

    Raises:
        SourceError: the registry cannot be read (it moved, its database is down).
    """
    try:
        if refresh:
            _untyped(store).refresh_registry()
        views = store.list_feature_views(allow_cache=True)
    except Exception as exc:
        raise SourceError(
            f"source {source!r}: reading the Feast registry failed: {type(exc).__name__}: "
            f"{one_line(exc)}. Check that the registry in the repo's {_YAML} is reachable.",
            source=source,
        ) from None
    repo = Path(store.repo_path)
    return tuple(sorted((_view(v, repo) for v in views), key=lambda v: v.name))


def _view(view: Any, repo: Path) -> FeatureViewInfo:
    ttl = view.ttl if view.ttl else None
    return FeatureViewInfo(
        name=view.name,
        entities=tuple(view.entities),
        join_keys=tuple(_field(f) for f in view.entity_columns),
        features=tuple(_field(f) for f in view.features),
        batch_source=_batch_source(view.batch_source, repo),
        ttl=ttl,
        online=bool(view.online),
        materialization_intervals=merge_intervals(view.materialization_intervals),
    )


def _field(field: Any) -> FeatureField:
    return FeatureField(name=field.name, feast_type=str(field.dtype))


def _batch_source(source: Any, repo: Path) -> BatchSourceInfo:
    from feast import FileSource
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
        PostgreSQLSource,
    )

    common: dict[str, Any] = {
        "timestamp_field": source.timestamp_field,
        "created_timestamp_column": source.created_timestamp_column or None,
        "field_mapping": tuple(sorted((source.field_mapping or {}).items())) or None,
    }
    if isinstance(source, FileSource):
        return BatchSourceInfo(type="file", path=_file_path(source.path, repo), **common)
    if isinstance(source, PostgreSQLSource):
        options = source._postgres_options  # Feast keeps table and query only there
        return BatchSourceInfo(
            type="postgres", table=options._table or None, query=options._query or None, **common
        )
    return BatchSourceInfo(type=type(source).__name__, **common)


def _file_path(path: str, repo: Path) -> str:
    """An absolute path or a URL; Feast resolves a relative path against the repo."""
    if "://" in path:
        return path
    resolved = Path(path) if os.path.isabs(path) else repo / path
    return str(resolved)


def merge_intervals(
    intervals: Any,
) -> tuple[tuple[datetime, datetime], ...]:
    """(start, end) pairs in aware UTC, merged where they touch or overlap, oldest first.

    Incremental materialization leaves one interval per run, end to end; merged
    they are one range, so a parity query has one condition, not hundreds.
    """
    pairs = sorted((_utc(s), _utc(e)) for s, e in intervals)
    merged: list[tuple[datetime, datetime]] = []
    for start, end in pairs:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _untyped(store: FeatureStore) -> Any:
    """``store`` for calls Feast left unannotated."""
    return store


# pydantic echoes the offending input, which may be a password or a whole block of them.
_INPUT_VALUE = re.compile(r"input_value=.*?, input_type=")


def one_line(exc: BaseException) -> str:
    """The error in one line, without the values it quotes (they may be secrets)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark  # the snippet YAML would quote may hold a password
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    text = _INPUT_VALUE.sub("input_value=<hidden>, input_type=", " ".join(str(exc).split()))
    return text[:500]
