"""Issue 12, items 24 and 26: a ZIP whose entries share a name is refused whole; a ZIP is held to
`files.max_bytes` (itself, each entry, and what it unpacks to in all)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from invoicesync.archive import Unpacked, unpack
from invoicesync.checks.content import judge_bytes, rules_for
from invoicesync.model import FileError
from tests.badfiles import sample_pdf, zip_of

ORDER = "X1234567"


def compressible(size: int, seed: int = 1) -> bytes:
    """Bytes that deflate about 10 times: under the ratio rule (100), well over a size limit unpacked."""
    return bytes(random.Random(seed).choices(b"ab", weights=[8, 1], k=size))


def nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (f"a/{ORDER}.pdf", f"b/{ORDER}.pdf"),  # one name in two folders
        (f"{ORDER}.pdf", f"{ORDER.lower()}.PDF"),  # names that differ only in case
        (f"a/{ORDER}.pdf", f"{ORDER.lower()}.pdf"),
        ("a/Caf\u00e9.pdf", "b/Cafe\u0301.pdf"),  # one name, two Unicode spellings
    ],
)
def test_a_zip_with_entries_of_one_name_is_refused_whole(tmp_path: Path, first: str, second: str) -> None:
    data = zip_of([(first, sample_pdf(ORDER)), (second, sample_pdf(ORDER, text=f"Order: {ORDER} v2"))])
    error = judge_bytes("BUNDLE01.zip", None, data).error
    assert error is not None and error.code == "UnsafeArchive", error
    assert "twice" in error.message
    zip_path = tmp_path / "BUNDLE01.zip"
    zip_path.write_bytes(data)
    unpacked = unpack(zip_path, tmp_path / "out", rules_for(20_000_000))
    assert isinstance(unpacked, FileError) and unpacked.code == "UnsafeArchive"
    assert nothing_in(tmp_path / "out")


def test_entries_of_different_names_in_folders_are_kept(tmp_path: Path) -> None:
    data = zip_of([(f"a/{ORDER}.pdf", sample_pdf(ORDER)), ("b/Y7654321.pdf", sample_pdf("Y7654321"))])
    assert judge_bytes("BUNDLE01.zip", None, data).error is None


def test_an_entry_over_max_bytes_refuses_the_zip_before_anything_is_unpacked(tmp_path: Path) -> None:
    rules = rules_for(1_000_000)
    data = zip_of([(f"{ORDER}.pdf", sample_pdf(ORDER)), ("Y7654321.pdf", compressible(3_000_000))])
    assert len(data) < rules.max_bytes
    error = judge_bytes("BUNDLE01.zip", None, data, rules).error
    assert error is not None and error.code == "TooLarge", error
    assert "Y7654321.pdf" in error.message and "1.0 MB" in error.message, error.message
    zip_path = tmp_path / "BUNDLE01.zip"
    zip_path.write_bytes(data)
    unpacked = unpack(zip_path, tmp_path / "out", rules)
    assert isinstance(unpacked, FileError) and unpacked.code == "TooLarge"
    assert nothing_in(tmp_path / "out")


def test_a_zip_unpacks_to_at_most_five_times_max_bytes(tmp_path: Path) -> None:
    rules = rules_for(1_000_000)
    assert rules.zip_max_total_bytes == 5_000_000
    data = zip_of([(f"Y{n:07d}.pdf", compressible(900_000, seed=n)) for n in range(7)])  # 6.3 MB
    assert len(data) < rules.max_bytes
    error = judge_bytes("BUNDLE01.zip", None, data, rules).error
    assert error is not None and error.code == "UnsafeArchive", error
    zip_path = tmp_path / "BUNDLE01.zip"
    zip_path.write_bytes(data)
    assert isinstance(unpack(zip_path, tmp_path / "out", rules), FileError)
    under = zip_of([(f"Y{n:07d}.pdf", compressible(900_000, seed=n)) for n in range(5)])  # 4.5 MB
    (tmp_path / "u.zip").write_bytes(under)
    assert isinstance(unpack(tmp_path / "u.zip", tmp_path / "out2", rules), Unpacked)


def test_the_total_is_capped_at_500_mb_whatever_max_bytes_says() -> None:
    assert rules_for(200_000_000).zip_max_total_bytes == 500_000_000


def test_a_zip_over_max_bytes_is_too_large() -> None:
    rules = rules_for(1_000_000)
    data = zip_of([(f"{ORDER}.pdf", sample_pdf(ORDER, padding_bytes=1_200_000, random_padding=True))])
    error = judge_bytes("BUNDLE01.zip", None, data, rules).error
    assert error is not None and error.code == "TooLarge", error
