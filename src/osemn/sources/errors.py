"""The one boundary where SQLAlchemy and DBAPI exceptions become osemn's errors.

Everything below a :class:`~osemn.sources.warehouse.Warehouse` raises
SQLAlchemy's exceptions; everything above it sees only the ``SourceError``
branch of the OsemnError tree::

    cannot connect, connection lost          -> SourceUnavailableError
    statement timeout, cancel, interrupt     -> QueryTimeoutError
    NoSuchTableError                         -> UnknownTableError
    pool checkout timeout                    -> SourceError (the source is fine, osemn is busy)
    any other DBAPI or SQLAlchemy error      -> SourceError with the driver's message

Messages show the URL only with its password hidden, and scrub the password
from driver text in case a driver echoes its connection string.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from osemn._units import format_duration
from osemn.errors import (
    QueryTimeoutError,
    SourceError,
    SourceUnavailableError,
    UnknownTableError,
)
from osemn.sources._dialects import is_timeout

__all__ = ["cancelled_error", "map_sqlalchemy_errors", "timeout_error"]


@contextmanager
def map_sqlalchemy_errors(
    source: str,
    *,
    url: str | sa.URL | None = None,
    statement_timeout: timedelta | None = None,
) -> Iterator[None]:
    """Translate SQLAlchemy exceptions raised inside the block into ``SourceError``\\s.

    Args:
        source: the source's name in osemn.yaml, carried by every error.
        url: the source's URL; shown with its password hidden, and its password
            is scrubbed from any driver message.
        statement_timeout: the source's limit, named in ``QueryTimeoutError``.

    Raises:
        SourceUnavailableError: the source cannot be reached or dropped the connection.
        QueryTimeoutError: the statement ran out of time or was cancelled.
        UnknownTableError: reflection found no such table.
        SourceError: any other SQLAlchemy or DBAPI error, with the driver's message.
    """
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        parsed = sa.make_url(url) if isinstance(url, str) else url
        # from None: the chained original would print SQL and parameters into logs.
        error = _translate(exc, source=source, url=parsed, statement_timeout=statement_timeout)
        raise error from None


def timeout_error(source: str, statement_timeout: timedelta | None) -> QueryTimeoutError:
    """The error for a statement that ran past ``statement_timeout``, with how to raise it."""
    limit = (
        f"statement_timeout {format_duration(statement_timeout)}"
        if statement_timeout
        else "the server's statement time limit"
    )
    return QueryTimeoutError(
        f"a statement on source {source!r} ran past {limit} and was cancelled. "
        f"Raise `sources.{source}.statement_timeout` in osemn.yaml, or make the check "
        "cheaper (an incremental window with `timestamp:`, fewer drift columns).",
        source=source,
    )


def cancelled_error(source: str) -> QueryTimeoutError:
    """The error for a statement that ``Warehouse.cancel_all()`` cancelled at shutdown."""
    return QueryTimeoutError(
        f"a statement on source {source!r} was cancelled because osemn is stopping and "
        "the shutdown deadline passed. Raise `agent.shutdown_timeout` to let it finish.",
        source=source,
    )


def _translate(
    exc: sa_exc.SQLAlchemyError,
    *,
    source: str,
    url: sa.URL | None,
    statement_timeout: timedelta | None,
) -> SourceError:
    detail = _scrub(_detail(exc), url)
    if isinstance(exc, sa_exc.DBAPIError):
        if is_timeout(exc.orig):
            return timeout_error(source, statement_timeout)
        # No statement: the error came from connect(); invalidated: the connection died.
        if exc.statement is None or exc.connection_invalidated:
            return _unavailable(source, url, detail)
        return SourceError(
            f"source {source!r} rejected a statement: {detail}. "
            "Fix the dataset or check that sent it; the source itself is up.",
            source=source,
        )
    if isinstance(exc, sa_exc.DisconnectionError):
        return _unavailable(source, url, detail)
    if isinstance(exc, sa_exc.NoSuchTableError):
        return UnknownTableError(source=source, table=detail)
    if isinstance(exc, sa_exc.TimeoutError):
        return SourceError(
            f"no connection to source {source!r} became free in time ({detail}). "
            "The engine's pool is smaller than `max_concurrency`; size them alike.",
            source=source,
        )
    return SourceError(
        f"{type(exc).__name__} on source {source!r}: {detail}. "
        "The statement cannot run on this source; report it with the dataset's config.",
        source=source,
    )


def _unavailable(source: str, url: sa.URL | None, detail: str) -> SourceUnavailableError:
    where = f" at {url.render_as_string(hide_password=True)}" if url is not None else ""
    return SourceUnavailableError(
        f"source {source!r}{where} is unavailable: {detail}. Check that the server is up "
        "and that `url` in osemn.yaml is right (host, port, database, credentials); "
        "osemn retries with backoff.",
        source=source,
    )


def _detail(exc: sa_exc.SQLAlchemyError) -> str:
    # The driver's own words, without SQLAlchemy's [SQL: ...] [parameters: ...] dump.
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        text = str(exc.orig)
    elif exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = type(exc).__name__
    return " ".join(text.split()) or type(exc).__name__


def _scrub(text: str, url: sa.URL | None) -> str:
    password = url.password if url is not None else None
    if password:
        for form in {str(password), quote_plus(str(password)), quote(str(password), safe="")}:
            text = text.replace(form, "***")
    return text
