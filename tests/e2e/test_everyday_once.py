"""Issue 13 item 1: `once` ends when the marketplace cannot be reached. At `--wait` it stops cleanly, leaves
every file where it is (nothing fails for a passing reason), says what is unfinished and why, and exits 3."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.e2e.conftest import invoicesync
from tests.harness import drop, files_in, leftovers, write_config


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections to it are refused at once
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_once_stops_at_its_wait_when_the_marketplace_is_out_of_reach(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    document = yaml.safe_load(config.read_text())
    port = _closed_port()
    document["outboxes"][0]["octopia"].update(
        base_url=f"http://127.0.0.1:{port}/seller/v2", token_url=f"http://127.0.0.1:{port}/token"
    )
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    root = tmp_path / "shop"
    drop(root, "WAIT0001.pdf", sample_pdf("WAIT0001"))
    started = time.monotonic()
    result = invoicesync("once", "--wait", "4", "-c", str(config), cwd=tmp_path, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert took < 30, took  # a bound, not a deadline asserted to the second
    assert result.stdout.strip().splitlines()[-1] == "sent=0 failed=0 in_flight=1 waiting=0"
    assert "outbox 'shop': 1 file(s) not finished: Could not reach" in result.stderr, result.stderr[-2000:]
    assert '"once_time_up"' in result.stdout + result.stderr
    assert files_in(root, "failed") == [] and files_in(root, "sent") == []
    kept = leftovers(root) + [path.name for path in (root / "outbox").iterdir()]
    assert len(kept) == 1  # in .processing/ or in outbox/
    assert "Traceback" not in result.stdout + result.stderr
    as_json = invoicesync("once", "--json", "--wait", "2", "-c", str(config), cwd=tmp_path, timeout=60)
    assert as_json.returncode == 3
    summary = json.loads(as_json.stdout)  # stdout holds the summary only: `once --json | jq` works
    assert summary["in_flight"] + summary["waiting"] == 1 and summary["sent"] == 0
    assert summary["unfinished"][0].startswith("outbox 'shop': 1 file(s) not finished")


def test_once_wait_must_be_a_positive_number(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for bad in ("0", "-5", "soon", "inf"):
        result = invoicesync("once", "--wait", bad, "-c", str(config), cwd=tmp_path)
        assert result.returncode == 2, bad
        assert "--wait: must be a number of seconds above 0" in result.stderr


def test_once_stopped_with_work_left_says_so_in_its_exit_code(tmp_path: Path) -> None:
    """13.19: `once` stopped by SIGTERM exited 0 with files left in flight."""
    config = write_config(tmp_path, faults={"slow_rate": 1.0, "slow_seconds": 30})
    root = tmp_path / "shop"
    drop(root, "TERM0001.pdf", sample_pdf("TERM0001"))
    process = subprocess.Popen(
        [sys.executable, "-m", "invoicesync", "once", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: list((root / ".processing").rglob("*.pdf")), timeout_seconds=30, what="claimed")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 3, err[-2000:]
    assert out.strip().splitlines()[-1] == "sent=0 failed=0 in_flight=1 waiting=0"
    assert "outbox 'shop': 1 file(s) not finished" in err


def test_an_empty_file_reaches_failed_across_once_runs(tmp_path: Path) -> None:
    """Issue 16: a zero-byte file's `empty_after` clock is journaled, so `once` from cron (a new process
    each run) fails it once the window has passed, instead of starting the window again every run."""
    config = write_config(tmp_path, outbox_overrides={"files": {"empty_after": "1500ms"}})
    root = tmp_path / "shop"
    drop(root, "EMPT0001.pdf", b"")
    first = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=60)
    seen_empty_at = time.time()
    assert first.returncode == 3, first.stderr[-2000:]  # still waiting: not past its window yet
    assert (root / "outbox" / "EMPT0001.pdf").exists() and files_in(root, "failed") == []
    wait_for(lambda: time.time() > seen_empty_at + 1.6, timeout_seconds=10, what="the empty window passed")
    second = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    assert files_in(root, "failed") == ["EMPT0001.pdf"]
    assert (
        json.loads((root / "failed" / "EMPT0001.pdf.error.json").read_text())["error"]["code"] == "EmptyFile"
    )
