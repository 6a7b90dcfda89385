"""lifecycle (core): an import in flight + what the marketplace said + `now` -> the next step.

`advance(flight, seen, now)` returns `PollAgain(at)`, `Finished(outcomes)` or `GiveUp(outcomes)`.
The marketplace's per-file results are matched to our items by the part name we gave the bundle
(`name`) and the name the marketplace saw (`fileName`). While the import runs, a missing entry
means nothing (`files[]` grows); once it is terminal, a file with no entry was not delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from invoicesync.model import FileError, FileResult, FileStatus, ImportSnapshot, ItemOutcome, Stage


@dataclass(frozen=True, slots=True)
class FlightItem:
    item_id: str
    upload_name: str  # "<order>.<ext>"


@dataclass(frozen=True, slots=True)
class Flight:
    batch_id: str
    bundle_name: str
    import_id: str
    items: tuple[FlightItem, ...]
    submitted_at: float  # wall-clock epoch seconds (journaled, survives restarts)
    poll_attempt: int = 0


@dataclass(frozen=True, slots=True)
class PollAgain:
    at: float
    attempt: int


@dataclass(frozen=True, slots=True)
class Finished:
    outcomes: tuple[ItemOutcome, ...]


@dataclass(frozen=True, slots=True)
class GiveUp:
    outcomes: tuple[ItemOutcome, ...]


Step = PollAgain | Finished | GiveUp


def poll_delay(attempt: int, *, first_seconds: float, max_seconds: float) -> float:
    """first, 2×first, 4×first … capped at max_seconds."""
    return float(min(max_seconds, first_seconds * (2 ** min(attempt, 30))))


def _result_for(item: FlightItem, bundle_name: str, files: Sequence[FileResult]) -> FileResult | None:
    """The entry of this item: same part name (when echoed) and same file name; an entry named after
    the whole bundle (an unreadable ZIP) applies to every item of the bundle."""
    ours = [entry for entry in files if entry.name in (None, bundle_name)]
    for entry in ours:
        if entry.file_name is not None and entry.file_name.casefold() == item.upload_name.casefold():
            return entry
    for entry in ours:
        if entry.file_name is not None and entry.file_name.casefold() == f"{bundle_name}.zip".casefold():
            return entry
    return None


def import_failed(entry: FileResult | None) -> FileError:
    if entry is None:
        return FileError(
            code="ImportFailed",
            message="The marketplace finished the import without returning a result for this file.",
            hint="Put the file back in outbox/ to send it again; if it fails again, contact marketplace support.",
        )
    code = entry.error_code or "Unknown"
    return FileError(
        code="ImportFailed",
        message=f"The marketplace refused this invoice ({code}).",
        hint=_IMPORT_HINTS.get(code, "Read the marketplace's detail, fix the file, then put it back in outbox/."),
        detail=entry.error_detail,
        marketplace_code=entry.error_code,
    )


_IMPORT_HINTS = {
    "OrderNotFound": "Check that the file name is the marketplace's order ID, rename it, then put it back in outbox/.",
    "InvalidFileName": "Rename the file to the order ID (e.g. SCID01210525142759UT8E.pdf), then put it back.",
    "InvalidFileFormat": "Export the invoice again from the ERP as a PDF or UBL XML, then put it back in outbox/.",
}


def import_timeout(give_up_after_seconds: float) -> FileError:
    hours = give_up_after_seconds / 3600
    span = f"{hours:g} hours" if hours >= 1 else f"{give_up_after_seconds:g} seconds"
    return FileError(
        code="ImportTimeout",
        message=f"The marketplace was still processing this invoice after {span}.",
        hint="Check on the marketplace whether the invoice is attached before sending it again.",
    )


def advance(
    flight: Flight,
    seen: ImportSnapshot,
    now: float,
    *,
    first_seconds: float,
    max_seconds: float,
    give_up_after_seconds: float,
) -> Step:
    if seen.status.is_terminal:
        outcomes = []
        for item in flight.items:
            entry = _result_for(item, flight.bundle_name, seen.files)
            if entry is not None and entry.status is FileStatus.SUCCESS:
                outcomes.append(ItemOutcome(item.item_id, Stage.IMPORT))
            else:
                outcomes.append(ItemOutcome(item.item_id, Stage.IMPORT, import_failed(entry)))
        return Finished(tuple(outcomes))
    if now - flight.submitted_at >= give_up_after_seconds:
        error = import_timeout(give_up_after_seconds)
        return GiveUp(tuple(ItemOutcome(item.item_id, Stage.IMPORT, error) for item in flight.items))
    delay = poll_delay(flight.poll_attempt, first_seconds=first_seconds, max_seconds=max_seconds)
    at = min(now + delay, flight.submitted_at + give_up_after_seconds)
    return PollAgain(at=at, attempt=flight.poll_attempt + 1)
