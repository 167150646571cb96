"""osemn: a data-quality and observability agent."""

from __future__ import annotations

from osemn._version import __version__
from osemn.config import Config, load_config, parse_config
from osemn.errors import (
    CheckError,
    ConfigError,
    DeliveryAttemptError,
    DeliveryError,
    OsemnError,
    QueryTimeoutError,
    RuleError,
    SchemaLoadError,
    SourceError,
    SourceUnavailableError,
    StateError,
    StateVersionError,
    UnknownColumnError,
    UnknownTableError,
)
from osemn.results import CheckKind, CheckResult, Measurement, Status

__all__ = [
    "CheckError",
    "CheckKind",
    "CheckResult",
    "Config",
    "ConfigError",
    "DeliveryAttemptError",
    "DeliveryError",
    "Measurement",
    "OsemnError",
    "QueryTimeoutError",
    "RuleError",
    "SchemaLoadError",
    "SourceError",
    "SourceUnavailableError",
    "StateError",
    "StateVersionError",
    "Status",
    "UnknownColumnError",
    "UnknownTableError",
    "__version__",
    "load_config",
    "parse_config",
]
