"""`invoicesync validate FILE...` as a real subprocess: one verdict per file, exit 0 only when all pass,
nothing sent, no configuration needed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.badfiles import catalogue, sample_pdf, sample_ubl, zip_of
from tests.e2e.conftest import invoicesync
from tests.oncerun import sandbox_config, start_sandbox


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_one_line_per_file_and_exit_1_when_any_fails(tmp_path: Path) -> None:
    write(tmp_path, "VALI0001.pdf", sample_pdf("VALI0001"))
    write(tmp_path, "VALI0002.xml", sample_ubl("VALI0002"))
    write(tmp_path, "VALI0003.pdf", sample_pdf("VALI0003")[:400])
    write(tmp_path, "scan 7.pdf", sample_pdf("VALI0004"))

    result = invoicesync(
        "validate", "VALI0001.pdf", "VALI0002.xml", "VALI0003.pdf", "scan 7.pdf", cwd=tmp_path
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "VALI0001.pdf: ok (order VALI0001)",
        "VALI0002.xml: ok (order VALI0002)",
        "VALI0003.pdf: InvalidPdf: This PDF is damaged and cannot be opened: "
        "it is cut off (the end of the file is missing).",
        "scan 7.pdf: InvalidFileName: The file name does not contain an order number in the form this outbox "
        "expects: 'scan 7.pdf' holds a space (character 5); an order number has only letters, digits, _ "
        "and -.",
    ]


def test_exit_0_when_every_file_passes(tmp_path: Path) -> None:
    write(tmp_path, "PASS0001.PDF", sample_pdf("PASS0001"))
    write(tmp_path, "PASS0002.xml", sample_ubl("PASS0002", root="CreditNote"))

    result = invoicesync("validate", "PASS0001.PDF", "PASS0002.xml", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_json_gives_one_object_per_line_with_code_message_and_hint(tmp_path: Path) -> None:
    good = write(tmp_path, "JSON0001.pdf", sample_pdf("JSON0001"))
    write(tmp_path, "JSON0002.xml", sample_ubl("OTHER0002"))

    result = invoicesync("validate", "--json", "JSON0001.pdf", "JSON0002.xml", cwd=tmp_path)

    assert result.returncode == 1
    ok, failed = json_lines(result.stdout)
    assert ok["verdict"] == "ok" and ok["order_id"] == "JSON0001" and ok["size"] == good.stat().st_size
    assert failed["verdict"] == "failed" and failed["code"] == "OrderMismatch"
    assert failed["message"] == "The invoice names order OTHER0002, but the file name says JSON0002."
    assert failed["hint"].startswith("Rename the file")


def test_order_pattern_from_the_command_line_or_a_config(tmp_path: Path) -> None:
    write(tmp_path, "INV-42_ERPX0001.pdf", sample_pdf("ERPX0001"))
    pattern = r"^INV-[0-9]+_(?P<order>[A-Z0-9]+)$"

    default = invoicesync("validate", "INV-42_ERPX0001.pdf", cwd=tmp_path)
    given = invoicesync("validate", "--order-id", pattern, "INV-42_ERPX0001.pdf", cwd=tmp_path)
    broken = invoicesync("validate", "--order-id", "(?P<id>x)", "INV-42_ERPX0001.pdf", cwd=tmp_path)
    with start_sandbox() as sandbox:
        config = sandbox_config(tmp_path, sandbox, files={"order_id": pattern})
        configured = invoicesync("validate", "-c", str(config), "INV-42_ERPX0001.pdf", cwd=tmp_path)
        assert sandbox.received() == [] and sandbox.stats()["token_requests"] == 0  # nothing sent

    assert default.returncode == 1 and "OrderMismatch" in default.stdout  # the whole name taken as order
    assert given.returncode == 0 and given.stdout == "INV-42_ERPX0001.pdf: ok (order ERPX0001)\n"
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert broken.returncode == 2 and "order" in broken.stderr and "Traceback" not in broken.stderr


def test_a_zip_is_judged_then_each_of_its_entries(tmp_path: Path) -> None:
    write(
        tmp_path,
        "batch.zip",
        zip_of([("march/ZIPV0001.pdf", sample_pdf("ZIPV0001")), ("march/ZIPV0002.pdf", b"junk" * 50)]),
    )
    write(tmp_path, "slip.zip", zip_of([("../ZIPV0003.pdf", sample_pdf("ZIPV0003"))]))

    result = invoicesync("validate", "batch.zip", "slip.zip", cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "batch.zip: ok (a safe ZIP of 2 files, each judged below)",
        "batch.zip: ZIPV0001.pdf: ok (order ZIPV0001)",
        "batch.zip: ZIPV0002.pdf: InvalidPdf: This PDF is damaged and cannot be opened: "
        "it does not start like a PDF.",
    ]
    assert lines[3].startswith("slip.zip: UnsafeArchive: ") and len(lines) == 4
    assert sorted(os.listdir(tmp_path)) == ["batch.zip", "slip.zip"]  # unpacked elsewhere, and cleaned up


def test_special_files_and_missing_ones_are_judged_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "FIFO0001.pdf")  # opened for reading, it would block this command forever
    (tmp_path / "LINK0001.pdf").symlink_to(write(tmp_path, "real.pdf", sample_pdf("LINK0001")))
    (tmp_path / "FOLD0001.pdf").mkdir()

    result = invoicesync(
        "validate",
        "--json",
        "FIFO0001.pdf",
        "LINK0001.pdf",
        "FOLD0001.pdf",
        "GONE0001.pdf",
        cwd=tmp_path,
        timeout=30,
    )

    assert result.returncode == 1
    codes = [(row["file"], row["code"]) for row in json_lines(result.stdout)]
    assert codes == [
        ("FIFO0001.pdf", "NotARegularFile"),
        ("LINK0001.pdf", "NotARegularFile"),
        ("FOLD0001.pdf", "NotARegularFile"),
        ("GONE0001.pdf", "Unreadable"),
    ]


def test_the_whole_catalogue_gets_the_codes_the_daemon_gives(tmp_path: Path) -> None:
    """The same verdicts as `test_catalogue` proves through the daemon (each case in its own folder)."""
    cases = catalogue("CLIV0001")
    for case in cases:
        write(tmp_path / case.name, case.file_name, case.data)

    result = invoicesync(
        "validate", "--json", *(f"{case.name}/{case.file_name}" for case in cases), cwd=tmp_path
    )

    assert result.returncode == 1
    rows = [row for row in json_lines(result.stdout) if row["origin"] is None]
    assert len(rows) == len(cases)
    for case, row in zip(cases, rows, strict=True):
        assert row["file"] == f"{case.name}/{case.file_name}"
        assert row.get("code") == case.code, (case.name, row)
    entries = [row for row in json_lines(result.stdout) if row["origin"] is not None]
    assert entries and all(row["verdict"] == "ok" for row in entries)  # the safe ZIPs hold good files
