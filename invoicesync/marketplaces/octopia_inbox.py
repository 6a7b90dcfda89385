"""marketplaces.octopia_inbox (shell): the invoices Octopia issues to the seller, for `inbox/`.

New invoice ids come from the financial operations changed in a window (`GET /operations` with
`changedAtMin`/`changedAtMax`, paged), each operation naming its `invoiceId`; each invoice's PDF is
`GET /invoices/{invoiceId}/documents`. Same host, token and `SellerId` as the upload API (the outbox's
client and token). The financial report page leaves field names, the list's shape and the paging base
unstated (octopia.md): those unknowns are the constants below and nowhere else, and an answer that fits
none of them is `ShapeChanged`, never an empty inbox.

Not used: the multi-document download (2-10 invoices in one ZIP). How its entries are named is not
documented, so which PDF is which invoice would be a guess; one request per invoice is certain, and a
ten-day cycle issues a few invoices.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import httpx
import stamina

from invoicesync.errors import TransientError
from invoicesync.marketplaces.auth import TokenAuth
from invoicesync.marketplaces.http import Refused, describe, download, retry_hook
from invoicesync.marketplaces.issued import Issued, ShapeChanged, Traffic, file_name

# ---- what the financial report page leaves unstated (octopia.md, "Financial report API") ------------
PAGE_SIZE = 100  # `pageSize` is documented (default 20), its maximum is not
FIRST_PAGE_INDEX = 0  # `pageIndex` is the name on the invoice-details call; where it starts is not stated
LIST_KEYS = ("items", "operations", "financialOperations", "data", "results")  # where the list may be
INVOICE_ID_KEYS = ("invoiceId", "invoiceReference", "relatedInvoiceId")  # what names an operation's invoice
# ------------------------------------------------------------------------------------------------------
MAX_PAGES = 10_000
ATTEMPTS = 5
CALL_TIMEOUT_SECONDS = 60.0  # all attempts of one call together
DOWNLOAD_DEADLINE_SECONDS = 300.0  # one PDF download, headers to last byte
RETRY_AFTER_CAP_SECONDS = 30.0


def _instant(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def operations_of(body: object, raw: bytes) -> list[dict[str, Any]]:
    """The list of operations in an answer: the answer itself, or the first of LIST_KEYS holding a list."""
    if isinstance(body, list):
        found: object = body
    elif isinstance(body, dict):
        found = next((body[key] for key in LIST_KEYS if isinstance(body.get(key), list)), None)
    else:
        found = None
    if not isinstance(found, list):
        keys = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
        raise ShapeChanged(
            f"Octopia's answer to GET /operations holds no list of operations (it has: {keys}); "
            f"the financial report API changed, so invoicesync needs an update to read it.",
            raw=raw,
        )
    return [entry for entry in found if isinstance(entry, dict)]


def invoice_id_of(operation: dict[str, Any]) -> str | None:
    for key in INVOICE_ID_KEYS:
        value = operation.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


class OctopiaInbox:
    name = "octopia"
    windowed = True

    def __init__(
        self,
        *,
        get: Callable[..., httpx.Response],
        client: httpx.Client,
        auth: TokenAuth,
        base_url: str,
        raise_blocked: Callable[[httpx.Response], None],
        clock: Callable[[], float],
        progress: Callable[[], None],
    ) -> None:
        self._get, self._client, self._auth, self._base_url = get, client, auth, base_url.rstrip("/")
        self._raise_blocked, self._clock, self._progress = raise_blocked, clock, progress
        self.traffic = Traffic()

    def issued(self, since: datetime, until: datetime) -> list[Issued]:
        """Each invoice named by an operation changed from `since` to `until`, once, with those operations."""
        named: dict[str, list[dict[str, Any]]] = {}
        unnamed = 0
        previous: list[dict[str, Any]] | None = None
        for page in range(FIRST_PAGE_INDEX, FIRST_PAGE_INDEX + MAX_PAGES):
            query = urlencode(
                {
                    "changedAtMin": _instant(since),
                    "changedAtMax": _instant(until),
                    "pageIndex": page,
                    "pageSize": PAGE_SIZE,
                }
            )
            response = self._get(f"{self._base_url}/operations?{query}", on_attempt=self._count)
            if response.status_code != 200:
                self._raise_blocked(response)
                raise TransientError(
                    f"Octopia answered {response.status_code} to GET /operations; the pass is repeated later."
                )
            try:
                body = json.loads(response.content)
            except ValueError:
                raise ShapeChanged(
                    "Octopia answered GET /operations with something not JSON: invoicesync needs an update.",
                    raw=response.content,
                ) from None
            operations = operations_of(body, response.content)
            if previous is not None and operations and operations == previous:
                raise ShapeChanged(
                    "Octopia answered the same operations for two pages in a row: it ignores `pageIndex`, "
                    "so invoicesync needs an update to page through them.",
                    raw=response.content,
                )
            for operation in operations:
                invoice_id = invoice_id_of(operation)
                if invoice_id is None:
                    unnamed += 1
                else:
                    named.setdefault(invoice_id, []).append(operation)
            if len(operations) < PAGE_SIZE:
                break
            previous = operations
        if unnamed and not named:
            raise ShapeChanged(
                f"None of the {unnamed} financial operations Octopia listed names its invoice under "
                f"{', '.join(INVOICE_ID_KEYS)}; the API changed, so invoicesync needs an update to read it."
            )
        found = []
        for invoice_id, operations in named.items():
            name = file_name("octopia", invoice_id)
            url = f"{self._base_url}/invoices/{quote(invoice_id, safe='')}/documents"
            found.append(
                Issued(
                    invoice_id=invoice_id,
                    file_name=name or "",
                    about={"operations": operations},
                    download_url=url,
                )
            )
        return found

    def download(self, invoice: Issued, sink: BinaryIO, *, max_bytes: int) -> str:
        retrying = stamina.retry_context(
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=(httpx.TransportError,)),
            attempts=ATTEMPTS,
            timeout=CALL_TIMEOUT_SECONDS * 2,
        )
        what = f"invoice {invoice.invoice_id}"
        try:
            for attempt in retrying:
                with attempt:
                    self._count(attempt.num)
                    response = download(
                        self._client,
                        invoice.download_url,
                        sink,
                        seconds=DOWNLOAD_DEADLINE_SECONDS,
                        clock=self._clock,
                        max_bytes=max_bytes,
                        on_read=self._progress,
                        auth=self._auth,
                        headers={"Accept": "application/pdf, application/zip, */*"},
                    )
                    if response.status_code == 200:
                        return str(response.headers.get("content-type", ""))
                    if response.status_code == 429 or response.status_code >= 500:
                        raise Refused(response)
                    if response.status_code != 404:  # 404: the document is not there yet (documented)
                        self._raise_blocked(response)
                    raise TransientError(
                        f"Octopia has no document for {what} yet ({response.status_code}); asked again later."
                    )
        except Refused as exc:
            raise TransientError(f"Octopia kept answering {exc.status_code} for {what}.") from None
        except httpx.TransportError as exc:
            raise TransientError(f"Could not download {what} from Octopia ({describe(exc)}).") from None
        raise AssertionError("unreachable: stamina returns or raises")

    def _count(self, attempt: int) -> None:
        self.traffic.requests += 1
        self.traffic.retries += attempt > 1
        self._progress()
