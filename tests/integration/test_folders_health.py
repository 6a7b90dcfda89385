"""Issue 12.12 and 12.20: an outbox folder that is a link, or that the daemon may not write, is a loud
problem (log, `status`, `check`), nothing is taken through it, and `once` ends. Through `invoicesync once`
and `check` (real subprocesses) against a sandbox the test holds, and a daemon run in-process for `status`."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.sandbox import Sandbox
from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.harness import drop, files_in
from tests.integration.test_outbox_entries import WITHOUT_ROOT_READ, can_drop_root_read
from tests.integration.test_resilience import (
    _read_only_impossible,
    configure,
    read_only,
    running,
    status_json,
)
from tests.oncerun import ONCE_TIMEOUT_SECONDS, events, run_once, sandbox_config, start_sandbox

WITHOUT_ROOT_WRITE = WITHOUT_ROOT_READ  # without CAP_DAC_OVERRIDE, folder modes bite root too


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running_sandbox:
        yield running_sandbox


def run_check(config: Path, *, cwd: Path, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "invoicesync", "check", "-c", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=ONCE_TIMEOUT_SECONDS,
        check=False,
    )


def needs_setpriv() -> None:
    if shutil.which("setpriv") is None or not can_drop_root_read():
        pytest.skip("setpriv cannot drop CAP_DAC_OVERRIDE here, and with it the daemon writes every folder")


# -- 12.12: folders that are links --------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["outbox", "sent", "failed", ".processing"])
def test_a_folder_that_is_a_link_is_refused_and_nothing_is_taken(
    tmp_path: Path, sandbox: Sandbox, folder: str
) -> None:
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if folder == "outbox":
        (elsewhere / "LINK1234.pdf").write_bytes(sample_pdf("LINK1234"))
    else:
        drop(root, "LINK1234.pdf", sample_pdf("LINK1234"))
    (root / folder).symlink_to(elsewhere, target_is_directory=True)
    before = sorted(path.name for path in elsewhere.rglob("*"))

    result = run_once(config, cwd=tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # `once` ends, and says the outbox is blocked
    assert sandbox.received() == []
    assert sorted(path.name for path in elsewhere.rglob("*")) == before, "nothing taken or put through it"
    problems = [e for e in events(output) if e.get("event") == "outbox_unavailable"]
    assert problems and "symbolic link" in problems[0]["reason"], output
    assert str(root / folder) in problems[0]["reason"]
    if folder != "outbox":
        assert (root / "outbox" / "LINK1234.pdf").exists(), "left where it was dropped"
    checked = run_check(config, cwd=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "symbolic link" in checked.stderr and str(root / folder) in checked.stderr


# -- 12.20: folders the daemon may not write ------------------------------------------------------------


def test_an_outbox_the_daemon_cannot_write_is_loud_and_once_ends(tmp_path: Path, sandbox: Sandbox) -> None:
    needs_setpriv()
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    drop(root, "PERM1234.pdf", sample_pdf("PERM1234"))
    (root / "outbox").chmod(0o555)
    try:
        result = run_once(config, cwd=tmp_path, wrapper=WITHOUT_ROOT_WRITE)
        checked = run_check(config, cwd=tmp_path, wrapper=WITHOUT_ROOT_WRITE)
    finally:
        (root / "outbox").chmod(0o755)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (root / "outbox" / "PERM1234.pdf").exists()
    assert sandbox.received() == []
    problems = [e for e in events(output) if e.get("event") == "outbox_unavailable"]
    assert problems and str(root / "outbox") in problems[0]["reason"], output
    assert "not writable" in problems[0]["reason"]
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"{root / 'outbox'} is not writable" in checked.stderr


@pytest.mark.parametrize("folder", ["sent", "failed"])
def test_check_says_when_sent_or_failed_cannot_be_written(
    tmp_path: Path, sandbox: Sandbox, folder: str
) -> None:
    needs_setpriv()
    config = sandbox_config(tmp_path, sandbox)
    root = tmp_path / "shop"
    (root / folder).mkdir(parents=True)
    (root / folder).chmod(0o555)
    try:
        checked = run_check(config, cwd=tmp_path, wrapper=WITHOUT_ROOT_WRITE)
    finally:
        (root / folder).chmod(0o755)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"{root / folder} is not writable" in checked.stderr


def test_a_read_only_outbox_shows_in_status_and_the_rest_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = _read_only_impossible(tmp_path)
    if reason:
        pytest.skip(f"outbox/ cannot be made read-only: {reason}")
    config = configure(tmp_path)
    root = tmp_path / "shop"
    drop(root, "ROUT0001.pdf", sample_pdf("ROUT0001"))
    with contextlib.ExitStack() as unmount:
        unmount.enter_context(read_only(root / "outbox"))
        with running(config) as daemon:
            wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="noticed")
            problem = status_json(config, capsys)["outboxes"][0]["problem"]
            assert f"{root / 'outbox'}" in problem and "not writable" in problem
            daemon.ticks(3)
            assert (root / "outbox" / "ROUT0001.pdf").exists()
            unmount.close()  # writable again
            wait_for(lambda: files_in(root, "sent") == ["ROUT0001.pdf"], timeout_seconds=20, what="sent")
            wait_for(lambda: daemon.outbox_status()["problem"] is None, timeout_seconds=10, what="cleared")
