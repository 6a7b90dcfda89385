"""Crash safety: no file lost and none sent twice, whatever moment the daemon dies."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from invoicesync.sandbox import Sandbox, SandboxOptions
from invoicesync.statedir import JOURNAL_NAME
from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.e2e.killloop import run_kill_loop
from tests.harness import drop, files_in, leftovers, report, write_config


@pytest.mark.timeout(600)
def test_sigkill_loop_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    outcome = run_kill_loop(tmp_path, files=500, kills=8, seed=3)
    assert outcome.leftovers == []
    assert (outcome.lost, outcome.duplicated, outcome.bad_sidecars) == (0, 0, 0), outcome
    assert outcome.sent + outcome.failed == outcome.dropped == 500
    assert outcome.received_twice == []


@pytest.mark.timeout(600)
def test_sigkill_loop_over_a_kaufland_outbox_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    outcome = run_kill_loop(tmp_path, files=150, kills=6, seed=5, marketplace="kaufland")
    assert outcome.leftovers == []
    assert (outcome.lost, outcome.duplicated, outcome.bad_sidecars) == (0, 0, 0), outcome
    assert outcome.sent + outcome.failed == outcome.dropped == 150
    assert outcome.received_twice == []  # no order holds our bytes twice
    assert outcome.sent > 0


def _sandbox_config(tmp_path: Path, sandbox: Sandbox, **overrides: dict[str, object]) -> Path:
    """A config whose outbox talks to `sandbox` (started by the test, so the test can read it)."""
    octopia = {"base_url": sandbox.base_url, "token_url": sandbox.token_url}
    return write_config(tmp_path, outbox_overrides={"octopia": octopia, **overrides})


def test_lost_answers_are_found_not_resent(tmp_path: Path) -> None:
    options = SandboxOptions(processing_seconds=0.2, drop_after_accept_rate=0.3, seed=7)
    with Sandbox.start(options) as sandbox:
        config = _sandbox_config(tmp_path, sandbox, batch={"max_files": 10, "max_wait_seconds": 0.1})
        root = tmp_path / "shop"
        for n in range(200):
            order = f"LOST{n:04d}"
            drop(root, f"{order}.pdf", sample_pdf(order))
        result = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr
        received = sandbox.received()
        dropped = sandbox.stats()["faults"].get("drop_after_accept", 0)
    assert dropped >= 3, "the fault never fired: the test proves nothing"
    assert len(files_in(root, "sent")) == 200 and files_in(root, "failed") == []
    counts = Counter((entry["orderId"], entry["sha256"]) for entry in received)
    assert max(counts.values()) == 1 and len(counts) == 200
    assert "lost_upload_found" in result.stderr


def test_correction_dropped_while_the_first_is_running_stays_attached(tmp_path: Path) -> None:
    with Sandbox.start(SandboxOptions(processing_seconds=1.5)) as sandbox:
        config = _sandbox_config(tmp_path, sandbox)
        root = tmp_path / "shop"
        first, second = sample_pdf("CORR0001", text="Invoice v1"), sample_pdf("CORR0001", text="Invoice v2")
        daemon = Daemon(config, tmp_path)
        try:
            drop(root, "CORR0001.pdf", first)
            wait_for(lambda: "batch_uploaded" in daemon.output(), timeout_seconds=30, what="v1 uploaded")
            drop(root, "CORR0001.pdf", second)  # while v1's import is still Running
            wait_for(lambda: len(files_in(root, "sent")) == 2, timeout_seconds=30, what="both finished")
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        documents = sandbox.documents("CORR0001")
    assert [d["sha256"] for d in documents] == [hashlib.sha256(second).hexdigest()]


def test_pdf_and_xml_of_one_order_are_both_attached(tmp_path: Path) -> None:
    with Sandbox.start(SandboxOptions(processing_seconds=0.2)) as sandbox:
        config = _sandbox_config(tmp_path, sandbox)
        root = tmp_path / "shop"
        pdf, xml = sample_pdf("PAIR0001"), sample_ubl("PAIR0001")
        drop(root, "PAIR0001.pdf", pdf)
        drop(root, "PAIR0001.xml", xml)
        assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
        documents = sandbox.documents("PAIR0001")
    assert sorted(d["sha256"] for d in documents) == sorted(hashlib.sha256(b).hexdigest() for b in (pdf, xml))
    pdf_import, xml_import = (report(root, "sent", f"PAIR0001.{ext}")["import_id"] for ext in ("pdf", "xml"))
    assert pdf_import == xml_import


def test_the_same_bytes_twice_go_to_sent_naming_the_earlier_delivery(tmp_path: Path) -> None:
    with Sandbox.start(SandboxOptions(processing_seconds=0.2)) as sandbox:
        config = _sandbox_config(tmp_path, sandbox)
        root = tmp_path / "shop"
        data = sample_pdf("DUPL0001")
        drop(root, "DUPL0001.pdf", data)
        drop(root, "DUPL0001 (2).pdf", data)  # dropped together: they wait on each other
        assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
        drop(root, "DUPL0001.pdf", data)  # and again, later
        assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
        received = [e for e in sandbox.received() if e["orderId"] == "DUPL0001"]
    assert len(received) == 1
    assert files_in(root, "failed") == []  # nothing for a person to do
    receipts = [report(root, "sent", name) for name in files_in(root, "sent")]
    assert len(receipts) == 3  # the two copies beside the one delivered
    [first] = [receipt for receipt in receipts if "duplicate_of" not in receipt]
    for receipt in receipts:
        if receipt is not first:
            earlier = receipt["duplicate_of"]
            assert earlier["import_id"] == first["import_id"] and earlier["file"] == first["file"]
            assert earlier["destination"] == f"octopia {sandbox.base_url}, seller 98979"
            assert receipt["hint"].startswith("Nothing was sent again") and receipt["import_id"] is None


def test_files_claimed_before_a_crash_are_adopted(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    """A file renamed into .processing/<host>/ whose journal row never got written (crash between), under
    this host's name or an earlier one (a container's changes at each restart): the root lock makes every
    claim on the root this daemon's, and a journal missing with claims present refuses the start."""
    import socket

    config = write_config(tmp_path)
    root = tmp_path / "shop"
    first = start_daemon(config)  # the journal exists: only the rows of these claims are missing
    wait_for(lambda: (tmp_path / "state" / JOURNAL_NAME).exists(), timeout_seconds=30, what="journal made")
    assert first.terminate() == 0
    processing = root / ".processing" / socket.gethostname()
    processing.mkdir(parents=True, exist_ok=True)
    (processing / "0123456789abcdef__ADOP0001.pdf").write_bytes(sample_pdf("ADOP0001"))
    other_host = root / ".processing" / "another-host"
    other_host.mkdir()
    (other_host / "fedcba9876543210__OTHR0001.pdf").write_bytes(sample_pdf("OTHR0001"))
    daemon = start_daemon(config)
    wait_for(
        lambda: files_in(root, "sent") == ["ADOP0001.pdf", "OTHR0001.pdf"],
        timeout_seconds=30,
        what="adopted files sent",
    )
    assert daemon.terminate() == 0
    assert leftovers(root) == []
    assert httpx is not None


def test_a_rehearsal_on_the_sandbox_never_makes_the_real_delivery_a_duplicate(tmp_path: Path) -> None:
    """13.6: the same outbox, first on the built-in sandbox, then pointed at another marketplace (here a
    sandbox on its own port standing in for production): the file is delivered there too."""
    config = write_config(tmp_path)  # base_url: sandbox
    root = tmp_path / "shop"
    data = sample_pdf("REHE0001")
    drop(root, "REHE0001.pdf", data)
    assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
    rehearsal = report(root, "sent", "REHE0001.pdf")
    with Sandbox.start(SandboxOptions(processing_seconds=0.2)) as production:
        config = _sandbox_config(tmp_path, production)
        drop(root, "REHE0001.pdf", data)
        assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
        drop(root, "REHE0001.pdf", data)  # and once more: now a duplicate of the production delivery
        assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
        received = [entry["fileName"] for entry in production.received()]
    assert received == ["REHE0001.pdf"]
    receipts = [report(root, "sent", name) for name in files_in(root, "sent")]
    delivered = [receipt for receipt in receipts if "duplicate_of" not in receipt]
    assert len(receipts) == 3 and len(delivered) == 2
    [again] = [receipt for receipt in receipts if "duplicate_of" in receipt]
    assert again["duplicate_of"]["import_id"] != rehearsal["import_id"]
    assert again["duplicate_of"]["destination"] == f"octopia {production.base_url}, seller 98979"
