"""dbt's ``manifest.json``: models, seeds, snapshots and sources with their ``depends_on``.

dbt knows the lineage of everything it builds, including tables that no view
definition shows; the manifest (``target/manifest.json`` after ``dbt compile``
or ``dbt run``) is read as data, dbt itself is not needed.
See: https://docs.getdbt.com/reference/artifacts/manifest-json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osemn.errors import ConfigError

__all__ = ["DbtNode", "read_manifest"]

_KINDS = ("model", "seed", "snapshot", "source")


@dataclass(frozen=True, kw_only=True)
class DbtNode:
    """A relation dbt builds or reads: ``schema.name`` and the ids it depends on."""

    unique_id: str
    schema: str
    name: str
    depends_on: tuple[str, ...]
    sql: str | None = None


def read_manifest(path: Path) -> list[DbtNode]:
    """The relations of a dbt manifest.

    Raises:
        ConfigError: the file cannot be read or is not a dbt manifest.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read the dbt manifest: {exc.strerror}; run `dbt compile` or fix the path",
            path=str(path),
            key="lineage.dbt_manifest",
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"the dbt manifest is not JSON ({exc.msg} at line {exc.lineno}); regenerate it "
            "with `dbt compile`",
            path=str(path),
            key="lineage.dbt_manifest",
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), dict):
        raise ConfigError(
            "not a dbt manifest (no `nodes` object); point lineage.dbt_manifest at "
            "target/manifest.json",
            path=str(path),
            key="lineage.dbt_manifest",
        )
    out: list[DbtNode] = []
    entries: list[Mapping[str, Any]] = [*doc["nodes"].values(), *doc.get("sources", {}).values()]
    for entry in entries:
        if entry.get("resource_type") not in _KINDS:
            continue
        name = entry.get("identifier") or entry.get("alias") or entry.get("name")
        schema = entry.get("schema")
        if not name or not schema:
            continue
        out.append(
            DbtNode(
                unique_id=str(entry["unique_id"]),
                schema=str(schema),
                name=str(name),
                depends_on=tuple(str(d) for d in (entry.get("depends_on") or {}).get("nodes", [])),
                sql=entry.get("compiled_code") or entry.get("raw_code") or None,
            )
        )
    return out
