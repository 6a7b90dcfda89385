"""validate.judge on hostile bytes: whatever comes in, a Verdict comes out and nothing is raised."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoicesync.checks.content import Rules, judge
from invoicesync.model import Verdict
from tests.badfiles import sample_facturx_pdf, sample_pdf, sample_ubl, zip_of

ORDER = "A1B2C3"
RULES = Rules()
SAMPLES = {
    "pdf": sample_pdf(ORDER),
    "facturx.pdf": sample_facturx_pdf(ORDER, buyer_order=ORDER),
    "xml": sample_ubl(ORDER),
    "utf16.xml": sample_ubl(ORDER, encoding="utf-16"),
    "zip": zip_of([(f"{ORDER}.pdf", sample_pdf(ORDER)), (f"{ORDER}.xml", sample_ubl(ORDER))]),
}
FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def judged(extension: str, data: bytes) -> Verdict:
    verdict = judge(f"{ORDER}.{extension}", ORDER, io.BytesIO(data), len(data), RULES)
    assert isinstance(verdict, Verdict)
    assert verdict.kind == extension
    if verdict.error is not None:
        assert verdict.error.message and verdict.error.hint
    return verdict


@FAST
@given(extension=st.sampled_from(["pdf", "xml", "zip"]), data=st.binary(max_size=4096))
def test_random_bytes_get_a_verdict(extension: str, data: bytes) -> None:
    verdict = judged(extension, data)
    assert not verdict.ok  # random bytes are never a valid invoice


@FAST
@given(
    extension=st.sampled_from(["pdf", "xml", "zip"]),
    prefix=st.sampled_from([b"%PDF-1.7\n", b"<?xml version='1.0'?>", b"PK\x03\x04", b"\xff\xfe<\x00", b""]),
    data=st.binary(max_size=2048),
    suffix=st.sampled_from([b"", b"\nstartxref\n0\n%%EOF\n", b"</Invoice>", b"PK\x05\x06" + bytes(18)]),
)
def test_plausible_looking_garbage_gets_a_verdict(
    extension: str, prefix: bytes, data: bytes, suffix: bytes
) -> None:
    judged(extension, prefix + data + suffix)


@FAST
@given(
    sample=st.sampled_from(sorted(SAMPLES)),
    cut=st.one_of(st.just(0), st.integers(min_value=0, max_value=20_000)),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=20_000), st.integers(1, 255)), max_size=6),
    insert=st.binary(max_size=64),
    insert_at=st.integers(min_value=0, max_value=20_000),
)
def test_mutated_valid_files_get_a_verdict(
    sample: str, cut: int, flips: list[tuple[int, int]], insert: bytes, insert_at: int
) -> None:
    data = bytearray(SAMPLES[sample])
    for position, mask in flips:
        data[position % len(data)] ^= mask
    at = insert_at % (len(data) + 1)
    data[at:at] = insert
    data = data[: len(data) - cut % max(len(data) // 4, 1)]
    judged(sample.rsplit(".", 1)[-1], bytes(data))


def test_unmutated_samples_pass() -> None:
    for name, data in SAMPLES.items():
        assert judged(name.rsplit(".", 1)[-1], data).ok, name
