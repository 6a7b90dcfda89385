"""sandbox.issued (shell): the invoices the simulated marketplaces issue to the seller (the inbox's source).

Octopia bills the seller every ten days (the 9th, 19th and 29th): each cycle issues a commission statement
and a service invoice, each named by the financial operations that list it (`GET /operations`, filtered on
`changedAt`), each with a PDF (`GET /invoices/{invoiceId}/documents`). Kaufland issues the buyer's invoice
itself on deemed-supplier orders: one per such order, listed by `GET /order-invoices` with
`is_marketplace_deemed_supplier: true` (added to the Kaufland store, which serves its `url`).

Cycles since `ISSUED_SINCE` exist from the start; `new_cycle()` issues one more now (tests, rehearsals).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

ISSUED_SINCE = date(2026, 1, 1)  # the first cycle the simulated Octopia account has
CYCLE_DAYS = (9, 19, 29)
KINDS = (("COM", "Commission", "commission statement"), ("SRV", "Subscription", "service invoice"))


def invoice_pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF showing `lines` (what the simulated marketplaces serve as invoices)."""
    text = b"".join(
        b"(" + line.encode("latin-1", "replace").replace(b"(", b"[").replace(b")", b"]") + b") Tj T*\n"
        for line in lines
    )
    content = b"BT /F1 11 Tf 14 TL 56 780 Td\n" + text + b"ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, table)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class IssuedInvoice:
    invoice_id: str
    issued_at: datetime
    kind: str
    pdf: bytes


def cycle_dates(since: date, until: date) -> list[date]:
    """The billing days (9th, 19th, 29th; February's 29th only when it exists) from `since` to `until`."""
    found = []
    month = date(since.year, since.month, 1)
    while month <= until:
        for day in CYCLE_DAYS:
            try:
                billed = month.replace(day=day)
            except ValueError:
                continue
            if since <= billed <= until:
                found.append(billed)
        month = (month + timedelta(days=32)).replace(day=1)
    return found


class IssuedStore:
    """Octopia's invoices to the seller and their operations; shared by handler threads (a lock)."""

    def __init__(self, today: date | None = None) -> None:
        self._lock = threading.Lock()
        self._invoices: dict[str, IssuedInvoice] = {}
        self._extra_cycles = 0
        for billed in cycle_dates(ISSUED_SINCE, today or datetime.now(UTC).date()):
            self._issue(datetime.combine(billed, time(3, 0), tzinfo=UTC), billed.strftime("%Y%m%d"))

    def _issue(self, when: datetime, stamp: str) -> list[str]:
        issued = []
        for code, kind, words in KINDS:
            invoice_id = f"{code}{stamp}"
            lines = [f"Octopia (sandbox) - {words}", f"Invoice {invoice_id}", f"Issued {when:%Y-%m-%d}"]
            self._invoices[invoice_id] = IssuedInvoice(invoice_id, when, kind, invoice_pdf(lines))
            issued.append(invoice_id)
        return issued

    def new_cycle(self) -> list[str]:
        """Issue one more cycle now; returns the new invoice ids."""
        with self._lock:
            self._extra_cycles += 1
            now = datetime.now(UTC).replace(microsecond=0)
            return self._issue(now, f"{now:%Y%m%d}X{self._extra_cycles}")

    def operations(self, changed_min: datetime, changed_max: datetime) -> list[dict[str, Any]]:
        """Two operations per invoice changed within the window (the sale lines it bills), oldest first."""
        with self._lock:
            chosen = sorted(
                (i for i in self._invoices.values() if changed_min <= i.issued_at <= changed_max),
                key=lambda i: (i.issued_at, i.invoice_id),
            )
        operations = []
        for invoice in chosen:
            for line in (1, 2):
                operations.append(
                    {
                        "operationReference": f"{invoice.invoice_id}-{line}",
                        "eventType": invoice.kind,
                        "invoiceId": invoice.invoice_id,
                        "changedAt": invoice.issued_at.isoformat().replace("+00:00", "Z"),
                        "paymentState": "Estimated",
                        "totalAmount": 12.5 * line,
                        "salesChannel": "CDS",
                    }
                )
        return operations

    def pdf(self, invoice_id: str) -> bytes | None:
        with self._lock:
            found = self._invoices.get(invoice_id)
        return None if found is None else found.pdf

    def listed(self) -> list[dict[str, Any]]:
        """Every issued invoice with its SHA-256 (introspection: what a complete inbox holds)."""
        with self._lock:
            invoices = sorted(self._invoices.values(), key=lambda i: (i.issued_at, i.invoice_id))
        return [
            {
                "invoiceId": i.invoice_id,
                "issuedAt": i.issued_at.isoformat(),
                "sha256": hashlib.sha256(i.pdf).hexdigest(),
                "size": len(i.pdf),
            }
            for i in invoices
        ]
