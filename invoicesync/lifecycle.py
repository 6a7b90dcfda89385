"""lifecycle (core): an import in flight + what the marketplace said + `now` -> the next step.

`advance(flight, seen, now)` returns `PollAgain(at)`, `Finished(outcomes)`, `GiveUp(outcomes)` or
`Lost()` (the marketplace no longer knows the import: the upload is looked up again).
The marketplace's per-file results are matched to our items by the part name we gave the bundle
(`name`) and the name the marketplace saw (`fileName`). While the import runs, a missing entry
means nothing (`files[]` grows); once it is terminal, a file with no entry was not delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from invoicesync.messages import file_error
from invoicesync.model import (
    FileError,
    FileResult,
    FileStatus,
    ImportSnapshot,
    ImportStatus,
    ItemOutcome,
    Stage,
)


@dataclass(frozen=True, slots=True)
class FlightItem:
    item_id: str
    upload_name: str  # "<order>.<ext>"
    order_id: str | None = None


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


@dataclass(frozen=True, slots=True)
class Lost:
    """The marketplace does not know the import: look the upload up, re-send only if surely absent."""


Step = PollAgain | Finished | GiveUp | Lost


def poll_delay(attempt: int, *, first_seconds: float, max_seconds: float) -> float:
    """first, 2 x first, 4 x first … capped at max_seconds."""
    return float(min(max_seconds, first_seconds * (2 ** min(attempt, 30))))


def result_positions(flight: Flight, files: Sequence[FileResult]) -> dict[str, int]:
    """Each item's entry in `files`, by position: same part name (when echoed) and exactly the same file
    name; a name the marketplace changed in case only counts when no other item or entry shares it case-
    blind (two files are never matched to one entry). An entry named after the whole bundle (an
    unreadable ZIP) applies to every item without its own."""
    exact: dict[str, int] = {}
    blind: dict[str, list[int]] = {}
    for position, entry in enumerate(files):
        if entry.name in (None, flight.bundle_name) and entry.file_name is not None:
            exact.setdefault(entry.file_name, position)
            blind.setdefault(entry.file_name.casefold(), []).append(position)
    whole = exact.get(f"{flight.bundle_name}.zip")
    items_blind: dict[str, int] = {}
    for item in flight.items:
        items_blind[item.upload_name.casefold()] = items_blind.get(item.upload_name.casefold(), 0) + 1
    positions = {}
    for item in flight.items:
        found = exact.get(item.upload_name)
        key = item.upload_name.casefold()
        if found is None and items_blind[key] == 1 and len(blind.get(key, ())) == 1:
            found = blind[key][0]
        if found is None:
            found = whole
        if found is not None:
            positions[item.item_id] = found
    return positions


def import_failed(entry: FileResult | None, order_id: str | None = None) -> FileError:
    if entry is None:
        return file_error("ImportFailed", order=order_id, detail="no result returned for this file")
    return file_error(
        "ImportFailed", order=order_id, detail=entry.error_detail, marketplace_code=entry.error_code
    )


def import_timeout(give_up_after_seconds: float) -> FileError:
    hours = give_up_after_seconds / 3600
    span = f"{hours:g} hours" if hours >= 1 else f"{give_up_after_seconds:g} seconds"
    return file_error("ImportTimeout", waited=f" (still processing after {span})")


def timed_out(flight: Flight, now: float, *, give_up_after_seconds: float) -> GiveUp | None:
    """Past `give_up_after_seconds` since it was submitted, an import not finished times out, whether the
    marketplace still says Running or says nothing at all."""
    if now - flight.submitted_at < give_up_after_seconds:
        return None
    error = import_timeout(give_up_after_seconds)
    return GiveUp(tuple(ItemOutcome(item.item_id, Stage.IMPORT, error) for item in flight.items))


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
        positions = result_positions(flight, seen.files)
        for item in flight.items:
            position = positions.get(item.item_id)
            entry = None if position is None else seen.files[position]
            if entry is not None and entry.status is FileStatus.SUCCESS:
                if entry.order_id not in (None, item.order_id) and item.order_id is not None:
                    # imported, but for another order than the one we named: never a receipt
                    error = file_error(
                        "WrongOrderImported",
                        order=item.order_id,
                        other=entry.order_id,
                        detail=f"orderId {entry.order_id!r} in the answer, {item.order_id!r} sent",
                    )
                    outcomes.append(ItemOutcome(item.item_id, Stage.IMPORT, error))
                    continue
                outcomes.append(ItemOutcome(item.item_id, Stage.IMPORT))
            else:
                outcomes.append(ItemOutcome(item.item_id, Stage.IMPORT, import_failed(entry, item.order_id)))
        return Finished(tuple(outcomes))
    gave_up = timed_out(flight, now, give_up_after_seconds=give_up_after_seconds)
    if gave_up is not None:
        return gave_up
    if seen.status is ImportStatus.MISSING:
        return Lost()
    delay = poll_delay(flight.poll_attempt, first_seconds=first_seconds, max_seconds=max_seconds)
    at = min(now + delay, flight.submitted_at + give_up_after_seconds)
    return PollAgain(at=at, attempt=flight.poll_attempt + 1)


MIN_EMPTY_LOOKS = 2  # an unanswered upload is re-sent only when absent from this many searches of the list


@dataclass(frozen=True, slots=True)
class Resend:
    """The unanswered upload is surely absent: send it again."""


@dataclass(frozen=True, slots=True)
class LookAgain:
    at: float  # wall time of the next search
    lost_at: float
    empty_looks: int


def after_empty_look(
    lost_at: float, empty_looks: int, now: float, *, grace_seconds: float
) -> Resend | LookAgain:
    """One more search of the import list found no trace of an upload whose answer was lost at `lost_at`.
    It is re-sent only when surely absent: missing from at least MIN_EMPTY_LOOKS searches, the last one at
    least `grace_seconds` after the answer was given up on (a marketplace may read a body at once and list
    its import much later; the upload's own start says nothing of that)."""
    looks = empty_looks + 1
    if looks >= MIN_EMPTY_LOOKS and now - lost_at >= grace_seconds:
        return Resend()
    return LookAgain(
        at=max(lost_at + grace_seconds, now + grace_seconds / 2), lost_at=lost_at, empty_looks=looks
    )
