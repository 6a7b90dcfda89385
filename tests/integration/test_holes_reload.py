"""Issue 12 item 26 (reload): a reload while an upload is on the wire waits for that exchange to end; the
old loop never runs beside the new one (two uploads of one bundle, "Cannot operate on a closed database")."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from structlog.testing import capture_logs

from invoicesync.statedir import JOURNAL_NAME
from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.harness import drop, files_in
from tests.integration.test_resilience import configure, events_named, running


def _uploading(state_dir: Path) -> bool:
    path = state_dir / JOURNAL_NAME
    if not path.exists():
        return False
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return bool(db.execute("SELECT COUNT(*) FROM batches WHERE state = 'uploading'").fetchone()[0])


def test_a_reload_during_an_upload_waits_for_it_and_sends_once(tmp_path: Path) -> None:
    """Before, the loops were given 60 s to stop, then their journal was closed under them and new loops
    started beside them. The sandbox slows every answer alike (the token's too, whose deadline is 30 s),
    so an upload of over 60 s cannot be staged here: the test holds the order of things instead."""
    upload_seconds = 2.0
    config = configure(tmp_path, faults={"slow_rate": 1.0, "slow_seconds": upload_seconds, "seed": 1})
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "RLDU0001.pdf", sample_pdf("RLDU0001"))
        drop(root, "RLDU0002.pdf", sample_pdf("RLDU0002"))
        wait_for(lambda: _uploading(config.state_dir), timeout_seconds=30, what="upload on the wire")
        daemon.service.request_reload()
        wait_for(
            lambda: events_named(events, "service_reloaded"),
            timeout_seconds=upload_seconds + 60,
            what="reloaded",
        )
        wait_for(
            lambda: files_in(root, "sent") == ["RLDU0001.pdf", "RLDU0002.pdf"],
            timeout_seconds=upload_seconds * 4 + 60,
            what="both sent",
        )
        sandbox = daemon.service.sandbox
        assert sandbox is not None
        received = sorted(row["fileName"] for row in sandbox.received())
    assert received == ["RLDU0001.pdf", "RLDU0002.pdf"], "each file uploaded once"
    names = [event["event"] for event in events]
    assert names.index("batch_uploaded") < names.index("service_reloaded"), "the old loop ended first"
    text = json.dumps(events, default=str)
    assert "closed database" not in text
    assert not events_named(events, "outbox_loop_failed")
