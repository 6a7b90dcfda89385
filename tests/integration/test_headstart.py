"""The head start of `run` and `once` (`headstart.begin`): its look at each outbox is the settle window's
first observation, and the checkers it starts are the ones the service uses. Driven tick by tick with the
worker's own clock, against the sandbox on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from structlog.testing import capture_logs

from invoicesync.config import Config
from invoicesync.headstart import HeadStart, begin
from invoicesync.sandbox import Sandbox
from invoicesync.service import Service
from invoicesync.wiring import Loop, sandbox_options
from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.harness import drop, files_in, load

SETTLE_SECONDS = 5.0
LOOKED_AT = 1000.0  # the head start's clock


@contextmanager
def first_loop(config: Config, head_start: HeadStart, now: list[float]) -> Iterator[Loop]:
    """The service's loop for the first outbox, its clocks reading `now[0]`."""
    service = Service(config, once=True, head_start=head_start)
    with Sandbox.start(sandbox_options(config)) as sandbox:
        service._sandbox = sandbox
        loop = service._build(config.outboxes[0])
        loop.worker.monotonic = loop.worker.intake.monotonic = lambda: now[0]
        try:
            yield loop
        finally:
            loop.watcher.stop()
            loop.marketplace.close()
            loop.journal.close()
            head_start.checkers.close()


def test_a_file_unchanged_since_the_head_start_is_claimed_at_the_first_look(tmp_path: Path) -> None:
    config = load(tmp_path, outbox_overrides={"watch": {"settle_seconds": SETTLE_SECONDS}})
    root = tmp_path / "shop"
    drop(root, "EARLY0001.pdf", sample_pdf("EARLY0001"))
    head_start = begin(config, monotonic=lambda: LOOKED_AT)
    wait_for(lambda: len(head_start.checkers.pids()) > 0, timeout_seconds=30, what="a checker started")
    now = [LOOKED_AT + SETTLE_SECONDS]  # the service's first look comes a settle window later
    with first_loop(config, head_start, now) as loop:
        loop.worker.tick(woken=True, flush=True)
        assert files_in(root, "outbox") == [], "not claimed at the service's first look"

        def delivered() -> bool:
            now[0] += 1.0
            loop.worker.tick(flush=True)
            return files_in(root, "sent") == ["EARLY0001.pdf"]

        wait_for(delivered, timeout_seconds=30, what="EARLY0001.pdf in sent/")


def test_a_file_changed_since_the_head_start_waits_a_whole_settle_window(tmp_path: Path) -> None:
    config = load(tmp_path, outbox_overrides={"watch": {"settle_seconds": SETTLE_SECONDS}})
    root = tmp_path / "shop"
    target = drop(root, "GROWS0001.pdf", sample_pdf("GROWS0001")[:300])
    head_start = begin(config, monotonic=lambda: LOOKED_AT)
    target.write_bytes(sample_pdf("GROWS0001"))  # still being written after the head start looked
    now = [LOOKED_AT + SETTLE_SECONDS]
    with first_loop(config, head_start, now) as loop:
        loop.worker.tick(woken=True, flush=True)
        assert files_in(root, "outbox") == ["GROWS0001.pdf"], "claimed on a look at its older size"
        now[0] += SETTLE_SECONDS
        loop.worker.tick(woken=True, flush=True)
        assert files_in(root, "outbox") == []


def test_no_checker_is_started_when_no_file_waits(tmp_path: Path) -> None:
    config = load(tmp_path, outboxes=["shop", "missing"])
    (tmp_path / "missing").rmdir()  # a root not there (yet): the service's health check says so
    drop(tmp_path / "shop", "EMPTY0001.pdf", b"")  # empty: it waits for its bytes, not for a checker
    with capture_logs() as events:
        head_start = begin(config)
        head_start.checkers.close()  # a checker being started would be started, then stopped, by now
    assert [event["event"] for event in events if event["event"].startswith("checker_")] == []
    assert list(head_start.first_look(tmp_path / "shop" / "outbox")) == ["EMPTY0001.pdf"]
    assert head_start.first_look(tmp_path / "missing" / "outbox") == {}
