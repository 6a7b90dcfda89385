from __future__ import annotations

from invoicesync.lifecycle import (
    Finished,
    Flight,
    FlightItem,
    GiveUp,
    PollAgain,
    advance,
    poll_delay,
    timed_out,
)
from invoicesync.model import FileResult, FileStatus, ImportSnapshot, ImportStatus

KW = {"first_seconds": 5.0, "max_seconds": 300.0, "give_up_after_seconds": 3600.0}
FLIGHT = Flight("b1", "box-b1", "imp1", (FlightItem("i1", "ORDER1.pdf"), FlightItem("i2", "ORDER2.xml")), 0.0)


def snap(status: ImportStatus, *files: FileResult) -> ImportSnapshot:
    return ImportSnapshot("imp1", status, tuple(files))


def test_running_import_polls_again_with_backoff() -> None:
    step = advance(FLIGHT, snap(ImportStatus.RUNNING), 10.0, **KW)
    assert step == PollAgain(at=15.0, attempt=1)
    assert poll_delay(10, first_seconds=5, max_seconds=300) == 300


def test_partial_success_fails_only_refused_files() -> None:
    step = advance(
        FLIGHT,
        snap(
            ImportStatus.PARTIAL_SUCCESS,
            FileResult("box-b1", "ORDER1.pdf", "ORDER1", FileStatus.SUCCESS),
            FileResult(
                "box-b1", "ORDER2.xml", "ORDER2", FileStatus.FAILURE, "OrderNotFound", "Order — unknown"
            ),
        ),
        10.0,
        **KW,
    )
    assert isinstance(step, Finished)
    first, second = step.outcomes
    assert first.delivered
    assert second.error is not None and second.error.code == "ImportFailed"
    assert second.error.marketplace_code == "OrderNotFound" and second.error.detail == "Order — unknown"


def test_missing_entry_in_terminal_import_is_a_failure() -> None:
    step = advance(
        FLIGHT,
        snap(ImportStatus.SUCCESS, FileResult("box-b1", "ORDER1.pdf", None, FileStatus.SUCCESS)),
        1.0,
        **KW,
    )
    assert isinstance(step, Finished)
    assert step.outcomes[1].error is not None


def test_entries_of_another_bundle_do_not_count() -> None:
    step = advance(
        FLIGHT,
        snap(ImportStatus.SUCCESS, FileResult("other", "ORDER1.pdf", None, FileStatus.SUCCESS)),
        1.0,
        **KW,
    )
    assert isinstance(step, Finished) and not step.outcomes[0].delivered


def test_unknown_status_counts_as_running_until_give_up() -> None:
    assert isinstance(advance(FLIGHT, snap(ImportStatus.UNKNOWN), 100.0, **KW), PollAgain)
    step = advance(FLIGHT, snap(ImportStatus.RUNNING), 3600.0, **KW)
    assert isinstance(step, GiveUp)
    assert all(o.error is not None and o.error.code == "ImportTimeout" for o in step.outcomes)


def test_an_import_never_answered_times_out_at_the_same_moment() -> None:
    """No answer at all to its polls (issue 14: decided here, not by feeding the loop a made-up answer)."""
    flight = FLIGHT
    assert timed_out(flight, flight.submitted_at + 3599.0, give_up_after_seconds=3600.0) is None
    gave_up = timed_out(flight, flight.submitted_at + 3600.0, give_up_after_seconds=3600.0)
    assert gave_up is not None
    assert [o.error.code for o in gave_up.outcomes if o.error] == ["ImportTimeout"] * len(flight.items)
