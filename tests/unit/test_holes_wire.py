"""Issue 12, the answer and the plan: an import's result belongs to exactly one file (item 3), names a
marketplace may take for one never travel together (item 3), and a result for another order is never a
receipt (item 23)."""

from __future__ import annotations

from invoicesync.lifecycle import Finished, Flight, FlightItem, advance
from invoicesync.model import Endpoint, FileResult, FileStatus, ImportSnapshot, ImportStatus
from invoicesync.plan import PlanItem, plan_batches

KW = {"first_seconds": 5.0, "max_seconds": 300.0, "give_up_after_seconds": 3600.0}


def test_results_are_matched_by_exact_name_never_two_files_to_one_entry() -> None:
    flight = Flight(
        "b1",
        "box-b1",
        "imp1",
        (FlightItem("upper", "ABCD1234.pdf", "ABCD1234"), FlightItem("lower", "abcd1234.pdf", "abcd1234")),
        0.0,
    )
    answer = ImportSnapshot(
        "imp1",
        ImportStatus.PARTIAL_SUCCESS,
        (
            FileResult("box-b1", "ABCD1234.pdf", "ABCD1234", FileStatus.SUCCESS),
            FileResult("box-b1", "abcd1234.pdf", "abcd1234", FileStatus.FAILURE, "OrderNotFound", "unknown"),
        ),
    )
    step = advance(flight, answer, 1.0, **KW)
    assert isinstance(step, Finished)
    outcome = {o.item_id: o for o in step.outcomes}
    assert outcome["upper"].delivered
    assert not outcome["lower"].delivered
    assert outcome["lower"].error is not None and outcome["lower"].error.marketplace_code == "OrderNotFound"


def test_a_name_changed_in_case_by_the_marketplace_still_matches_when_it_is_the_only_one() -> None:
    flight = Flight("b1", "box-b1", "imp1", (FlightItem("one", "Ab12Cd34.pdf", "Ab12Cd34"),), 0.0)
    answer = ImportSnapshot(
        "imp1", ImportStatus.SUCCESS, (FileResult("box-b1", "AB12CD34.PDF", None, FileStatus.SUCCESS),)
    )
    step = advance(flight, answer, 1.0, **KW)
    assert isinstance(step, Finished) and step.outcomes[0].delivered


def test_orders_equal_but_for_case_never_travel_in_one_request() -> None:
    ready = [
        PlanItem("upper", "ABCD1234", "pdf", 10, 0.0),
        PlanItem("lower", "abcd1234", "pdf", 10, 0.0),
        PlanItem("mixed", "abcd1234", "xml", 10, 0.0),  # not a companion of ABCD1234.pdf
        PlanItem("other", "EFGH5678", "pdf", 10, 0.0),
    ]
    plan = plan_batches(ready, orders_in_flight=(), max_files=10, max_bytes=1000, max_wait_seconds=0, now=1.0)
    together = [{item.item_id for item in batch.items} for batch in plan.batches]
    assert together == [{"upper", "other"}]
    assert all(batch.endpoint is Endpoint.BULK_IMPORT for batch in plan.batches)
    later = plan_batches(
        ready[1:], orders_in_flight=("ABCD1234",), max_files=10, max_bytes=1000, max_wait_seconds=0, now=1.0
    )
    assert [{item.item_id for item in batch.items} for batch in later.batches] == [{"other"}]


def test_a_success_for_another_order_is_a_loud_failure() -> None:
    flight = Flight("b1", "box-b1", "imp1", (FlightItem("mine", "ORDER1.pdf", "ORDER1"),), 0.0)
    answer = ImportSnapshot(
        "imp1", ImportStatus.SUCCESS, (FileResult("box-b1", "ORDER1.pdf", "ORDER9", FileStatus.SUCCESS),)
    )
    step = advance(flight, answer, 1.0, **KW)
    assert isinstance(step, Finished)
    (outcome,) = step.outcomes
    assert not outcome.delivered
    assert outcome.error is not None and outcome.error.code == "WrongOrderImported"
    assert "ORDER9" in outcome.error.message and "ORDER1" in outcome.error.message
