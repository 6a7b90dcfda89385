"""What else lands in an outbox, through `invoicesync once` (a real subprocess) against a sandbox we hold:
links, FIFOs, sockets and devices, sub-folders, files the service may not read, files above the size
limit, upper-case extensions, and dropped ZIPs whose entries are judged one by one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from invoicesync.sandbox import Sandbox
from tests.badfiles import RawEntry, raw_zip, sample_pdf, sample_ubl, zip_of
from tests.harness import drop, files_in, leftovers, report
from tests.oncerun import events, run_once, sandbox_config, start_sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


def received_names(sandbox: Sandbox) -> list[str]:
    return sorted(str(row["fileName"]) for row in sandbox.received())


# -- not a regular file --------------------------------------------------------------------------


def make_socket(target: Path) -> socket.socket:
    """A listening unix socket at `target`: bound under a short path (sun_path holds ~107 bytes), moved."""
    short = Path(tempfile.mkdtemp(prefix="sock-"))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(short / "s"))
    server.listen()
    os.rename(short / "s", target)
    short.rmdir()
    return server


def test_links_fifos_and_sockets_fail_unopened_and_subfolders_stay(tmp_path: Path, sandbox: Sandbox) -> None:
    root = tmp_path / "shop"
    outbox = root / "outbox"
    outbox.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.pdf"
    elsewhere.write_bytes(sample_pdf("LINK0001"))
    (outbox / "LINK0001.pdf").symlink_to(elsewhere)
    (outbox / "LINK0002.pdf").symlink_to(tmp_path / "nowhere.pdf")  # dangling
    os.mkfifo(outbox / "FIFO0001.pdf")  # opening it for reading would block: no writer ever comes
    os.mkfifo(outbox / "FIFO0002.xml")
    server = make_socket(outbox / "SOCK0001.pdf")
    (outbox / "invoices-2024").mkdir()
    (outbox / "invoices-2024" / "SUBF0001.pdf").write_bytes(sample_pdf("SUBF0001"))
    specials = ["FIFO0001.pdf", "FIFO0002.xml", "LINK0001.pdf", "LINK0002.pdf", "SOCK0001.pdf"]

    try:
        result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)
    finally:
        server.close()

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sent=0 failed=5 in_flight=0 waiting=0"
    assert files_in(root, "failed") == specials
    for name in specials:
        document = report(root, "failed", name)
        assert document["error"]["code"] == "NotARegularFile", name
        assert document["sha256"] is None and document["size"] is None, name  # never read
    assert "symbolic link" in report(root, "failed", "LINK0001.pdf")["error"]["message"]
    assert stat.S_ISFIFO((root / "failed" / "FIFO0001.pdf").lstat().st_mode)
    assert stat.S_ISSOCK((root / "failed" / "SOCK0001.pdf").lstat().st_mode)
    assert (root / "failed" / "LINK0001.pdf").is_symlink()  # the link moved, its target untouched
    assert elsewhere.read_bytes() == sample_pdf("LINK0001")
    assert sandbox.received() == []
    # the sub-folder is left alone with what it holds, and said once however often the outbox was read
    assert leftovers(root) == ["invoices-2024"]
    assert (outbox / "invoices-2024" / "SUBF0001.pdf").read_bytes() == sample_pdf("SUBF0001")
    logged = [e for e in events(result.stderr) if e["event"] == "subfolder_ignored"]
    assert [e["folder"] for e in logged] == ["invoices-2024"]


def test_a_device_node_fails_unopened(tmp_path: Path, sandbox: Sandbox) -> None:
    outbox = tmp_path / "shop" / "outbox"
    outbox.mkdir(parents=True)
    try:  # a copy of /dev/zero: read, it would never end
        os.mknod(outbox / "DEVC0001.pdf", stat.S_IFCHR | 0o644, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD, which this environment does not grant")

    result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert report(tmp_path / "shop", "failed", "DEVC0001.pdf")["error"]["code"] == "NotARegularFile"
    assert leftovers(tmp_path / "shop") == []


# -- permissions, size, case -----------------------------------------------------------------------


# The daemon keeps uid 0 but loses the capabilities that let root read any file, so it is refused a file
# whose mode says nobody may read it, as the service's own user would be.
WITHOUT_ROOT_READ = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def can_drop_root_read() -> bool:
    probe = subprocess.run([*WITHOUT_ROOT_READ, "true"], capture_output=True, check=False)
    return probe.returncode == 0


def test_files_the_service_may_not_read_fail_as_unreadable(tmp_path: Path, sandbox: Sandbox) -> None:
    if shutil.which("setpriv") is None or not can_drop_root_read():
        pytest.skip("setpriv cannot drop CAP_DAC_OVERRIDE here, and with it the daemon reads every file")
    root = tmp_path / "shop"
    drop(root, "PERM0001.pdf", sample_pdf("PERM0001")).chmod(0o000)
    drop(root, "PERM0002.zip", zip_of([("PERM0002.pdf", sample_pdf("PERM0002"))])).chmod(0o000)
    drop(root, "PERM0003.pdf", sample_pdf("PERM0003"))

    result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path, wrapper=WITHOUT_ROOT_READ)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in ("PERM0001.pdf", "PERM0002.zip"):
        error = report(root, "failed", name)["error"]
        assert error["code"] == "Unreadable", name
        assert "permission" in error["message"].lower(), error["message"]
    assert files_in(root, "sent") == ["PERM0003.pdf"]
    assert leftovers(root) == []
    assert received_names(sandbox) == ["PERM0003.pdf"]


def test_files_above_max_bytes_fail_as_too_large(tmp_path: Path, sandbox: Sandbox) -> None:
    config = sandbox_config(tmp_path, sandbox, files={"max_bytes": "100KB"})
    root = tmp_path / "shop"
    drop(root, "HUGE0001.pdf", sample_pdf("HUGE0001", padding_bytes=100_001))
    drop(root, "HUGE0002.xml", sample_ubl("HUGE0002") + b" " * 100_000)
    incompressible = sample_pdf("HUGE0003", padding_bytes=100_001, random_padding=True)
    drop(root, "HUGE0003.zip", zip_of([("HUGE0003.pdf", incompressible)]))
    drop(root, "SMAL0001.pdf", sample_pdf("SMAL0001", padding_bytes=90_000))

    result = run_once(config, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for name in ("HUGE0001.pdf", "HUGE0002.xml", "HUGE0003.zip"):  # a ZIP is held to max_bytes too
        document = report(root, "failed", name)
        assert document["error"]["code"] == "TooLarge", name
        assert "100,000" in document["error"]["message"] or "0.1 MB" in document["error"]["message"]
    assert files_in(root, "sent") == ["SMAL0001.pdf"]
    assert received_names(sandbox) == ["SMAL0001.pdf"]
    assert leftovers(root) == []


def test_names_that_cannot_be_carried_through_go_to_failed_under_a_safe_name(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Issue 16: a name too long for .processing/ and failed/, or not UTF-8 (an old ERP's Latin-1), is
    claimed under a safe name and goes to failed/ at once, its report keeping the name as dropped (escaped)
    and saying what to rename; nothing stays behind in outbox/, and the rest flows."""
    root = tmp_path / "shop"
    long_name = "INV-" + "x" * 228 + ".pdf"
    drop(root, long_name, sample_pdf("LONG0001"))
    latin1 = os.fsencode(root / "outbox") + b"/Facture n\xb0 LATN0001.pdf"
    Path(os.fsdecode(latin1)).write_bytes(sample_pdf("LATN0001"))
    drop(root, "GOOD0001.pdf", sample_pdf("GOOD0001"))

    result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert files_in(root, "sent") == ["GOOD0001.pdf"]
    assert os.listdir(root / "outbox") == [] and leftovers(root) == []
    failed = files_in(root, "failed")
    assert sorted(failed) == sorted(["Facture n\\xb0 LATN0001.pdf", "INV-" + "x" * 116 + "….pdf"])
    for name in failed:
        error = report(root, "failed", name)["error"]
        assert error["code"] == "UnusableFileName" and name in error["message"]
        assert error["detail"].startswith("name as dropped: ")
    latin = report(root, "failed", "Facture n\\xb0 LATN0001.pdf")["error"]
    assert latin["detail"] == "name as dropped: Facture n\\xb0 LATN0001.pdf" and "UTF-8" in latin["message"]
    assert (
        report(root, "failed", failed[0])["error"]["detail"]
        != report(root, "failed", failed[1])["error"]["detail"]
    )
    assert long_name in report(root, "failed", "INV-" + "x" * 116 + "….pdf")["error"]["detail"]
    warned = [e for e in events(result.stderr) if e["event"] == "file_name_unusable"]
    assert sorted(e["file"] for e in warned) == sorted([long_name, "Facture n\\xb0 LATN0001.pdf"])
    assert received_names(sandbox) == ["GOOD0001.pdf"]


def test_upper_case_extensions_are_accepted(tmp_path: Path, sandbox: Sandbox) -> None:
    root = tmp_path / "shop"
    drop(root, "UPPR0001.PDF", sample_pdf("UPPR0001"))
    drop(root, "UPPR0002.XML", sample_ubl("UPPR0002"))
    drop(root, "UPPR0003.Zip", zip_of([("UPPR0003.Pdf", sample_pdf("UPPR0003"))]))

    result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert files_in(root, "sent") == ["UPPR0001.PDF", "UPPR0002.XML", "UPPR0003.Pdf", "UPPR0003.Zip"]
    assert files_in(root, "failed") == []
    assert received_names(sandbox) == ["UPPR0001.pdf", "UPPR0002.xml", "UPPR0003.pdf"]


# -- dropped ZIPs --------------------------------------------------------------------------------------


def test_a_safe_zip_is_judged_entry_by_entry_and_summarised_once_all_are_done(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    root = tmp_path / "shop"
    good_pdf, good_xml = sample_pdf("ZENT0001"), sample_ubl("ZENT0002")
    archive = zip_of(
        [
            ("march/", b""),
            ("march/ZENT0001.pdf", good_pdf),
            ("march/ZENT0002.xml", good_xml),
            ("march/scan 14.pdf", sample_pdf("ZENT0003")),  # the name gives no order
            ("march/ZENT0004.pdf", b"not a pdf at all\n" * 20),
            ("march/ZENT0005.pdf", sample_pdf("ZENT0005", text="Order: ZENT9999")),
            ("__MACOSX/march/._ZENT0001.pdf", b"\x00\x05\x16\x07"),
        ]
    )
    drop(root, "march invoices.zip", archive)

    result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sent=2 failed=3 in_flight=0 waiting=0"
    assert files_in(root, "sent") == ["ZENT0001.pdf", "ZENT0002.xml", "march invoices.zip"]
    assert files_in(root, "failed") == ["ZENT0004.pdf", "ZENT0005.pdf", "scan 14.pdf"]
    assert leftovers(root) == []
    codes = {
        "ZENT0001.pdf": None,
        "ZENT0002.xml": None,
        "scan 14.pdf": "InvalidFileName",
        "ZENT0004.pdf": "InvalidPdf",
        "ZENT0005.pdf": "OrderMismatch",
    }
    summary = report(root, "sent", "march invoices.zip")
    assert summary["outcome"] == "sent" and summary["error"] is None and summary["origin"] is None
    assert summary["sha256"] == hashlib.sha256(archive).hexdigest()
    assert "failed" in summary["hint"]
    assert {entry["file"]: entry["code"] for entry in summary["entries"]} == codes
    zip_finished = datetime.fromisoformat(summary["finished_at"])
    for entry in summary["entries"]:
        folder = "sent" if entry["code"] is None else "failed"
        assert entry["outcome"] == folder
        inner = report(root, folder, entry["file"])
        assert inner["origin"] == "march invoices.zip"
        assert entry["report"] == f"{entry['file']}{'.receipt.json' if folder == 'sent' else '.error.json'}"
        assert datetime.fromisoformat(inner["finished_at"]) <= zip_finished
    assert (root / "sent" / "ZENT0001.pdf").read_bytes() == good_pdf
    assert received_names(sandbox) == ["ZENT0001.pdf", "ZENT0002.xml"]


def test_an_unsafe_zip_fails_whole_and_nothing_of_it_is_sent(tmp_path: Path, sandbox: Sandbox) -> None:
    root = tmp_path / "shop"
    good = sample_pdf("SLIP0001")
    drop(root, "SLIP0001.zip", raw_zip([RawEntry("SLIP0001.pdf", good), RawEntry("../SLIP0002.pdf", good)]))
    drop(root, "NEST0001.zip", zip_of([("NEST0001.pdf", good), ("NEST0002.pdf", zip_of([("x.pdf", good)]))]))
    drop(root, "LONG0001.zip", zip_of([("LONG0001.pdf", good), ("x" * 240 + ".pdf", good)]))
    drop(root, "META0001.zip", zip_of([("2024/", b""), ("__MACOSX/2024/._LONG0001.pdf", b"\x00\x05")]))

    result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sent=0 failed=4 in_flight=0 waiting=0"
    assert files_in(root, "failed") == ["LONG0001.zip", "META0001.zip", "NEST0001.zip", "SLIP0001.zip"]
    assert files_in(root, "sent") == []
    for name in ("LONG0001.zip", "META0001.zip", "NEST0001.zip", "SLIP0001.zip"):
        assert report(root, "failed", name)["error"]["code"] == "UnsafeArchive"
    assert leftovers(root) == []
    assert sandbox.received() == []
