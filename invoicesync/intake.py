"""intake (shell): scan -> settle -> claim, for one outbox; verdicts journaled, safe ZIPs unpacked.

Files enter the journal here. The claim is a rename into `.processing/<host>/` followed by a
journal row; a crash between the two leaves a file the journal does not know, which `adopt`
takes back at start-up (nothing was sent yet). A dropped ZIP is opened safely and each of its
entries becomes an item of its own; the ZIP waits as a `container` until they are all finished.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from invoicesync import archive
from invoicesync.checks.content import Rules
from invoicesync.checks.examine import Examined
from invoicesync.checks.queue import CheckQueue
from invoicesync.journal import ItemRow, Journal
from invoicesync.messages import file_error
from invoicesync.model import FileError, ItemState, Stage
from invoicesync.naming import safe_name, shown_name, split_extension, unusable_name
from invoicesync.outbox import CLAIM_SEPARATOR, Folders, fsync_dir
from invoicesync.settle import NOTHING_SEEN, Kind, Seen, Stat, settle

MAX_CLAIMS_PER_CYCLE = 500  # a start-up backlog is taken in slices so the loop keeps its heartbeat
# ... the first of a burst smaller, so the checkers get their first files at once (a slice is journaled
# before its files are handed over: 500 claims kept them waiting about 0.15 s)
FIRST_CLAIMS_PER_CYCLE = 100
UNPACK_PREFIX = ".unpack-"
UNPACK_RETRY_SECONDS = (
    10.0  # a ZIP that could not be unpacked (share full, refused) is tried again this often
)


@dataclass(slots=True)
class PendingArchive:
    """A dropped ZIP found safe, to be unpacked outside the verdicts' transaction (and again, while the
    share refuses its entries): its verdict is kept here, so it is not checked again meanwhile."""

    item: ItemRow
    size: int
    sha256: str
    due_at: float = 0.0  # monotonic


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Intake:
    outbox_name: str
    folders: Folders
    journal: Journal
    rules: Rules
    settle_seconds: float
    empty_after_seconds: float
    monotonic: Callable[[], float]
    wall: Callable[[], float]
    log: structlog.typing.FilteringBoundLogger
    queue: CheckQueue  # claimed files to the checkers, verdicts back
    seen: dict[str, Seen] = field(default_factory=lambda: dict(NOTHING_SEEN))
    next_check_at: float | None = None
    waiting_empty: int = 0
    waiting_settling: int = 0  # files in outbox/ whose size or time still changes
    empty_said: set[str] = field(default_factory=set)  # empty files in outbox/, each logged once
    empty_journaled: dict[str, float] | None = None  # as last journaled (None: not read since the start)
    # item_id -> wall time its final stat was first seen: a batch's max_wait_seconds counts from there, so a
    # lone file is not held back for company it could have had while it settled (lost on restart: then now)
    seen_at: dict[str, float] = field(default_factory=dict)
    unpacking: dict[str, PendingArchive] = field(default_factory=dict)  # by item_id
    unpack_problem: str | None = None  # why a ZIP waits to be unpacked, until none waits

    # -- scan, settle, claim -----------------------------------------------------------------

    def scan_and_claim(self) -> int:
        """One look at outbox/: claim what is ready. Returns how many files were claimed."""
        listing, subfolders = self.folders.scan()
        for name in subfolders:
            self.log.info("subfolder_ignored", folder=name)
        now = self.monotonic()
        self._restore_empty_clocks(listing, now)
        settled = settle(
            self.seen,
            listing,
            now=now,
            settle_seconds=self.settle_seconds,
            empty_after_seconds=self.empty_after_seconds,
        )
        self.seen = settled.seen
        self.next_check_at = settled.next_check_at
        if settled.next_check_at is not None and any(seen.stat.size > 0 for seen in settled.seen.values()):
            self.queue.checkers.warm()  # files are settling: their checks need not wait for a checker
        empty = {
            name
            for name, seen in settled.seen.items()
            if seen.stat.size == 0 and seen.stat.kind is Kind.FILE and name not in settled.empty_expired
        }
        # said once it has stayed empty for settle_seconds: a file being copied in is empty for a moment
        self.empty_said &= empty
        for name in sorted(empty - self.empty_said):
            if now - settled.seen[name].since >= self.settle_seconds:
                self.log.warning(
                    "file_empty_waiting", file=name, fails_after_seconds=round(self.empty_after_seconds)
                )
                self.empty_said.add(name)
        self.waiting_empty = len(empty)
        self._journal_empty_clocks(empty, now)
        self.waiting_settling = len(settled.seen) - len(empty)
        claims = []
        expired = set(settled.empty_expired)
        unusable: dict[str, FileError] = {}  # item_id -> why its name cannot be kept
        most = MAX_CLAIMS_PER_CYCLE if self.queue.checking else FIRST_CLAIMS_PER_CYCLE
        with self.folders.claiming() as take:
            for name in [*settled.empty_expired, *settled.ready][:most]:
                item_id = new_id()
                # a name that cannot be carried through (not UTF-8, too long) is claimed under a safe one
                # and fails at once, its name as dropped kept in its report: it ends where a person looks
                why = unusable_name(name)
                kept = name if why is None else safe_name(name)
                if take(name, item_id, kept) is None:
                    continue
                seen = self.seen.pop(name, None)
                if seen is not None:
                    self.seen_at[item_id] = self.wall() - (now - seen.since)
                if why is not None:
                    self.log.warning(
                        "file_name_unusable", item_id=item_id, file=shown_name(name), reason=why, kept=kept
                    )
                    unusable[item_id] = file_error(
                        "UnusableFileName",
                        reason=why,
                        safe=kept,
                        detail=f"name as dropped: {shown_name(name)}",
                    )
                claims.append(self._claim_row(item_id, kept, self.folders.claim_name(item_id, kept)))
        if len(settled.ready) + len(expired) > most:
            self.next_check_at = now  # more to take: come back at once
        if claims:
            fsync_dir(self.folders.processing)  # the renames are durable before the journal says so
            fsync_dir(self.folders.outbox)
            self.journal.record_claims(claims)
            self.queue.unchecked = True
            for claim in claims:
                self.log.info("file_claimed", item_id=claim["item_id"], file=claim["file_name"])
        for claim in claims:
            if claim["item_id"] in unusable:
                self.journal.decide(
                    claim["item_id"], stage=Stage.VALIDATION, error=unusable[claim["item_id"]]
                )
            elif claim["file_name"] in expired:
                self.journal.decide(claim["item_id"], stage=Stage.VALIDATION, error=file_error("EmptyFile"))
        return len(claims)

    def _restore_empty_clocks(self, listing: dict[str, Stat], now: float) -> None:
        """Once per start: an empty file journaled as waiting keeps its clock (a `once` run from cron, or a
        restart, does not start its `empty_after` window again)."""
        if self.empty_journaled is not None:
            return
        self.empty_journaled = self.journal.empty_since(self.outbox_name)
        wall = self.wall()
        for name, since in self.empty_journaled.items():
            stat = listing.get(name)
            if stat is not None and stat.size == 0 and stat.kind is Kind.FILE:
                self.seen[name] = Seen(stat, now - max(0.0, wall - since))

    def _journal_empty_clocks(self, empty: set[str], now: float) -> None:
        """Journal the empty files waiting, with since when, whenever that set changes."""
        wall = self.wall()
        waiting = {name: wall - (now - self.seen[name].since) for name in empty}
        if self.empty_journaled is not None and set(waiting) == set(self.empty_journaled):
            return
        self.journal.set_empty_waiting(self.outbox_name, waiting)
        self.empty_journaled = waiting

    def adopt(self) -> int:
        """Files in .processing/<host>/ that the journal does not know: claimed, then a crash."""
        claims = []
        for host, claim_name in self.folders.claimed():
            item_id, separator, name = claim_name.partition(CLAIM_SEPARATOR)
            if not separator or self.journal.knows(item_id):
                continue
            claims.append(self._claim_row(item_id, name, claim_name, host=host))
        if claims:
            self.journal.record_claims(claims)
            self.queue.unchecked = True
            self.log.info("files_adopted", files=len(claims))
        return len(claims)

    # -- content -----------------------------------------------------------------------------

    def check_claimed(self) -> None:
        """Journal the verdicts the checkers have given (one commit for all), then hand them more claimed
        files (`checks.queue`). A crash before a commit leaves those files `claimed`, to be checked again;
        so does a checker that cannot start: the rest of the loop (uploads, polls, finishing) goes on."""
        fault: BaseException | None = None
        answered = False
        try:
            done = self.queue.done()
            if done:
                with self.journal.transaction():
                    for check in done:
                        problem = check.problem()
                        if problem is None:
                            took = round(self.monotonic() - check.submitted_at, 3)
                            self._journal_verdict(check.item, check.future.result(), check_seconds=took)
                            answered = True
                        else:  # not the file's fault: it stays claimed and is checked again
                            fault = fault or problem
            self._unpack_due()  # outside the transaction: unpacking writes to the share, and may fail
            self.queue.faulted(fault, answered=answered)
            self.queue.feed(
                lambda after_seq, limit: self.journal.items(
                    self.outbox_name, ItemState.CLAIMED, after_seq=after_seq, limit=limit
                ),
                lambda item: self.folders.claimed_path(item.host, item.claim_name, item.root),
                busy=self.unpacking,
            )
        except BaseException:
            self.queue.rewind()  # rolled back or cut short: look at every claimed file again next time
            raise

    def _journal_verdict(self, item: ItemRow, found: Examined, *, check_seconds: float | None = None) -> None:
        seen_at = self.seen_at.pop(item.item_id, None)
        if found.error is not None:
            self._fail(
                item,
                found.error,
                order_id=found.order_id,
                size=found.size,
                sha256=found.sha256,
                check_seconds=check_seconds,
            )
        elif found.archive:  # unpacked once the verdicts are committed (`_unpack_due`)
            self.unpacking[item.item_id] = PendingArchive(item, found.size or 0, found.sha256 or "")
        else:
            assert found.order_id is not None and found.sha256 is not None  # examine's promise when it passes
            ready_at = self.wall() if seen_at is None else seen_at
            self.journal.mark_ready(
                item.item_id,
                order_id=found.order_id,
                size=found.size or 0,
                sha256=found.sha256,
                ready_at=ready_at,
            )
            self.log.info(
                "file_ready",
                item_id=item.item_id,
                file=item.file_name,
                order_id=found.order_id,
                sha256=found.sha256,
                check_seconds=check_seconds,
            )

    def _fail(
        self,
        item: ItemRow,
        error: FileError,
        *,
        order_id: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
        check_seconds: float | None = None,
    ) -> None:
        self.journal.decide(
            item.item_id, stage=Stage.VALIDATION, error=error, order_id=order_id, size=size, sha256=sha256
        )
        self.log.info(
            "file_refused",
            item_id=item.item_id,
            file=item.file_name,
            code=error.code,
            check_seconds=check_seconds,
        )

    @property
    def next_unpack_at(self) -> float | None:
        """When (monotonic) a ZIP waiting for room is tried again, or None."""
        return min((pending.due_at for pending in self.unpacking.values()), default=None)

    def _unpack_due(self) -> None:
        """Unpack the safe ZIPs that are due. One the share refuses (full, not writable) waits in
        .processing/, tried again every UNPACK_RETRY_SECONDS, with `unpack_problem` saying why; every
        other file goes on meanwhile."""
        now = self.monotonic()
        for item_id, pending in list(self.unpacking.items()):
            if pending.due_at > now:
                continue
            try:
                self._open_archive(pending.item, pending.size, pending.sha256)
            except OSError as exc:
                pending.due_at = now + UNPACK_RETRY_SECONDS
                where = self.folders.root_of(pending.item.root) / ".processing"
                self.unpack_problem = (
                    f"The ZIP {pending.item.file_name} cannot be unpacked in {where} "
                    f"({exc.strerror or exc}): it waits there and is tried again every "
                    f"{UNPACK_RETRY_SECONDS:g} s; other files go on. Make room on the share."
                )
                continue
            del self.unpacking[item_id]
        if not self.unpacking:
            self.unpack_problem = None

    def _open_archive(self, item: ItemRow, size: int, sha256: str) -> None:
        """A safe ZIP becomes one item per entry, in one transaction with the container's own state.
        OSError (ours, not the file's: the share is full or refuses): nothing is kept, the ZIP waits."""
        path = self.folders.claimed_path(item.host, item.claim_name, item.root)
        unpack_dir = self.folders.claimed_path(item.host, f"{UNPACK_PREFIX}{item.item_id}", item.root)
        if unpack_dir.exists():
            shutil.rmtree(unpack_dir)  # left by a crash before the entries were journaled
        unpack_dir.mkdir()
        try:
            unpacked = archive.unpack(path, unpack_dir, self.rules)
        except OSError:
            shutil.rmtree(unpack_dir, ignore_errors=True)  # what was written takes no room meanwhile
            raise
        if isinstance(unpacked, FileError):
            shutil.rmtree(unpack_dir, ignore_errors=True)
            self._fail(item, unpacked, size=size, sha256=sha256)
            return
        claims = []
        for entry in unpacked.entries:
            entry_id = new_id()
            entry_name = os.path.basename(entry.name.replace("\\", "/"))
            claim_name = f"{unpack_dir.name}/{entry.path.name}"
            claims.append(
                self._claim_row(
                    entry_id,
                    entry_name,
                    claim_name,
                    origin=item.item_id,
                    received_at=item.received_at,
                    host=item.host,
                    root=item.root,
                )
            )
        self.journal.record_claims(claims, container=(item.item_id, size, sha256))
        self.queue.unchecked = True
        self.log.info("archive_opened", item_id=item.item_id, file=item.file_name, entries=len(claims))

    def _claim_row(
        self,
        item_id: str,
        name: str,
        claim_name: str,
        *,
        origin: str | None = None,
        received_at: str | None = None,
        host: str | None = None,
        root: str | None = None,
    ) -> dict[str, Any]:
        """The journal row of a file now under <root>/.processing/<host>/ as `claim_name`: where it lies is
        journaled, so neither a new host name nor a changed `root` loses it."""
        return {
            "item_id": item_id,
            "outbox": self.outbox_name,
            "host": host or self.folders.host,
            "root": root or str(self.folders.root),
            "file_name": name,
            "claim_name": claim_name,
            "origin_id": origin,
            "ext": split_extension(name)[1],
            "received_at": received_at or self._now_iso(),
        }

    def _now_iso(self) -> str:
        return datetime.fromtimestamp(self.wall()).astimezone().isoformat()
