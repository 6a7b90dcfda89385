from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from invoicesync.naming import is_ignored, numbered, order_id_of, split_extension, upload_name


def test_plain_order_name() -> None:
    assert order_id_of("SCID01210525142759UT8E.pdf") == "SCID01210525142759UT8E"


def test_numbered_copy_still_names_its_order() -> None:
    assert order_id_of("A1B2C3 (2).pdf") == "A1B2C3"
    assert numbered("A1B2C3.pdf", 2) == "A1B2C3 (2).pdf"
    assert numbered("A1B2C3 (2).pdf", 3) == "A1B2C3 (3).pdf"
    assert numbered("A1B2C3.PDF", 1) == "A1B2C3.PDF"


def test_bad_names_give_no_order() -> None:
    assert order_id_of("invoice march.pdf") is None
    assert order_id_of("ab.pdf") is None
    assert order_id_of(".pdf") is None


def test_erp_pattern_extracts_the_order() -> None:
    pattern = re.compile(r"^INV-\d+_(?P<order>[A-Z0-9]+)$")
    assert order_id_of("INV-42_SCID0121.pdf", pattern) == "SCID0121"
    assert upload_name("SCID0121", "PDF") == "SCID0121.pdf"


def test_temporary_and_system_names_are_ignored() -> None:
    for name in [
        ".hidden",
        "~$A1B2C3.pdf",
        "A1B2C3.pdf.part",
        "x.TMP",
        "Thumbs.db",
        "DESKTOP.INI",
        ".DS_Store",
        "._A1B2C3.pdf",
        "@eaDir",
        "A1.filepart",
        "A1.crdownload",
    ]:
        assert is_ignored(name), name
    assert not is_ignored("A1B2C3.pdf")
    assert is_ignored("A1B2C3.bak", ["*.BAK"])


def test_split_extension_is_case_insensitive() -> None:
    assert split_extension("A1.PDF") == ("A1", "pdf")
    assert split_extension("noext") == ("noext", "")


@given(st.text(max_size=80))
def test_any_name_gives_an_order_or_none(name: str) -> None:
    result = order_id_of(name)
    assert result is None or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{3,63}", result)


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{3,20}", fullmatch=True),
    st.integers(2, 999),
    st.sampled_from(["pdf", "xml", "PDF"]),
)
def test_suffix_round_trip(order: str, number: int, ext: str) -> None:
    assert order_id_of(numbered(f"{order}.{ext}", number)) == order
