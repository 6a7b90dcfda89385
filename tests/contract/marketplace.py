"""The contract every marketplace adapter keeps (invoicesync/marketplaces/__init__.py), as one test class.

An adapter's test module subclasses `MarketplaceContract` and provides the `subject` fixture: a real
client talking to a real server on 127.0.0.1 (the adapter's sandbox), how to make a batch for an order
the server knows, and a client whose credentials the server refuses. The same tests then hold for
Octopia (asynchronous imports) and for Kaufland (an answer that is already final), so the service loop
needs no special case for either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from invoicesync.errors import OutboxBlocked, TransientError
from invoicesync.marketplaces import Marketplace
from invoicesync.model import Batch, BatchItem, Endpoint, FileStatus, ImportSnapshot, ImportStatus
from tests.badfiles import sample_pdf

POLL_DEADLINE_SECONDS = 30.0


@dataclass
class Subject:
    """What a contract test needs from one adapter."""

    marketplace: Marketplace  # talks to a live server on 127.0.0.1
    batch_for: Callable[[str, Path], Batch]  # a one-file batch for a known order, its file under the Path
    known_order: str
    refused: Callable[[], Marketplace]  # the same server, credentials it refuses
    unreachable: Callable[[int], Marketplace]  # pointed at a closed 127.0.0.1 port
    wait: Callable[[float], None]  # the test's pause between polls (a clock the test controls)
    now: Callable[[], float]  # monotonic, for the poll deadline


def one_pdf_batch(order: str, folder: Path, data: bytes | None = None) -> Batch:
    """A one-file batch for `order` (its PDF, or `data`), staged under `folder`, as delivery makes it."""
    path = folder / f"{uuid.uuid4().hex[:8]}__{order}.pdf"
    path.write_bytes(sample_pdf(order) if data is None else data)
    item = BatchItem(
        item_id=uuid.uuid4().hex[:16],
        order_id=order,
        upload_name=f"{order}.pdf",
        path=str(path),
        size=path.stat().st_size,
        content_type="application/pdf",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    return Batch(
        batch_id=item.item_id,
        bundle_name=f"contract-{uuid.uuid4().hex[:12]}",
        endpoint=Endpoint.ORDER_DOCUMENTS,
        items=(item,),
        order_id=order,
    )


def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepared(subject: Subject, batch: Batch) -> Batch:
    """The batch as delivery hands it over: with what `prepare` noted before the first upload."""
    return dataclasses.replace(batch, prepared=subject.marketplace.prepare(batch))


class MarketplaceContract:
    """Subclass as `TestXxxContract` and give a `subject` fixture."""

    def _finished(
        self, subject: Subject, batch: Batch, import_id: str, first: ImportSnapshot
    ) -> ImportSnapshot:
        snapshot = first
        deadline = subject.now() + POLL_DEADLINE_SECONDS
        while not snapshot.status.is_terminal:
            assert subject.now() < deadline, f"import {import_id} still {snapshot.status}"
            subject.wait(0.1)
            snapshot = subject.marketplace.poll(import_id, batch)
        return snapshot

    def test_a_batch_is_received_and_ends_with_each_file_named(
        self, subject: Subject, tmp_path: Path
    ) -> None:
        batch = prepared(subject, subject.batch_for(subject.known_order, tmp_path))
        submission = subject.marketplace.submit(batch)
        assert submission.import_id
        final = self._finished(subject, batch, submission.import_id, submission.snapshot)
        assert final.status is ImportStatus.SUCCESS, final
        assert [entry.status for entry in final.files] == [FileStatus.SUCCESS]
        names = {entry.name for entry in final.files} | {entry.file_name for entry in final.files}
        assert batch.bundle_name in names or batch.items[0].upload_name in names, final.files

    def test_polling_is_safe_to_repeat(self, subject: Subject, tmp_path: Path) -> None:
        """Also after a crash between the answer and its outcomes: a delivery polled again says the same."""
        batch = prepared(subject, subject.batch_for(subject.known_order, tmp_path))
        submission = subject.marketplace.submit(batch)
        final = self._finished(subject, batch, submission.import_id, submission.snapshot)
        again = subject.marketplace.poll(submission.import_id, batch)
        assert (again.import_id, again.status, again.files) == (final.import_id, final.status, final.files)

    def test_a_received_batch_whose_answer_was_lost_is_found(self, subject: Subject, tmp_path: Path) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        batch = prepared(subject, subject.batch_for(subject.known_order, tmp_path))
        submission = subject.marketplace.submit(batch)
        found = subject.marketplace.find_lost(batch, sent_after=before)
        assert found is not None and found.import_id == submission.import_id

    def test_a_batch_never_sent_is_surely_absent(self, subject: Subject, tmp_path: Path) -> None:
        subject.marketplace.submit(prepared(subject, subject.batch_for(subject.known_order, tmp_path)))
        batch = prepared(subject, subject.batch_for(subject.known_order, tmp_path))  # after the other one
        assert (
            subject.marketplace.find_lost(batch, sent_after=datetime.now(UTC) - timedelta(minutes=5)) is None
        )

    def test_refused_credentials_block_the_outbox(self, subject: Subject) -> None:
        refused = subject.refused()
        try:
            with pytest.raises(OutboxBlocked):
                refused.check_online()
        finally:
            refused.close()

    def test_a_server_out_of_reach_is_a_transient_error(self, subject: Subject, tmp_path: Path) -> None:
        away = subject.unreachable(closed_port())
        try:
            with pytest.raises(TransientError):
                away.check_online()
        finally:
            away.close()

    def test_progress_is_said_while_bytes_move(self, subject: Subject, tmp_path: Path) -> None:
        said: list[float] = []
        subject.marketplace.progress = lambda: said.append(subject.now())
        subject.marketplace.submit(prepared(subject, subject.batch_for(subject.known_order, tmp_path)))
        assert said, "the service feeds systemd's watchdog from progress during long uploads"
