"""An Octopia upload runs beside the outbox's loop: a slow one (a large bundle on a seller's uplink) does
not hold up the files the loop can finish meanwhile. In-process, against the sandbox on loopback with
every answer slowed."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from invoicesync.service import Service
from tests.badfiles import sample_pdf
from tests.harness import drop, files_in, load

SLOW_SECONDS = 2.0  # every answer of the sandbox (token, upload, poll) comes this late


def test_a_refused_file_is_finished_while_an_upload_waits_for_its_answer(tmp_path: Path) -> None:
    config = load(tmp_path, faults={"slow_rate": 1.0, "slow_seconds": SLOW_SECONDS, "seed": 1})
    root = tmp_path / "shop"
    drop(root, "SLOWUP0001.pdf", sample_pdf("SLOWUP0001"))
    drop(root, "no order here.pdf", sample_pdf("SLOWUP0001"))  # refused: its name names no order

    with capture_logs() as events:
        tally = Service(config, once=True).run()

    assert tally == {"sent": 1, "failed": 1, "in_flight": 0, "waiting": 0}
    assert files_in(root, "sent") == ["SLOWUP0001.pdf"] and files_in(root, "failed") == ["no order here.pdf"]
    order = [
        event["event"] if event["event"] != "file_finished" else f"finished {event['file']}"
        for event in events
        if event["event"] in ("batch_uploaded", "file_finished")
    ]
    assert order == ["finished no order here.pdf", "batch_uploaded", "finished SLOWUP0001.pdf"]
