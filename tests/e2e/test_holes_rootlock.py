"""Issue 12 item 4: two daemons whose configurations differ only in state_dir share one root: the second
refuses to start, naming the first, and never adopts (re-sends) the first's file in flight."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.harness import drop, files_in, write_config


def test_a_second_daemon_on_the_same_root_refuses_to_start(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    config = write_config(tmp_path, processing_seconds=6)  # the import stays Running: a file in flight
    other = tmp_path / "other.yaml"
    document = yaml.safe_load(config.read_text())
    document["state_dir"] = str(tmp_path / "other-state")
    other.write_text(yaml.safe_dump(document, sort_keys=False))
    root = tmp_path / "shop"
    drop(root, "TWIN1234.pdf", sample_pdf("TWIN1234"))
    first = start_daemon(config)
    wait_for(lambda: "batch_uploaded" in first.output(), timeout_seconds=30, what="the first daemon's upload")

    second = invoicesync("once", "-c", str(other), cwd=tmp_path)
    said = second.stdout + second.stderr
    assert second.returncode == 1, said
    assert f"is using the outbox root {root}" in said and str(tmp_path / "state") in said
    assert "file_claimed" not in said and "files_adopted" not in said

    wait_for(lambda: files_in(root, "sent") == ["TWIN1234.pdf"], timeout_seconds=30, what="sent by the first")
    assert first.terminate() == 0
    assert first.output().count("batch_uploaded") == 1
    # once the first has stopped, the second may take the root over
    third = invoicesync("once", "-c", str(other), cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
