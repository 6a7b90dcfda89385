"""The check queue hands claimed files to real checker processes from where it last looked in the journal,
and looks at every claimed file again when some went back to waiting: here, checks that failed because the
checkers could not start (an installation fault, mended meanwhile) are handed over again in the same run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import structlog

from invoicesync.checks import pool as checker_pool
from invoicesync.checks.content import Rules
from invoicesync.checks.pool import Checkers
from invoicesync.checks.queue import CHECK_RETRY_SECONDS, CheckQueue
from invoicesync.journal import ItemState, Journal
from invoicesync.naming import DEFAULT_ORDER_PATTERN
from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for

ORDERS = ("ORDER000001", "ORDER000002", "ORDER000003")


def test_checks_that_failed_are_handed_over_again_once_the_checkers_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checker_pool, "START_RETRY_SECONDS", 0.0)  # a start is tried again at once
    mended = tmp_path / "mended"
    launcher = tmp_path / "checker.py"  # the real checker, once `mended` exists; before, it cannot start
    launcher.write_text(
        "import os, runpy, sys\n"
        f"if not os.path.exists({str(mended)!r}):\n    sys.exit(3)\n"
        "runpy.run_module('invoicesync.checks.child', run_name='__main__')\n"
    )
    folder = tmp_path / "claimed"
    folder.mkdir()
    journal = Journal(tmp_path / "journal.sqlite")
    claims = []
    for order in ORDERS:
        name = f"{order}.pdf" if order != ORDERS[1] else f"{order}.xml"
        (folder / name).write_bytes(sample_pdf(order) if name.endswith(".pdf") else sample_ubl(order))
        claims.append(
            {"item_id": order, "outbox": "shop", "host": "h", "file_name": name, "claim_name": name,
             "ext": name[-3:], "received_at": "2026-12-04T12:00:00+00:00"}
        )  # fmt: skip
    journal.record_claims(claims)
    checkers = Checkers(workers=1, command=(sys.executable, str(launcher)), log=structlog.get_logger("test"))
    clock = [100.0]
    queue = CheckQueue(
        checkers=checkers,
        order_pattern=DEFAULT_ORDER_PATTERN,
        rules=Rules(),
        check_seconds=60.0,
        monotonic=lambda: clock[0],
        log=structlog.get_logger("test"),
        on_checked=lambda: None,
    )

    def feed() -> None:
        queue.feed(
            lambda after_seq, limit: journal.items(
                "shop", ItemState.CLAIMED, after_seq=after_seq, limit=limit
            ),
            lambda item: folder / item.claim_name,
            busy=(),
        )

    def checks_ended() -> list[str]:
        return [check.item.item_id for check in queue.checking.values() if check.future.done()]

    try:
        feed()
        assert sorted(queue.checking) == sorted(ORDERS)
        wait_for(lambda: len(checks_ended()) == len(ORDERS), timeout_seconds=60, what="the checks failed")
        failed = queue.done()
        assert all(check.problem() is not None for check in failed)  # no verdict: the files stay claimed
        queue.faulted(failed[0].problem(), answered=False)
        mended.touch()
        feed()
        assert queue.checking == {}  # they wait CHECK_RETRY_SECONDS first
        clock[0] += CHECK_RETRY_SECONDS
        feed()
        assert sorted(queue.checking) == sorted(ORDERS)  # every one of them again, from the first
        wait_for(lambda: len(checks_ended()) == len(ORDERS), timeout_seconds=60, what="the checks ended")
        verdicts = {check.item.item_id: check.future.result() for check in queue.done()}
        assert {order: examined.error for order, examined in verdicts.items()} == dict.fromkeys(ORDERS)
        assert {order: examined.order_id for order, examined in verdicts.items()} == {o: o for o in ORDERS}
    finally:
        checkers.close()
        journal.close()
