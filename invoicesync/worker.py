"""worker (shell): one outbox's loop step, `tick()`: intake, delivery, then finishing.

The worker makes no decisions of its own: `intake` claims and checks files, `delivery` moves
batches along, and finishing names each decided file's place in sent/ or failed/ (journaled), writes
its sidecar, then moves the file, then marks it finished in the journal (each part safe to repeat
after a crash), for up to FINISH_PER_COMMIT files at a time: one commit and one fsync per folder for
the group, not per file. A dropped ZIP is finished once all its entries are, with a summary of their
outcomes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from invoicesync.delivery import Delivery
from invoicesync.health import Health
from invoicesync.intake import UNPACK_PREFIX, Intake
from invoicesync.journal import ItemRow, Journal
from invoicesync.model import ItemState, Stage
from invoicesync.outbox import (
    Folders,
    NameTaken,
    folder_problem,
    fsync_dir,
    names_with_sidecars,
    write_json_files,
)
from invoicesync.report import SCHEMA as REPORT_SCHEMA
from invoicesync.report import (
    ReportFacts,
    archive_error,
    build_report,
    outcome_of,
    sidecar_name,
    sidecar_suffix,
)
from invoicesync.settle import Kind
from invoicesync.step import next_wake

FINISH_PER_COMMIT = 200  # files finished per journal commit and per fsync of their folders


@dataclass
class Tally:
    """Counts the loop thread keeps up to date, so other threads never touch its journal."""

    sent: int = 0
    failed: int = 0
    open: int = 0  # items claimed and not finished yet (as of the last tick)


@dataclass(frozen=True, slots=True)
class OutboxState:
    """What other threads (status, `once`, systemd) may know of an outbox, read from its loop's last step."""

    name: str
    paused: str | None  # why its uploads are paused (credentials, seller refused)
    problem: str | None  # what stops it that a person must fix: folders, state_dir, checkers
    last_error: str | None
    settling: int  # files in outbox/ whose size or time still changes
    empty: int  # empty files waiting in outbox/
    open: int  # claimed and not finished
    sent: int
    failed: int

    @property
    def stuck(self) -> bool:
        return self.paused is not None or self.problem is not None


@dataclass
class Worker:
    name: str
    folders: Folders
    journal: Journal
    intake: Intake
    delivery: Delivery
    marketplace_name: str
    monotonic: Callable[[], float]
    wall: Callable[[], float]
    scan_interval_seconds: float  # poll_seconds in poll mode, rescan_seconds with events
    settling_interval_seconds: float  # poll_seconds: how soon to look again while the outbox is unusable
    tally: Tally = field(default_factory=Tally)
    next_scan_at: float = 0.0
    health: Health | None = None  # state_dir, folders, finishing: checked before each step when set
    _finish_errors: list[OSError] = field(default_factory=list)
    _recovering: bool = False  # `recover` waits for usable folders

    def recover(self) -> None:
        """Start-up: take back claimed files the journal does not know, finish what was decided. Files in
        flight under another root (`root` was changed) are finished there, where they lie: said once."""
        for root, files in self.journal.open_roots(self.name).items():
            if Path(root) != self.folders.root:
                self.intake.log.warning(
                    "outbox_root_changed",
                    former_root=root,
                    root=str(self.folders.root),
                    files=files,
                    reason="files claimed under the former root are finished there, beside their reports",
                )
        self._recovering = True
        if self.health is None or self.health.check():
            self._recover_now()

    def _recover_now(self) -> None:
        """Adoption and finishing go through the folders: only once they are usable (not links)."""
        self.intake.adopt()
        self._finish_all()
        self._recovering = False

    def tick(self, *, flush: bool = False, woken: bool = False) -> float:
        """Do what is due now; return how many seconds until something else is due."""
        if self.health is not None and not self.health.check():
            return self._tick_unhealthy()
        if self._recovering:  # the folders were unusable at start-up
            self._recover_now()
        now = self.monotonic()
        check_due = self.intake.next_check_at is not None and now >= self.intake.next_check_at
        if woken or check_due or now >= self.next_scan_at:
            self.intake.scan_and_claim()
            # Settling needs a look only when a file could be ready (`next_check_at`) or on an event: a
            # crowd of waiting files is not rescanned every poll_seconds in events mode.
            self.next_scan_at = self.monotonic() + self.scan_interval_seconds
        self.intake.check_claimed()
        if self.health is not None:
            self.health.unpacking.set(self.intake.unpack_problem)
        awaited = self.intake.queue.awaited()
        self.delivery.plan(flush=flush, checking=awaited.until is not None, orders_checking=awaited.orders)
        batch_due = self.delivery.advance_batches()
        if self.delivery.rechecks:  # files changed after their check: they are checked again
            self.delivery.rechecks = False
            self.intake.queue.rewind()
        self._finish_all()
        self.tally.open = self.journal.count_open(self.name)
        return self._next_due(batch_due, awaited.until)

    def _tick_unhealthy(self) -> float:
        """state_dir or the folders unusable: claim and finish nothing, poll imports already sent when
        the journal can take their outcomes, and look again after `poll_seconds`."""
        self.next_scan_at = 0.0  # list outbox/ as soon as it can be used again
        wait = self.settling_interval_seconds
        if self.health is not None and self.health.can_poll:
            batch_due = self.delivery.advance_batches(polls_only=True)
            if batch_due is not None:
                wait = min(wait, batch_due - self.wall())
        return max(0.0, wait)

    def _next_due(self, batch_due: float | None, awaited_until: float | None) -> float:
        return next_wake(
            monotonic=self.monotonic(),
            wall=self.wall(),
            monotonic_dues=(
                self.next_scan_at,
                self.intake.next_check_at,
                awaited_until,
                self.intake.next_unpack_at,
                self.intake.queue.retry_at,
            ),
            wall_dues=(batch_due, self.delivery.next_deadline),
        )

    def state(self) -> OutboxState:
        problem = None if self.health is None else self.health.problem()
        checks = self.intake.queue.checks_problem
        return OutboxState(
            name=self.name,
            paused=self.delivery.paused_reason,
            problem=problem or (None if checks is None else f"files cannot be checked: {checks}"),
            last_error=self.delivery.last_error,
            settling=self.intake.waiting_settling,
            empty=self.intake.waiting_empty,
            open=self.tally.open,
            sent=self.tally.sent,
            failed=self.tally.failed,
        )

    def idle(self) -> bool:
        """Nothing open in the journal and nothing in outbox/ but empty files waiting (a FIFO, socket or
        device has size 0 too, but it is not waiting for content: it settles and fails)."""
        if self.journal.count_open(self.name):
            return False
        return all(seen.stat.size == 0 and seen.stat.kind is Kind.FILE for seen in self.intake.seen.values())

    # -- finishing ---------------------------------------------------------------------------

    def _finish_all(self) -> None:
        """`finish_decided`, where a file that cannot be finished (sent/ or failed/ refused) stays in
        .processing/, is reported, and is tried again next time without holding up the others."""
        self._finish_errors.clear()
        self.finish_decided()
        if self.health is not None:
            if self._finish_errors:
                self.health.finish_failed(self._finish_errors[0])
            else:
                self.health.finishing.set(None)

    def finish_decided(self) -> None:
        decided = self.journal.items(self.name, ItemState.DECIDED)
        if decided:  # the reserved names are read only when a file is to be named
            decided = self._with_destinations(decided)
        for start in range(0, len(decided), FINISH_PER_COMMIT):
            self._finish_together(decided[start : start + FINISH_PER_COMMIT])
        for container in self.journal.items(self.name, ItemState.CONTAINER):
            entries = self.journal.entries_of(container.item_id)
            if all(entry.state is ItemState.FINISHED for entry in entries):
                summary = [_entry_summary(entry) for entry in entries]
                self.journal.decide(container.item_id, stage=Stage.VALIDATION, error=archive_error(summary))
                fresh = self.journal.item(container.item_id)
                if fresh is not None:
                    self._finish_together(self._with_destinations([fresh]), entries=summary)
                with contextlib.suppress(OSError):
                    self.folders.claimed_path(
                        container.host, f"{UNPACK_PREFIX}{container.item_id}", container.root
                    ).rmdir()

    def _claimed(self, item: ItemRow) -> Path:
        return self.folders.claimed_path(item.host, item.claim_name, item.root)

    def _destination(self, item: ItemRow) -> tuple[Path, str]:
        """The folder a decided file goes to, and its sidecar's suffix: in the root it was claimed under."""
        return self._folder(item.root, failed=item.file_error is not None), sidecar_suffix(item.file_error)

    def _folder(self, root: str | None, *, failed: bool) -> Path:
        base = self.folders.root_of(root)
        if base == self.folders.root:
            return self.folders.failed if failed else self.folders.sent
        return base / ("failed" if failed else "sent")

    def _with_destinations(self, items: list[ItemRow]) -> list[ItemRow]:
        """Each file's name in sent/ or failed/, journaled (one commit) before any file moves there, so a
        repeat after a crash uses the same name. A name is reserved with its sidecar names, against every
        name the journal has handed out and not yet used, so no name is handed out twice. A journaled
        name found taken by another file before ours moved there is given up for a new one."""
        reserved: dict[Path, set[str]] = {}
        for dest_name, failed, root in self.journal.reserved_names(self.name):
            dest_dir = self._folder(root, failed=failed)
            reserved.setdefault(dest_dir, set()).update(names_with_sidecars(dest_name))
        named = []
        renamed = {item.item_id for item in items if item.dest_name is None or self._taken(item)}
        with self.journal.transaction() if renamed else contextlib.nullcontext():
            for item in items:
                if item.item_id in renamed:
                    dest_dir, _ = self._destination(item)
                    taken = reserved.setdefault(dest_dir, set())
                    name = self.folders.free_name(dest_dir, item.file_name, reserved=taken)
                    taken.update(names_with_sidecars(name))
                    if item.dest_name is not None:
                        self.intake.log.warning(
                            "destination_taken", item_id=item.item_id, dest=item.dest_name, new_dest=name
                        )
                    self.journal.set_dest(item.item_id, name)
                    item = dataclasses.replace(item, dest_name=name)
                named.append(item)
        return named

    def _taken(self, item: ItemRow) -> bool:
        """The journaled destination holds a file that is not this one, which has not moved there yet."""
        if item.dest_name is None or not os.path.lexists(self._claimed(item)):
            return False
        dest_dir, _ = self._destination(item)
        sidecar = dest_dir / sidecar_name(item.dest_name, item.file_error)
        if os.path.lexists(dest_dir / item.dest_name):
            return True
        try:
            existing = sidecar.read_bytes() if os.path.lexists(sidecar) else None
        except OSError:
            return True
        return existing is not None and not _is_report_of(item, existing)

    def _finish_together(self, items: list[ItemRow], entries: list[dict[str, Any]] | None = None) -> None:
        """Every sidecar, one fsync per folder, every move, one fsync per folder, then `finished` for all in
        one commit. A crash anywhere repeats what is not journaled `finished`, with the same names. A file
        that cannot be finished (sent/ or failed/ refused) stays in .processing/, is reported, and is tried
        again next time without holding up the others."""
        items = [item for item in items if self._usable_destination(item)]
        reports = [self._report(item, entries) for item in items]
        by_sidecar = {path: item for item, (path, _, _) in zip(items, reports, strict=True)}
        errors = write_json_files(
            [(path, report) for path, report, _ in reports],
            ours=lambda path, existing: _is_report_of(by_sidecar[path], existing),
        )
        placed: list[tuple[ItemRow, datetime]] = []
        for item, (_, _, finished_at), error in zip(items, reports, errors, strict=True):
            if error is None:
                placed.append((item, finished_at))
            else:
                self._defer(error)
        for folder in {self._destination(item)[0] for item, _ in placed}:
            fsync_dir(folder)  # every report is durable before its file moves in
        moved: list[tuple[ItemRow, datetime]] = []
        touched: set[Path] = set()
        for item, finished_at in placed:
            dest_dir, _ = self._destination(item)
            claim_path = self._claimed(item)
            try:
                self.folders.move_in(claim_path, dest_dir, item.dest_name or item.file_name)
            except NameTaken as exc:  # appeared since its sidecar was written: ours goes, a new name next
                (dest_dir / sidecar_name(item.dest_name or item.file_name, item.file_error)).unlink(
                    missing_ok=True
                )
                self._defer(exc)
                continue
            except OSError as exc:
                self._defer(exc)
                continue
            touched.update((dest_dir, claim_path.parent))
            moved.append((item, finished_at))
        for folder in touched:
            fsync_dir(folder)  # the moves are durable before the journal says `finished`
        with self.journal.transaction() if moved else contextlib.nullcontext():
            for item, finished_at in moved:
                self.journal.mark_finished(item.item_id, finished_at=finished_at)
        for item, _ in moved:
            self._count_and_log(item)

    def _usable_destination(self, item: ItemRow) -> bool:
        """A file claimed under a former root goes to that root's sent/ or failed/, which the health check
        does not watch: one that is a link (or not a folder) is refused here, the file waits, it is said."""
        dest_dir, _ = self._destination(item)
        if dest_dir.parent == self.folders.root:
            return True  # today's root: checked before every step
        problem = folder_problem(dest_dir, writable=False)
        if problem is None:
            return True
        self._defer(OSError(errno.ENOTDIR, problem, str(dest_dir / (item.dest_name or item.file_name))))
        return False

    def _defer(self, exc: OSError) -> None:
        if self.health is None:
            raise exc
        self._finish_errors.append(exc)

    def _report(
        self, item: ItemRow, entries: list[dict[str, Any]] | None
    ) -> tuple[Path, dict[str, Any], datetime]:
        """The sidecar's path and content, and the finishing time it states."""
        error = item.file_error
        dest_dir, _ = self._destination(item)
        dest_name = item.dest_name or item.file_name  # always set by `_with_destinations`
        if entries is None and item.ext == "zip" and item.origin_id is None:  # a repeat after a crash
            entries = [_entry_summary(entry) for entry in self.journal.entries_of(item.item_id)] or None
        finished_at = datetime.fromtimestamp(self.wall()).astimezone()
        origin = self.journal.item(item.origin_id) if item.origin_id else None
        facts = ReportFacts(
            file=item.file_name,
            order_id=item.order_id,
            sha256=item.sha256,
            size=item.size,
            origin=origin.file_name if origin else None,
            stage=Stage(item.stage or Stage.VALIDATION.value),
            error=error,
            marketplace=self.marketplace_name,
            outbox=self.name,
            import_id=item.import_id,
            received_at=datetime.fromisoformat(item.received_at),
            **_result_facts(item.result),
        )
        report = build_report(facts, finished_at=finished_at, entries=entries)
        return dest_dir / sidecar_name(dest_name, error), report, finished_at

    def _count_and_log(self, item: ItemRow) -> None:
        error = item.file_error
        # a dropped ZIP that was unpacked is counted by its files (each finished on its own), never itself
        unpacked = (
            item.ext == "zip" and item.origin_id is None and bool(self.journal.entries_of(item.item_id))
        )
        if not unpacked:
            if error is None:
                self.tally.sent += 1
            else:
                self.tally.failed += 1
        # a file in failed/ needs a person: said at warning, so `journalctl -p warning` shows it
        log = self.intake.log.info if outcome_of(error) == "sent" else self.intake.log.warning
        log(
            "file_finished",
            item_id=item.item_id,
            file=item.file_name,
            outcome=outcome_of(error),
            code=None if error is None else error.code,
            dest=str(Path(self._destination(item)[0].name) / (item.dest_name or item.file_name)),
            # a failed file's report, in its words, for the people told of it (`notify`)
            **({} if error is None else {"message": error.message, "hint": error.hint}),
        )


def _result_facts(result: str | None) -> dict[str, Any]:
    """The journaled result as report facts: the marketplace's answer, or a duplicate's earlier delivery."""
    document = json.loads(result) if result else None
    if isinstance(document, dict) and set(document) == {"duplicate_of"}:
        return {"duplicate_of": document["duplicate_of"]}
    return {"marketplace_result": document}


def _is_report_of(item: ItemRow, existing: bytes) -> bool:
    """`existing` is this item's own report (written before a crash), not a file someone put there."""
    try:
        document = json.loads(existing)
    except ValueError:
        return False
    return (
        isinstance(document, dict)
        and document.get("schema") == REPORT_SCHEMA
        and document.get("file") == item.file_name
        and document.get("received_at") == datetime.fromisoformat(item.received_at).isoformat()
    )


def _entry_summary(entry: ItemRow) -> dict[str, Any]:
    error = entry.file_error
    return {
        "file": entry.file_name,
        "order_id": entry.order_id,
        "outcome": outcome_of(error),
        "code": None if error is None else error.code,
        "report": None if entry.dest_name is None else sidecar_name(entry.dest_name, error),
    }
