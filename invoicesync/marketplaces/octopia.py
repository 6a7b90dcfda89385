"""marketplaces/octopia (shell): Octopia Seller API v2 invoice imports: upload, poll, find a lost upload.

The parsers at the top are pure (decoded JSON in, model values out) and tolerant: unknown fields are
ignored, missing ones accepted, enum values compared case-insensitively, the raw answer kept. The
class below owns one httpx.Client per outbox and turns every answer into a model value or an
exception from `invoicesync.errors`. An upload is repeated only when nothing can have been received
(a connection that never opened, a `429`); any other failure after the bytes left is `UnknownOutcome`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

import httpx
import stamina

from invoicesync.errors import OutboxBlocked, RejectedError, TransientError, UnknownOutcome
from invoicesync.marketplaces.auth import TokenAuth
from invoicesync.marketplaces.deadline import deadline_transport, within
from invoicesync.marketplaces.http import (
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    NOTHING_SENT,
    DeadlineFile,
    DeadlinePassed,
    Refused,
    describe,
    is_problem,
    json_body,
    parse_problem,
    parse_retry_after,
    read_within,
    retry_hook,
)
from invoicesync.model import (
    Batch,
    Endpoint,
    FileResult,
    FileStatus,
    ImportSnapshot,
    ImportStatus,
    Submission,
)

__all__ = [
    "OctopiaMarketplace",
    "next_page",
    "parse_created_at",
    "parse_import",
    "parse_problem",
    "parse_retry_after",
]

if TYPE_CHECKING:
    from invoicesync.marketplaces.octopia_inbox import OctopiaInbox

PAGE_SIZE = 100
MAX_PAGES = 50
CLOCK_SKEW_MARGIN = timedelta(seconds=120)
RETRY_AFTER_CAP_SECONDS = 30.0  # longer waits belong to the service's timer, not a sleeping thread
SUBMIT_ATTEMPTS = 4
GET_ATTEMPTS = 5
GET_TIMEOUT_SECONDS = 60.0  # all attempts of one GET together
GET_DEADLINE_SECONDS = 30.0  # one attempt, headers to last byte (or request_deadline_seconds if shorter)
BLOCKED_TAIL = "files wait in .processing/ until then."

# --- pure parsers ----------------------------------------------------------------------------------

_Status = TypeVar("_Status", ImportStatus, FileStatus)


def _key(value: object) -> str:
    return "".join(ch for ch in str(value).lower() if ch.isalnum())


def _status(kind: type[_Status], value: object) -> _Status:
    """Case-insensitive (and `_`/`-`/space-insensitive) enum lookup; anything else is UNKNOWN."""
    if isinstance(value, str):
        for member in kind:
            if _key(member.value) == _key(value):
                return member
    return kind.UNKNOWN


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _verbatim(value: object) -> str | None:
    """A marketplace text kept as sent; a non-string value as its JSON, never dropped."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _parse_file(entry: dict[str, Any]) -> FileResult:
    error = entry.get("error")
    code: str | None = None
    detail: str | None = None
    if isinstance(error, dict):
        code = _text(error.get("code"))
        detail = _verbatim(error.get("detail", error.get("message")))
    else:
        detail = _verbatim(error)
    return FileResult(
        name=_text(entry.get("name")),
        file_name=_text(entry.get("fileName")),
        order_id=_text(entry.get("orderId")),
        status=_status(FileStatus, entry.get("status")),
        error_code=code,
        error_detail=detail,
        integration_status=_text(entry.get("integrationStatus")),
    )


def parse_import(body: object) -> ImportSnapshot:
    """An import answer (upload 201, poll 200, list item) as a snapshot; never raises."""
    raw: dict[str, Any] = body if isinstance(body, dict) else {"body": body}
    entries = raw.get("files")
    return ImportSnapshot(
        import_id=_text(raw.get("importId")) or "",
        status=_status(ImportStatus, raw.get("status")),
        files=tuple(_parse_file(e) for e in entries if isinstance(e, dict))
        if isinstance(entries, list)
        else (),
        created_at=_text(raw.get("createdAt")),
        raw=raw,
    )


def next_page(response: httpx.Response, body: object) -> str | None:
    """The next page's URL: `Link: rel="next"` resolved against the request URL, else `nextCursor`."""
    link = response.links.get("next", {}).get("url")
    if link:
        return str(response.request.url.join(link))
    cursor = body.get("nextCursor") if isinstance(body, dict) else None
    if isinstance(cursor, str) and cursor:
        return str(response.request.url.copy_set_param("cursor", cursor))
    return None


def parse_created_at(value: str | None) -> datetime | None:
    """ISO 8601 (`Z` or offset, fraction optional) as an aware datetime; naive is UTC; odd is None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- the adapter -----------------------------------------------------------------------------------


class OctopiaMarketplace:
    name = "octopia"
    asks_before_upload = False  # an import is found again by its bundle name: nothing to read first

    def __init__(
        self,
        *,
        base_url: str,
        token_url: str,
        seller_id: str,
        client_id: str,
        read_secret: Callable[[], str],
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        request_deadline_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._origin = httpx.URL(self._base_url)
        self._seller_id = seller_id
        self._deadline_seconds = request_deadline_seconds
        self._clock = clock
        # Called while a request makes headway (each attempt, each chunk sent or read): the service's
        # watchdog takes a long upload on a slow link for work, not for a hung loop.
        self.progress: Callable[[], None] = lambda: None
        self._client = httpx.Client(
            timeout=timeout or DEFAULT_TIMEOUT,
            limits=DEFAULT_LIMITS,
            headers={"SellerId": seller_id, "Accept": "application/json"},
            transport=transport or deadline_transport(DEFAULT_LIMITS),
        )
        self.auth = TokenAuth(
            token_url=token_url,
            client_id=client_id,
            read_secret=read_secret,
            client=self._client,
            clock=clock,
            deadline_seconds=request_deadline_seconds,
        )

    # --- upload -----------------------------------------------------------------------------------

    def prepare(self, batch: Batch) -> dict[str, Any]:
        """Nothing to note: an import is found again by its bundle name."""
        return {}

    def submit(self, batch: Batch) -> Submission:
        url, parts = self._upload_target(batch)
        deadline = self._clock() + self._deadline_seconds
        with ExitStack() as stack:
            files = [
                (
                    batch.bundle_name,
                    (
                        upload_name,
                        cast(  # duck-typed binary file: read/seek/tell/fileno are all httpx uses
                            IO[bytes],
                            DeadlineFile(
                                stack.enter_context(open(path, "rb")),
                                deadline=deadline,
                                clock=self._clock,
                                on_read=self._progress,
                            ),
                        ),
                        content_type,
                    ),
                )
                for upload_name, path, content_type in parts
            ]
            response = self._send_upload(batch, url, files, deadline)
        return self._accepted(batch, response)

    def _upload_target(self, batch: Batch) -> tuple[str, list[tuple[str, str, str]]]:
        if batch.endpoint is Endpoint.BULK_IMPORT:
            if batch.bundle_path is None:
                raise ValueError(f"bulk batch {batch.batch_id} has no bundle_path")
            parts = [(f"{batch.bundle_name}.zip", batch.bundle_path, "application/zip")]
            return f"{self._base_url}/order-invoice-imports", parts
        order_id = batch.order_id or (batch.items[0].order_id if batch.items else "")
        if not order_id:
            raise ValueError(f"order batch {batch.batch_id} names no order")
        parts = [(item.upload_name, item.path, item.content_type) for item in batch.items]
        return f"{self._base_url}/orders/{quote(order_id, safe='')}/invoice-documents", parts

    def _send_upload(
        self,
        batch: Batch,
        url: str,
        files: list[tuple[str, tuple[str, IO[bytes], str]]],
        deadline: float,
    ) -> httpx.Response:
        retrying = stamina.retry_context(
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=NOTHING_SENT),
            attempts=SUBMIT_ATTEMPTS,
            timeout=self._deadline_seconds,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._progress()
                    if self._clock() > deadline:
                        raise DeadlinePassed("request deadline passed")
                    for _, (_, file, _) in files:
                        file.seek(0)
                    try:
                        with (
                            within(max(0.0, deadline - self._clock())),
                            self._client.stream("POST", url, files=files, auth=self.auth) as streamed,
                        ):
                            response = read_within(
                                streamed, deadline=deadline, clock=self._clock, on_read=self._progress
                            )
                    except NOTHING_SENT:
                        raise
                    except httpx.UnsupportedProtocol as exc:
                        raise self._bad_base_url(describe(exc)) from None
                    except httpx.TransportError as exc:  # `from None`: its frames' locals hold the token
                        raise _lost(batch, describe(exc)) from None
                    except DeadlinePassed:
                        raise _lost(batch, f"no answer within {self._deadline_seconds:g} s") from None
                    if response.status_code == 429:
                        raise Refused(response)
                    if response.status_code >= 500:
                        raise _lost(batch, f"HTTP {response.status_code}")
                    return response
        except Refused as exc:
            raise TransientError(
                f"Octopia kept refusing the upload of bundle {batch.bundle_name} (429 Too Many Requests); "
                "it will be sent again later.",
                retry_after_seconds=exc.retry_after,
            ) from None
        except NOTHING_SENT as exc:
            raise TransientError(
                f"Could not connect to Octopia to upload bundle {batch.bundle_name} ({describe(exc)}); "
                "nothing was sent, it will be sent again later."
            ) from None
        except DeadlinePassed:
            raise TransientError(
                f"The upload of bundle {batch.bundle_name} ran out of its {self._deadline_seconds:g} s "
                "before it could start; it will be sent again later."
            ) from None
        raise AssertionError("unreachable: stamina returns or raises")

    def _accepted(self, batch: Batch, response: httpx.Response) -> Submission:
        status = response.status_code
        if 200 <= status < 300:
            snapshot = parse_import(json_body(response))
            import_id = (
                snapshot.import_id or response.headers.get("location", "").rstrip("/").rpartition("/")[2]
            )
            if not import_id:
                raise UnknownOutcome(
                    f"Octopia accepted bundle {batch.bundle_name} ({status}) but named no import; "
                    "its imports will be looked up before anything is sent again."
                )
            return Submission(import_id, dataclasses.replace(snapshot, import_id=import_id))
        self._raise_blocked(response)
        problem = parse_problem(response)
        title = json_body(response) if is_problem(response) else None
        raise RejectedError(
            f"Octopia refused bundle {batch.bundle_name} ({status}): {problem or response.reason_phrase}",
            status_code=status,
            detail=problem or None,
            marketplace_code=_text(title.get("title")) if isinstance(title, dict) else None,
        )

    # --- reading ----------------------------------------------------------------------------------

    def poll(self, import_id: str, batch: Batch | None = None) -> ImportSnapshot:
        url = f"{self._base_url}/order-invoice-imports/{quote(import_id, safe='')}"
        response = self._get(url)
        if response.status_code == 200:
            snapshot = parse_import(json_body(response))
            return snapshot if snapshot.import_id else dataclasses.replace(snapshot, import_id=import_id)
        if response.status_code == 404 and is_problem(response):
            raw = {"httpStatus": 404, "body": json_body(response)}
            return ImportSnapshot(import_id, ImportStatus.MISSING, (), raw=raw)
        self._raise_blocked(response)
        raise TransientError(
            f"Octopia answered {response.status_code} to polling import {import_id}: "
            f"{parse_problem(response) or response.reason_phrase}; it will be polled again later."
        )

    def find_lost(self, batch: Batch, *, sent_after: datetime) -> Submission | None:
        since = sent_after if sent_after.tzinfo else sent_after.replace(tzinfo=UTC)
        cutoff = since - CLOCK_SKEW_MARGIN
        url: str | None = f"{self._base_url}/order-invoice-imports?pageSize={PAGE_SIZE}"
        seen: set[str] = set()
        while url is not None and len(seen) < MAX_PAGES:
            seen.add(url)
            response = self._get(url)
            if response.status_code != 200:
                self._raise_blocked(response)
                raise TransientError(
                    f"Octopia answered {response.status_code} to listing imports: "
                    f"{parse_problem(response) or response.reason_phrase}; the lookup will be repeated."
                )
            body = json_body(response)
            for snapshot in map(parse_import, _items(body)):
                created = parse_created_at(snapshot.created_at)
                if created is not None and created < cutoff:
                    return None  # newest first: everything further back predates the send
                if any(f.name == batch.bundle_name for f in snapshot.files):
                    if not snapshot.import_id:
                        raise TransientError(f"Octopia lists bundle {batch.bundle_name} without an importId.")
                    return Submission(snapshot.import_id, snapshot)
            url = self._next_page(response, body, seen)
        if url is None:
            return None
        raise TransientError(
            f"Looking for bundle {batch.bundle_name} walked {MAX_PAGES} pages of imports without reaching "
            f"{cutoff.isoformat()}; the lookup will be repeated before anything is sent again."
        )

    def _next_page(self, response: httpx.Response, body: object, seen: set[str]) -> str | None:
        url = next_page(response, body)
        if url is None:
            return None
        target = httpx.URL(url)
        if (target.scheme, target.host, target.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise TransientError(
                f"Octopia's next page points to another server ({target.host}); not followed."
            )
        if url in seen:
            raise TransientError(
                "Octopia's import list pages loop back on themselves; the lookup will be repeated."
            )
        return url

    def _get(self, url: str, on_attempt: Callable[[int], None] = lambda _: None) -> httpx.Response:
        """GET with retries on network errors, 429 and 5xx; the answer is returned whatever its status."""
        retrying = stamina.retry_context(
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=(httpx.TransportError,)),
            attempts=GET_ATTEMPTS,
            timeout=GET_TIMEOUT_SECONDS,
        )
        path = httpx.URL(url).path
        try:
            for attempt in retrying:
                with attempt:
                    self._progress()
                    on_attempt(attempt.num)
                    seconds = min(self._deadline_seconds, GET_DEADLINE_SECONDS)
                    deadline = self._clock() + seconds
                    with within(seconds), self._client.stream("GET", url, auth=self.auth) as streamed:
                        response = read_within(
                            streamed, deadline=deadline, clock=self._clock, on_read=self._progress
                        )
                    if response.status_code == 429 or response.status_code >= 500:
                        raise Refused(response)
                    return response
        except Refused as exc:
            raise TransientError(
                f"Octopia kept answering {exc.status_code} to GET {path}"
                f"{f': {exc.problem}' if exc.problem else ''}; it will be asked again later.",
                retry_after_seconds=exc.retry_after,
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise self._bad_base_url(describe(exc)) from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"Could not reach Octopia for GET {path} ({describe(exc)}); it will be asked again later."
            ) from None
        raise AssertionError("unreachable: stamina returns or raises")

    # --- shared -----------------------------------------------------------------------------------

    def _raise_blocked(self, response: httpx.Response) -> None:
        """The answers that stop the whole outbox: token refused twice, seller forbidden, wrong base_url."""
        status = response.status_code
        if status == 401:
            raise OutboxBlocked(
                f"Octopia refused the access token for seller {self._seller_id} twice (401), the second time "
                f"just after renewing it. Check client_id and the secret; {BLOCKED_TAIL}"
            )
        if status == 403:
            problem = parse_problem(response)
            said = f": {problem}" if problem else ""
            raise OutboxBlocked(
                f"Octopia forbids seller {self._seller_id} this call (403{said}). "
                f"Check seller_id and the account's API access; {BLOCKED_TAIL}"
            )
        if status == 404 and not is_problem(response):
            raise self._bad_base_url(
                f"{response.request.method} {response.request.url.path} is not an API path"
            )
        if 300 <= status < 400:
            target = response.headers.get("location", "?")
            raise self._bad_base_url(f"{response.request.url.path} redirects ({status}) to {target}")

    def _bad_base_url(self, reason: str) -> OutboxBlocked:
        return OutboxBlocked(
            f"Octopia's base_url looks wrong ({self._base_url}: {reason}). Fix base_url; {BLOCKED_TAIL}"
        )

    def _progress(self) -> None:
        self.progress()

    def check_online(self) -> None:
        self.auth.renew()

    def inbox(self) -> OctopiaInbox:
        """The invoices Octopia issues to the seller, through this client and token."""
        from invoicesync.marketplaces.octopia_inbox import OctopiaInbox  # only an inbox pass needs it

        return OctopiaInbox(
            get=self._get,
            client=self._client,
            auth=self.auth,
            base_url=self._base_url,
            raise_blocked=self._raise_blocked,
            clock=self._clock,
            progress=lambda: self.progress(),
        )

    def close(self) -> None:
        self._client.close()


def _lost(batch: Batch, reason: str) -> UnknownOutcome:
    return UnknownOutcome(
        f"The answer to the upload of bundle {batch.bundle_name} was lost ({reason}); Octopia may have "
        "received it, so its imports will be looked up before anything is sent again."
    )


def _items(body: object) -> Iterator[object]:
    items = body.get("items") if isinstance(body, dict) else body
    return iter(items) if isinstance(items, list) else iter(())
