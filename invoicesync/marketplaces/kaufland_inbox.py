"""marketplaces.kaufland_inbox (shell): the invoices Kaufland issues itself, on deemed-supplier orders.

`GET /order-invoices` (signed, paged by `limit`/`offset`, from `ts_created_from_iso`) lists every invoice of
the seller's orders; the ones with `is_marketplace_deemed_supplier: true` are Kaufland's own, issued to the
buyer, and go to `inbox/` as `<order>-<invoice id>.pdf`. Each is downloaded from its `url`, which carries an
access token (kaufland.md: "do not reveal the token"): the url is held only in `Issued.download_url`
(out of repr), and never logged, journaled or written into a sidecar (`public` drops it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlencode

import httpx
import stamina

from invoicesync.errors import TransientError
from invoicesync.marketplaces.http import Refused, download, retry_hook
from invoicesync.marketplaces.issued import Issued, ShapeChanged, Traffic, file_name

PAGE_LIMIT = 100  # the most `limit` allows (kaufland.md: 1-100)
MAX_PAGES = 10_000
ATTEMPTS = 5
DOWNLOAD_DEADLINE_SECONDS = 300.0
RETRY_AFTER_CAP_SECONDS = 30.0


def _public(invoice: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in invoice.items() if key != "url"}


class KauflandInbox:
    name = "kaufland"
    windowed = False  # the list filters on a start only: one listing from `since` covers the window

    def __init__(
        self,
        *,
        base_url: str,
        call: Callable[..., httpx.Response],
        client: httpx.Client,
        wait_turn: Callable[[], None],
        raise_blocked: Callable[[httpx.Response], None],
        clock: Callable[[], float],
        progress: Callable[[], None],
    ) -> None:
        self._base_url, self._call, self._client = base_url.rstrip("/"), call, client
        self._wait_turn, self._raise_blocked = wait_turn, raise_blocked
        self._clock, self._progress = clock, progress
        self.traffic = Traffic()

    def issued(self, since: datetime, until: datetime) -> list[Issued]:
        """Kaufland's own invoices created from `since` (`until` is now: the list has no upper filter)."""
        found: dict[str, Issued] = {}
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for page in range(MAX_PAGES):
            query = urlencode(
                {"ts_created_from_iso": stamp, "limit": PAGE_LIMIT, "offset": page * PAGE_LIMIT}
            )
            response = self._call(
                "GET",
                f"{self._base_url}/order-invoices?{query}",
                purpose="listing invoices",
                on_attempt=self._count,
            )
            if response.status_code != 200:
                self._raise_blocked(response)
                raise TransientError(f"Kaufland answered {response.status_code} to listing its invoices.")
            invoices = self._page(response)
            for invoice in invoices:
                if invoice.get("is_marketplace_deemed_supplier") is not True:
                    continue  # the seller's own upload, not an invoice Kaufland issued
                issued = self._issued(invoice, response.content)
                found.setdefault(issued.invoice_id, issued)
            if len(invoices) < PAGE_LIMIT:
                break
        return list(found.values())

    def _page(self, response: httpx.Response) -> list[dict[str, Any]]:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ShapeChanged(
                "Kaufland's answer to GET /order-invoices holds no `data` list; the API changed, so "
                "invoicesync needs an update to read it.",
                raw=response.content,
            )
        return [invoice for invoice in data if isinstance(invoice, dict)]

    def _issued(self, invoice: dict[str, Any], raw: bytes) -> Issued:
        invoice_id, order_id, url = (invoice.get(key) for key in ("id_invoice", "id_order", "url"))
        if not isinstance(invoice_id, int | str) or not isinstance(order_id, str) or not isinstance(url, str):
            raise ShapeChanged(
                "A deemed-supplier invoice in Kaufland's list lacks id_invoice, id_order or url; the API "
                "changed, so invoicesync needs an update to read it.",
                raw=json.dumps(_public(invoice)).encode(),
            )
        name = file_name(order_id, str(invoice_id))
        return Issued(
            invoice_id=str(invoice_id),
            file_name=name or "",
            about={"invoice": _public(invoice)},
            download_url=url,
        )

    def download(self, invoice: Issued, sink: BinaryIO, *, max_bytes: int) -> str:
        """The file behind the invoice's `url` (its token is the key: not signed); errors never quote it."""
        retrying = stamina.retry_context(
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=(httpx.TransportError,)),
            attempts=ATTEMPTS,
            timeout=2 * DOWNLOAD_DEADLINE_SECONDS,
        )
        what = f"Kaufland's invoice {invoice.invoice_id}"
        try:
            for attempt in retrying:
                with attempt:
                    self._wait_turn()
                    self._count(attempt.num)
                    response = download(
                        self._client,
                        invoice.download_url,
                        sink,
                        seconds=DOWNLOAD_DEADLINE_SECONDS,
                        clock=self._clock,
                        max_bytes=max_bytes,
                        on_read=self._progress,
                    )
                    if response.status_code == 200:
                        return str(response.headers.get("content-type", ""))
                    if response.status_code == 429 or response.status_code >= 500:
                        raise Refused(response)
                    raise TransientError(
                        f"{what} could not be downloaded ({response.status_code}); its address is asked "
                        "for again on the next pass."
                    )
        except Refused as exc:
            raise TransientError(f"Kaufland kept answering {exc.status_code} for {what}.") from None
        except httpx.TransportError as exc:  # its text may hold the url: only the kind is said
            raise TransientError(f"Could not download {what} ({type(exc).__name__}).") from None
        raise AssertionError("unreachable: stamina returns or raises")

    def _count(self, attempt: int) -> None:
        self.traffic.requests += 1
        self.traffic.retries += attempt > 1
        self._progress()
