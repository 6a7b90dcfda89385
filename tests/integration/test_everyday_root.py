"""Issue 13 item 2: a missing root (a typo, a share not mounted yet) is never created: `check` fails naming
it, the running outbox says so in its status and log and waits; once the root is there, its folders are made
and files flow. Only `create_root: true` makes a root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from invoicesync import commands
from invoicesync.config import load_config
from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.harness import drop, files_in, write_config
from tests.integration.test_resilience import configure, events_named, running, status_json


def _missing_root(document: dict[str, object]) -> None:
    boxes = document["outboxes"]
    assert isinstance(boxes, list)
    boxes[0]["root"] = str(Path(boxes[0]["root"]).parent / "share" / "typo" / "shop")


def test_check_names_a_missing_root_and_makes_nothing(tmp_path: Path, capsys: object) -> None:
    config = configure(tmp_path, _missing_root)
    root = config.outboxes[0].root
    assert commands.check(config, online=False) == 1
    said = capsys.readouterr()  # type: ignore[attr-defined]  # pytest's CaptureFixture
    assert f"root {root} does not exist" in said.err and "create_root: true" in said.err
    assert not (tmp_path / "share").exists()


def test_a_running_outbox_waits_for_its_missing_root_and_never_makes_it(tmp_path: Path) -> None:
    config = configure(tmp_path, _missing_root)
    root = config.outboxes[0].root
    with capture_logs() as events, running(config) as daemon:
        wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="said in status")
        assert "does not exist" in daemon.outbox_status()["problem"]
        daemon.ticks(3)
        assert not (tmp_path / "share").exists()
        root.mkdir(parents=True)  # the share is mounted
        wait_for(lambda: (root / "outbox").is_dir(), timeout_seconds=20, what="folders made in the root")
        drop(root, "ROOT1234.pdf", sample_pdf("ROOT1234"))
        wait_for(lambda: files_in(root, "sent") == ["ROOT1234.pdf"], timeout_seconds=30, what="sent")
    unavailable = events_named(events, "outbox_unavailable")
    assert len(unavailable) == 1 and str(root) in unavailable[0]["reason"]
    assert events_named(events, "outbox_available")
    assert (root / ".invoicesync.lock").exists(), "locked before use"
    assert "outbox_root_created" not in json.dumps(events, default=str)


def test_create_root_makes_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, outbox_overrides={"create_root": True})
    config = load_config(path)
    root = tmp_path / "elsewhere" / "shop"
    config = config.model_copy(update={"outboxes": (config.outboxes[0].model_copy(update={"root": root}),)})
    with capture_logs() as events, running(config):
        wait_for(lambda: (root / "outbox").is_dir(), timeout_seconds=20, what="root made")
    assert events_named(events, "outbox_root_created")


def test_an_empty_file_is_said_once_and_status_says_why_it_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """13.8: an empty file waited `empty_after` with no word anywhere."""
    config = configure(tmp_path)
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "EMPT0001.pdf", b"")
        wait_for(
            lambda: status_json(config, capsys)["outboxes"][0]["why_waiting"],
            timeout_seconds=20,
            what="why said",
        )
        daemon.ticks(5)
        row = status_json(config, capsys)["outboxes"][0]
    assert row["waiting"] == 1
    assert row["why_waiting"] == ["1 empty in outbox/ (kept for a writer to fill; EmptyFile after 3600 s)"]
    said = events_named(events, "file_empty_waiting")
    assert len(said) == 1 and said[0]["file"] == "EMPT0001.pdf" and said[0]["log_level"] == "warning"
