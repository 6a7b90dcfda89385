"""inbox.runner (shell): inbox passes, by hand (`invoicesync inbox`) or every `inbox.every` in the daemon.

`open_pass` assembles one pass for an outbox (its own marketplace client: a pass never shares a connection
with the outbox's uploads); `InboxRunner` runs them on a thread of their own beside the outbox's loop, so
a long download never delays an upload. One pass at a time per state directory (`inbox.lock`): the daemon
and a pass run by hand take turns.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import structlog

from invoicesync.checks.content import Rules
from invoicesync.config import OutboxSettings
from invoicesync.errors import ServiceError
from invoicesync.inbox import plan
from invoicesync.inbox.fetch import InboxPass, PassResult
from invoicesync.inbox.folder import InboxFolder
from invoicesync.inbox.journal import INBOX_JOURNAL_NAME, InboxJournal
from invoicesync.marketplaces.issued import InboxSource
from invoicesync.sandbox import Sandbox
from invoicesync.wiring import make_marketplace

INBOX_FOLDER = "inbox"
INBOX_MAX_BYTES = 100_000_000  # one invoice the marketplace issues (a statement of many lines), at most
LOCK_NAME = "inbox.lock"
BUSY_RETRY_SECONDS = 60.0
MAX_SLEEP_SECONDS = 60.0  # a runner looks at the clock at least this often (a clock set forward)


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[bool]:
    """Whether this process may run a pass now (an flock on `inbox.lock`, released on exit)."""
    with open(state_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def inbox_source(box: OutboxSettings, sandbox: Sandbox | None) -> tuple[InboxSource, Callable[[], None]]:
    """The outbox's marketplace as a source of issued invoices, and how to close its client."""
    from invoicesync.marketplaces.kaufland import KauflandMarketplace  # lazily: see wiring's imports
    from invoicesync.marketplaces.octopia import OctopiaMarketplace

    marketplace = make_marketplace(box, sandbox)
    if not isinstance(marketplace, OctopiaMarketplace | KauflandMarketplace):
        raise ServiceError(f"Outbox {box.name!r}: its marketplace issues no invoices to fetch.")
    return marketplace.inbox(), marketplace.close


def open_pass(
    box: OutboxSettings,
    state_dir: Path,
    source: InboxSource,
    log: structlog.typing.FilteringBoundLogger,
    *,
    stop: threading.Event | None = None,
) -> tuple[InboxPass, InboxJournal]:
    if box.inbox.since is None:
        raise ServiceError(f"Outbox {box.name!r}: inbox.since is not set.")
    if not box.root.is_dir():
        raise ServiceError(f"Outbox {box.name!r}: its root {box.root} is missing (a share not mounted?).")
    journal = InboxJournal(state_dir / INBOX_JOURNAL_NAME)
    inbox_pass = InboxPass(
        outbox=box.name,
        source=source,
        journal=journal,
        folder=InboxFolder(box.root / INBOX_FOLDER, Rules(max_bytes=INBOX_MAX_BYTES)),
        since=box.inbox.since,
        max_bytes=INBOX_MAX_BYTES,
        state_dir=state_dir,
        log=log,
        stop=stop,
    )
    return inbox_pass, journal


def run_once(
    box: OutboxSettings,
    state_dir: Path,
    sandbox: Sandbox | None,
    log: structlog.typing.FilteringBoundLogger,
    *,
    since: date | None = None,
    refetch: str | None = None,
    stop: threading.Event | None = None,
) -> PassResult | None:
    """One pass for `box`; None when another pass holds the state directory's inbox lock."""
    with exclusive(state_dir) as mine:
        if not mine:
            return None
        source, close = inbox_source(box, sandbox)
        try:
            inbox_pass, journal = open_pass(box, state_dir, source, log, stop=stop)
            try:
                return inbox_pass.run(since=since, refetch=refetch)
            finally:
                journal.close()
        finally:
            close()


class InboxRunner:
    """One outbox's inbox passes in the daemon: due `every` after the last began (sooner after a pass
    that left invoices pending), on a thread of their own; `stop` waits for the download under way."""

    def __init__(
        self,
        box: OutboxSettings,
        state_dir: Path,
        sandbox: Sandbox | None,
        log: structlog.typing.FilteringBoundLogger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._box, self._state_dir, self._sandbox = box, state_dir, sandbox
        self._log, self._clock = log, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"inbox-{box.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _due_in_seconds(self) -> float:
        journal = InboxJournal(self._state_dir / INBOX_JOURNAL_NAME)
        try:
            last = journal.last_pass(self._box.name)
        finally:
            journal.close()
        now = self._clock()
        clean = last is not None and last.complete and last.error is None
        due = plan.next_pass_at(
            None if last is None else last.started_at, clean, self._box.inbox.every_seconds, now
        )
        return (due - now).total_seconds()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._due_in_seconds()
                if wait <= 0:
                    result = run_once(self._box, self._state_dir, self._sandbox, self._log, stop=self._stop)
                    wait = BUSY_RETRY_SECONDS if result is None else 0.0
            except Exception as exc:  # a pass never takes the daemon down: said, and tried again later
                self._log.error("inbox_pass_failed", reason=str(exc) or type(exc).__name__)
                wait = plan.RETRY_SECONDS
            if wait > 0:
                self._stop.wait(min(wait, MAX_SLEEP_SECONDS))
