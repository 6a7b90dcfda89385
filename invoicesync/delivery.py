"""delivery (shell): plan -> bundle -> upload -> look up lost answers -> poll -> record outcomes.

The protocol of ARCHITECTURE.md, each step journaled before the next:

1. a batch and its unique bundle name are journaled (`planned`) before a byte leaves;
2. `uploading` (with the send time) is journaled before the request; the import ID is journaled
   the moment it arrives (`submitted`);
3. an upload whose answer was lost stays `uploading` and is looked up with `find_lost` before
   anything is sent again; it is re-sent only when surely absent, after `Limits.lost_grace_seconds`;
4. polls follow the journaled `next_attempt_at`; a terminal answer records every item's outcome
   in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from invoicesync.bundle import Changed, build_bundle
from invoicesync.errors import OutboxBlocked, RejectedError, TransientError, UnknownOutcome
from invoicesync.inflight import InFlight
from invoicesync.journal import BatchRow, ItemRow, Journal
from invoicesync.lifecycle import (
    Finished,
    Flight,
    FlightItem,
    GiveUp,
    LookAgain,
    Lost,
    PollAgain,
    Resend,
    Step,
    advance,
    after_empty_look,
    poll_delay,
    result_positions,
    timed_out,
)
from invoicesync.logs import redact_text
from invoicesync.marketplaces import Marketplace
from invoicesync.messages import file_error
from invoicesync.model import (
    Batch,
    BatchItem,
    BatchState,
    Endpoint,
    FileError,
    ImportSnapshot,
    ItemOutcome,
    ItemState,
    Stage,
    Submission,
)
from invoicesync.naming import CONTENT_TYPES, upload_name
from invoicesync.outbox import Folders
from invoicesync.pause import NOT_PAUSED, Pause, refused
from invoicesync.plan import PlanItem
from invoicesync.staging import NotRegular, discard, stage, stage_dir
from invoicesync.step import (
    Batching,
    BatchStep,
    Duplicate,
    Earlier,
    LookForLost,
    NewBatch,
    OpenBatch,
    Poll,
    SendingAction,
    SendingView,
    Upload,
    checked_enough,
    due_steps,
    plan_sending,
    wake_at,
)

DISAPPEARED = ": it disappeared from .processing/ before it was sent (taken by an antivirus, or a person)"
KEPT_CHANGING = ": it kept changing after it was checked (a program is still writing it)"
LOST_GRACE_SECONDS = 30.0  # an unanswered upload is re-sent only when not listed this long after it was lost
RETRY_MAX_SECONDS = 300.0  # the longest Retry-After honoured


@dataclass(frozen=True, slots=True)
class Limits:
    max_files: int
    max_bytes: int
    max_wait_seconds: float
    poll_first_seconds: float
    poll_max_seconds: float
    give_up_after_seconds: float
    lost_grace_seconds: float = LOST_GRACE_SECONDS  # how soon an accepted upload surely shows in the list
    one_per_request: bool = False  # the marketplace takes one file per request (Kaufland)
    parallel_uploads: int = 1  # uploads in flight beside the loop at once (each its own request)

    @property
    def batching(self) -> Batching:
        return Batching(self.max_files, self.max_bytes, self.max_wait_seconds, self.one_per_request)


@dataclass
class Delivery:
    outbox_name: str
    folders: Folders
    journal: Journal
    marketplace: Marketplace
    limits: Limits
    bundle_dir: Path
    destination: str  # the marketplace and seller files go to: duplicates are counted there only
    wall: Callable[[], float]
    log: structlog.typing.FilteringBoundLogger
    pause: Pause = NOT_PAUSED  # uploads held back for a reason a person must fix (`pause`)
    last_error: str | None = None
    next_deadline: float | None = None  # wall time a waiting bulk batch must leave
    rechecks: bool = False  # files were sent back to be checked again (their bytes changed)
    changed_checks: dict[str, int] = field(default_factory=dict)  # item_id -> times found changed
    on_answer: Callable[[], None] = lambda: None  # wakes the loop: a call beside it has ended
    _in_flight: InFlight = field(init=False)

    def __post_init__(self) -> None:
        self._in_flight = InFlight(self.limits.parallel_uploads, lambda: self.on_answer())

    # -- plan --------------------------------------------------------------------------------

    def plan(self, *, flush: bool, checking: bool = False, orders_checking: Collection[str] = ()) -> None:
        """Batches of the ready files (`step.plan_sending`). While verdicts are awaited (`checking`), only
        full batches go, and an order with a file still being checked (`orders_checking`) waits for it:
        files claimed together are sent together, the PDF and XML of one order in one request."""
        ready = self.journal.items(self.outbox_name, ItemState.READY)
        if not ready:
            self.next_deadline = None
            return
        delivered = self.journal.delivered_for_ready(self.outbox_name, self.destination)
        view = SendingView(
            ready=[
                PlanItem(r.item_id, r.order_id or "", r.ext, r.size or 0, r.ready_at or 0.0) for r in ready
            ],
            delivered={item_id: _earlier(row, where) for item_id, (row, where) in delivered.items()},
            orders_busy=self.journal.orders_in_flight(self.outbox_name) | set(orders_checking),
        )
        sending = plan_sending(
            view, self.wall(), batching=self.limits.batching, flush=flush, more_coming=checking
        )
        self.next_deadline = sending.deadline
        by_id = {row.item_id: row for row in ready}
        # one commit for the round: a crash before it leaves the files `ready`, planned again next time
        with self.journal.transaction() if sending.actions else contextlib.nullcontext():
            self._open_batches(sending.actions, by_id)

    def _open_batches(self, actions: tuple[SendingAction, ...], by_id: dict[str, ItemRow]) -> None:
        for action in actions:
            match action:
                case Duplicate(item_id=item_id, earlier=earlier):
                    self._duplicate(by_id[item_id], earlier)
                case NewBatch(planned=planned):
                    batch_id = uuid.uuid4().hex[:16]
                    self.journal.create_batch(
                        batch_id=batch_id,
                        outbox=self.outbox_name,
                        bundle_name=f"{self.outbox_name[:24]}-{batch_id}",
                        endpoint=planned.endpoint.value,
                        order_id=planned.order_id,
                        item_ids=[item.item_id for item in planned.items],
                        now=self.wall(),
                        destination=self.destination,
                    )

    def _duplicate(self, item: ItemRow, earlier: Earlier) -> None:
        """Nothing is for a person to do: the file goes to sent/, its receipt naming the earlier delivery."""
        duplicate_of = dataclasses.asdict(earlier)
        self.journal.decide(
            item.item_id, stage=Stage.VALIDATION, error=None, result={"duplicate_of": duplicate_of}
        )
        self.log.info(
            "file_duplicate", item_id=item.item_id, file=item.file_name, import_id=earlier.import_id
        )

    # -- the open batches, each at its own time ----------------------------------------------

    def advance_batches(self, *, polls_only: bool = False) -> float | None:
        """Carry every due batch one step (`step.due_steps`); return the earliest wall time delivery wants
        attention. `polls_only` (the outbox's folders are unavailable): only imports already submitted are
        polled. A step that pauses the outbox ends the round: no other call is made until `pause.until`."""
        going = self._collect()
        rows = {row.batch_id: row for row in self._open_rows()}
        opened = [_open(row) for row in rows.values()]
        steps = due_steps(opened, self.pause, self.wall(), polls_only=polls_only)
        if not steps:  # nothing carried out: the batches are as just read (most turns, in a burst)
            return wake_at(opened, self.pause)
        uploads = [rows[step.batch_id] for step in steps if isinstance(step, Upload)]
        others = [step for step in steps if not isinstance(step, Upload)]
        going = going and all(
            self._carry_out(step, rows[step.batch_id]) for step in others
        )  # stops at a pause
        if going and uploads:
            self._launch(uploads[: self._in_flight.room])
        return wake_at([_open(row) for row in self._open_rows()], self.pause)

    def _open_rows(self) -> list[BatchRow]:
        """The open batches with no call in flight (those wake the loop when they end)."""
        return [
            row for row in self.journal.open_batches(self.outbox_name) if row.batch_id not in self._in_flight
        ]

    def close(self) -> None:
        """The loop has stopped: the calls running beside it end and their answers are journaled."""
        try:
            self._in_flight.settle()
            self._collect(launch=False)
        finally:
            self._in_flight.close()

    def _carry_out(self, step: BatchStep, row: BatchRow) -> bool:
        """One batch's step; False when it paused the outbox. A batch's trouble never stops the others."""
        try:
            match step:
                case LookForLost():
                    self._reconcile(row)
                case Poll():
                    self._poll(row)
        except Exception as exc:  # one batch's trouble must not stop the others
            return self._failed(row, exc)
        return True

    def _failed(self, row: BatchRow, exc: Exception) -> bool:
        """A step that did not get through: credentials refused pause the outbox (False); a passing trouble
        (or a local one) is tried again later, on the poll backoff or the marketplace's Retry-After."""
        now = self.wall()
        if isinstance(exc, OutboxBlocked):
            self._pause(str(exc))
            return False
        if isinstance(exc, TransientError):
            self._note_error(f"{exc}")
            delay = self._retry_delay(row.poll_attempt + 1, exc.retry_after_seconds)
            self.log.warning(
                "batch_step_deferred",
                batch_id=row.batch_id,
                state=row.state,
                reason=str(exc),
                retry_in_seconds=round(delay, 2),
            )
        else:
            self.log.error("batch_step_failed", batch_id=row.batch_id, state=row.state, exc_info=exc)
            self._note_error(f"batch {row.batch_id}: {exc}")
            delay = self._retry_delay(row.poll_attempt + 1, None)
        self.journal.schedule_batch(row.batch_id, state=row.state, next_attempt_at=now + delay)
        return True

    def _batch(self, row: BatchRow) -> Batch:
        bulk = row.endpoint == Endpoint.BULK_IMPORT
        items = tuple(
            self._batch_item(item, self._claimed(item) if bulk else self._staged(row, item))
            for item in self.journal.batch_items(row.batch_id)
            if item.state is ItemState.BATCHED
        )
        bundle_path = (
            self.bundle_dir / f"{row.bundle_name}.zip" if row.endpoint == Endpoint.BULK_IMPORT else None
        )
        earlier = (
            self.journal.earlier_deliveries(row.order_id, self.destination, before=row.batch_id)
            if row.order_id
            else []
        )
        return Batch(
            batch_id=row.batch_id,
            bundle_name=row.bundle_name,
            endpoint=Endpoint(row.endpoint),
            items=items,
            order_id=row.order_id,
            bundle_path=None if bundle_path is None else str(bundle_path),
            prepared=json.loads(row.prepared) if row.prepared else {},
            earlier=tuple(earlier),
        )

    def _batch_item(self, item: ItemRow, path: Path) -> BatchItem:
        return BatchItem(
            item_id=item.item_id,
            order_id=item.order_id or "",
            upload_name=upload_name(item.order_id or "", item.ext),
            path=str(path),
            size=item.size or 0,
            content_type=CONTENT_TYPES.get(item.ext, "application/octet-stream"),
            sha256=item.sha256 or "",
        )

    def _claimed(self, item: ItemRow) -> Path:
        return self.folders.claimed_path(item.host, item.claim_name, item.root)

    def _staged(self, row: BatchRow, item: ItemRow) -> Path:
        return stage_dir(self.bundle_dir, row.bundle_name) / item.item_id

    def _stage(self, row: BatchRow) -> bool:
        """Copy each file of the batch out of .processing/ (see `staging`; a bulk batch's copy is its ZIP,
        see `bundle`); a file changed since its check goes back to be checked again, one gone or no longer
        a plain file fails alone, and the others go on. False when no file is left to send."""
        if row.endpoint == Endpoint.BULK_IMPORT:
            return self._bundle(row)
        folder = stage_dir(self.bundle_dir, row.bundle_name)
        folder.mkdir(parents=True, exist_ok=True)
        kept = 0
        for item in self.journal.batch_items(row.batch_id):
            if item.state is not ItemState.BATCHED:
                continue
            try:
                staged = stage(self._claimed(item), self._staged(row, item), item.sha256 or "")
            except (FileNotFoundError, NotRegular) as exc:
                self._unsendable(item, exc)
                continue
            if staged.matches:
                kept += 1
            else:
                self._changed(item)
        if kept == 0:
            self._record(row, [], None)
        return kept > 0

    def _bundle(self, row: BatchRow) -> bool:
        """A bulk batch's ZIP, made from the claimed files unless made already (every upload of the batch
        sends that one); a file that stops it is taken out of the batch as `_stage` does, and the ZIP is
        made again of the others. False when no file is left to send."""
        path = self.bundle_dir / f"{row.bundle_name}.zip"
        while not path.exists():
            items = [
                item for item in self.journal.batch_items(row.batch_id) if item.state is ItemState.BATCHED
            ]
            if not items:
                self._record(row, [], None)
                return False
            problems = build_bundle([self._batch_item(item, self._claimed(item)) for item in items], path)
            for item in items:
                match problems.get(item.item_id):
                    case None:
                        pass
                    case Changed():
                        self._changed(item)
                    case FileNotFoundError() | NotRegular() as exc:
                        self._unsendable(item, exc)
                    case exc:
                        raise exc  # a local trouble (the share, a read error): the batch is tried again later
        return True

    def _unsendable(self, item: ItemRow, exc: FileNotFoundError | NotRegular) -> None:
        """A file gone from .processing/, or no longer a plain file there, fails alone; raises when the
        share itself is gone, not the file: the batch waits for it."""
        if isinstance(exc, NotRegular):
            self._take_out(item, file_error("NotARegularFile", what=exc.what))
        elif self._claimed(item).parent.is_dir():
            self._take_out(item, file_error("Unreadable", reason=DISAPPEARED))
        else:
            raise exc

    def _take_out(self, item: ItemRow, error: FileError) -> None:
        self.journal.unbatch(item.item_id, error=error)
        self.log.warning("file_refused", item_id=item.item_id, file=item.file_name, code=error.code)

    def _changed(self, item: ItemRow) -> None:
        """Bytes that are not the bytes checked are never sent: checked again, at most MAX_CHANGED_CHECKS."""
        count = self.changed_checks.get(item.item_id, 0) + 1
        self.changed_checks[item.item_id] = count
        self.log.warning("file_changed_after_check", item_id=item.item_id, file=item.file_name, times=count)
        if checked_enough(count):
            self._take_out(item, file_error("Unreadable", reason=KEPT_CHANGING))
            return
        self.journal.unbatch(item.item_id)
        self.rechecks = True

    def _launch(self, rows: list[BatchRow]) -> None:
        """Start the calls of due batches beside the loop (`inflight`): `prepare` where nothing is noted
        yet (here, when it asks the marketplace nothing), then `submit`, once `uploading` is journaled
        (one commit for all of them)."""
        sending: list[tuple[BatchRow, Batch]] = []
        with self.journal.transaction():
            for row in rows:
                try:
                    if not self._stage(row):
                        continue
                    batch = self._batch(row)
                except Exception as exc:
                    self._failed(row, exc)
                    continue
                if row.prepared is None and self.marketplace.asks_before_upload:
                    self._in_flight.start("prepare", row, batch, self.marketplace.prepare)
                    continue
                fresh = row.prepared is None
                ready, _ = self._noted(
                    row, batch, self._prepare_here(batch) if fresh else batch.prepared, fresh=fresh
                )
                if ready is not None:
                    sending.append((row, ready))
        for row, batch in sending:  # after the commit that journaled them `uploading`
            self._in_flight.start("submit", row, batch, self.marketplace.submit)

    def _prepare_here(self, batch: Batch) -> Mapping[str, Any] | Exception:
        try:
            return self.marketplace.prepare(batch)
        except Exception as exc:  # said by `_noted`, as an answer from beside the loop would be
            return exc

    def _collect(self, *, launch: bool = True) -> bool:
        """Journal the answers of the calls that ended (one commit), then start the uploads whose order was
        read (unless `launch` is off: the loop stops); False when an answer paused the outbox (no upload
        starts then)."""
        # a call withdrawn before it began changed nothing: its batch stays as journaled (`planned`, or
        # `uploading`, looked up before anything is sent again)
        done = [call for call in self._in_flight.done() if not call.future.cancelled()]
        if not done:
            return True
        going = True
        sending: list[tuple[BatchRow, Batch]] = []
        with self.journal.transaction():
            for call in (call for call in done if call.phase == "submit"):
                going = self._answered(call.row, call.batch, call.result()) and going
            for call in (call for call in done if call.phase == "prepare"):
                ready, ok = self._noted(
                    call.row, call.batch, call.result(), fresh=True, send=going and launch
                )
                going = going and ok
                if ready is not None:
                    sending.append((call.row, ready))
        for row, batch in sending:
            self._in_flight.start("submit", row, batch, self.marketplace.submit)
        return going

    def _noted(
        self,
        row: BatchRow,
        batch: Batch,
        note: Mapping[str, Any] | Exception,
        *,
        fresh: bool,
        send: bool = True,
    ) -> tuple[Batch | None, bool]:
        """What `prepare` said of a batch: a refusal fails its files; trouble tries it again later; a note
        (`fresh`: new) is journaled, then, unless `send` is off, `uploading` is journaled. The batch to send
        now (or None), and False when the outbox paused."""
        if isinstance(note, RejectedError):
            self._rejected(row, batch, note)
            return None, True
        if isinstance(note, Exception):
            return None, self._failed(row, note)
        if fresh:  # journaled before the upload it guards
            self.journal.batch_prepared(row.batch_id, note)
            batch = dataclasses.replace(batch, prepared=note)
        if not send:
            return None, True
        self.journal.batch_uploading(row.batch_id, sent_at=self.wall())
        return batch, True

    def _answered(self, row: BatchRow, batch: Batch, answer: Submission | Exception) -> bool:
        """The upload's answer journaled: an import (or a finished delivery), a lost answer, a refusal."""
        if isinstance(answer, UnknownOutcome):
            self._note_error(str(answer))
            self.log.warning("upload_answer_lost", batch_id=row.batch_id, bundle=row.bundle_name)
            self.journal.batch_lost(row.batch_id, lost_at=self.wall(), empty_looks=0)
            self.journal.schedule_batch(
                row.batch_id, state=BatchState.UPLOADING, next_attempt_at=self.wall() + 1.0
            )
            return True
        if isinstance(answer, RejectedError):
            self._rejected(row, batch, answer)
            return True
        if isinstance(answer, TransientError):  # nothing was received (no connection, 429s): sent again
            return self._failed(row, answer)
        if isinstance(answer, Exception):  # anything else: `uploading`, so looked up before it is sent again
            return self._failed(self.journal.batch(row.batch_id) or row, answer)
        self._resume()
        self.log.info(
            "batch_uploaded",
            batch_id=row.batch_id,
            bundle=row.bundle_name,
            import_id=answer.import_id,
            files=len(batch.items),
            bytes=sum(item.size for item in batch.items),
        )
        self._submitted(row, answer)
        return True

    def _rejected(self, row: BatchRow, batch: Batch, exc: RejectedError) -> None:
        self.log.warning("upload_rejected", batch_id=row.batch_id, status=exc.status_code, code=exc.code)
        error = file_error(
            exc.code, order=row.order_id, detail=exc.detail, marketplace_code=exc.marketplace_code
        )
        self._record(row, [ItemOutcome(item.item_id, Stage.UPLOAD, error) for item in batch.items], None)

    def _submitted(self, row: BatchRow, submission: Submission) -> None:
        now = self.wall()
        self.journal.batch_submitted(
            row.batch_id, import_id=submission.import_id, raw=submission.snapshot.raw, submitted_at=now
        )
        fresh = self.journal.batch(row.batch_id)
        if fresh is not None:
            self._consider(fresh, submission.snapshot)

    def _reconcile(self, row: BatchRow) -> None:
        """An upload with no answer: adopt the import if the marketplace has it, re-send only if surely not
        (`lifecycle.after_empty_look`)."""
        sent_at = row.sent_at or row.created_at
        lost_at = row.lost_at if row.lost_at is not None else self.wall()  # a crash mid-upload: from now
        found = self.marketplace.find_lost(
            self._batch(row), sent_after=datetime.fromtimestamp(sent_at).astimezone()
        )
        if found is not None:
            self.log.info("lost_upload_found", batch_id=row.batch_id, import_id=found.import_id)
            self.journal.batch_lost(row.batch_id, lost_at=None, empty_looks=0)
            self._submitted(row, found)
            return
        now = self.wall()
        match after_empty_look(lost_at, row.empty_looks, now, grace_seconds=self.limits.lost_grace_seconds):
            case Resend():
                self.log.info("lost_upload_absent", batch_id=row.batch_id, looks=row.empty_looks + 1)
                self.journal.batch_lost(row.batch_id, lost_at=None, empty_looks=0)
                self.journal.schedule_batch(row.batch_id, state=BatchState.PLANNED, next_attempt_at=now)
            case LookAgain(at=at, empty_looks=looks):
                self.journal.batch_lost(row.batch_id, lost_at=lost_at, empty_looks=looks)
                self.journal.schedule_batch(row.batch_id, state=BatchState.UPLOADING, next_attempt_at=at)

    def _poll(self, row: BatchRow) -> None:
        assert row.import_id is not None  # submitted batches always carry one
        try:
            snapshot = self.marketplace.poll(row.import_id, self._batch(row))
        except TransientError:
            # No answer at all, however long: past give_up_after the import times out all the same.
            flight = self._flight(row, row.import_id)
            gave_up = timed_out(flight, self.wall(), give_up_after_seconds=self.limits.give_up_after_seconds)
            if gave_up is None:
                raise
            self._record(row, list(gave_up.outcomes), None)
            self.log.info(
                "import_finished",
                batch_id=row.batch_id,
                import_id=flight.import_id,
                status="Unanswered",
                delivered=0,
                failed=len(gave_up.outcomes),
            )
            return
        self._resume()
        self._consider(row, snapshot)

    def _flight(self, row: BatchRow, import_id: str) -> Flight:
        items = self.journal.batch_items(row.batch_id)
        return Flight(
            batch_id=row.batch_id,
            bundle_name=row.bundle_name,
            import_id=row.import_id or import_id,
            items=tuple(
                FlightItem(i.item_id, upload_name(i.order_id or "", i.ext), i.order_id) for i in items
            ),
            submitted_at=row.submitted_at or self.wall(),
            poll_attempt=row.poll_attempt,
        )

    def _next_step(self, row: BatchRow, snapshot: ImportSnapshot) -> tuple[Flight, Step]:
        flight = self._flight(row, snapshot.import_id)
        step = advance(
            flight,
            snapshot,
            self.wall(),
            first_seconds=self.limits.poll_first_seconds,
            max_seconds=self.limits.poll_max_seconds,
            give_up_after_seconds=self.limits.give_up_after_seconds,
        )
        return flight, step

    def _consider(self, row: BatchRow, snapshot: ImportSnapshot) -> None:
        flight, step = self._next_step(row, snapshot)
        match step:
            case PollAgain(at=at, attempt=attempt):
                self.journal.set_next_poll(row.batch_id, at=at, attempt=attempt, raw=snapshot.raw)
            case Lost():
                self.log.warning(
                    "import_unknown_to_marketplace", batch_id=row.batch_id, import_id=flight.import_id
                )
                self.journal.batch_lost(row.batch_id, lost_at=self.wall(), empty_looks=0)
                self.journal.schedule_batch(
                    row.batch_id, state=BatchState.UPLOADING, next_attempt_at=self.wall()
                )
            case Finished(outcomes=outcomes) | GiveUp(outcomes=outcomes):
                results = _entries_by_item(flight, snapshot)
                self._record(row, list(outcomes), snapshot, results)
                self.log.info(
                    "import_finished",
                    batch_id=row.batch_id,
                    import_id=flight.import_id,
                    status=snapshot.status.value,
                    delivered=sum(1 for o in outcomes if o.delivered),
                    failed=sum(1 for o in outcomes if not o.delivered),
                    seconds=round(self.wall() - (row.sent_at or row.created_at), 3),
                )

    def _record(
        self,
        row: BatchRow,
        outcomes: list[ItemOutcome],
        snapshot: ImportSnapshot | None,
        results: dict[str, dict[str, object]] | None = None,
    ) -> None:
        self.journal.record_outcomes(
            row.batch_id, outcomes, results=results, raw=None if snapshot is None else snapshot.raw
        )
        with contextlib.suppress(FileNotFoundError):
            (self.bundle_dir / f"{row.bundle_name}.zip").unlink()
        discard(self.bundle_dir, row.bundle_name)

    # -- pausing -----------------------------------------------------------------------------

    @property
    def paused_reason(self) -> str | None:
        return self.pause.reason

    def _pause(self, reason: str) -> None:
        now = self.wall()
        pause = refused(
            self.pause,
            reason,
            now,
            first_seconds=self.limits.poll_first_seconds,
            max_seconds=self.limits.poll_max_seconds,
        )
        if self.pause.reason != reason:
            self.log.error("outbox_paused", reason=reason, retry_in_seconds=round(pause.until - now, 2))
        self.pause = pause
        self.last_error = redact_text(reason)

    def _resume(self) -> None:
        if self.pause.reason is not None:
            self.log.info("outbox_resumed")
        self.pause = NOT_PAUSED

    def _note_error(self, message: str) -> None:
        self.last_error = redact_text(message)

    def _retry_delay(self, attempt: int, retry_after_seconds: float | None) -> float:
        """`Retry-After` when the marketplace gave one, else the poll backoff (first_seconds, doubling)."""
        if retry_after_seconds is not None:
            return min(retry_after_seconds, RETRY_MAX_SECONDS)
        return poll_delay(
            attempt, first_seconds=self.limits.poll_first_seconds, max_seconds=self.limits.poll_max_seconds
        )


def _open(row: BatchRow) -> OpenBatch:
    return OpenBatch(row.batch_id, row.state, row.next_attempt_at)


def _earlier(row: ItemRow, destination: str | None) -> Earlier:
    return Earlier(
        file=row.file_name,
        import_id=row.import_id,
        delivered_at=row.finished_at,
        destination=destination or f"outbox {row.outbox}",
    )


def _entries_by_item(flight: Flight, snapshot: ImportSnapshot) -> dict[str, dict[str, object]]:
    """Each item's own raw entry of the final answer, for its report."""
    raw_files = snapshot.raw.get("files") if isinstance(snapshot.raw, dict) else None
    if not isinstance(raw_files, list):
        return {}
    entries = [entry for entry in raw_files if isinstance(entry, dict)]  # as parsed into snapshot.files
    return {
        item_id: json.loads(json.dumps(entries[position]))
        for item_id, position in result_positions(flight, snapshot.files).items()
        if position < len(entries)
    }
