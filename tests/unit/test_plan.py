from __future__ import annotations

from invoicesync.model import Endpoint
from invoicesync.plan import PlanItem, plan_batches

LIMITS = {"max_files": 3, "max_bytes": 1000, "max_wait_seconds": 10.0}


def item(item_id: str, order: str, ext: str = "pdf", size: int = 10, since: float = 0.0) -> PlanItem:
    return PlanItem(item_id, order, ext, size, since)


def test_full_batch_leaves_at_once_and_the_rest_waits() -> None:
    ready = [item(str(n), f"ORDER{n}") for n in range(4)]
    plan = plan_batches(ready, orders_in_flight=set(), now=1.0, **LIMITS)
    assert [len(b.items) for b in plan.batches] == [3]
    assert plan.next_deadline == 10.0


def test_waiting_batch_leaves_at_its_deadline_or_on_flush() -> None:
    ready = [item("1", "ORDER1")]
    assert plan_batches(ready, orders_in_flight=set(), now=9.9, **LIMITS).batches == []
    assert len(plan_batches(ready, orders_in_flight=set(), now=10.0, **LIMITS).batches) == 1
    assert len(plan_batches(ready, orders_in_flight=set(), now=0.0, flush=True, **LIMITS).batches) == 1


def test_while_verdicts_are_awaited_only_full_batches_leave_and_no_deadline_is_set() -> None:
    ready = [item(str(n), f"ORDER{n}") for n in range(4)]
    for flush in (False, True):  # past its deadline, and in `once`: the partial batch still waits
        plan = plan_batches(ready, orders_in_flight=set(), now=99.0, flush=flush, more_coming=True, **LIMITS)
        assert [len(b.items) for b in plan.batches] == [3]
        assert plan.next_deadline is None  # the verdicts (or the caller's own bound) wake the loop


def test_order_in_flight_waits() -> None:
    plan = plan_batches([item("1", "ORDER1")], orders_in_flight={"ORDER1"}, now=99.0, **LIMITS)
    assert plan.batches == []


def test_pdf_and_xml_of_one_order_travel_together() -> None:
    ready = [item("1", "ORDER1", "pdf"), item("2", "ORDER1", "xml"), item("3", "ORDER2")]
    plan = plan_batches(ready, orders_in_flight=set(), now=0.0, flush=True, **LIMITS)
    pair = [b for b in plan.batches if b.endpoint is Endpoint.ORDER_DOCUMENTS]
    assert len(pair) == 1 and pair[0].order_id == "ORDER1"
    assert {i.item_id for i in pair[0].items} == {"1", "2"}


def test_two_files_of_one_order_never_share_a_bulk_batch() -> None:
    ready = [item("1", "ORDER1"), item("2", "ORDER1"), item("3", "ORDER2")]
    plan = plan_batches(ready, orders_in_flight=set(), now=0.0, flush=True, **LIMITS)
    sent = [i.item_id for b in plan.batches for i in b.items]
    assert sorted(sent) == ["1", "3"]


def test_bytes_limit_splits_batches() -> None:
    ready = [item(str(n), f"ORDER{n}", size=400) for n in range(3)]
    plan = plan_batches(ready, orders_in_flight=set(), now=0.0, flush=True, **LIMITS)
    assert [len(b.items) for b in plan.batches] == [2, 1]
