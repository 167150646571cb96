"""The one exception tree of osemn.

Every error osemn raises on purpose is an ``OsemnError``; a leaf also inherits
the built-in exception it means, so ``except LookupError`` keeps working::

    OsemnError
    ├── ConfigError (ValueError)          osemn.yaml or a schema file is wrong
    │   └── SchemaLoadError               a pandera schema cannot be loaded
    ├── SourceError                       a warehouse did not answer as asked
    │   ├── SourceUnavailableError (ConnectionError)
    │   ├── QueryTimeoutError (TimeoutError)
    │   ├── UnknownTableError (LookupError)
    │   └── UnknownColumnError (LookupError)
    ├── CheckError                        a check could not be evaluated
    ├── RuleError                         an SLO or rule cannot be built
    ├── DeliveryError                     a notification could not be delivered
    │   └── DeliveryAttemptError          one attempt failed (``retryable`` or not)
    └── StateError                        the state store cannot be used
        └── StateVersionError             the state store is newer than this osemn

Errors keep their facts as attributes and end their message with the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CheckError",
    "ConfigError",
    "DeliveryAttemptError",
    "DeliveryError",
    "OsemnError",
    "QueryTimeoutError",
    "RuleError",
    "SchemaLoadError",
    "SourceError",
    "SourceUnavailableError",
    "StateError",
    "StateVersionError",
    "UnknownColumnError",
    "UnknownTableError",
]


class OsemnError(Exception):
    """Root of every error osemn raises on purpose."""


class ConfigError(OsemnError, ValueError):
    """A configuration is invalid; ``path``/``line``/``key`` locate the problem."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        if key:
            where += f"{key}: "
        super().__init__(f"{where}{message}")


class SchemaLoadError(ConfigError):
    """A pandera schema (YAML file or ``module:Class``) cannot be loaded."""


class SourceError(OsemnError):
    """A source failed; ``source`` names it. Never a data-quality failure."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(message)


class SourceUnavailableError(SourceError, ConnectionError):
    """The source cannot be reached or refused the connection."""


class QueryTimeoutError(SourceError, TimeoutError):
    """A statement ran past the source's ``statement_timeout`` and was cancelled."""


class UnknownTableError(SourceError, LookupError):
    """The configured table does not exist; ``available`` lists what the warehouse has."""

    def __init__(self, *, source: str | None, table: str, available: Sequence[str] = ()) -> None:
        self.table = table
        self.available = tuple(available)
        shown = ", ".join(repr(t) for t in self.available[:20])
        more = "" if len(self.available) <= 20 else f" (and {len(self.available) - 20} more)"
        super().__init__(
            f"table {table!r} does not exist in source {source!r}; "
            f"it has: {shown or 'no tables'}{more}. Fix `table:` of the dataset.",
            source=source,
        )


class UnknownColumnError(SourceError, LookupError):
    """A configured column does not exist in the table."""

    def __init__(
        self, *, source: str | None, table: str, column: str, available: Sequence[str] = ()
    ) -> None:
        self.table = table
        self.column = column
        self.available = tuple(available)
        super().__init__(
            f"column {column!r} does not exist in table {table!r}; it has: "
            f"{', '.join(repr(c) for c in self.available) or 'no columns'}. "
            "Fix the column name in the config or the schema.",
            source=source,
        )


class CheckError(OsemnError):
    """A check could not be evaluated (reported as status ``error``, never ``fail``)."""


class RuleError(OsemnError):
    """An SLO, rule or dashboard cannot be generated."""


class DeliveryError(OsemnError):
    """A notification could not be delivered; it stays in the outbox."""


class DeliveryAttemptError(DeliveryError):
    """One attempt to deliver failed; ``retryable`` says whether a later one may succeed.

    ``status`` is the HTTP status when the receiver answered, ``retry_after`` its
    raw ``Retry-After`` header (seconds or an HTTP date), if it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        receiver: str,
        retryable: bool,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.receiver = receiver
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class StateError(OsemnError):
    """The state store cannot be read or written."""


class StateVersionError(StateError):
    """The state store was written by a newer osemn; ``found``/``supported`` say which."""

    def __init__(self, *, found: int, supported: int, url: str) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"state store {url} has schema_version {found}, this osemn supports up to "
            f"{supported}. Upgrade osemn, or point agent.state at a new database."
        )
