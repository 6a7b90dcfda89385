"""Issue 12, the content checks: a document nested too deeply is said to be so (item 26); a PDF's streams
are decompressed within bounds, and running out of memory fails the file (item 10). Items 6 and 24 are in
test_checks_order.py and test_checks_zip.py."""

from __future__ import annotations

import io
import subprocess
import sys
import zlib
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, NumberObject

from invoicesync.checks.content import Rules, judge_bytes
from tests.badfiles import sample_pdf


def code(name: str, order: str | None, data: bytes, rules: Rules | None = None) -> str | None:
    error = judge_bytes(name, order, data, rules).error
    return None if error is None else error.code


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


ATTACHMENT_PROBE = """
import resource
from tests.unit.test_holes_checks import zero_bomb
from invoicesync.checks.content import judge_bytes
bomb = zero_bomb("BOMB1234", [f"scan{n}.bin" for n in range(10)], 70_000_000)
assert len(bomb) < 1_000_000
judge_bytes("BOMB1234.pdf", "BOMB1234", bomb)  # warm: imports, PDFium's start
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
error = judge_bytes("BOMB1234.pdf", "BOMB1234", bomb).error
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(None if error is None else error.code, peak - before)
"""


def test_attachments_that_are_not_xml_are_never_decompressed() -> None:
    """Item 10: 10 attachments of 70 MB zeros (under 1 MB of file) took 780 MB to look at. Measured as the
    peak resident memory of a fresh process (PDFium's memory is native: tracemalloc would not see it)."""
    code, grown = probe(ATTACHMENT_PROBE).split()
    assert code == "None"  # a valid PDF naming its order: its attachments are not the question
    assert int(grown) < 100_000_000, grown


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
    assert probe(MEMORY_PROBE) == "TooLarge"


def probe(program: str) -> str:
    """What `program` prints, run in a fresh Python from the project's folder."""
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()
