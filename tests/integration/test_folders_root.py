"""Issue 12.19 and 13.7: a file in flight is finished where it was claimed, whatever today's host name or
configured root. The journal is left as a run under another root (and host) would leave it, the config
then points the outbox at a new root, and `invoicesync once` runs for real against a sandbox we hold."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.journal import Journal
from invoicesync.model import ItemOutcome, Stage
from invoicesync.sandbox import Sandbox
from invoicesync.statedir import JOURNAL_NAME
from tests.badfiles import sample_pdf
from tests.harness import files_in, leftovers, report
from tests.oncerun import events, run_once, sandbox_config, start_sandbox

OLD_HOST = "old-container-7f3a"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


def claimed_under(tmp_path: Path, old_root: Path, order: str, data: bytes, *, delivered: bool) -> str:
    """Journal `order`.pdf as claimed under `old_root` by OLD_HOST and checked; `delivered`: its import is
    done and it only waits to be finished. Its bytes are put where that run put them. Returns its id."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    journal = Journal(state / JOURNAL_NAME)
    item_id = hashlib.sha256(order.encode()).hexdigest()[:16]
    claim_name = f"{item_id}__{order}.pdf"
    journal.record_claims(
        [
            {
                "item_id": item_id,
                "outbox": "shop",
                "host": OLD_HOST,
                "root": str(old_root),
                "file_name": f"{order}.pdf",
                "claim_name": claim_name,
                "ext": "pdf",
                "received_at": "2026-12-01T10:00:00+01:00",
            }
        ]
    )
    sha256 = hashlib.sha256(data).hexdigest()
    journal.mark_ready(item_id, order_id=order, size=len(data), sha256=sha256, ready_at=0.0)
    if delivered:
        batch_id = f"b{item_id[:8]}"
        journal.create_batch(
            batch_id=batch_id,
            outbox="shop",
            bundle_name=f"shop-{batch_id}",
            endpoint="bulk",
            order_id=None,
            item_ids=[item_id],
            now=0.0,
        )
        journal.batch_submitted(
            batch_id, import_id="imp-earlier", raw={"status": "Success"}, submitted_at=0.0
        )
        journal.record_outcomes(batch_id, [ItemOutcome(item_id, Stage.IMPORT, None)])
    journal.close()
    folder = old_root / ".processing" / OLD_HOST
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("outbox", "sent", "failed"):
        (old_root / name).mkdir(exist_ok=True)
    (folder / claim_name).write_bytes(data)
    return item_id


def test_a_delivered_file_is_finished_in_the_root_it_was_claimed_in(tmp_path: Path, sandbox: Sandbox) -> None:
    """13.7: the batch was delivered, then `root` changed: the PDF and its receipt land together in the old
    root's sent/, nothing is left in its .processing/, and the change is said."""
    old_root = tmp_path / "old-share"
    data = sample_pdf("MOVD1234")
    claimed_under(tmp_path, old_root, "MOVD1234", data, delivered=True)
    config = sandbox_config(tmp_path, sandbox)  # the outbox `shop` now lives in tmp_path/shop
    new_root = tmp_path / "shop"

    result = run_once(config, cwd=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert files_in(old_root, "sent") == ["MOVD1234.pdf"]
    assert (old_root / "sent" / "MOVD1234.pdf").read_bytes() == data
    assert report(old_root, "sent", "MOVD1234.pdf")["import_id"] == "imp-earlier"
    assert leftovers(old_root) == []
    assert files_in(new_root, "sent") == [] and list((new_root / "sent").iterdir()) == []
    assert sandbox.received() == []  # delivered before: never sent again
    changed = [e for e in events(output) if e.get("event") == "outbox_root_changed"]
    assert len(changed) == 1, output
    assert changed[0]["former_root"] == str(old_root) and changed[0]["files"] == 1


def test_a_checked_file_is_sent_from_where_it_was_claimed(tmp_path: Path, sandbox: Sandbox) -> None:
    """12.19 with 13.7: checked under another host name and root, not sent yet: its bytes are found where the
    journal says, sent once, and finished there."""
    old_root = tmp_path / "old-share"
    data = sample_pdf("WAIT1234")
    claimed_under(tmp_path, old_root, "WAIT1234", data, delivered=False)
    config = sandbox_config(tmp_path, sandbox)

    result = run_once(config, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["sha256"] for row in sandbox.received()] == [hashlib.sha256(data).hexdigest()]
    assert files_in(old_root, "sent") == ["WAIT1234.pdf"]
    assert leftovers(old_root) == []
    assert files_in(tmp_path / "shop", "failed") == []


def test_a_former_root_whose_sent_folder_is_a_link_is_not_finished_through_it(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """12.12 for a former root (which the health check does not watch): its sent/ became a link; the file
    waits in its .processing/, said as finish_blocked, and nothing lands behind the link."""
    old_root = tmp_path / "old-share"
    claimed_under(tmp_path, old_root, "LNKD1234", sample_pdf("LNKD1234"), delivered=True)
    (old_root / "sent").rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (old_root / "sent").symlink_to(elsewhere, target_is_directory=True)
    config = sandbox_config(tmp_path, sandbox)

    result = run_once(config, cwd=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert list(elsewhere.iterdir()) == []
    assert [name.split("__", 1)[1] for name in leftovers(old_root)] == ["LNKD1234.pdf"]
    blocked = [e for e in events(output) if e.get("event") == "finish_blocked"]
    assert blocked and "symbolic link" in blocked[0]["reason"], output


def test_status_names_the_former_root_while_files_wait_there(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """13.7: `status` says that files in flight are under the former root (here the old share is gone, so
    they wait), until they are finished."""
    from invoicesync import commands
    from invoicesync.config import load_config

    old_root = tmp_path / "old-share"
    claimed_under(tmp_path, old_root, "GONE1234", sample_pdf("GONE1234"), delivered=True)
    config = load_config(sandbox_config(tmp_path, sandbox))
    assert commands.status(config, as_json=True) == 0
    row = json.loads(capsys.readouterr().out)["outboxes"][0]
    assert row["former_roots"] == {str(old_root): 1}
    commands.status(config, as_json=False)
    assert f"1 file in flight under the former root {old_root}" in capsys.readouterr().out


def test_a_journal_of_schema_2_gains_the_root_column(tmp_path: Path) -> None:
    """Journals written before the root was kept: their items have none and are found under today's root."""
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE items DROP COLUMN root")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    journal = Journal(path)
    try:
        journal.record_claims(
            [
                {
                    "item_id": "a1",
                    "outbox": "shop",
                    "host": "h",
                    "file_name": "A1234567.pdf",
                    "claim_name": "a1__A1234567.pdf",
                    "ext": "pdf",
                    "received_at": "2026-12-01T10:00:00+01:00",
                }
            ]
        )
        item = journal.item("a1")
        assert item is not None and item.root is None
    finally:
        journal.close()
