"""Issue 12, the content checks: the order in a PDF matches as a whole number, the embedded XML decides
(item 6); a UBL order hidden behind a comment is still read, a ZIP's same-named entries are refused
(item 24); a document nested too deeply is said to be so (item 26); a PDF's streams are decompressed
within bounds (item 10)."""

from __future__ import annotations

import io
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject

from invoicesync.checks.content import Rules, judge_bytes
from tests.badfiles import sample_facturx_pdf, sample_pdf, sample_ubl, zip_of


def code(name: str, order: str | None, data: bytes, rules: Rules | None = None) -> str | None:
    error = judge_bytes(name, order, data, rules).error
    return None if error is None else error.code


@pytest.mark.parametrize(
    ("order", "text_order"),
    [
        ("1234567", "12345678"),  # the file's order is the start of a longer number
        ("SCID0121", "SCID01210525142759UT8E"),  # a shorter file name for a longer order
        ("12345678", "912345678"),  # ... or its end
    ],
)
def test_an_order_inside_a_longer_number_is_not_the_order(order: str, text_order: str) -> None:
    assert code(f"{order}.pdf", order, sample_pdf(text_order)) == "OrderMismatch"


@pytest.mark.parametrize("shown", ["Order: SCID01210525142759UT8E", "Order: SCID01210525142759UT8EDate 2024"])
def test_the_whole_order_still_matches_even_with_a_word_glued_on(shown: str) -> None:
    order = "SCID01210525142759UT8E"
    assert code(f"{order}.pdf", order, sample_pdf(order, text=shown)) is None


def test_the_embedded_xml_decides_over_the_text() -> None:
    order = "FACX1234"
    lying = sample_facturx_pdf(order, buyer_order="OTHER999", text=f"INVOICE\nOrder: {order}")
    assert code(f"{order}.pdf", order, lying) == "OrderMismatch"
    honest = sample_facturx_pdf(order, buyer_order=order, text="INVOICE\nOrder: 99999999")
    assert code(f"{order}.pdf", order, honest) is None


def test_a_ubl_order_behind_a_comment_is_read() -> None:
    ubl = sample_ubl("OTHER123")
    hidden = ubl.replace(b">OTHER123</cbc:ID>", b"><!-- -->OTHER123</cbc:ID>", 1)
    assert hidden != ubl
    assert code("MINE1234.xml", "MINE1234", hidden) == "OrderMismatch"


@pytest.mark.parametrize(
    ("first", "second"), [("a/X1234567.pdf", "b/X1234567.pdf"), ("X1234567.pdf", "x1234567.PDF")]
)
def test_a_zip_with_entries_of_one_name_is_refused_whole(first: str, second: str) -> None:
    archive = zip_of(
        [(first, sample_pdf("X1234567")), (second, sample_pdf("X1234567", text="Order: X1234567 v2"))]
    )
    assert code("BUNDLE01.zip", None, archive) == "UnsafeArchive"


def test_a_document_nested_too_deeply_is_not_called_too_large() -> None:
    deep = b"<a>" * 300 + b"x" + b"</a>" * 300
    error = judge_bytes("DEEP1234.xml", "DEEP1234", deep).error
    assert error is not None and error.code == "InvalidXml"
    assert "nested" in error.message and "large" not in error.message


def zero_bomb(order: str, names: list[str], size: int) -> bytes:
    """A PDF whose attachments each inflate to `size` zero bytes from a few hundred bytes."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf(order))))
    blob = zlib.compress(bytes(size), 9)
    for name in names:
        writer.add_attachment(name, b"x")
    specs = writer.root_object["/Names"]["/EmbeddedFiles"]["/Names"]
    for index in range(1, len(specs), 2):
        stream = specs[index].get_object()["/EF"]["/F"].get_object()
        stream._data = blob  # the compressed bytes as they are in the file
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        stream[NameObject("/Length")] = NumberObject(len(blob))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_attachments_that_are_not_xml_are_never_decompressed() -> None:
    """Item 10: 10 attachments of 70 MB zeros (under 1 MB of file) took 780 MB to look at."""
    bomb = zero_bomb("BOMB1234", [f"scan{n}.bin" for n in range(10)], 70_000_000)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        verdict = judge_bytes("BOMB1234.pdf", "BOMB1234", bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert verdict.error is None  # a valid PDF naming its order: its attachments are not the question
    assert peak < 100_000_000, peak


def test_an_xml_attachment_too_large_to_check_is_refused_not_passed() -> None:
    bomb = zero_bomb("BOMB5678", ["factur-x.xml"], 70_000_000)
    verdict = judge_bytes("BOMB5678.pdf", "BOMB5678", bomb)
    assert verdict.error is not None and verdict.error.code == "TooLarge", verdict


MEMORY_PROBE = """
import sys
from tests.unit.test_holes_checks import zero_bomb
from invoicesync.checks.child import limit_memory
from invoicesync.checks.content import judge_bytes
bomb = zero_bomb("MEMO1234", ["factur-x.xml"], 30_000_000)
with open("/proc/self/status") as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
limit_memory(used + 40_000_000)  # room for the program, not for 30 MB decompressed and parsed
error = judge_bytes("MEMO1234.pdf", "MEMO1234", bomb).error
print(None if error is None else error.code)
"""


def test_running_out_of_memory_under_the_checker_limit_fails_the_file() -> None:
    """Item 10: under a memory limit the MemoryError was swallowed and the file passed."""
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "TooLarge"
