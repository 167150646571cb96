"""Sending OpenLineage events with openlineage-python's own transports.

The client is configured the standard way: ``lineage.openlineage.transport``
of osemn.yaml when given, else what openlineage-python reads by itself
(``OPENLINEAGE_CONFIG``, an ``openlineage.yml``, ``OPENLINEAGE_URL``,
``OPENLINEAGE__TRANSPORT__*``). Without any of them nothing is sent.
See: https://openlineage.io/docs/client/python#configuration
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from osemn._lineage_config import OpenLineageConfig
from osemn.errors import DeliveryError

if TYPE_CHECKING:  # openlineage-python loads only when a transport is configured
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import RunEvent

__all__ = ["emit", "not_delivered", "openlineage_client"]

_ENV = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")


def openlineage_client(settings: OpenLineageConfig | None) -> OpenLineageClient | None:
    """The client osemn.yaml or the environment asks for, None when neither does."""
    given = settings is not None and settings.transport is not None
    configured = any(os.environ.get(name) for name in _ENV) or any(
        name.startswith("OPENLINEAGE__TRANSPORT") for name in os.environ
    )
    if not (given or configured or Path("openlineage.yml").exists()):
        return None
    from openlineage.client import OpenLineageClient

    if settings is not None and settings.transport is not None:
        return OpenLineageClient(config={"transport": dict(settings.transport)})
    return OpenLineageClient()


def emit(client: OpenLineageClient, events: Sequence[RunEvent]) -> None:
    """Send ``events`` in order.

    Raises:
        DeliveryError: the transport refused one; those after it were not sent.
    """
    for i, event in enumerate(events):
        try:
            client.emit(event)
        except Exception as exc:  # each transport raises its own errors
            raise DeliveryError(
                f"OpenLineage event {i + 1} of {len(events)} {not_delivered(client, exc)}. "
                "Check lineage.openlineage.transport or OPENLINEAGE_URL, and that the "
                "receiver is up."
            ) from exc


def not_delivered(client: OpenLineageClient, exc: Exception) -> str:
    """Why a transport did not deliver, in one line of at most 300 characters of its error.

    A transport's error may quote a URL with its credentials on later lines
    (a request dump); only the first line is kept.
    """
    lines = str(exc).strip().splitlines()
    reason = f": {lines[0][:300]}" if lines else ""
    return f"not delivered by {type(client.transport).__name__}: {type(exc).__name__}{reason}"
