"""Issue 12 items 7, 15, 21: a journal that is gone while files are in flight, or damaged, stops the start
with a sentence naming the file and what to do; `status` and `check` say the same, without a traceback;
nothing is claimed or sent meanwhile."""

from __future__ import annotations

from pathlib import Path

from invoicesync.statedir import JOURNAL_NAME
from tests.badfiles import sample_pdf
from tests.e2e.conftest import invoicesync
from tests.harness import drop, files_in, write_config


def test_a_deleted_journal_with_files_in_flight_refuses_to_start(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    root = tmp_path / "shop"
    in_flight = root / ".processing" / "somehost"
    in_flight.mkdir(parents=True)
    (in_flight / "0123456789abcdef__FLY12345.pdf").write_bytes(sample_pdf("FLY12345"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert "is missing, but files are in flight" in said and str(in_flight.parent) in said
    assert "Traceback" not in said
    assert files_in(root, "sent") == [] and (in_flight / "0123456789abcdef__FLY12345.pdf").exists()
    checked = invoicesync("check", "-c", str(config), cwd=tmp_path)
    assert checked.returncode != 0 and "is missing" in checked.stdout + checked.stderr


def test_a_damaged_journal_is_named_with_what_to_do(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    journal = state / JOURNAL_NAME
    journal.write_bytes(b"this is not an SQLite database, just bytes where the journal was" * 100)
    drop(tmp_path / "shop", "DMG12345.pdf", sample_pdf("DMG12345"))
    for command in ("once", "status", "check"):
        result = invoicesync(command, "-c", str(config), cwd=tmp_path)
        said = result.stdout + result.stderr
        assert result.returncode != 0, (command, said)
        assert f"The journal {journal} is damaged" in said, (command, said)
        assert "Traceback" not in said, (command, said)
    assert (tmp_path / "shop" / "outbox" / "DMG12345.pdf").exists()  # nothing claimed


def test_a_journal_with_a_damaged_page_is_found_at_start(tmp_path: Path) -> None:
    """Item 21: the header is fine but a page is not ("database disk image is malformed" later)."""
    config = write_config(tmp_path)
    drop(tmp_path / "shop", "PAGE1234.pdf", sample_pdf("PAGE1234"))
    first = invoicesync("once", "-c", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    journal = tmp_path / "state" / JOURNAL_NAME
    data = bytearray(journal.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    data[2 * page : 3 * page] = b"\xa5" * page  # a whole page of garbage, as a bad disk leaves it
    journal.write_bytes(bytes(data))
    for extra in (journal.with_name(JOURNAL_NAME + "-wal"), journal.with_name(JOURNAL_NAME + "-shm")):
        extra.unlink(missing_ok=True)
    drop(tmp_path / "shop", "PAGE5678.pdf", sample_pdf("PAGE5678"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "is damaged" in said and "Traceback" not in said
    assert (tmp_path / "shop" / "outbox" / "PAGE5678.pdf").exists()
