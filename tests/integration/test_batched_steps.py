"""Steps done for many files at once (issue 7's speed-ups) keep each file's own outcome and name."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from invoicesync.journal import Journal
from invoicesync.model import ItemState, Stage
from invoicesync.service import Service
from invoicesync.statedir import JOURNAL_NAME
from tests.badfiles import sample_pdf, zip_of
from tests.harness import drop, files_in, leftovers, load, report


def _claim(journal: Journal, item_id: str) -> None:
    journal.record_claims(
        [
            {
                "item_id": item_id,
                "outbox": "shop",
                "host": "h",
                "file_name": f"{item_id}.pdf",
                "claim_name": f"{item_id}__{item_id}.pdf",
                "ext": "pdf",
                "received_at": "2026-01-01T00:00:00+00:00",
            }
        ]
    )


def test_steps_in_one_transaction_commit_together_or_not_at_all(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    for item_id in ("AAAA0001", "AAAA0002"):
        _claim(journal, item_id)
    with pytest.raises(RuntimeError), journal.transaction():
        journal.mark_ready("AAAA0001", order_id="AAAA0001", size=1, sha256="0" * 64, ready_at=1.0)
        raise RuntimeError("the process dies before the commit")
    assert [item.item_id for item in journal.items("shop", ItemState.CLAIMED)] == ["AAAA0001", "AAAA0002"]

    with journal.transaction():
        journal.mark_ready("AAAA0001", order_id="AAAA0001", size=1, sha256="0" * 64, ready_at=1.0)
        journal.decide("AAAA0002", stage=Stage.VALIDATION, error=None)
        other = sqlite3.connect(tmp_path / "journal.sqlite3")  # another reader sees nothing yet
        assert other.execute("SELECT COUNT(*) FROM items WHERE state = 'claimed'").fetchone()[0] == 2
    assert other.execute("SELECT COUNT(*) FROM items WHERE state = 'claimed'").fetchone()[0] == 0
    other.close()
    journal.close()


def test_same_names_finished_together_get_a_place_each(tmp_path: Path) -> None:
    """Two archives each holding `scan 1.pdf` (refused: no order in the name): both entries are decided in
    the same round and finished in the same group, yet neither takes the other's place in failed/."""
    config = load(tmp_path)
    root = tmp_path / "shop"
    drop(root, "ZIPA0001.zip", zip_of([("scan 1.pdf", sample_pdf("ZIPA0001"))]))
    drop(root, "ZIPB0001.zip", zip_of([("scan 1.pdf", sample_pdf("ZIPB0001", text="another"))]))

    Service(config, once=True).run()

    refused = [name for name in files_in(root, "failed") if name.startswith("scan 1")]
    assert sorted(refused) == ["scan 1 (2).pdf", "scan 1.pdf"]
    origins = {report(root, "failed", name)["origin"] for name in refused}
    assert origins == {"ZIPA0001.zip", "ZIPB0001.zip"}
    assert leftovers(root) == []


def test_a_lone_files_batch_window_starts_when_it_appeared(tmp_path: Path) -> None:
    """max_wait_seconds counts from when the file was first seen as it is, not from the end of settling."""
    config = load(tmp_path, outbox_overrides={"watch": {"settle_seconds": 0.5}})
    root = tmp_path / "shop"
    drop(root, "LONE0001.pdf", sample_pdf("LONE0001"))

    Service(config, once=True).run()

    assert files_in(root, "sent") == ["LONE0001.pdf"]
    with sqlite3.connect(config.state_dir / JOURNAL_NAME) as db:
        ready_at, received_at = db.execute("SELECT ready_at, received_at FROM items").fetchone()
    claimed_at = datetime.fromisoformat(received_at).timestamp()
    assert ready_at <= claimed_at - 0.4  # the window began before the file settled and was claimed
