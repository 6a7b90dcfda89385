"""marketplaces/kaufland (shell): Kaufland Seller API v2 order invoices: one signed JSON request per PDF.

Signing (kaufland.md): lower-case hex HMAC-SHA256 of `METHOD\\nURI\\nBODY\\nTIMESTAMP`, the secret key taken
as UTF-8 text, the URI absolute and exactly as sent; a fresh timestamp for every attempt; no redirect is
ever followed. The upload body (`{"original_name", "mime_type", "data": base64}`) is made twice from the
staged file, once for the signature and once while it is sent, so the bytes signed are the bytes sent and
a 20 MB PDF never sits whole in memory as 27 MB of JSON.

In the marketplace interface:

- `prepare` reads the order (`GET /orders/{id}?embedded=order_invoices`): an unknown order is `Rejected`,
  a deemed-supplier one `DeemedSupplier`; the invoices it holds are returned, and journaled by delivery
  before the upload;
- `submit` uploads the one PDF; `201` is a finished delivery (import_id = Kaufland's `id_invoice`). With
  `corrections: replace`, the invoices this daemon uploaded earlier for the order (`batch.earlier`) are
  deleted once the new one is stored; a delete that keeps failing is said and left for the next file;
- `find_lost` reads the order again: an invoice that was not there before, with our `original_name`, and
  our bytes where its `url` can be fetched, is adopted; None only when the order surely has none;
- `poll` is never needed.

Every call of the outbox goes through one rate limiter (`max_requests_per_second`); a `429` waits and is
signed afresh. The secret key never leaves `_sign`; the invoice `url`s (they carry an access token) are
never logged nor kept in a report.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import stamina
import structlog

from invoicesync import __version__
from invoicesync.errors import OutboxBlocked, RejectedError, TransientError, UnknownOutcome
from invoicesync.marketplaces.deadline import deadline_transport, within
from invoicesync.marketplaces.http import (
    DEFAULT_TIMEOUT,
    NOTHING_SENT,
    Refused,
    describe,
    json_body,
    read_within,
    retry_hook,
)
from invoicesync.model import (
    Batch,
    BatchItem,
    FileResult,
    FileStatus,
    ImportSnapshot,
    ImportStatus,
    Submission,
)

if TYPE_CHECKING:
    from invoicesync.marketplaces.kaufland_inbox import KauflandInbox

ACCEPTED_KINDS = ("pdf",)  # Kaufland takes PDF invoices only
# An unanswered upload is re-sent only when the order, read at least this long after the answer was given
# up on, still lacks it: Kaufland stores an invoice before it answers 201 (no import list that fills in
# later, as Octopia's), so a few seconds cover a replica that lags.
LOST_GRACE_SECONDS = 5.0
CHUNK_BYTES = 3 * 64 * 1024  # a multiple of 3: base64 of the chunks joined is the chunks' base64 joined
RETRY_AFTER_CAP_SECONDS = 30.0
ATTEMPTS = 5
CALL_TIMEOUT_SECONDS = 60.0  # all attempts of one call together
READ_DEADLINE_SECONDS = 30.0  # one read attempt, headers to last byte
MAX_FILE_FETCH_BYTES = 64 * 1024 * 1024
BLOCKED_TAIL = "files wait in .processing/ until then."
LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16)


def sign(method: str, uri: str, body: bytes, timestamp: int, secret_key: str) -> str:
    """Kaufland's request signature (kaufland.md, with its test vector in the unit tests)."""
    message = b"\n".join([method.upper().encode(), uri.encode(), body, str(timestamp).encode()])
    return hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


class UploadBody:
    """The JSON upload body of one PDF, made from the file on demand: its length, its chunks, and the
    signature over it, without ever holding it whole."""

    def __init__(self, path: Path, original_name: str) -> None:
        self.path = path
        head = json.dumps({"original_name": original_name, "mime_type": "application/pdf"})
        self.prefix = head[:-1].encode() + b', "data": "'
        self.suffix = b'"}'
        size = path.stat().st_size
        self.length = len(self.prefix) + 4 * ((size + 2) // 3) + len(self.suffix)

    def chunks(self, on_chunk: Callable[[], None] = lambda: None) -> Iterator[bytes]:
        yield self.prefix
        with self.path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                on_chunk()
                yield base64.b64encode(chunk)
        yield self.suffix

    def signature(self, method: str, uri: str, timestamp: int, secret_key: str) -> str:
        mac = hmac.new(secret_key.encode("utf-8"), digestmod=hashlib.sha256)
        mac.update(f"{method.upper()}\n{uri}\n".encode())
        for chunk in self.chunks():
            mac.update(chunk)
        mac.update(f"\n{timestamp}".encode())
        return mac.hexdigest()


class RateLimiter:
    """At most `per_second` calls in any second, for all threads of one outbox (a token bucket)."""

    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            self._next = at + self._interval
        if at > now:
            time.sleep(at - now)


# --- pure parsers ----------------------------------------------------------------------------------


def invoices_of(body: object) -> list[dict[str, Any]]:
    """The order's invoices in a `GET /orders/{id}?embedded=order_invoices` answer (tolerant)."""
    data = body.get("data") if isinstance(body, dict) else None
    invoices = data.get("order_invoices") if isinstance(data, dict) else None
    return (
        [invoice for invoice in invoices if isinstance(invoice, dict)] if isinstance(invoices, list) else []
    )


def deemed_supplier(body: object) -> bool:
    data = body.get("data") if isinstance(body, dict) else None
    return isinstance(data, dict) and data.get("is_marketplace_deemed_supplier") is True


def public(invoice: Mapping[str, Any]) -> dict[str, Any]:
    """An invoice as it may be journaled and reported: without its `url` (it carries an access token)."""
    return {key: value for key, value in invoice.items() if key != "url"}


def problem_of(response: httpx.Response) -> tuple[str, str | None]:
    """(`message` and `errors` verbatim, the problem `type`) of an error answer; plain text when not JSON."""
    body = json_body(response)
    if not isinstance(body, dict):
        return response.text.strip() or response.reason_phrase, None
    message = str(body.get("message") or "").strip()
    errors = body.get("errors")
    if errors not in (None, [], {}, ""):
        message = f"{message} {json.dumps(errors, ensure_ascii=False)}".strip()
    kind = body.get("type")
    return message or response.reason_phrase, kind if isinstance(kind, str) else None


def delivered(order_id: str, upload_name: str, invoice: Mapping[str, Any], replaced: list[str]) -> Submission:
    """A stored invoice as a finished delivery of its one file."""
    invoice_id = str(invoice.get("id_invoice"))
    entry = {"fileName": upload_name, "status": "Success", "orderId": order_id, "invoice_id": invoice_id}
    raw = {
        "status": "Success",
        "invoice": public(invoice),
        "replaced": replaced,
        "files": [{**entry, "replaced": replaced}],
    }
    result = FileResult(name=None, file_name=upload_name, order_id=order_id, status=FileStatus.SUCCESS)
    return Submission(invoice_id, ImportSnapshot(invoice_id, ImportStatus.SUCCESS, (result,), raw=raw))


# --- the adapter -----------------------------------------------------------------------------------


class KauflandMarketplace:
    name = "kaufland"
    asks_before_upload = True  # the order is read before its invoice goes

    def __init__(
        self,
        *,
        base_url: str,
        client_key: str,
        read_secret: Callable[[], str],
        user_agent: str = "invoicesync",
        corrections: str = "replace",
        max_requests_per_second: int = 100,
        transport: httpx.BaseTransport | None = None,
        request_deadline_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._client_key = client_key
        self._read_secret = read_secret
        self._replace = corrections == "replace"
        self._deadline_seconds = request_deadline_seconds
        self._clock = clock
        self._wall = wall
        self._limiter = RateLimiter(max_requests_per_second)
        self._log = structlog.get_logger("invoicesync").bind(marketplace="kaufland")
        self.progress: Callable[[], None] = lambda: None
        self._client = httpx.Client(
            timeout=DEFAULT_TIMEOUT,
            limits=LIMITS,
            headers={"Accept": "application/json", "User-Agent": f"{user_agent} (invoicesync/{__version__})"},
            transport=transport or deadline_transport(LIMITS),
            follow_redirects=False,
        )

    # --- the interface --------------------------------------------------------------------------

    def prepare(self, batch: Batch) -> dict[str, Any]:
        """Read the order before its invoice is uploaded: refused if unknown or deemed-supplier; the
        invoices it holds now, to be journaled (a lost answer is settled against them)."""
        item = _only(batch)
        body = self._order(item.order_id, purpose="upload")
        if deemed_supplier(body):
            raise RejectedError(
                f"Kaufland invoices the buyer of order {item.order_id} itself (deemed supplier)",
                code="DeemedSupplier",
                detail="is_marketplace_deemed_supplier: true",
            )
        return {"invoices_before": [public(invoice) for invoice in invoices_of(body)]}

    def submit(self, batch: Batch) -> Submission:
        item = _only(batch)
        url = f"{self._base_url}/order-invoices/{quote(item.order_id, safe='')}"
        upload = UploadBody(Path(item.path), item.upload_name)
        response = self._upload(url, upload, item)
        status = response.status_code
        if status == 201:
            body = json_body(response)
            invoice = body.get("data") if isinstance(body, dict) else None
            if not isinstance(invoice, dict) or invoice.get("id_invoice") is None:
                raise UnknownOutcome(
                    f"Kaufland stored the invoice of order {item.order_id} (201) but named no id_invoice; "
                    "the order will be read again before anything is sent again."
                )
            return delivered(item.order_id, item.upload_name, invoice, self._replace_earlier(batch, invoice))
        self._raise_blocked(response)
        detail, kind = problem_of(response)
        raise RejectedError(
            f"Kaufland refused the invoice of order {item.order_id} ({status}): {detail}",
            status_code=status,
            detail=detail,
            marketplace_code=kind,
        )

    def find_lost(self, batch: Batch, *, sent_after: datetime) -> Submission | None:
        item = _only(batch)
        before = {
            str(invoice.get("id_invoice"))
            for invoice in batch.prepared.get("invoices_before", [])
            if isinstance(invoice, dict)
        }
        candidates = [
            invoice
            for invoice in invoices_of(self._order(item.order_id, purpose="lookup"))
            if str(invoice.get("id_invoice")) not in before
            and invoice.get("original_name") == item.upload_name
            and invoice.get("is_marketplace_deemed_supplier") is not True
        ]
        if not candidates:
            return None
        ours = item.sha256  # as journaled: the staged copy may be gone after a crash
        for invoice in sorted(candidates, key=lambda found: str(found.get("ts_created_iso")), reverse=True):
            if self._same_bytes(invoice, ours) is not False:  # ours, or its bytes cannot be fetched
                return delivered(
                    item.order_id, item.upload_name, invoice, self._replace_earlier(batch, invoice)
                )
        return None

    def poll(self, import_id: str, batch: Batch | None = None) -> ImportSnapshot:
        """Kaufland answers each upload at once, so this is asked only after a crash between the answer and
        its outcomes: the invoice is read again (a repeat of the replacement included); gone, it is
        `Missing`, and the order is read again before anything is sent again."""
        if batch is None:
            raise ValueError("a Kaufland delivery is read again with its batch")
        item = _only(batch)
        order, invoice = quote(item.order_id, safe=""), quote(import_id, safe="")
        response = self._call("GET", f"{self._base_url}/order-invoices/{order}/{invoice}", purpose="read")
        body = json_body(response)
        found = body.get("data") if isinstance(body, dict) else None
        if response.status_code == 200 and isinstance(found, dict):
            return delivered(
                item.order_id, item.upload_name, found, self._replace_earlier(batch, found)
            ).snapshot
        self._raise_blocked(response)
        if response.status_code == 404:
            return ImportSnapshot(import_id, ImportStatus.MISSING, (), raw={"httpStatus": 404, "body": body})
        detail, _ = problem_of(response)
        raise TransientError(
            f"Kaufland answered {response.status_code} to reading invoice {import_id}: {detail}"
        )

    def check_online(self) -> None:
        """One signed read: refused credentials (or clock) raise OutboxBlocked."""
        response = self._call("GET", f"{self._base_url}/order-invoices?limit=1", purpose="check")
        if response.status_code != 200:
            self._raise_blocked(response)
            detail, _ = problem_of(response)
            raise TransientError(f"Kaufland answered {response.status_code} to a signed read: {detail}")

    def inbox(self) -> KauflandInbox:
        """The invoices Kaufland issues on deemed-supplier orders, through this client, key and rate."""
        from invoicesync.marketplaces.kaufland_inbox import KauflandInbox  # only an inbox pass needs it

        return KauflandInbox(
            base_url=self._base_url,
            call=self._call,
            client=self._client,
            wait_turn=self._limiter.wait,
            raise_blocked=self._raise_blocked,
            clock=self._clock,
            progress=lambda: self.progress(),
        )

    def close(self) -> None:
        self._client.close()

    # --- corrections ----------------------------------------------------------------------------

    def _replace_earlier(self, batch: Batch, stored: Mapping[str, Any]) -> list[str]:
        """Delete the invoices this daemon uploaded earlier for the order, now that `stored` is there
        (`corrections: replace`): only those it uploaded, never a deemed-supplier one, never `stored`."""
        if not self._replace or not batch.earlier:
            return []
        item = _only(batch)
        new_id = str(stored.get("id_invoice"))
        replaced = []
        for invoice_id in batch.earlier:
            if invoice_id == new_id:
                continue
            order, invoice = quote(item.order_id, safe=""), quote(invoice_id, safe="")
            url = f"{self._base_url}/order-invoices/{order}/{invoice}"
            try:
                response = self._call("DELETE", url, purpose="replace")
            except TransientError as exc:
                self._log.warning(
                    "invoice_not_replaced", order_id=item.order_id, invoice_id=invoice_id, reason=str(exc)
                )
                continue
            if response.status_code in (200, 204, 404):  # 404: gone already (a repeat after a crash)
                replaced.append(invoice_id)
                continue
            self._raise_blocked(response)
            detail, _ = problem_of(response)
            self._log.warning(
                "invoice_not_replaced",
                order_id=item.order_id,
                invoice_id=invoice_id,
                reason=f"HTTP {response.status_code}: {detail}",
            )
        return replaced

    def _same_bytes(self, invoice: Mapping[str, Any], sha256: str) -> bool | None:
        """Whether the invoice's file is ours, when its `url` can be fetched; None when it cannot."""
        url = invoice.get("url")
        if not isinstance(url, str) or not url or not sha256:
            return None
        try:
            self._limiter.wait()
            with within(READ_DEADLINE_SECONDS), self._client.stream("GET", url) as streamed:
                if streamed.status_code != 200:
                    return None
                digest = hashlib.sha256()
                size = 0
                for chunk in streamed.iter_bytes():
                    size += len(chunk)
                    if size > MAX_FILE_FETCH_BYTES:
                        return None
                    digest.update(chunk)
        except httpx.HTTPError:
            return None
        return digest.hexdigest() == sha256

    # --- requests -------------------------------------------------------------------------------

    def _order(self, order_id: str, *, purpose: str) -> object:
        url = f"{self._base_url}/orders/{quote(order_id, safe='')}?embedded=order_invoices"
        response = self._call("GET", url, purpose=purpose)
        if response.status_code == 200:
            return json_body(response)
        self._raise_blocked(response)
        detail, kind = problem_of(response)
        if response.status_code in (400, 404) and purpose == "upload":
            raise RejectedError(
                f"Kaufland does not know order {order_id} ({response.status_code}): {detail}",
                status_code=response.status_code,
                detail=detail,
                marketplace_code=kind,
            )
        raise TransientError(
            f"Kaufland answered {response.status_code} to reading order {order_id}: {detail}; "
            "it will be read again later."
        )

    def _signed(
        self,
        method: str,
        url: str,
        content: bytes | Iterator[bytes],
        signature_of: Callable[[str, int], str],
        length: int | None = None,
    ) -> httpx.Request:
        request = self._client.build_request(method, url, content=content)
        timestamp = int(self._wall())
        uri = str(request.url)
        request.headers["Shop-Client-Key"] = self._client_key
        request.headers["Shop-Timestamp"] = str(timestamp)
        request.headers["Shop-Signature"] = signature_of(uri, timestamp)
        if length is not None:
            request.headers["Content-Type"] = "application/json"
            request.headers["Content-Length"] = str(length)
            request.headers.pop("Transfer-Encoding", None)
        return request

    def _call(
        self, method: str, url: str, *, purpose: str, on_attempt: Callable[[int], None] = lambda _: None
    ) -> httpx.Response:
        """A bodiless call (GET, DELETE), signed afresh for each attempt; network errors, 429 and 5xx are
        repeated (a GET or a DELETE may be); the answer is returned whatever its status."""
        retrying = stamina.retry_context(
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=(httpx.TransportError,)),
            attempts=ATTEMPTS,
            timeout=CALL_TIMEOUT_SECONDS,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._limiter.wait()
                    self.progress()
                    on_attempt(attempt.num)
                    request = self._signed(
                        method, url, b"", lambda uri, ts: sign(method, uri, b"", ts, self._read_secret())
                    )
                    response = self._exchange(request, min(self._deadline_seconds, READ_DEADLINE_SECONDS))
                    if response.status_code == 429 or response.status_code >= 500:
                        raise Refused(response)
                    return response
        except Refused as exc:
            raise TransientError(
                f"Kaufland kept answering {exc.status_code} to {method} ({purpose}); "
                "it will be asked again later.",
                retry_after_seconds=exc.retry_after,
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise self._bad_base_url(describe(exc)) from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"Could not reach Kaufland ({purpose}: {describe(exc)}); it will be asked again later."
            ) from None
        raise AssertionError("unreachable: stamina returns or raises")

    def _exchange(self, request: httpx.Request, seconds: float) -> httpx.Response:
        """Send `request` and read its whole answer, both within `seconds` (a server answering one byte at
        a time is cut off)."""
        deadline = self._clock() + seconds
        with within(seconds):
            streamed = self._client.send(request, stream=True)
            try:
                return read_within(streamed, deadline=deadline, clock=self._clock, on_read=self.progress)
            finally:
                streamed.close()

    def _upload(self, url: str, upload: UploadBody, item: BatchItem) -> httpx.Response:
        """The upload: repeated only when nothing can have been stored (no connection, a `429`); any
        other failure after the bytes left is `UnknownOutcome`."""
        retrying = stamina.retry_context(
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=NOTHING_SENT),
            attempts=ATTEMPTS,
            timeout=self._deadline_seconds,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._limiter.wait()
                    self.progress()
                    request = self._signed(
                        "POST",
                        url,
                        upload.chunks(self.progress),
                        lambda uri, ts: upload.signature("POST", uri, ts, self._read_secret()),
                        length=upload.length,
                    )
                    try:
                        response = self._exchange(request, self._deadline_seconds)
                    except NOTHING_SENT:
                        raise
                    except httpx.UnsupportedProtocol as exc:
                        raise self._bad_base_url(describe(exc)) from None
                    except httpx.TransportError as exc:
                        raise _lost(item, describe(exc)) from None
                    if response.status_code == 429:
                        raise Refused(response)
                    if response.status_code >= 500:
                        raise _lost(item, f"HTTP {response.status_code}")
                    return response
        except Refused as exc:
            raise TransientError(
                f"Kaufland kept refusing the upload for order {item.order_id} (429 Too Many Requests); "
                "it will be sent again later.",
                retry_after_seconds=exc.retry_after,
            ) from None
        except NOTHING_SENT as exc:
            raise TransientError(
                f"Could not connect to Kaufland to upload the invoice of order {item.order_id} "
                f"({describe(exc)}); nothing was sent, it will be sent again later."
            ) from None
        raise AssertionError("unreachable: stamina returns or raises")

    def _raise_blocked(self, response: httpx.Response) -> None:
        """The answers that stop the whole outbox: credentials or signature refused, a wrong base_url."""
        status = response.status_code
        if status in (401, 403):
            _, kind = problem_of(response)
            now = datetime.fromtimestamp(self._wall(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise OutboxBlocked(
                f"Kaufland refused the signed request ({status}{f' {kind}' if kind else ''}). Check "
                f"client_key and the secret key, and this machine's clock: it says {now}, and a "
                f"signature carries the time, so a clock a few minutes off looks like a wrong key; "
                f"{BLOCKED_TAIL}"
            )
        if 300 <= status < 400:
            target = response.headers.get("location", "?")
            raise self._bad_base_url(f"{response.request.url.path} redirects ({status}) to {target}")
        if status == 404 and json_body(response) is None:
            raise self._bad_base_url(
                f"{response.request.method} {response.request.url.path} is not an API path"
            )

    def _bad_base_url(self, reason: str) -> OutboxBlocked:
        return OutboxBlocked(
            f"Kaufland's base_url looks wrong ({self._base_url}: {reason}). Fix base_url; {BLOCKED_TAIL}"
        )


def _only(batch: Batch) -> BatchItem:
    if len(batch.items) != 1:
        raise ValueError(
            f"a Kaufland request carries one file, batch {batch.batch_id} has {len(batch.items)}"
        )
    return batch.items[0]


def _lost(item: BatchItem, reason: str) -> UnknownOutcome:
    return UnknownOutcome(
        f"The answer to the upload of the invoice of order {item.order_id} was lost ({reason}); Kaufland may "
        "have stored it, so the order will be read again before anything is sent again."
    )
