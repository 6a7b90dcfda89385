"""Sidecars are written whole or not at all, on both ways of making them durable: one syncfs for a local
filesystem, an fsync each where syncfs cannot be trusted (a network filesystem, an old kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from invoicesync import outbox
from invoicesync.outbox import NameTaken, write_json_files


@pytest.fixture(params=["syncfs", "fsync each"])
def durability(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fsync each":
        monkeypatch.setattr(outbox, "_syncfs", lambda: None)  # as on a kernel before 5.8
    return str(request.param)


def test_sidecars_are_whole_and_no_temp_file_is_left(tmp_path: Path, durability: str) -> None:
    sent, failed = tmp_path / "sent", tmp_path / "failed"
    sent.mkdir()
    failed.mkdir()
    documents = [(sent / f"A{n:04d}.pdf.receipt.json", {"file": f"A{n:04d}.pdf", "n": n}) for n in range(40)]
    documents.append((failed / "B0001.xml.error.json", {"file": "B0001.xml", "é": "ü"}))
    errors = write_json_files(documents, ours=lambda path, existing: False)
    assert errors == [None] * len(documents)
    for path, document in documents:
        assert json.loads(path.read_text(encoding="utf-8")) == document
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []


def test_a_file_at_a_sidecars_name_is_kept_unless_it_is_our_own_report(
    tmp_path: Path, durability: str
) -> None:
    foreign = tmp_path / "X.pdf.receipt.json"
    foreign.write_text("a person's notes")
    ours = tmp_path / "Y.pdf.receipt.json"
    ours.write_text(json.dumps({"file": "Y.pdf", "try": 1}))
    errors = write_json_files(
        [(foreign, {"file": "X.pdf"}), (ours, {"file": "Y.pdf", "try": 2})],
        ours=lambda path, existing: path.name.startswith("Y") and b'"Y.pdf"' in existing,
    )
    assert isinstance(errors[0], NameTaken) and errors[1] is None
    assert foreign.read_text() == "a person's notes"
    assert json.loads(ours.read_text()) == {"file": "Y.pdf", "try": 2}
    assert sorted(p.name for p in tmp_path.glob(".*")) == []
