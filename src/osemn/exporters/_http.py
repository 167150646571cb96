"""The one boundary where httpx exceptions become osemn's delivery errors.

Every receiver that speaks HTTP sends inside ``map_httpx_errors()``; the outbox
only ever sees ``DeliveryAttemptError`` and decides from its ``retryable`` flag
whether to back off or give up. Receiver URLs can be secrets themselves (a Slack
incoming-webhook URL is one), so messages show only the URL's origin and scrub
every secret they were told about from upstream text.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx

from osemn.errors import DeliveryAttemptError

__all__ = [
    "map_httpx_errors",
    "origin",
    "parse_retry_after",
    "scrub",
]

# Statuses a later attempt may get past: request timeout, too early, too many
# requests, and every server error (RFC 9110 section 15.6: the server failed, not the request).
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_EXCERPT_CHARS = 200


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what a log may show of a receiver's URL."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid url>"
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``, longest first."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """The wait a ``Retry-After`` header asks for (RFC 9110 section 10.2.3), never negative.

    Returns None when the header is missing or is neither seconds nor an HTTP date.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


@contextmanager
def map_httpx_errors(
    *, receiver: str, url: str, timeout: float, secrets: Sequence[str] = ()
) -> Iterator[None]:
    """Turn httpx errors raised inside into ``DeliveryAttemptError``.

    Call ``response.raise_for_status()`` inside, so that a non-2xx answer is
    mapped too (redirects are not followed: a 3xx means the URL is wrong).

    Args:
        receiver: the receiver's name, for the message.
        url: where the request went; only its origin appears in messages.
        timeout: the receiver's timeout in seconds, for the message of a timeout.
        secrets: strings that must never appear in a message (URL, keys, secrets).

    Raises:
        DeliveryAttemptError: retryable for timeouts, connection trouble, 408,
            425, 429 and 5xx; permanent for other answers and for a bad URL.
    """
    where = origin(url)
    hidden = (*secrets, url, *_url_parts(url))
    try:
        yield
    except httpx.HTTPStatusError as exc:
        raise _status_error(exc.response, receiver=receiver, where=where, secrets=hidden) from None
    except httpx.TimeoutException:
        raise DeliveryAttemptError(
            f"receiver {receiver!r}: {where} did not answer within {timeout:g}s; it will be "
            "retried with backoff. If the receiver is just slow, raise its `timeout:`.",
            receiver=receiver,
            retryable=True,
        ) from None
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise DeliveryAttemptError(
            f"receiver {receiver!r}: cannot send to {where}: {scrub(str(exc), hidden)}; "
            "it will not be retried. Fix the receiver's `url:`.",
            receiver=receiver,
            retryable=False,
        ) from None
    except (httpx.DecodingError, httpx.TooManyRedirects) as exc:
        raise DeliveryAttemptError(
            f"receiver {receiver!r}: {where} sent an answer osemn cannot read: "
            f"{scrub(str(exc), hidden)}; it will not be retried. Check the receiver's `url:` "
            "points at the receiver itself.",
            receiver=receiver,
            retryable=False,
        ) from None
    except httpx.HTTPError as exc:
        # Connection refused or reset, DNS failure, proxy trouble: the receiver may come back.
        reason = scrub(str(exc), hidden) or type(exc).__name__
        raise DeliveryAttemptError(
            f"receiver {receiver!r}: cannot reach {where}: {reason}; it will be retried with "
            "backoff. Check that the receiver is up and reachable from osemn.",
            receiver=receiver,
            retryable=True,
        ) from None


def _status_error(
    response: httpx.Response, *, receiver: str, where: str, secrets: Sequence[str]
) -> DeliveryAttemptError:
    status = response.status_code
    retryable = status in _RETRYABLE_STATUS or status >= 500
    try:
        excerpt = " ".join(response.text.split())[:_EXCERPT_CHARS]
    except (httpx.HTTPError, UnicodeDecodeError, httpx.ResponseNotRead):
        excerpt = ""
    said = f": {scrub(excerpt, secrets)!r}" if excerpt else ""
    if retryable:
        fix = "it will be retried with backoff."
    elif 300 <= status < 400:
        fix = "it will not be retried. Point the receiver's `url:` at the final address."
    else:
        fix = (
            "it will not be retried. Check the receiver's `url:` and credentials, and what it "
            "expects."
        )
    return DeliveryAttemptError(
        f"receiver {receiver!r}: {where} answered {status} {response.reason_phrase}{said}; {fix}",
        receiver=receiver,
        retryable=retryable,
        status=status,
        retry_after=response.headers.get("Retry-After"),
    )


def _url_parts(url: str) -> tuple[str, ...]:
    """The path and query of ``url``, which may hold a token (Slack puts one in the path)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return ()
    path = parsed.raw_path.decode("ascii", "replace")
    return tuple(p for p in (path, parsed.query.decode("ascii", "replace")) if len(p) > 1)
