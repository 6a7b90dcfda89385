"""Issue 12.1 and 12.2, as reported: a dropped report and another file's report never claim one name, and
a clash is worked around, never fatal, across restarts. Through `invoicesync once` (a real subprocess,
without the capabilities that let root write any folder) against a sandbox the test holds."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.sandbox import Sandbox
from invoicesync.statedir import JOURNAL_NAME
from tests.conftest import wait_for
from tests.harness import drop, leftovers
from tests.integration.test_outbox_entries import WITHOUT_ROOT_READ, can_drop_root_read
from tests.oncerun import events, run_once, sandbox_config, start_sandbox

WITHOUT_ROOT_WRITE = WITHOUT_ROOT_READ  # without CAP_DAC_OVERRIDE, folder modes bite root too


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


def named(tmp_path: Path) -> int:
    """Files decided and given their name in failed/ or sent/, not moved there yet."""
    path = tmp_path / "state" / JOURNAL_NAME
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        query = "SELECT COUNT(*) FROM items WHERE state = 'decided' AND dest_name IS NOT NULL"
        return int(db.execute(query).fetchone()[0])
    except sqlite3.OperationalError:  # made, its tables not yet
        return 0
    finally:
        db.close()


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if not path.name.startswith(".")}


def test_a_dropped_report_is_never_overwritten_by_the_report_of_its_namesake(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """12.1: failed/ unwritable; `Y1234567.pdf.error.json` dropped and decided; then 200 junk PDFs and a junk
    `Y1234567.pdf`, all decided and named; failed/ writable again, and `once` finishes them in groups of
    200 (the dropped report first, its namesake's report last). Every dropped byte survives in failed/."""
    if shutil.which("setpriv") is None or not can_drop_root_read():
        pytest.skip("setpriv cannot drop CAP_DAC_OVERRIDE here, and with it failed/ cannot refuse a file")
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    (root / "failed").mkdir(parents=True)
    dropped = {"Y1234567.pdf.error.json": b'{"schema": "invoicesync.report/1", "note": "a person\'s copy"}\n'}
    drop(root, "Y1234567.pdf.error.json", dropped["Y1234567.pdf.error.json"])
    (root / "failed").chmod(0o555)
    log = (tmp_path / "run.log").open("w")
    daemon = subprocess.Popen(  # `run`, so every file is decided and named before anything is finished
        [*WITHOUT_ROOT_WRITE, sys.executable, "-m", "invoicesync", "run", "-c", str(config)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: named(tmp_path) == 1, timeout_seconds=30, what="the dropped report named")
        for index in range(200):
            name = f"J{index:07d}.pdf"
            dropped[name] = f"junk {index}\n".encode()
            drop(root, name, dropped[name])
        dropped["Y1234567.pdf"] = b"junk with the dropped report's name\n"
        drop(root, "Y1234567.pdf", dropped["Y1234567.pdf"])
        wait_for(lambda: named(tmp_path) == len(dropped), timeout_seconds=60, what="every file named")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()
        (root / "failed").chmod(0o755)
    assert "Traceback" not in (tmp_path / "run.log").read_text()

    third = run_once(config, cwd=tmp_path)

    assert third.returncode == 0, third.stdout + third.stderr
    failed = contents(root / "failed")
    kept = sorted(failed.values())
    for name, data in dropped.items():
        assert data in kept, f"{name} was lost"
    assert failed["Y1234567.pdf.error.json"] == dropped["Y1234567.pdf.error.json"]
    assert len(failed) == 2 * len(dropped)  # each file beside its own report
    assert leftovers(root) == []
    assert sandbox.received() == []


def test_a_failed_file_moved_back_with_its_report_never_stops_the_outbox(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """12.2: `BAD12345.pdf` and its `.error.json` dropped together: both finished, `once` ends, and the next
    start (whose recovery used to exit 1) finds nothing wrong; done twice, the second pair gets new names."""
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    report_bytes = b'{"schema": "invoicesync.report/1", "outcome": "failed"}\n'
    for attempt in range(2):
        drop(root, "BAD12345.pdf.error.json", report_bytes)
        drop(root, "BAD12345.pdf", f"not a pdf, try {attempt}\n".encode())
        result = run_once(config, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert not [e for e in events(output) if e.get("event") == "outbox_loop_failed"], output
        assert leftovers(root) == []
    restart = run_once(config, cwd=tmp_path)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    failed = contents(root / "failed")
    assert list(failed.values()).count(report_bytes) == 2
    assert b"not a pdf, try 0\n" in failed.values() and b"not a pdf, try 1\n" in failed.values()
    assert len(failed) == 8  # four dropped files, each beside its own report
    codes = [e["code"] for e in events(result.stdout + result.stderr) if e.get("event") == "file_finished"]
    assert sorted(codes) == ["InvalidPdf", "ReportFile"]
    assert sandbox.received() == []
