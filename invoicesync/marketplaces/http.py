"""marketplaces/http (shell): HTTP mechanics shared by marketplace adapters, nothing marketplace-specific.

The client's timeouts and pool; readers for `Retry-After` and problem+json that never fail on an odd
answer (empty, plain text, HTML); the stamina hook that honours `Retry-After` up to a cap; and the file
wrapper that bounds a whole upload by a deadline (httpx's timeouts are per operation).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO

import httpx
import stamina
import structlog

from invoicesync.logs import redact_text
from invoicesync.marketplaces.deadline import within

# Write timeouts are per chunk and httpx has no total deadline: callers bound whole operations themselves.
DEFAULT_TIMEOUT = httpx.Timeout(10, connect=5, write=60, pool=5)
DEFAULT_LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2)


def _retry_logged(details: stamina.instrumentation.RetryDetails) -> None:
    """stamina's own hook logs `stamina.retry_scheduled` at warning; a retried request is routine (what
    went wrong for good is said by our own events), so it is our `request_retried`, at debug."""
    structlog.get_logger("invoicesync").debug(
        "request_retried",
        call=details.name.rpartition(".")[2],
        retry=details.retry_num,
        wait_seconds=round(details.wait_for, 2),
        reason=redact_text(f"{type(details.caused_by).__name__}: {details.caused_by}"),
    )


stamina.instrumentation.set_on_retry_hooks([_retry_logged])  # for every process that makes requests


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value (delay-seconds or an HTTP date); None if absent or odd."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the source zone
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def json_body(response: httpx.Response) -> object | None:
    """The decoded JSON body, or None when there is none or it is not JSON."""
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:  # includes UnicodeDecodeError
        return None


def is_problem(response: httpx.Response) -> bool:
    """True for a JSON error object (problem+json or plain JSON), False for plain text, HTML or nothing."""
    return "json" in response.headers.get("content-type", "").lower() and isinstance(
        json_body(response), dict
    )


def parse_problem(response: httpx.Response) -> str:
    """`title: detail (field: message; …)` of a problem+json body, else the raw body text (maybe empty)."""
    body = json_body(response)
    if not isinstance(body, dict):
        return response.text
    head = ": ".join(str(body[key]) for key in ("title", "detail") if body.get(key) not in (None, ""))
    errors = body.get("errors")
    if isinstance(errors, dict) and errors:
        fields = "; ".join(f"{field}: {_messages(messages)}" for field, messages in errors.items())
        head = f"{head} ({fields})" if head else fields
    elif errors not in (None, "", [], {}):
        head = f"{head} ({_messages(errors)})" if head else _messages(errors)
    return head or response.text


def _messages(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_messages(item) for item in value)
    return json.dumps(value, ensure_ascii=False)


class Refused(Exception):
    """An answer that did nothing (a 429; for a GET also a 5xx): safe to repeat after `retry_after` s."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.status_code = response.status_code
        self.retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        self.problem = parse_problem(response)


class DeadlinePassed(Exception):
    """Raised from inside the upload stream when `request_deadline_seconds` ran out."""


class DeadlineFile:
    """A binary file httpx streams from, which stops the upload once the deadline has passed."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        deadline: float,
        clock: Callable[[], float],
        on_read: Callable[[], None] = lambda: None,
    ) -> None:
        self._file, self._deadline, self._clock, self._on_read = file, deadline, clock, on_read

    def read(self, size: int = -1) -> bytes:
        if self._clock() > self._deadline:
            raise DeadlinePassed("request deadline passed")
        self._on_read()
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:  # lets httpx send a Content-Length from fstat
        return self._file.fileno()


MAX_ANSWER_BYTES = 16 * 1024 * 1024  # no answer of a marketplace API is near this; a bigger one is a fault


def read_within(
    response: httpx.Response,
    *,
    deadline: float,
    clock: Callable[[], float],
    on_read: Callable[[], None] = lambda: None,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> httpx.Response:
    """The body of a streamed answer, read whole unless `deadline` passes first (then `httpx.ReadTimeout`,
    retried like any timeout) or it grows past `max_bytes` decoded (then `httpx.ReadError`: an answer that
    big is a fault, and is never held in memory). `on_read` is called per chunk."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():  # decoded (gzip and such) as it arrives
        on_read()
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise httpx.ReadError(
                f"the answer is larger than {max_bytes // (1024 * 1024)} MiB; it was not read",
                request=response.request,
            )
        if clock() > deadline:
            raise httpx.ReadTimeout("the answer took longer than its deadline", request=response.request)
    if clock() > deadline:
        raise httpx.ReadTimeout("the answer took longer than its deadline", request=response.request)
    decoded = ("content-encoding", "content-length", "transfer-encoding")
    return httpx.Response(
        response.status_code,
        headers=[(key, value) for key, value in response.headers.multi_items() if key.lower() not in decoded],
        content=b"".join(chunks),
        request=response.request,
        extensions=response.extensions,
    )


class TooLargeAnswer(httpx.ReadError):
    """A download that grew past its cap: stopped, never held."""


def stream_into(
    response: httpx.Response,
    sink: BinaryIO,
    *,
    deadline: float,
    clock: Callable[[], float],
    max_bytes: int,
    on_read: Callable[[], None] = lambda: None,
) -> int:
    """Write a streamed answer's body into `sink` (emptied first) unless `deadline` passes (then
    `httpx.ReadTimeout`) or it grows past `max_bytes` (`TooLargeAnswer`); a connection that ends before
    the promised length raises httpx's own `RemoteProtocolError`. Returns the bytes written."""
    sink.seek(0)
    sink.truncate()
    size = 0
    for chunk in response.iter_bytes():
        on_read()
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeAnswer(f"the answer is larger than {max_bytes:,} bytes", request=response.request)
        sink.write(chunk)
        if clock() > deadline:
            raise httpx.ReadTimeout("the answer took longer than its deadline", request=response.request)
    return size


def download(
    client: httpx.Client,
    url: str,
    sink: BinaryIO,
    *,
    seconds: float,
    clock: Callable[[], float],
    max_bytes: int,
    on_read: Callable[[], None] = lambda: None,
    auth: httpx.Auth | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """GET `url`, a 200's body streamed into `sink` (`stream_into`), any other answer read whole (an error
    is small), all within `seconds`; the answer is returned whatever its status."""
    deadline = clock() + seconds
    with within(seconds), client.stream("GET", url, auth=auth, headers=headers) as streamed:
        if streamed.status_code == 200:
            stream_into(streamed, sink, deadline=deadline, clock=clock, max_bytes=max_bytes, on_read=on_read)
            return streamed
        return read_within(streamed, deadline=deadline, clock=clock)


# Failures before a connection carried anything: repeating an upload after them cannot duplicate it.
# LocalProtocolError: the request was refused by httpx itself (an illegal header), before a byte left.
NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.LocalProtocolError)


def retry_hook(
    *, cap_seconds: float, errors: tuple[type[Exception], ...]
) -> Callable[[Exception], bool | float]:
    """stamina `on=`: a `Refused` waits its `Retry-After` (over the cap: give up, the caller reports it);
    `errors` are retried with backoff; anything else, our own exceptions included, is not retried."""

    def on(exc: Exception) -> bool | float:
        if isinstance(exc, Refused):
            if exc.retry_after is None:
                return True
            return exc.retry_after if exc.retry_after <= cap_seconds else False
        return isinstance(exc, errors) and not isinstance(exc, httpx.UnsupportedProtocol)

    return on


def describe(exc: Exception) -> str:
    """An httpx error as `Type: text`, secrets redacted (a refused header is quoted in its text)."""
    text = redact_text(str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
