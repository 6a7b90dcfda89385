"""The marketplace interface admits a synchronous marketplace (Kaufland's shape: one PDF per order,
answered at once) without special cases in the loop: `submit` hands back a terminal snapshot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from invoicesync.config import OutboxSettings
from invoicesync.model import (
    Batch,
    Endpoint,
    FileResult,
    FileStatus,
    ImportSnapshot,
    ImportStatus,
    Submission,
)
from invoicesync.sandbox import Sandbox
from invoicesync.service import Service
from tests.badfiles import sample_pdf
from tests.harness import drop, files_in, leftovers, load, report


class AnswersAtOnce:
    """A stand-in for a synchronous marketplace: each request is decided when it is made."""

    name = "kaufland"
    asks_before_upload = True

    def __init__(self) -> None:
        self.requests: list[Batch] = []
        self.polls = 0
        self.progress: Callable[[], None] = lambda: None

    def prepare(self, batch: Batch) -> dict[str, object]:
        return {}

    def submit(self, batch: Batch) -> Submission:
        self.requests.append(batch)
        files = tuple(
            FileResult(
                batch.bundle_name,
                item.upload_name,
                item.order_id,
                FileStatus.FAILURE if item.order_id.startswith("GONE") else FileStatus.SUCCESS,
                "OrderNotFound" if item.order_id.startswith("GONE") else None,
                "no such order" if item.order_id.startswith("GONE") else None,
            )
            for item in batch.items
        )
        statuses = {f.status for f in files}
        status = (
            ImportStatus.SUCCESS
            if statuses == {FileStatus.SUCCESS}
            else ImportStatus.FAILURE
            if statuses == {FileStatus.FAILURE}
            else ImportStatus.PARTIAL_SUCCESS
        )
        import_id = f"sync-{len(self.requests)}"
        return Submission(import_id, ImportSnapshot(import_id, status, files, raw={"status": status.value}))

    def poll(self, import_id: str, batch: Batch | None = None) -> ImportSnapshot:
        self.polls += 1
        raise AssertionError("a synchronous marketplace is never polled")

    def find_lost(self, batch: Batch, *, sent_after: datetime) -> Submission | None:
        return None

    def check_online(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_a_synchronous_marketplace_finishes_files_without_polling(tmp_path: Path) -> None:
    config = load(tmp_path)
    market = AnswersAtOnce()

    def marketplace_for(box: OutboxSettings, sandbox: Sandbox | None) -> AnswersAtOnce:
        return market

    root = tmp_path / "shop"
    drop(root, "SYNC0001.pdf", sample_pdf("SYNC0001"))
    drop(root, "GONE0001.pdf", sample_pdf("GONE0001"))
    tally = Service(config, once=True, marketplace_for=marketplace_for).run()
    assert tally == {"sent": 1, "failed": 1, "in_flight": 0, "waiting": 0}
    assert market.polls == 0 and all(batch.endpoint is Endpoint.BULK_IMPORT for batch in market.requests)
    assert report(root, "sent", "SYNC0001.pdf")["marketplace"] == "kaufland"
    failed = report(root, "failed", "GONE0001.pdf")
    assert failed["error"]["code"] == "ImportFailed" and failed["error"]["detail"] == "no such order"
    assert files_in(root, "sent") == ["SYNC0001.pdf"] and leftovers(root) == []
