"""Issue 12.9 and 12.16: dropped ZIPs. One that cannot be unpacked because the share is full waits, said
loudly, while the rest goes on, and `once` ends; one whose entries all failed goes to failed/ with a
summary of each entry's fate. Through `invoicesync once` (a real subprocess) against a sandbox we hold,
and a daemon run in-process for `status` while the share is full."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync import commands
from invoicesync.config import load_config
from invoicesync.sandbox import Sandbox
from tests.badfiles import sample_pdf, zip_of
from tests.conftest import wait_for
from tests.harness import drop, files_in, leftovers, report
from tests.integration.test_resilience import _can_mount, _fill, _mount, _umount, configure, running
from tests.oncerun import events, run_once, sandbox_config, start_sandbox

ENTRY_BYTES = 600_000  # incompressible: the ZIP is as large as what it unpacks to


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running_sandbox:
        yield running_sandbox


@pytest.fixture
def small_share(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/shop on a 4 MB filesystem of its own (a share that fills up)."""
    reason = _can_mount(tmp_path)
    if reason:
        pytest.skip(f"no small filesystem for the root: {reason}")
    root = tmp_path / "shop"
    root.mkdir()
    _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root))
    try:
        yield root
    finally:
        _umount(root)


def big_zip(order: str) -> bytes:
    return zip_of([(f"{order}.pdf", sample_pdf(order, padding_bytes=ENTRY_BYTES, random_padding=True))])


def test_a_zip_that_cannot_be_unpacked_on_a_full_share_waits_and_once_ends(
    tmp_path: Path, sandbox: Sandbox, small_share: Path
) -> None:
    config = sandbox_config(tmp_path, sandbox)
    root = small_share
    drop(root, "FULL0001.zip", big_zip("FULL0001"))
    filler = _fill(root, leave_bytes=150_000)  # room for reports, not for the ZIP's entry

    result = run_once(config, cwd=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # ended, and says the outbox needs a person
    blocked = [e for e in events(output) if e.get("event") == "archive_unpack_blocked"]
    assert len(blocked) == 1, output
    assert "FULL0001.zip" in blocked[0]["reason"] and "No space left" in blocked[0]["reason"]
    assert not [e for e in events(output) if e.get("event") == "outbox_loop_failed"], output
    assert files_in(root, "failed") == [] and files_in(root, "sent") == []
    assert [name.split("__", 1)[1] for name in leftovers(root)] == ["FULL0001.zip"]  # waits, whole

    filler.unlink()  # room again: the next run unpacks and sends it
    result = run_once(config, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert files_in(root, "sent") == ["FULL0001.pdf", "FULL0001.zip"]
    assert [row["fileName"] for row in sandbox.received()] == ["FULL0001.pdf"]
    assert leftovers(root) == []


def test_a_zip_waiting_for_room_shows_in_status_while_other_files_move(
    tmp_path: Path, small_share: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(tmp_path)
    root = small_share
    drop(root, "FULL0002.zip", big_zip("FULL0002"))
    filler = _fill(root, leave_bytes=150_000)
    with running(config) as daemon:
        wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="noticed")
        capsys.readouterr()
        assert commands.status(load_config(config.source), as_json=True) == 0
        shown = json.loads(capsys.readouterr().out)["outboxes"][0]["problem"]
        assert "FULL0002.zip" in shown and "No space left" in shown
        drop(root, "MOVE0001.pdf", sample_pdf("MOVE0001"))  # other files keep moving
        wait_for(lambda: files_in(root, "sent") == ["MOVE0001.pdf"], timeout_seconds=20, what="other sent")
        filler.unlink()
        wait_for(lambda: "FULL0002.zip" in files_in(root, "sent"), timeout_seconds=30, what="zip sent")
        wait_for(lambda: daemon.outbox_status()["problem"] is None, timeout_seconds=10, what="cleared")
    assert leftovers(root) == []


def test_a_zip_whose_entries_all_failed_goes_to_failed_with_their_fates(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "shop"
    archive = zip_of([("ZALL0001.pdf", b"not a pdf at all\n" * 20), ("scan 14.pdf", sample_pdf("ZALL0002"))])
    drop(root, "all bad.zip", archive)
    partly = zip_of([("ZPRT0001.pdf", sample_pdf("ZPRT0001")), ("ZPRT0002.pdf", b"junk\n" * 40)])
    drop(root, "partly.zip", partly)
    config = sandbox_config(tmp_path, sandbox)

    result = run_once(config, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    # entries counted, not ZIPs
    assert result.stdout.strip().splitlines()[-1] == "sent=1 failed=3 in_flight=0 waiting=0"
    assert files_in(root, "failed") == ["ZALL0001.pdf", "ZPRT0002.pdf", "all bad.zip", "scan 14.pdf"]
    assert files_in(root, "sent") == ["ZPRT0001.pdf", "partly.zip"]
    summary = report(root, "failed", "all bad.zip")
    assert summary["outcome"] == "failed"
    assert summary["error"]["code"] == "ArchiveNotSent"
    message = summary["error"]["message"]
    assert "ZALL0001.pdf (InvalidPdf)" in message and "scan 14.pdf (InvalidFileName)" in message, message
    assert "not a PDF" not in summary["hint"] and "failed/" in summary["hint"]
    assert {e["file"]: (e["outcome"], e["code"]) for e in summary["entries"]} == {
        "ZALL0001.pdf": ("failed", "InvalidPdf"),
        "scan 14.pdf": ("failed", "InvalidFileName"),
    }
    assert report(root, "sent", "partly.zip")["outcome"] == "sent"
    assert leftovers(root) == []
    capsys.readouterr()
    assert commands.status(load_config(config), as_json=True) == 0
    shown = json.loads(capsys.readouterr().out)["outboxes"][0]
    assert (shown["sent_today"], shown["failed_today"]) == (1, 3)
