"""plan (core): ready items + orders in flight -> the batches to send now.

Rules (PRODUCT §2 step 4, octopia.md "Replacement semantics"):

- an item of an order that already has a file in flight waits, so the last file dropped is the
  one that stays attached;
- of several ready files of one order only the oldest goes now, except that a PDF and an XML of
  the order travel together in one single-order request (both stay attached);
- orders are told apart as a marketplace might (case-blind): `ABCD1234.pdf` and `abcd1234.pdf` never
  travel in one request, the second waits for the first like a correction would;
- every other file goes in a bulk batch with at most one file per order, within `max_files` and
  `max_bytes`; a bulk batch leaves when it is full, when its oldest file has waited
  `max_wait_seconds`, or at once when `flush` is set (`invoicesync once`);
- a marketplace that takes one file per request (`one_per_request`, Kaufland) gets a request per file at
  once, the oldest of each order first: nothing to bundle, nothing to wait for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from invoicesync.model import Endpoint


@dataclass(frozen=True, slots=True)
class PlanItem:
    item_id: str
    order_id: str
    ext: str
    size: int
    ready_since: float  # wall clock; when the file was first seen in the outbox as it is now


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    endpoint: Endpoint
    items: tuple[PlanItem, ...]
    order_id: str | None = None  # for ORDER_DOCUMENTS


@dataclass(frozen=True, slots=True)
class Plan:
    batches: list[PlannedBatch]
    next_deadline: float | None  # when waiting bulk items must leave even if the batch is not full


def _pair(items: Sequence[PlanItem]) -> tuple[PlanItem, ...]:
    """The oldest file of an order, with its PDF/XML companion when one is ready too."""
    first = items[0]
    wanted = {"pdf": "xml", "xml": "pdf"}.get(first.ext)
    companion = next(
        (item for item in items[1:] if item.ext == wanted and item.order_id == first.order_id), None
    )
    return (first,) if companion is None else (first, companion)


def plan_batches(
    ready: Sequence[PlanItem],
    *,
    orders_in_flight: Collection[str],
    max_files: int,
    max_bytes: int,
    max_wait_seconds: float,
    now: float,
    flush: bool = False,
    more_coming: bool = False,
    one_per_request: bool = False,
) -> Plan:
    """`ready` is in claim order, oldest first. `flush` sends a partial batch now (`once`); `more_coming`
    (verdicts on other claimed files are awaited, and will wake the loop) holds it back for them instead,
    so files claimed together are sent together."""
    in_flight = {order_id.casefold() for order_id in orders_in_flight}
    by_order: dict[str, list[PlanItem]] = {}
    for item in ready:
        if item.order_id.casefold() not in in_flight:
            by_order.setdefault(item.order_id.casefold(), []).append(item)

    batches: list[PlannedBatch] = []
    if one_per_request:
        for first, *_ in by_order.values():
            batches.append(PlannedBatch(Endpoint.ORDER_DOCUMENTS, (first,), order_id=first.order_id))
        return Plan(batches, None)
    singles: list[PlanItem] = []
    for items in by_order.values():
        chosen = _pair(items)
        if len(chosen) > 1:
            batches.append(PlannedBatch(Endpoint.ORDER_DOCUMENTS, chosen, order_id=chosen[0].order_id))
        else:
            singles.append(chosen[0])

    next_deadline: float | None = None
    current: list[PlanItem] = []
    current_bytes = 0

    def close(full: bool) -> None:
        nonlocal current, current_bytes, next_deadline
        if not current:
            return
        deadline = min(item.ready_since for item in current) + max_wait_seconds
        if full or (not more_coming and (flush or now >= deadline)):
            batches.append(PlannedBatch(Endpoint.BULK_IMPORT, tuple(current)))
        elif not more_coming:
            next_deadline = deadline if next_deadline is None else min(next_deadline, deadline)
        current, current_bytes = [], 0

    for item in singles:
        if current and (len(current) >= max_files or current_bytes + item.size > max_bytes):
            close(full=True)
        current.append(item)
        current_bytes += item.size
    close(full=len(current) >= max_files or current_bytes >= max_bytes)
    return Plan(batches, next_deadline)
