"""The checker processes: the daemon's verdicts, given in child processes with a time limit per file.

Real `python -m invoicesync.checks.child` processes on real files in tmp_path: their verdicts equal examining
in-process; a file that takes too long is refused as TooLarge and the next file is judged by a fresh
checker; a checker killed once is replaced and the file judged anyway, killed twice the file is refused
as damaged; a checker that cannot start is an installation fault, never a verdict; idle checkers stop.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from invoicesync.checks.content import Rules
from invoicesync.checks.examine import examine
from invoicesync.checks.pool import Checkers
from invoicesync.errors import CheckerUnavailable
from invoicesync.naming import DEFAULT_ORDER_PATTERN
from tests.badfiles import sample_pdf, sample_ubl, self_drawing_form_pdf, slow_pdf
from tests.conftest import wait_for

PATTERN = re.compile(DEFAULT_ORDER_PATTERN)
RULES = Rules()


@pytest.fixture
def pool() -> Iterator[Checkers]:
    checkers = Checkers(workers=1, log=structlog.get_logger("test"))
    yield checkers
    checkers.close()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def has_open(pid: int, path: Path) -> bool:
    """The process `pid` holds `path` open: it is in the middle of checking it."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def kill_while_checking(pool: Checkers, path: Path, *, not_pid: int | None = None) -> int:
    wait_for(
        lambda: any(pid != not_pid and has_open(pid, path) for pid in pool.pids()),
        timeout_seconds=30,
        what="a checker has the file open",
    )
    pid = next(pid for pid in pool.pids() if pid != not_pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_verdicts_are_those_of_examine_in_process(tmp_path: Path, pool: Checkers) -> None:
    files = [
        write(tmp_path, "ORDER000001.pdf", sample_pdf("ORDER000001")),
        write(tmp_path, "ORDER000002.xml", sample_ubl("ORDER000002")),
        write(tmp_path, "ORDER000003.pdf", sample_pdf("ORDER000099")),  # names another order
        write(tmp_path, "ORDER000004.pdf", sample_pdf("ORDER000004")[:300]),  # cut off
        write(tmp_path, "ORDER000005.xml", b"<Invoice>"),
        write(tmp_path, "bad name!.pdf", sample_pdf("ORDER000006")),
        write(tmp_path, "ORDER000007.txt", b"hello"),
        write(tmp_path, "ORD\udce9R000008.pdf", sample_pdf("ORDER000008")),  # not UTF-8 on disk
    ]
    futures = [pool.submit(path, path.name, pattern=PATTERN, rules=RULES, entry=False) for path in files]
    for path, future in zip(files, futures, strict=True):
        expected = examine(path, path.name, pattern=PATTERN, rules=RULES, entry=False)
        assert future.result(timeout=60) == expected, path.name
    errors = [future.result().error for future in futures]
    assert [None if error is None else error.code for error in errors] == [
        None,
        None,
        "OrderMismatch",
        "InvalidPdf",
        "NotUbl",
        "InvalidFileName",
        "UnsupportedType",
        "InvalidFileName",
    ]


def test_a_file_over_the_time_limit_is_refused_and_the_next_is_checked(tmp_path: Path) -> None:
    pool = Checkers(workers=1, time_limit_seconds=1, log=structlog.get_logger("test"))
    try:
        slow = write(tmp_path, "ORDER000001.pdf", slow_pdf("ORDER000001"))
        good = write(tmp_path, "ORDER000002.pdf", sample_pdf("ORDER000002"))
        with capture_logs() as logs:
            started = time.monotonic()
            refused = pool.submit(slow, slow.name, pattern=PATTERN, rules=RULES, entry=False)
            after = pool.submit(good, good.name, pattern=PATTERN, rules=RULES, entry=False)
            verdict = refused.result(timeout=60)
            assert after.result(timeout=60).error is None
        assert time.monotonic() - started < 30  # cut off, not waited out
        assert verdict.error is not None and verdict.error.code == "TooLarge"
        assert verdict.error.message == "The file is too large: checking it took longer than 1 s."
        assert verdict.order_id == "ORDER000001" and verdict.size == slow.stat().st_size
        assert [entry["file"] for entry in logs if entry["event"] == "check_timed_out"] == [slow.name]
    finally:
        pool.close()


def test_a_pdf_that_sends_pdfium_into_endless_work_is_cut_off_and_the_next_is_checked(tmp_path: Path) -> None:
    """PDFium follows a form that draws itself twice 2^n deep (gigabytes within seconds): the checker's time
    limit cuts it off (its memory cap would end it soon after), and the next file is judged."""
    pool = Checkers(workers=1, time_limit_seconds=2, log=structlog.get_logger("test"))
    try:
        hostile = write(tmp_path, "ORDER000001.pdf", self_drawing_form_pdf("ORDER000001"))
        good = write(tmp_path, "ORDER000002.pdf", sample_pdf("ORDER000002"))
        refused = pool.submit(hostile, hostile.name, pattern=PATTERN, rules=RULES, entry=False)
        after = pool.submit(good, good.name, pattern=PATTERN, rules=RULES, entry=False)
        verdict = refused.result(timeout=60)
        assert after.result(timeout=60).error is None
        assert verdict.error is not None and verdict.error.code == "TooLarge", verdict.error
    finally:
        pool.close()


def test_a_checker_killed_once_is_replaced_and_the_file_still_judged(tmp_path: Path, pool: Checkers) -> None:
    slow = write(tmp_path, "ORDER000001.pdf", slow_pdf("ORDER000001", lines=150_000))
    with capture_logs() as logs:
        future = pool.submit(slow, slow.name, pattern=PATTERN, rules=RULES, entry=False)
        kill_while_checking(pool, slow)
        verdict = future.result(timeout=120)
    assert verdict.error is None and verdict.sha256 is not None
    died = [entry for entry in logs if entry["event"] == "checker_died"]
    assert [(entry["file"], entry["ended"]) for entry in died] == [(slow.name, "signal 9")]


def test_a_file_two_checkers_die_on_is_refused_as_damaged(tmp_path: Path, pool: Checkers) -> None:
    slow = write(tmp_path, "ORDER000001.pdf", slow_pdf("ORDER000001"))
    good = write(tmp_path, "ORDER000002.xml", sample_ubl("ORDER000002"))
    future = pool.submit(slow, slow.name, pattern=PATTERN, rules=RULES, entry=False)
    after = pool.submit(good, good.name, pattern=PATTERN, rules=RULES, entry=False)
    first = kill_while_checking(pool, slow)
    kill_while_checking(pool, slow, not_pid=first)
    verdict = future.result(timeout=60)
    assert verdict.error is not None and verdict.error.code == "InvalidPdf"
    assert verdict.error.detail == "the checker process ended (signal 9) while reading this file, twice"
    assert after.result(timeout=60).error is None  # the file queued behind it went to a fresh checker


def test_a_checker_that_cannot_start_is_an_installation_fault_not_a_verdict(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    failing = f"open({str(starts)!r}, 'a').write('x')\nraise SystemExit(3)\n"
    pool = Checkers(workers=1, command=(sys.executable, "-c", failing))
    try:
        path = write(tmp_path, "ORDER000001.pdf", sample_pdf("ORDER000001"))
        futures = [pool.submit(path, path.name, pattern=PATTERN, rules=RULES, entry=False) for _ in range(20)]
        for future in futures:
            with pytest.raises(CheckerUnavailable, match=r"ended \(exit code 3\) before it was ready"):
                future.result(timeout=60)
        assert starts.read_text() == "x"  # one start tried, not one per file (START_RETRY_SECONDS)
    finally:
        pool.close()


def test_a_checker_whose_greeting_is_garbled_is_not_a_verdict_either(tmp_path: Path) -> None:
    chatty = "print('hello from a sitecustomize', flush=True)\nimport sys\nsys.stdin.read()\n"
    pool = Checkers(workers=1, command=(sys.executable, "-c", chatty))
    try:
        path = write(tmp_path, "ORDER000001.pdf", sample_pdf("ORDER000001"))
        future = pool.submit(path, path.name, pattern=PATTERN, rules=RULES, entry=False)
        with pytest.raises(CheckerUnavailable, match="its first line was not its greeting"):
            future.result(timeout=60)
        assert not pool.pids()  # and that checker was not left running
    finally:
        pool.close()


def test_idle_checkers_stop_and_say_their_peak_memory(tmp_path: Path) -> None:
    pool = Checkers(workers=2, idle_seconds=0.5, log=structlog.get_logger("test"))
    try:
        with capture_logs() as logs:
            pool.warm()
            wait_for(lambda: len(pool.pids()) == 2, timeout_seconds=60, what="both checkers started")
            wait_for(lambda: not pool.pids(), timeout_seconds=30, what="idle checkers stopped")
            wait_for(lambda: sum(e["event"] == "checker_stopped" for e in logs) == 2, timeout_seconds=30)
        stopped = [entry for entry in logs if entry["event"] == "checker_stopped"]
        assert all(entry["max_rss_kib"] > 10_000 for entry in stopped)
        path = write(tmp_path, "ORDER000001.pdf", sample_pdf("ORDER000001"))  # and start again on demand
        assert (
            pool.submit(path, path.name, pattern=PATTERN, rules=RULES, entry=False).result(60).error is None
        )
    finally:
        pool.close()


def test_close_while_a_checker_is_busy_returns_promptly(tmp_path: Path) -> None:
    pool = Checkers(workers=1, log=structlog.get_logger("test"))
    slow = write(tmp_path, "ORDER000001.pdf", slow_pdf("ORDER000001"))
    future = pool.submit(slow, slow.name, pattern=PATTERN, rules=RULES, entry=False)
    wait_for(lambda: any(has_open(pid, slow) for pid in pool.pids()), timeout_seconds=30)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    with pytest.raises(CheckerUnavailable, match="stopped"):
        future.result(timeout=5)
    assert not pool.pids()


def test_a_garbled_answer_is_not_a_verdict_and_the_lane_goes_on(tmp_path: Path) -> None:
    garbling = (
        "import sys\n"
        "print('{\"ready\": true}', flush=True)\n"
        "sys.stdin.readline()\n"
        'print("this is not JSON", flush=True)\n'
        "sys.stdin.read()\n"
    )
    pool = Checkers(workers=1, command=(sys.executable, "-c", garbling), log=structlog.get_logger("test"))
    try:
        path = write(tmp_path, "ORDER000001.pdf", sample_pdf("ORDER000001"))
        with capture_logs() as logs:
            first = pool.submit(path, path.name, pattern=PATTERN, rules=RULES, entry=False)
            with pytest.raises(CheckerUnavailable, match="JSONDecodeError"):
                first.result(timeout=60)
            second = pool.submit(path, path.name, pattern=PATTERN, rules=RULES, entry=False)
            with pytest.raises(CheckerUnavailable, match="JSONDecodeError"):  # a fresh checker, same fault
                second.result(timeout=60)
        assert [entry["event"] for entry in logs].count("checker_failed") == 2
    finally:
        pool.close()
