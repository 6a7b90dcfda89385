"""Names the daemon cannot carry, and the sentences a person reads in `failed/`: whole, plain, actionable."""

from __future__ import annotations

import errno

import pytest

from invoicesync.checks.content import judge_bytes
from invoicesync.messages import TEXTS, file_error, unreadable
from invoicesync.naming import MAX_NAME_BYTES, unusable_name
from tests.badfiles import sample_pdf, zip_of


def test_ordinary_names_are_usable() -> None:
    assert unusable_name("A1B2C3.pdf") is None
    assert unusable_name("Facture n° 42 März.pdf") is None
    assert unusable_name("x" * (MAX_NAME_BYTES - 4) + ".pdf") is None


def test_names_past_the_byte_limit_are_unusable_counting_bytes_not_characters() -> None:
    assert unusable_name("x" * (MAX_NAME_BYTES - 3) + ".pdf") is not None
    assert unusable_name("é" * (MAX_NAME_BYTES // 2) + ".pdf") is not None  # 2 bytes each in UTF-8


def test_names_that_are_not_utf8_are_unusable() -> None:
    latin1 = b"Facture n\xb0 42.pdf".decode("utf-8", "surrogateescape")  # as os.listdir gives it
    reason = unusable_name(latin1)
    assert reason is not None and "UTF-8" in reason


@pytest.mark.parametrize("code", sorted(TEXTS))
def test_every_code_reads_as_whole_sentences_without_its_fields(code: str) -> None:
    error = file_error(code)
    for text in (error.message, error.hint):
        assert text[0].isupper() and text.endswith("."), text
        assert "{" not in text and "?" not in text, text


def test_a_refused_permission_says_who_may_not_read_and_who_can_fix_it() -> None:
    error = unreadable(PermissionError(errno.EACCES, "Permission denied", "/srv/x/A1B2C3.pdf"))
    assert error.code == "Unreadable"
    assert "not allowed" in error.message and "permission denied" in error.message
    assert "file server" in error.hint
    assert error.detail is not None and "A1B2C3.pdf" in error.detail


def test_other_read_errors_keep_the_system_words() -> None:
    error = unreadable(OSError(errno.EIO, "Input/output error"))
    assert error.message == "The file could not be read (Input/output error)."


def test_unsupported_types_are_named_plainly() -> None:
    assert judge_bytes("A1B2C3.docx", "A1B2C3", b"x").error == file_error(
        "UnsupportedType", ext="ending in .docx"
    )
    error = judge_bytes("A1B2C3", "A1B2C3", b"x").error
    assert error is not None
    assert error.message.startswith("A file without an extension cannot be sent")


def test_a_zip_of_only_folders_and_system_files_is_refused() -> None:
    archive = zip_of([("2024/", b""), ("__MACOSX/2024/._A1B2C3.pdf", b"\x00"), (".DS_Store", b"\x00")])
    error = judge_bytes("batch.zip", None, archive).error
    assert error is not None and error.code == "UnsafeArchive"
    assert "no files" in error.message


def test_a_zip_entry_whose_name_cannot_be_kept_is_refused() -> None:
    archive = zip_of([("A1B2C3.pdf", sample_pdf("A1B2C3")), ("2024/" + "x" * 201 + ".pdf", b"%PDF-")])
    error = judge_bytes("batch.zip", None, archive).error
    assert error is not None and error.code == "UnsafeArchive"
    assert "longer than 200" in error.message
