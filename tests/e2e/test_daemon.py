"""`invoicesync run` as a real subprocess against the sandbox: drop, wait, assert the folders."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.badfiles import sample_pdf, sample_ubl, slow_pdf
from tests.conftest import wait_for
from tests.e2e.conftest import REPO, Daemon, invoicesync
from tests.harness import drop, files_in, leftovers, report, write_config


def test_dropped_pdf_ends_in_sent_with_receipt(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    daemon = start_daemon(write_config(tmp_path))
    root = tmp_path / "shop"
    wait_for(lambda: "service_ready" in daemon.output(), timeout_seconds=30, what="daemon ready")
    drop(root, "A1B2C3D4.pdf", sample_pdf("A1B2C3D4"))
    receipt = root / "sent" / "A1B2C3D4.pdf.receipt.json"
    wait_for(receipt.exists, timeout_seconds=20, what="receipt written")
    assert json.loads(receipt.read_text())["outcome"] == "sent"
    assert list((root / "outbox").iterdir()) == []
    assert daemon.terminate() == 0


def test_sigterm_stops_cleanly_and_restart_finishes_the_work(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    config = write_config(tmp_path, processing_seconds=1.0)
    root = tmp_path / "shop"
    for n in range(30):
        drop(
            root,
            f"TERM{n:04d}.{'pdf' if n % 2 else 'xml'}",
            sample_pdf(f"TERM{n:04d}") if n % 2 else sample_ubl(f"TERM{n:04d}"),
        )
    daemon = start_daemon(config)
    wait_for(lambda: "batch_uploaded" in daemon.output(), timeout_seconds=30, what="an upload started")
    assert daemon.terminate() == 0
    assert "Traceback" not in daemon.output()
    # Nothing half-done: no temp files anywhere, every file in exactly one place.
    assert not [p for p in root.rglob(".*.tmp")]
    placed = len(files_in(root, "sent")) + len(files_in(root, "failed")) + len(leftovers(root))
    assert placed == 30
    again = start_daemon(config)
    wait_for(lambda: len(files_in(root, "sent")) == 30, timeout_seconds=60, what="all 30 sent after restart")
    assert leftovers(root) == []
    assert again.terminate() == 0


def test_bad_name_goes_to_failed_with_invalid_file_name(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    start_daemon(write_config(tmp_path))
    root = tmp_path / "shop"
    drop(root, "scan 2026-11-25.pdf", sample_pdf("A1B2C3D4"))
    wait_for(
        (root / "failed" / "scan 2026-11-25.pdf.error.json").exists, timeout_seconds=20, what="error report"
    )
    assert report(root, "failed", "scan 2026-11-25.pdf")["error"]["code"] == "InvalidFileName"


def test_second_daemon_on_the_same_state_dir_is_refused(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    config = write_config(tmp_path)
    first = start_daemon(config)
    wait_for(lambda: "service_ready" in first.output(), timeout_seconds=30, what="first daemon ready")
    second = invoicesync("run", "-c", str(config), cwd=tmp_path)
    assert second.returncode == 1
    assert "already running" in second.stderr and "Traceback" not in second.stderr
    once = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert once.returncode == 1 and "already running" in once.stderr


def test_example_config_passes_check(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.example.yaml", tmp_path / "config.example.yaml")
    result = invoicesync("check", "-c", "config.example.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_configuration_errors_exit_2_with_every_problem_and_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "state_dir: ./state\noutboxes:\n  - name: x\n    root: ./r\n"
        "    octopia: {base_url: sandbox, seller_id: '1', client_id: a, client_secret: TOPSECRET123}\n"
        "    batch: {max_files: many}\n    watch: {settle_secs: 3}\n"
    )
    result = invoicesync("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "outboxes[0].batch.max_files" in result.stderr and "outboxes[0].watch.settle_secs" in result.stderr
    assert "TOPSECRET123" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_once_prints_a_summary_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, orders=["SUMM0001"])
    drop(tmp_path / "shop", "SUMM0001.pdf", sample_pdf("SUMM0001"))
    drop(tmp_path / "shop", "SUMM0002.pdf", sample_pdf("SUMM0002"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sent=1 failed=1 in_flight=0 waiting=0"


def _checker_pids(output: str) -> list[int]:
    """The checkers and the template they were forked from."""
    events = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    started = ("checker_started", "checker_template_started")
    return [event["pid"] for event in events if event.get("event") in started]


def _started_as_many(daemon: Daemon, expected: int) -> bool:
    return len(_checker_pids(daemon.output())) == expected


def _all_ended(pids: list[int]) -> bool:
    return not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("checkers", [1, 2])  # one started on its own; two forked from a template
def test_checker_processes_end_with_the_daemon_stopped_or_killed(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon], checkers: int
) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"checkers: {checkers}\n")
    root = tmp_path / "shop"
    for number, stop in enumerate(("SIGTERM", "SIGKILL")):
        daemon = start_daemon(config)
        order = f"PROC{number:04d}"
        drop(root, f"{order}.pdf", sample_pdf(order))
        wait_for(lambda: files_in(root, "sent"), timeout_seconds=30, what="the file sent")
        expected = checkers + (checkers > 1)  # the checkers, and their template when there are several
        started = functools.partial(_started_as_many, daemon, expected)
        wait_for(started, timeout_seconds=30, what=f"{expected} checker processes started")
        pids = _checker_pids(daemon.output())
        assert all(_running(pid) for pid in pids), stop
        if stop == "SIGTERM":
            assert daemon.terminate() == 0
            assert "checker_stopped" in daemon.output()
        else:
            daemon.process.kill()
            daemon.process.wait(timeout=10)
        ended = functools.partial(_all_ended, pids)
        wait_for(ended, timeout_seconds=10, what=f"no checker left after {stop}")
        shutil.rmtree(root / "sent")


@pytest.mark.parametrize("library", ["pypdf", "pypdfium2"])
def test_checks_that_cannot_run_refuse_no_file_and_once_says_so(tmp_path: Path, library: str) -> None:
    """A PDF library broken for the checkers only (the daemon's own process never loads one): a broken
    installation is not the files' fault, so nothing goes to failed/; `once` says why and exits 1, and a
    later run with the installation mended sends them."""
    broken = tmp_path / "broken"
    (broken / library).mkdir(parents=True)
    said = f"this {library} is broken on purpose"
    (broken / library / "__init__.py").write_text(f"raise ImportError({said!r})\n")
    config = write_config(tmp_path)
    root = tmp_path / "shop"
    drop(root, "BRKN0001.pdf", sample_pdf("BRKN0001"))
    drop(root, "BRKN0002.xml", sample_ubl("BRKN0002"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path, env={"PYTHONPATH": str(broken)})
    assert result.returncode == 1, result.stdout[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    unavailable = [event for event in events if event["event"] == "checks_unavailable"]
    assert len(unavailable) == 1 and said in unavailable[0]["reason"]
    assert result.stdout.strip().splitlines()[-1] == "sent=0 failed=0 in_flight=2 waiting=0"
    assert files_in(root, "failed") == [] and len(leftovers(root)) == 2
    mended = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert mended.returncode == 0, mended.stdout[-2000:]
    assert sorted(files_in(root, "sent")) == ["BRKN0001.pdf", "BRKN0002.xml"]


def test_a_file_whose_check_takes_too_long_fails_and_the_others_go_on(tmp_path: Path) -> None:
    config = write_config(tmp_path, outbox_overrides={"files": {"check_seconds": 1}})
    root = tmp_path / "shop"
    drop(root, "SLOW0001.pdf", slow_pdf("SLOW0001"))  # seconds of PDFium's text loading
    drop(root, "FAST0001.pdf", sample_pdf("FAST0001"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:]
    assert files_in(root, "sent") == ["FAST0001.pdf"]
    error = report(root, "failed", "SLOW0001.pdf")["error"]
    assert error["code"] == "TooLarge"
    assert error["message"] == "The file is too large: checking it took longer than 1 s."
    assert error["detail"] == "time limit 1 s"
    assert '"check_timed_out"' in result.stderr
