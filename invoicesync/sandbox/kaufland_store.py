"""sandbox.kaufland_store (shell): the Kaufland simulator's invoices per order, and its per-second call count.

Each upload adds an invoice (Kaufland never replaces one); each invoice's `url` carries an access token and
serves its bytes. Shared by every handler thread, so each method takes the lock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from invoicesync.sandbox.issued import invoice_pdf

FILES_PATH = "/kaufland/files/"


class KauflandStore:
    """Invoices per order, as Kaufland keeps them: each upload adds one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._invoices: dict[str, list[dict[str, Any]]] = {}
        self._files: dict[str, tuple[str, bytes]] = {}  # id_invoice -> (access token, bytes)
        self._next_id = 1000
        self._deemed_issued: set[str] = set()  # deemed-supplier orders given Kaufland's own invoice
        self._calls: deque[float] = deque()  # monotonic times of the calls of the last second
        self.uploads = 0

    def within_rate(self, limit: int) -> bool:
        """Count one call; False when it is over `limit` calls in the last second."""
        now = time.monotonic()
        with self._lock:
            while self._calls and self._calls[0] <= now - 1.0:
                self._calls.popleft()
            if len(self._calls) >= limit:
                return False
            self._calls.append(now)
            return True

    def add(
        self,
        order_id: str,
        name: str,
        data: bytes,
        *,
        origin: str,
        storefront: str = "de",
        deemed: bool = False,
    ) -> dict[str, Any]:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._next_id += 1
            invoice_id = self._next_id
            self.uploads += 1
            invoice = {
                "id_invoice": invoice_id,
                "id_order": order_id,
                "storefront": storefront,
                "is_marketplace_deemed_supplier": deemed,
                "original_name": name,
                "mime_type": "application/pdf",
                "url": f"{origin}{FILES_PATH}{invoice_id}?access_token={token}",
                "ts_created_iso": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "sha256": hashlib.sha256(data).hexdigest(),  # the sandbox's own, for tests
                "size": len(data),
            }
            self._invoices.setdefault(order_id, []).append(invoice)
            self._files[str(invoice_id)] = (token, data)
        return dict(invoice)

    def issue_deemed(self, orders: frozenset[str], origin: str) -> None:
        """Kaufland's own invoice on each deemed-supplier order that has none yet (the buyer's invoice)."""
        with self._lock:
            missing = sorted(order for order in orders if order not in self._deemed_issued)
            self._deemed_issued.update(missing)
        for order_id in missing:
            self.add_deemed(order_id, origin)

    def add_deemed(self, order_id: str, origin: str) -> dict[str, Any]:
        lines = [f"Kaufland (sandbox) - invoice to the buyer of order {order_id}", "Deemed supplier"]
        return self.add(order_id, f"kaufland-{order_id}.pdf", invoice_pdf(lines), origin=origin, deemed=True)

    def invoices(self, order_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(invoice) for invoice in self._invoices.get(order_id, [])]

    def all_orders(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {order: [dict(i) for i in invoices] for order, invoices in self._invoices.items()}

    def delete(self, order_id: str, invoice_id: str) -> bool:
        with self._lock:
            kept = [i for i in self._invoices.get(order_id, []) if str(i["id_invoice"]) != invoice_id]
            if len(kept) == len(self._invoices.get(order_id, [])):
                return False
            self._invoices[order_id] = kept
            self._files.pop(invoice_id, None)
            return True

    def file(self, invoice_id: str, token: str) -> bytes | None:
        with self._lock:
            found = self._files.get(invoice_id)
        if found is None or not hmac.compare_digest(found[0].encode(), token.encode()):
            return None
        return found[1]
