"""checks.queue (shell): one outbox's claimed files handed to the checkers, and their verdicts gathered.

At most MAX_CHECKS_IN_FLIGHT files are with the checkers at once (they keep working while the loop uploads);
the rest wait their turn (`unchecked`). A check that gives no verdict for a reason not the file's (a checker
that cannot start: a broken installation) leaves the file claimed: `checks_unavailable` is said once,
claimed files wait CHECK_RETRY_SECONDS between tries, and `checks_available` is said once a verdict comes
again. Files claimed together are sent together: `awaited()` tells delivery which orders still have a file
being checked, and until when a partial batch waits for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from invoicesync.checks.content import Rules
from invoicesync.checks.examine import Examined
from invoicesync.checks.pool import Checkers
from invoicesync.errors import CheckerUnavailable
from invoicesync.journal import ItemRow
from invoicesync.naming import order_id_of

MAX_CHECKS_IN_FLIGHT = 1000  # handed to the checkers at once: they keep working while the loop uploads
CHECK_RETRY_SECONDS = 10.0  # checkers unavailable (a broken installation): claimed files wait this long
VERDICT_WAIT_SECONDS = 5.0  # a partial batch waits at most this long for verdicts on files claimed with it


@dataclass(frozen=True, slots=True)
class Check:
    """A claimed file handed to the checkers, and when."""

    item: ItemRow
    future: Future[Examined]
    submitted_at: float  # monotonic

    def problem(self) -> BaseException | None:
        """Why no verdict came (a checker fault, or the check was withdrawn), or None."""
        if self.future.cancelled():
            return CheckerUnavailable("The check was withdrawn.")
        return self.future.exception()


@dataclass(frozen=True, slots=True)
class Awaited:
    """Verdicts expected soon: the orders they name, and until when (monotonic) partial batches wait."""

    orders: frozenset[str]
    until: float | None


@dataclass
class CheckQueue:
    checkers: Checkers
    order_pattern: re.Pattern[str]
    rules: Rules
    check_seconds: float  # one file's content check, at most
    monotonic: Callable[[], float]
    log: structlog.typing.FilteringBoundLogger
    on_checked: Callable[[], None]  # wakes the loop: a verdict is waiting to be journaled
    checking: dict[str, Check] = field(default_factory=dict)  # by item_id
    unchecked: bool = True  # claimed files may be waiting for a checker (set by every claim)
    # every claimed file up to this `seq` has been looked at (handed over, being checked, or busy elsewhere):
    # new claims come after it; `rewind` when files go back to `claimed` (a fault, a recheck, a rollback)
    looked_seq: int = 0
    retry_checks_at: float = 0.0  # monotonic; after a checker fault, claimed files wait until then
    checks_problem: str | None = None  # the checker fault last said, until a verdict comes again

    def done(self) -> list[Check]:
        """The checks that have ended (a verdict or a fault), taken off the queue."""
        finished = [check for check in self.checking.values() if check.future.done()]
        for check in finished:
            del self.checking[check.item.item_id]
        return finished

    def rewind(self) -> None:
        """Files went back to `claimed` (a checker fault, bytes changed after their check, a verdict rolled
        back): look at every claimed file again."""
        self.unchecked = True
        self.looked_seq = 0

    def feed(
        self,
        claimed: Callable[[int, int], Iterable[ItemRow]],
        path_of: Callable[[ItemRow], Path],
        busy: Collection[str],
    ) -> None:
        """Hand the checkers claimed files not being checked (nor `busy` elsewhere), while there is room,
        unless a checker fault makes them wait. `claimed(after_seq, n)`: the first n files claimed after
        `after_seq`, oldest first — read only when there is room, and only those not looked at yet (the
        loop turns once per handful of verdicts: reading every claimed file each time was quadratic in a
        month-end drop)."""
        if not self.unchecked or self.monotonic() < self.retry_checks_at:
            return
        room = MAX_CHECKS_IN_FLIGHT - len(self.checking)
        if room <= 0:
            return
        self.unchecked = False
        # past `looked_seq` no file is being checked or busy; from the start (rewound) any may be
        skipped = len(self.checking) + len(busy) if self.looked_seq == 0 else 0
        for item in claimed(self.looked_seq, room + skipped + 1):
            if room == 0:
                self.unchecked = True  # the rest when verdicts have made room
                return
            self.looked_seq = item.seq
            if item.item_id in self.checking or item.item_id in busy:
                continue
            future = self.checkers.submit(
                path_of(item),
                item.file_name,
                pattern=self.order_pattern,
                rules=self.rules,
                entry=item.origin_id is not None,
                time_limit_seconds=self.check_seconds,
            )
            future.add_done_callback(lambda _: self.on_checked())
            self.checking[item.item_id] = Check(item, future, self.monotonic())
            room -= 1

    def faulted(self, fault: BaseException | None, *, answered: bool) -> None:
        """Say a checker fault once (and again when its reason changes) and make claimed files wait; say
        once that checks are available again when a verdict comes."""
        if fault is not None:
            self.rewind()
            self.retry_checks_at = self.monotonic() + CHECK_RETRY_SECONDS
            if str(fault) != self.checks_problem:
                self.checks_problem = str(fault)
                self.log.warning("checks_unavailable", reason=self.checks_problem)
        elif answered and self.checks_problem is not None:
            self.checks_problem = None
            self.log.info("checks_available")

    @property
    def retry_at(self) -> float | None:
        """When (monotonic) claimed files held back by a checker fault are handed over again, or None."""
        return self.retry_checks_at if self.unchecked and self.checks_problem is not None else None

    def awaited(self) -> Awaited:
        """Verdicts still expected soon: files claimed together are sent together, but a partial batch
        waits at most `VERDICT_WAIT_SECONDS` for checks that began that long ago (a slow file, or another
        outbox's burst ahead in the checkers' queue), and an order waits for its own file being checked."""
        now = self.monotonic()
        young = [check for check in self.checking.values() if now - check.submitted_at < VERDICT_WAIT_SECONDS]
        if not young:
            return Awaited(frozenset(), None)
        orders = (order_id_of(check.item.file_name, self.order_pattern) for check in young)
        until = min(check.submitted_at for check in young) + VERDICT_WAIT_SECONDS
        return Awaited(frozenset(order for order in orders if order is not None), until)

    def abandon(self) -> None:
        """The loop stops: checks not begun are withdrawn; their files stay claimed for the next start."""
        for check in self.checking.values():
            check.future.cancel()
        self.checking.clear()
        self.unchecked = True
