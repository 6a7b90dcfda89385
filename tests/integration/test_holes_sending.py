"""Issue 12, what is sent: only the bytes checked, from the place the journal says, one file's trouble
its own. The journal is left as a crash would leave it (a file checked and ready, then changed, swapped
for a link, taken away, or claimed under another host name), then `invoicesync once` runs for real."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.journal import Journal
from invoicesync.sandbox import Sandbox
from invoicesync.statedir import JOURNAL_NAME
from tests.badfiles import sample_pdf
from tests.harness import files_in, leftovers, report
from tests.oncerun import run_once, sandbox_config, start_sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


def checked_earlier(tmp_path: Path, order: str, checked: bytes, *, host: str | None = None) -> Path:
    """Journal `order`.pdf as claimed and checked (ready, with `checked`'s hash); return where its file is
    to lie in .processing/ (the caller puts there what a writer, a person or an antivirus left)."""
    host = host or socket.gethostname()
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    journal = Journal(state / JOURNAL_NAME)
    item_id = hashlib.sha256(order.encode()).hexdigest()[:16]
    claim_name = f"{item_id}__{order}.pdf"
    journal.record_claims(
        [
            {
                "item_id": item_id,
                "outbox": "shop",
                "host": host,
                "file_name": f"{order}.pdf",
                "claim_name": claim_name,
                "ext": "pdf",
                "received_at": "2026-12-01T10:00:00+01:00",
            }
        ]
    )
    sha256 = hashlib.sha256(checked).hexdigest()
    journal.mark_ready(item_id, order_id=order, size=len(checked), sha256=sha256, ready_at=0.0)
    journal.close()
    folder = tmp_path / "shop" / ".processing" / host
    folder.mkdir(parents=True, exist_ok=True)
    return folder / claim_name


def sent_bytes(sandbox: Sandbox) -> list[str]:
    """The SHA-256 of every file the marketplace received."""
    return [str(row["sha256"]) for row in sandbox.received()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_rewritten_after_its_check_is_checked_again_not_sent(tmp_path: Path, sandbox: Sandbox) -> None:
    """Items 5 and 18: the writer rewrote the file after its check with an invoice naming another order."""
    config = sandbox_config(tmp_path, sandbox)
    path = checked_earlier(tmp_path, "ORDA1234", sample_pdf("ORDA1234"))
    other = sample_pdf("ORDB9999")
    path.write_bytes(other)
    result = run_once(config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    root = tmp_path / "shop"
    assert sha(other) not in sent_bytes(sandbox)
    assert files_in(root, "failed") == ["ORDA1234.pdf"]
    assert report(root, "failed", "ORDA1234.pdf")["error"]["code"] == "OrderMismatch"
    assert report(root, "failed", "ORDA1234.pdf")["sha256"] == hashlib.sha256(other).hexdigest()
    assert leftovers(root) == []


def test_a_file_swapped_for_a_link_after_its_check_is_not_followed(tmp_path: Path, sandbox: Sandbox) -> None:
    """Item 18: even a link to the very bytes checked is not sent; and a hard link (item 12) neither."""
    config = sandbox_config(tmp_path, sandbox)
    good = sample_pdf("LINK1234")
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(good)
    checked_earlier(tmp_path, "LINK1234", good).symlink_to(outside)
    os.link(outside, checked_earlier(tmp_path, "HARD1234", good))
    result = run_once(config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    root = tmp_path / "shop"
    assert sandbox.received() == []
    assert files_in(root, "failed") == ["HARD1234.pdf", "LINK1234.pdf"]
    for name in ("HARD1234.pdf", "LINK1234.pdf"):
        assert report(root, "failed", name)["error"]["code"] == "NotARegularFile"


def test_a_file_gone_from_processing_fails_alone(tmp_path: Path, sandbox: Sandbox) -> None:
    """Item 8: an antivirus took one file away; it fails as Unreadable, its batch-mate is sent."""
    config = sandbox_config(tmp_path, sandbox)
    checked_earlier(tmp_path, "GONE1234", sample_pdf("GONE1234"))  # never put there
    stays = sample_pdf("STAY1234")
    checked_earlier(tmp_path, "STAY1234", stays).write_bytes(stays)
    result = run_once(config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    root = tmp_path / "shop"
    assert sent_bytes(sandbox) == [sha(stays)]
    assert report(root, "failed", "GONE1234.pdf")["error"]["code"] == "Unreadable"
    assert "disappeared" in report(root, "failed", "GONE1234.pdf")["error"]["message"]
    assert files_in(root, "sent") == ["STAY1234.pdf"]


def test_a_file_claimed_under_another_host_name_is_finished_where_it_lies(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Item 19: the container got a new host name at restart; the journal says where the file is."""
    config = sandbox_config(tmp_path, sandbox)
    data = sample_pdf("HOST1234")
    checked_earlier(tmp_path, "HOST1234", data, host="old-container-7f3a").write_bytes(data)
    result = run_once(config, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    root = tmp_path / "shop"
    assert sent_bytes(sandbox) == [sha(data)]
    assert files_in(root, "sent") == ["HOST1234.pdf"]
    assert leftovers(root) == []


def test_a_large_file_is_judged_from_a_private_copy_not_held_in_memory(tmp_path: Path) -> None:
    """Item 5 without the cost: the bytes judged are the bytes hashed (a private copy), and a file past
    8 MB is copied to an unnamed temporary file, never held whole in memory (a 200 MB scan took 640 MB)."""
    import hashlib
    import io
    import os
    import tracemalloc

    from pypdf import PdfReader, PdfWriter

    from invoicesync.checks.content import Rules
    from invoicesync.checks.examine import examine
    from invoicesync.naming import DEFAULT_ORDER_PATTERN

    path = tmp_path / "BIGF0001.pdf"
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf("BIGF0001"))))
    writer.add_attachment("scan.bin", os.urandom(24_000_000))  # a valid PDF of 24 MB, never decompressed
    with path.open("wb") as out:
        writer.write(out)
    del writer
    size = path.stat().st_size
    assert size > 24_000_000
    rules = Rules(max_bytes=50_000_000)
    tracemalloc.start()
    try:
        found = examine(path, path.name, pattern=DEFAULT_ORDER_PATTERN, rules=rules, entry=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and found.size == size
    assert found.error is None, found.error
    assert peak < 16_000_000, peak
