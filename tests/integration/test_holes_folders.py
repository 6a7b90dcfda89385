"""Issue 12, folder holes: names at a destination are reserved with their sidecars and never replaced, a
report moved back by a person is set aside, a changed file is never sent unchecked, and links are refused.
Each through `invoicesync once` (a real subprocess) against a sandbox the test holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.journal import Journal
from invoicesync.model import ItemState
from invoicesync.sandbox import Sandbox
from tests.badfiles import sample_pdf
from tests.harness import drop, leftovers
from tests.integration.test_outbox_entries import WITHOUT_ROOT_READ
from tests.oncerun import events, run_once, sandbox_config, start_sandbox

WITHOUT_ROOT_WRITE = WITHOUT_ROOT_READ  # without CAP_DAC_OVERRIDE, folder modes bite root too


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if not path.name.startswith(".")}


def test_a_failed_file_dropped_back_with_its_report_is_set_aside_and_nothing_is_overwritten(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Item 2 (and 1: a file and its sidecar reserve their names together): `BAD12345.pdf` (junk) and
    `BAD12345.pdf.error.json` dropped together both land in failed/, each beside its own report."""
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    old_report = b'{"schema": "invoicesync.report/1", "outcome": "failed", "note": "moved back"}\n'
    drop(root, "BAD12345.pdf.error.json", old_report)
    drop(root, "BAD12345.pdf", b"this is not a pdf at all")
    result = run_once(config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    failed = contents(root / "failed")
    assert old_report in failed.values(), sorted(failed)  # the dropped file survives, byte for byte
    assert b"this is not a pdf at all" in failed.values()
    assert leftovers(root) == []
    assert sandbox.received() == []
    # the dropped report is named as such, not judged as an invoice
    reports = [name for name in failed if name.endswith(".error.json") and failed[name] != old_report]
    codes = {
        events_line["code"]
        for events_line in events(result.stdout + result.stderr)
        if events_line.get("event") == "file_finished"
    }
    assert "ReportFile" in codes, codes
    assert len(reports) == 2, sorted(failed)


def test_two_waves_of_clashing_names_keep_every_file(tmp_path: Path, sandbox: Sandbox) -> None:
    """Item 1 across runs: a report-shaped name already in failed/ and a junk file whose report would take
    that name; then the same again with many files finished together."""
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    dropped: list[bytes] = []
    for wave in range(2):
        for index in range(30):
            data = f"junk {wave} {index}".encode()
            drop(root, f"Y{index:07d}.pdf", data)
            dropped.append(data)
        report_bytes = f'{{"wave": {wave}}}\n'.encode()
        drop(root, "Y0000007.pdf.error.json", report_bytes)
        dropped.append(report_bytes)
        result = run_once(config, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    failed = contents(root / "failed")
    for data in dropped:
        assert data in failed.values(), data
    assert leftovers(root) == []


def test_a_name_taken_at_the_destination_after_naming_gets_a_new_name(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Item 2: a file appearing at a journaled destination is worked around with a new numbered name."""
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    # a first run whose failed/ cannot take files leaves the file decided, its destination journaled
    drop(root, "TAKEN123.pdf", b"junk to be refused")
    (root / "failed").mkdir(parents=True, exist_ok=True)
    (root / "failed").chmod(0o500)
    result = run_once(config, cwd=tmp_path, wrapper=WITHOUT_ROOT_WRITE)
    (root / "failed").chmod(0o755)
    journal = Journal(tmp_path / "state" / "journal.sqlite3")
    try:
        named = [row.dest_name for row in journal.items("shop", ItemState.DECIDED)]
    finally:
        journal.close()
    if named != ["TAKEN123.pdf"]:
        pytest.skip(f"could not leave the file decided here ({named}; {result.returncode})")
    person = b"a person's own file"
    (root / "failed" / "TAKEN123.pdf").write_bytes(person)
    result = run_once(config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    failed = contents(root / "failed")
    assert failed["TAKEN123.pdf"] == person
    assert failed["TAKEN123 (2).pdf"] == b"junk to be refused"
    assert "TAKEN123 (2).pdf.error.json" in failed


def test_sample_pdf_still_sent(tmp_path: Path, sandbox: Sandbox) -> None:
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    drop(root, "GOOD1234.pdf", sample_pdf("GOOD1234"))
    assert run_once(config, cwd=tmp_path).returncode == 0
    assert (root / "sent" / "GOOD1234.pdf").exists()
