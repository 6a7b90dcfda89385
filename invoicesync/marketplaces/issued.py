"""marketplaces.issued (shell): the second small interface, for invoices a marketplace issues to the seller.

An adapter lists what was issued in a time window (`issued`) and downloads one invoice's bytes into a file
(`download`). Each listed invoice says where it goes in `inbox/` and what the marketplace said about it
(the sidecar); where its download address carries a secret (Kaufland's `url` token) that address is kept
out of `repr`, logs, sidecars and the journal. Errors are those of `invoicesync.errors`, plus
`ShapeChanged`: an answer that no longer has the fields this adapter reads (a loud, clear error, never an
empty inbox).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from invoicesync.errors import MarketplaceError

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # what may go into a file name as it is


class ShapeChanged(MarketplaceError):
    """A marketplace answer without the fields we read: its API changed (or was never as documented)."""

    def __init__(self, message: str, *, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw  # the answer as received, kept in the state directory for the update


@dataclass(frozen=True, slots=True)
class Issued:
    invoice_id: str
    file_name: str  # its name in inbox/
    about: dict[str, Any]  # what the marketplace said of it, without secrets: written into the sidecar
    download_url: str = field(repr=False, compare=False)  # may carry a token: never logged or written


@dataclass(slots=True)
class Traffic:
    """Requests a pass made and how many of them were repeats after a fault (for the pass's summary)."""

    requests: int = 0
    retries: int = 0


class InboxSource(Protocol):
    name: str
    traffic: Traffic
    windowed: bool  # lists within [since, until]: a long window is asked in pieces (else from `since` on)

    def issued(self, since: datetime, until: datetime) -> list[Issued]:
        """Every invoice issued (or changed) from `since` to `until`, each once."""
        ...

    def download(self, invoice: Issued, sink: BinaryIO, *, max_bytes: int) -> str:
        """Write the invoice's bytes into `sink` (truncated first); returns the answer's content type."""
        ...


def file_name(*parts: str) -> str | None:
    """`a-b.pdf` from ids that are safe in a file name as they are; None for one that is not (a slash,
    a control character, a leading dot): such an invoice is reported, never renamed into a guess."""
    if not all(SAFE_ID.fullmatch(part) for part in parts):
        return None
    return "-".join(parts) + ".pdf"
