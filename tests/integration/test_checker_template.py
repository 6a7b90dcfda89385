"""Checkers forked from one template process: real processes, real files in tmp_path.

Every checker of a pool is a child of its template (which loaded the libraries and compiled the schemas
once); a template killed takes its checkers with it and the next file is judged by a new one, without a
verdict lost or a wait, and without that death counted against the file; a forked checker's own death or
time limit is handled as a started checker's; the template ends with the pool's last idle checker; a
single checker is started on its own; a template that cannot start is an installation fault in its own
words.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from invoicesync.checks.content import Rules
from invoicesync.checks.examine import examine
from invoicesync.checks.pool import Checkers
from invoicesync.checks.template import Template, TemplateFault, usable
from invoicesync.errors import CheckerUnavailable
from invoicesync.naming import DEFAULT_ORDER_PATTERN
from tests.badfiles import sample_pdf, sample_ubl, slow_pdf
from tests.conftest import wait_for
from tests.integration.test_checkers import has_open, kill_while_checking

# The template needs Linux (SOCK_SEQPACKET, SCM_RIGHTS, PR_SET_PDEATHSIG). Elsewhere no template is made and
# checkers start on their own, which tests/integration/test_checkers.py covers on every platform.
pytestmark = pytest.mark.skipif(
    not usable(), reason="no checker template off Linux: checkers start on their own (test_checkers.py)"
)

PATTERN = re.compile(DEFAULT_ORDER_PATTERN)


@pytest.fixture
def pool() -> Iterator[Checkers]:
    checkers = Checkers(workers=2, log=structlog.get_logger("test"))
    yield checkers
    checkers.close()


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _replaced(pool: Checkers, old: int) -> bool:
    return pool.template is not None and pool.template.pid() not in (None, old)


def judge(pool: Checkers, folder: Path, order: str) -> str | None:
    """The error code `order`'s PDF gets from the pool (None: it passes)."""
    path = folder / f"{order}.pdf"
    path.write_bytes(sample_pdf(order))
    verdict = pool.submit(path, path.name, pattern=PATTERN, rules=Rules(), entry=False).result(timeout=60)
    return None if verdict.error is None else verdict.error.code


def test_every_checker_is_a_child_of_one_template(tmp_path: Path, pool: Checkers) -> None:
    with capture_logs() as logs:
        pool.warm()
        wait_for(lambda: len(pool.pids()) == 2, timeout_seconds=60, what="both checkers started")
    template = pool.template.pid() if pool.template is not None else None
    assert template is not None and template != os.getpid()
    assert [parent_of(pid) for pid in pool.pids()] == [template, template]
    assert parent_of(template) == os.getpid()
    assert [entry["event"] for entry in logs].count("checker_template_started") == 1
    xml = tmp_path / "ORDER000002.xml"
    xml.write_bytes(sample_ubl("ORDER000002"))  # the schemas compiled in the template serve its checkers
    assert pool.submit(xml, xml.name, pattern=PATTERN, rules=Rules(), entry=False).result(60).error is None
    assert judge(pool, tmp_path, "ORDER000001") is None


def test_a_template_killed_takes_its_checkers_and_the_next_file_gets_a_new_one(
    tmp_path: Path, pool: Checkers
) -> None:
    assert judge(pool, tmp_path, "ORDER000001") is None
    assert pool.template is not None
    template, checkers = pool.template.pid(), pool.pids()
    assert template is not None and checkers
    os.kill(template, signal.SIGKILL)
    wait_for(lambda: not any(running(pid) for pid in checkers), timeout_seconds=10, what="checkers ended")
    with capture_logs() as logs:
        assert judge(pool, tmp_path, "ORDER000002") is None  # no CheckerUnavailable, no wait between starts
    assert pool.template.pid() not in (None, template)
    assert "checker_template_started" in [entry["event"] for entry in logs]


def test_a_file_whose_checker_dies_with_its_template_twice_is_not_refused(
    tmp_path: Path, pool: Checkers
) -> None:
    """Killing the template kills every checker: not the file's doing, so it never counts towards `twice`."""
    slow = tmp_path / "ORDER000001.pdf"
    slow.write_bytes(slow_pdf("ORDER000001"))
    expected = examine(slow, slow.name, pattern=PATTERN, rules=Rules(), entry=False)
    with capture_logs() as logs:
        future = pool.submit(slow, slow.name, pattern=PATTERN, rules=Rules(), entry=False)
        for _ in range(2):
            wait_for(lambda: any(has_open(pid, slow) for pid in pool.pids()), timeout_seconds=30)
            template = pool.template.pid() if pool.template is not None else None
            assert template is not None
            os.kill(template, signal.SIGKILL)
            wait_for(functools.partial(_replaced, pool, template), timeout_seconds=30, what="a new template")
        assert future.result(timeout=120) == expected
    died = [entry for entry in logs if entry["event"] == "checker_died"]
    assert len(died) == 2 and all(entry["template_ended"] for entry in died)


def test_a_forked_checker_that_dies_on_a_file_twice_refuses_it_as_before(
    tmp_path: Path, pool: Checkers
) -> None:
    """Its template alive, a checker's death is the file's: twice, and the file is refused as damaged."""
    slow = tmp_path / "ORDER000001.pdf"
    slow.write_bytes(slow_pdf("ORDER000001"))
    future = pool.submit(slow, slow.name, pattern=PATTERN, rules=Rules(), entry=False)
    first = kill_while_checking(pool, slow)
    kill_while_checking(pool, slow, not_pid=first)
    verdict = future.result(timeout=60)
    assert verdict.error is not None and verdict.error.code == "InvalidPdf"
    assert verdict.error.detail == "the checker process ended (signal 9) while reading this file, twice"


def test_a_forked_checker_past_its_time_limit_is_replaced_by_a_new_fork(tmp_path: Path) -> None:
    pool = Checkers(workers=2, time_limit_seconds=0.5, log=structlog.get_logger("test"))
    try:
        slow = tmp_path / "ORDER000001.pdf"
        slow.write_bytes(slow_pdf("ORDER000001", lines=3_000_000))
        verdict = pool.submit(slow, slow.name, pattern=PATTERN, rules=Rules(), entry=False).result(60)
        assert verdict.error is not None and verdict.error.code == "TooLarge"
        assert pool.template is not None
        template = pool.template.pid()
        assert judge(pool, tmp_path, "ORDER000002") is None
        assert pool.template.pid() == template  # forked again from the same template
        assert all(parent_of(pid) == template for pid in pool.pids())
    finally:
        pool.close()


def test_the_template_ends_with_the_last_idle_checker(tmp_path: Path) -> None:
    pool = Checkers(workers=2, idle_seconds=0.5, log=structlog.get_logger("test"))
    try:
        assert judge(pool, tmp_path, "ORDER000001") is None
        assert pool.template is not None
        template = pool.template.pid()
        assert template is not None and running(template)
        wait_for(lambda: not pool.pids(), timeout_seconds=30, what="idle checkers stopped")
        wait_for(lambda: not running(template), timeout_seconds=30, what="the template ended")
        assert pool.template.pid() is None
        assert judge(pool, tmp_path, "ORDER000002") is None  # and all starts again on demand
    finally:
        pool.close()
    assert pool.template.pid() is None


def test_a_single_checker_starts_on_its_own(tmp_path: Path) -> None:
    """A template would save no start, and hold a second copy of what a checker copies of it."""
    pool = Checkers(workers=1, log=structlog.get_logger("test"))
    try:
        assert pool.template is None
        assert judge(pool, tmp_path, "ORDER000001") is None
        assert [parent_of(pid) for pid in pool.pids()] == [os.getpid()]
    finally:
        pool.close()


def test_a_template_that_cannot_start_says_why(tmp_path: Path) -> None:
    said = "A library the checks need is missing or broken: on purpose."
    faulty = Template([sys.executable, "-c", f"import socket, sys, json\n"
                       f"s = socket.socket(fileno=int(sys.argv[1]))\n"
                       f"s.send(json.dumps({{'fault': {said!r}}}).encode())\n"])  # fmt: skip
    with pytest.raises(TemplateFault, match=re.escape(said)):
        faulty.fork()
    silent = Template([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(TemplateFault, match="ended before it was ready"):
        silent.fork()
    assert faulty.pid() is None and silent.pid() is None


def test_a_pool_whose_template_cannot_start_refuses_no_file(tmp_path: Path) -> None:
    pool = Checkers(workers=2, log=structlog.get_logger("test"))
    assert pool.template is not None
    pool.template.command = [sys.executable, "-c", "raise SystemExit(3)"]
    try:
        path = tmp_path / "ORDER000001.pdf"
        path.write_bytes(sample_pdf("ORDER000001"))
        future = pool.submit(path, path.name, pattern=PATTERN, rules=Rules(), entry=False)
        with pytest.raises(CheckerUnavailable, match="its template process ended before it was ready"):
            future.result(timeout=60)
    finally:
        pool.close()
