"""archive.unpack on a real tmp_path: names we choose, every byte counted, all or nothing kept."""

from __future__ import annotations

import random
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoicesync.archive import Unpacked, safe_basename, unpack
from invoicesync.checks.content import Rules, judge
from invoicesync.model import FileError
from tests.badfiles import Case, RawEntry, catalogue, raw_zip, sample_pdf, sample_ubl, zip_of

ORDER = "A1B2C3"
ZIP_CASES = [case for case in catalogue(ORDER) if case.file_name.endswith(".zip") and case.code is not None]
RULES = Rules()


def drop(tmp_path: Path, data: bytes, name: str = f"{ORDER}.zip") -> tuple[Path, Path]:
    zip_path = tmp_path / name
    zip_path.write_bytes(data)
    return zip_path, tmp_path / "unpacked"


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def test_safe_zip_is_extracted_to_names_we_choose(tmp_path: Path) -> None:
    pdf, ubl = sample_pdf(ORDER), sample_ubl(ORDER)
    data = zip_of(
        [
            ("2024/", b""),
            (f"2024/03/{ORDER}.pdf", pdf),
            (f"{ORDER}.xml", ubl),
            (f"__MACOSX/2024/._{ORDER}.pdf", b"\x00"),
            (".DS_Store", b"\x00"),
        ]
    )
    zip_path, dest = drop(tmp_path, data)

    unpacked = unpack(zip_path, dest, RULES)

    assert isinstance(unpacked, Unpacked)
    assert [(entry.name, entry.path.name, entry.size) for entry in unpacked] == [
        (f"2024/03/{ORDER}.pdf", f"0000__{ORDER}.pdf", len(pdf)),
        (f"{ORDER}.xml", f"0001__{ORDER}.xml", len(ubl)),
    ]
    assert unpacked.entries[0].path.read_bytes() == pdf
    assert unpacked.entries[1].path.read_bytes() == ubl
    assert set(unpacked.skipped) == {"2024/", f"__MACOSX/2024/._{ORDER}.pdf", ".DS_Store"}
    assert files_under(dest) == sorted(entry.path for entry in unpacked)
    assert len(unpacked) == 2


@pytest.mark.parametrize("case", ZIP_CASES, ids=[case.name for case in ZIP_CASES])
def test_unsafe_zip_is_refused_and_nothing_is_kept(tmp_path: Path, case: Case) -> None:
    zip_path, dest = drop(tmp_path, case.data)

    unpacked = unpack(zip_path, dest, RULES)

    assert isinstance(unpacked, FileError)
    assert unpacked.code == "UnsafeArchive"  # a PDF named .zip (ContentMismatch to judge) is no ZIP here
    assert files_under(tmp_path) == [zip_path]


def test_nested_archive_behind_an_innocent_name_is_caught_while_copying(tmp_path: Path) -> None:
    inner = zip_of([("x.pdf", sample_pdf(ORDER))])
    data = zip_of([(f"{ORDER}.pdf", sample_pdf(ORDER)), (f"{ORDER}-2.pdf", inner)])
    zip_path, dest = drop(tmp_path, data)
    with zip_path.open("rb") as stream:
        assert judge(zip_path.name, None, stream, len(data), RULES).ok  # names alone look fine

    unpacked = unpack(zip_path, dest, RULES)

    assert isinstance(unpacked, FileError) and unpacked.code == "UnsafeArchive"
    assert "itself an archive" in unpacked.message
    assert files_under(dest) == []  # the first entry, already written, was removed


@pytest.mark.parametrize("declared", [10, 50_000])
def test_entry_whose_declared_size_lies_is_refused(tmp_path: Path, declared: int) -> None:
    data = raw_zip([RawEntry(f"{ORDER}.pdf", sample_pdf(ORDER), declared_size=declared)])
    zip_path, dest = drop(tmp_path, data)

    unpacked = unpack(zip_path, dest, RULES)

    assert isinstance(unpacked, FileError) and unpacked.code == "UnsafeArchive"
    assert files_under(dest) == []


def test_caps_come_from_the_rules(tmp_path: Path) -> None:
    data = zip_of([(f"{ORDER}-{n}.xml", sample_ubl(ORDER)) for n in range(5)])
    zip_path, dest = drop(tmp_path, data)
    for rules in (Rules(zip_max_entries=4), Rules(zip_max_total_bytes=len(data) + 100)):
        unpacked = unpack(zip_path, dest, rules)
        assert isinstance(unpacked, FileError) and unpacked.code in ("UnsafeArchive", "TooLarge"), rules
    assert files_under(dest) == []
    assert isinstance(unpack(zip_path, dest, RULES), Unpacked)


def test_missing_zip_is_unreadable(tmp_path: Path) -> None:
    unpacked = unpack(tmp_path / "gone.zip", tmp_path / "out", RULES)
    assert isinstance(unpacked, FileError) and unpacked.code == "Unreadable"


def test_crc_damage_inside_an_entry_is_refused(tmp_path: Path) -> None:
    pdf = sample_pdf(ORDER)
    data = bytearray(raw_zip([RawEntry(f"{ORDER}.pdf", pdf)]))
    at = data.index(b"%PDF") + 200
    data[at] ^= 0xFF
    zip_path, dest = drop(tmp_path, bytes(data))

    unpacked = unpack(zip_path, dest, RULES)

    assert isinstance(unpacked, FileError) and unpacked.code == "UnsafeArchive"
    assert files_under(dest) == []


@pytest.mark.parametrize(
    ("entry_name", "expected"),
    [
        ("A1B2C3.pdf", "A1B2C3.pdf"),
        ("deep/folder/A1B2C3.pdf", "A1B2C3.pdf"),
        ("Facture n°7 (copie).pdf", "Facture n_7 _copie_.pdf"),
        ("..hidden.pdf", "hidden.pdf"),
        ("folder/", "folder"),
        ("", "entry"),
        ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ],
)
def test_safe_basename(entry_name: str, expected: str) -> None:
    assert safe_basename(entry_name) == expected


HOSTILE = [
    RawEntry("../evil.pdf", b"x"),
    RawEntry("/abs.pdf", b"x"),
    RawEntry("a\\b.pdf", b"x"),
    RawEntry("c:x.pdf", b"x"),
    RawEntry("link.pdf", b"/etc/passwd", unix_mode=0o120777),
    RawEntry("crypt.pdf", b"x", flags=0x1),
    RawEntry("bomb.xml", b"\x00" * 300_000, method=zipfile.ZIP_DEFLATED),
    RawEntry("inner.zip", b"PK\x03\x04"),
    RawEntry("lzma.xml", b"x", method=zipfile.ZIP_LZMA),
]
FRIENDLY = [RawEntry(f"{ORDER}-{n}.pdf", sample_pdf(ORDER)) for n in range(3)]


@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    friendly=st.lists(st.sampled_from(range(len(FRIENDLY))), max_size=3, unique=True),
    hostile=st.lists(st.sampled_from(range(len(HOSTILE))), min_size=1, max_size=3, unique=True),
    order=st.randoms(use_true_random=False),
)
def test_any_archive_with_a_hostile_member_is_refused_whole(
    friendly: list[int], hostile: list[int], order: random.Random
) -> None:
    entries = [FRIENDLY[n] for n in friendly] + [HOSTILE[n] for n in hostile]
    order.shuffle(entries)
    data = raw_zip(entries)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        zip_path, dest = drop(root, data)
        with zip_path.open("rb") as stream:
            verdict = judge(zip_path.name, None, stream, len(data), RULES)
        unpacked = unpack(zip_path, dest, RULES)
        assert verdict.error is not None and verdict.error.code == "UnsafeArchive"
        assert isinstance(unpacked, FileError) and unpacked.code == "UnsafeArchive"
        assert [path for path in root.rglob("*") if path.is_file()] == [zip_path]


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=10_000),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(1, 255)), max_size=4),
)
def test_mutated_zip_never_raises_and_never_writes_outside(cut: int, flips: list[tuple[int, int]]) -> None:
    base = bytearray(zip_of([(f"{ORDER}.pdf", sample_pdf(ORDER)), (f"{ORDER}.xml", sample_ubl(ORDER))]))
    for position, mask in flips:
        base[position % len(base)] ^= mask
    data = bytes(base[: len(base) - cut % len(base)])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        zip_path, dest = drop(root, data)
        unpacked = unpack(zip_path, dest, RULES)
        written = [path for path in root.rglob("*") if path.is_file() and path != zip_path]
        if isinstance(unpacked, FileError):
            assert written == []
        else:
            assert sorted(written) == sorted(entry.path for entry in unpacked)
            assert all(path.parent == dest for path in written)
