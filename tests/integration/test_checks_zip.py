"""Issue 12, items 24 and 26, through `invoicesync once` (a real subprocess) against a sandbox: a ZIP is
held to `files.max_bytes` (9 MB became 498 MB in failed/), and a ZIP whose entries share a name is refused
whole instead of sending both to one order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from invoicesync.sandbox import Sandbox
from tests.badfiles import sample_pdf, zip_of
from tests.harness import drop
from tests.oncerun import run_once, sandbox_config, start_sandbox
from tests.unit.test_checks_zip import compressible

MAX_BYTES = 1_000_000


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as running:
        yield running


def bytes_under(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def error_of(root: Path, name: str) -> dict[str, str]:
    document = json.loads((root / "failed" / f"{name}.error.json").read_text(encoding="utf-8"))
    error: dict[str, str] = document["error"]
    return error


def test_zips_are_held_to_max_bytes_and_to_names_of_their_own(tmp_path: Path, sandbox: Sandbox) -> None:
    config = sandbox_config(tmp_path, sandbox, files={"max_bytes": MAX_BYTES})
    root = tmp_path / "shop"
    big_entry = zip_of([("Y7654321.pdf", compressible(3_000_000)), ("X1234567.pdf", sample_pdf("X1234567"))])
    many = zip_of([(f"Y{n:07d}.pdf", compressible(900_000, seed=n)) for n in range(7)])
    over = zip_of([("X1234567.pdf", sample_pdf("X1234567", padding_bytes=1_200_000, random_padding=True))])
    twice = zip_of(
        [("a/X1234567.pdf", sample_pdf("X1234567")), ("b/X1234567.pdf", sample_pdf("X1234567", text="v2"))]
    )
    dropped = {"BIGENTRY.zip": big_entry, "MANY.zip": many, "OVER.zip": over, "TWICE.zip": twice}
    for name, data in dropped.items():
        drop(root, name, data)
    assert all(len(data) < MAX_BYTES for name, data in dropped.items() if name != "OVER.zip")

    result = run_once(config, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert sandbox.received() == []
    failed = root / "failed"
    files = sorted(path.name for path in failed.iterdir() if not path.name.endswith(".json"))
    assert files == sorted(dropped)
    # nothing unpacked lands in failed/: each ZIP is there as dropped, with its report
    reports = sum(path.stat().st_size for path in failed.glob("*.json"))
    assert bytes_under(failed) == sum(len(data) for data in dropped.values()) + reports
    assert not (root / "sent").exists() or not any((root / "sent").iterdir())
    assert error_of(root, "BIGENTRY.zip")["code"] == "TooLarge"
    assert "Y7654321.pdf" in error_of(root, "BIGENTRY.zip")["message"]
    assert error_of(root, "MANY.zip")["code"] in ("TooLarge", "UnsafeArchive")
    assert error_of(root, "OVER.zip")["code"] == "TooLarge"
    assert error_of(root, "TWICE.zip")["code"] == "UnsafeArchive"
    assert "twice" in error_of(root, "TWICE.zip")["message"]
