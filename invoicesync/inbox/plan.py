"""inbox.plan (core): which window a pass asks for, and when the next pass is due. Values in, values out.

A pass asks for what changed from the end of the last *complete* pass (every invoice it found is in
`inbox/`), less an overlap, until now; the first asks from `since`. An invoice found again is known to the
journal and not fetched twice, so the overlap only costs a listing; a pass that left invoices pending does
not move the window on, so they are listed (and their download addresses renewed) again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

OVERLAP = timedelta(days=2)  # late-indexed operations and clocks a little off are listed again
WINDOW = timedelta(days=31)  # the longest window asked in one listing (no limit is documented)
RETRY_SECONDS = 300.0  # a pass that left invoices pending, or failed, is repeated after this long


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime


def pass_window(since: date, last_complete_end: datetime | None, now: datetime) -> Window:
    """From `since` (midnight UTC), or the last complete pass's end less OVERLAP if later, to `now`."""
    start = datetime.combine(since, time(0), tzinfo=UTC)
    if last_complete_end is not None:
        start = max(start, last_complete_end - OVERLAP)
    return Window(min(start, now), now)


def split(window: Window, longest: timedelta = WINDOW) -> list[Window]:
    """The window as consecutive pieces of at most `longest`, oldest first."""
    pieces = []
    start = window.start
    while start < window.end:
        end = min(start + longest, window.end)
        pieces.append(Window(start, end))
        start = end
    return pieces or [window]


def next_pass_at(last_started: datetime | None, clean: bool, every_seconds: float, now: datetime) -> datetime:
    """When the next pass is due: now if none ran; `every` after the last start when it ended clean (all
    fetched, no error); RETRY_SECONDS after it otherwise (never later than `every`)."""
    if last_started is None:
        return now
    wait = every_seconds if clean else min(RETRY_SECONDS, every_seconds)
    return last_started + timedelta(seconds=wait)


def assign_names(proposed: dict[str, str], known: dict[str, str]) -> dict[str, str]:
    """Each listed invoice's file name: the one the journal gave it before, else the proposed one, unless
    that equals another invoice's name but for case (`octopia-AB1.pdf`, `octopia-ab1.pdf`: one file on a
    case-insensitive share, where the second rename would replace the first); then `<stem>-<8 hex of the
    id's SHA-256>.pdf`, stable from pass to pass."""
    taken = {name.casefold(): invoice_id for invoice_id, name in known.items()}
    names: dict[str, str] = {}
    for invoice_id, name in sorted(proposed.items()):
        if invoice_id in known:
            names[invoice_id] = known[invoice_id]
            continue
        if taken.get(name.casefold(), invoice_id) != invoice_id:
            stem = name.removesuffix(".pdf")
            name = f"{stem}-{hashlib.sha256(invoice_id.encode()).hexdigest()[:8]}.pdf"
        taken[name.casefold()] = invoice_id
        names[invoice_id] = name
    return names
