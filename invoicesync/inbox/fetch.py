"""inbox.fetch (shell): one inbox pass of one outbox: list what the marketplace issued, fetch what is new.

In order, each step safe to repeat after a crash at any point:
1. half-written downloads a crash left behind are removed;
2. the window is listed (`plan.pass_window`, in pieces); every invoice listed is recorded as `found`
   before any download (so none is skipped, and one found again is not new);
3. each invoice not yet `stored` is adopted when its file is already in place (a crash between the rename
   and the journal), else downloaded to a temporary name, checked, fsynced and renamed into `inbox/`
   beside its sidecar, then recorded `stored`; a failed download leaves it `found`, for the next pass;
4. the pass is recorded with its counts; it is *complete* when every invoice listed is stored, and only a
   complete pass moves the next window on.
A marketplace answer of an unknown shape ends the pass with that error (and keeps the raw answer in the
state directory); refused credentials end it too (the outbox's own loop pauses on them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import structlog

from invoicesync.errors import MarketplaceError, OutboxBlocked
from invoicesync.inbox import plan
from invoicesync.inbox.folder import InboxFolder, NotAnInvoice
from invoicesync.inbox.journal import InboxJournal, PassCounts
from invoicesync.marketplaces.issued import InboxSource, Issued, ShapeChanged

SIDECAR_SCHEMA = "invoicesync.inbox/1"


@dataclass(frozen=True, slots=True)
class PassResult:
    counts: PassCounts
    complete: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class InboxPass:
    """What one pass needs: where, from which source, into which journal and folder."""

    outbox: str
    source: InboxSource
    journal: InboxJournal
    folder: InboxFolder
    since: date
    max_bytes: int
    state_dir: Path
    log: structlog.typing.FilteringBoundLogger
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    stop: threading.Event | None = None

    def run(self, *, since: date | None = None, refetch: str | None = None) -> PassResult:
        """One pass; `since` lists from that day whatever passes ran before, `refetch` fetches that
        invoice again even when it was stored (and lists from `since` to find it)."""
        if refetch is not None:
            self.journal.refetch(self.outbox, refetch)
        started = self.now()
        after = (
            None if since is not None or refetch is not None else self.journal.last_complete_end(self.outbox)
        )
        window = plan.pass_window(since or self.since, after, started)
        pass_id = self.journal.begin_pass(self.outbox, window.start, window.end, started)
        self.log.info(
            "inbox_pass_started", window_start=window.start.isoformat(), window_end=window.end.isoformat()
        )
        tally = {"found": 0, "new": 0, "fetched": 0, "failed": 0}
        error: str | None = None
        stopped = False
        try:
            self.folder.ensure()
            if removed := self.folder.clean_partials():
                self.log.info("inbox_partials_removed", files=removed)
            listed: dict[str, Issued] = {}
            for piece in plan.split(window) if self.source.windowed else [window]:
                for invoice in self.source.issued(piece.start, piece.end):
                    listed.setdefault(invoice.invoice_id, invoice)
            tally["found"] = len(listed)
            proposed = {
                invoice.invoice_id: invoice.file_name for invoice in listed.values() if invoice.file_name
            }
            names = plan.assign_names(proposed, self.journal.names(self.outbox))
            usable = [
                replace(invoice, file_name=names[invoice.invoice_id])
                for invoice in listed.values()
                if invoice.file_name
            ]
            for invoice in listed.values():
                if not invoice.file_name:
                    tally["failed"] += 1
                    self.log.error(
                        "inbox_invoice_failed",
                        invoice_id=invoice.invoice_id,
                        reason="its id cannot be part of a file name (a slash, a space, a control character)",
                    )
            pairs = [(invoice.invoice_id, invoice.file_name) for invoice in usable]
            tally["new"] = self.journal.remember(self.outbox, self.source.name, pairs, self.now())
            states = self.journal.states(self.outbox)
            if refetch is not None and refetch not in listed:
                error = (
                    f"Invoice {refetch} was not listed from {window.start:%Y-%m-%d}: "
                    "give --since an earlier day."
                )
            for invoice in usable:
                if states.get(invoice.invoice_id) == "stored":
                    continue
                if self.stop is not None and self.stop.is_set():
                    stopped = True
                    break
                if self._fetch(invoice, refetched=invoice.invoice_id == refetch):
                    tally["fetched"] += 1
                else:
                    tally["failed"] += 1
        except (
            OutboxBlocked,
            MarketplaceError,
        ) as exc:  # refused credentials too: the pass ends
            error = str(exc)
            if isinstance(exc, ShapeChanged):
                self._keep_raw(exc.raw)
        except OSError as exc:  # inbox/ itself (a file, a link, a share gone): said, tried again later
            error = f"The inbox folder {self.folder.path} cannot be used: {exc.strerror or exc}."
        traffic = self.source.traffic
        counts = PassCounts(**tally, requests=traffic.requests, retries=traffic.retries)
        complete = error is None and not stopped and tally["failed"] == 0
        self.journal.end_pass(pass_id, complete=complete, counts=counts, error=error, now=self.now())
        event = self.log.error if error else self.log.warning if not complete else self.log.info
        event(
            "inbox_pass_finished",
            complete=complete,
            found=counts.found,
            new=counts.new,
            fetched=counts.fetched,
            failed=counts.failed,
            requests=counts.requests,
            retries=counts.retries,
            **({"reason": error} if error else {}),
        )
        return PassResult(counts, complete, error)

    def _fetch(self, invoice: Issued, *, refetched: bool) -> bool:
        held = None if refetched else self.folder.holds(invoice.file_name, invoice.invoice_id)
        if held is not None:
            self.journal.stored(
                self.outbox, invoice.invoice_id, sha256=held.sha256, size=held.size, now=self.now()
            )
            self.log.info("inbox_invoice_adopted", invoice_id=invoice.invoice_id, file=held.name)
            return True
        partial = self.folder.partial(invoice.file_name)
        try:
            with open(partial, "wb") as sink:
                content_type = self.source.download(invoice, sink, max_bytes=self.max_bytes)
            sidecar = {
                "schema": SIDECAR_SCHEMA,
                "marketplace": self.source.name,
                "invoice_id": invoice.invoice_id,
                "fetched_at": self.now().isoformat(timespec="seconds"),
                "content_type": content_type,
                "marketplace_said": invoice.about,
            }
            placed = self.folder.place(partial, invoice.file_name, sidecar)
        except (MarketplaceError, NotAnInvoice, OSError) as exc:  # OutboxBlocked ends the pass: not caught
            partial.unlink(missing_ok=True)
            self.log.warning("inbox_invoice_failed", invoice_id=invoice.invoice_id, reason=_reason(exc))
            return False
        first = placed[0]
        size = sum(item.size for item in placed)
        self.journal.stored(self.outbox, invoice.invoice_id, sha256=first.sha256, size=size, now=self.now())
        for item in placed:
            self.log.info(
                "inbox_invoice_fetched", invoice_id=invoice.invoice_id, file=item.name, size=item.size
            )
        return True

    def _keep_raw(self, raw: bytes) -> None:
        if not raw:
            return
        path = self.state_dir / f"inbox-{self.outbox}-unreadable-answer.raw"
        try:
            path.write_bytes(raw[: 4 * 1024 * 1024])
        except OSError:
            return
        self.log.error("inbox_answer_kept", path=str(path))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"the inbox folder refused the file: {exc.strerror or exc}"
    return str(exc)
