"""Issue 12, items 6 and 24: the order an invoice names is matched as a whole, wherever it is read.

A PDF's text names an order as a whole token (a longer number holding the file's order, or a longer order
starting with it, is another order); an embedded Factur-X/ZUGFeRD XML that names an order decides over the
text; a UBL order reference hidden behind a comment is still read.
"""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader, PdfWriter

from invoicesync.checks.content import judge_bytes
from invoicesync.checks.pdf import order_in
from tests.badfiles import cii_xml, sample_facturx_pdf, sample_pdf, sample_ubl


def code(name: str, order: str | None, data: bytes) -> str | None:
    error = judge_bytes(name, order, data).error
    return None if error is None else error.code


@pytest.mark.parametrize(
    ("order", "shown"),
    [
        ("1234567", "12345678"),  # the file's order is the start of a longer number
        ("SCID0121", "SCID01210525142759UT8E"),  # a shorter file name for a longer order
        ("12345678", "912345678"),  # ... or its end
        ("12345678", "A12345678"),
        ("SCID0121", "SCID0121X"),  # one more character is another order
        ("12345678", "12345678B"),
    ],
)
def test_an_order_inside_a_longer_one_is_another_order(order: str, shown: str) -> None:
    assert code(f"{order}.pdf", order, sample_pdf(order, text=f"INVOICE\nOrder: {shown}")) == "OrderMismatch"


@pytest.mark.parametrize(
    "shown",
    [
        "Order: {o}",
        "Order: {lower}",  # case does not matter
        "Order: {o}Date 2024-03-01",  # text layout glued the next word on
        "Order No. {o}, shipped 2024-03-01",
        "Order: {o}/1",  # a separator ends the token
        "Order: PO-{o}",
    ],
)
@pytest.mark.parametrize("order", ["SCID01210525142759UT8E", "12345678"])
def test_the_whole_order_matches(order: str, shown: str) -> None:
    text = "INVOICE\n" + shown.format(o=order, lower=order.lower())
    assert code(f"{order}.pdf", order, sample_pdf(order, text=text)) is None


@pytest.mark.parametrize(
    ("ref", "order", "found"),
    [
        ("12345678", "12345678", True),
        ("12345678", "1234567", False),
        ("912345678", "12345678", False),
        ("SCID01210525142759UT8EDate", "SCID01210525142759UT8E", True),
        ("SCID01210525142759UT8EDATE", "SCID01210525142759UT8E", False),  # no sign of a glued word
        ("SCID01210525142759UT8E", "SCID0121", False),
        ("12345678-2", "12345678", True),
        ("ab12345678", "12345678", False),
        ("", "12345678", False),
        ("12345678", "", False),
    ],
)
def test_order_in_a_reference(ref: str, order: str, found: bool) -> None:
    assert order_in(ref, order) is found


def test_the_embedded_xml_decides_over_the_text() -> None:
    order = "FACX1234"
    lying = sample_facturx_pdf(order, buyer_order="OTHER999", text=f"INVOICE\nOrder: {order}")
    assert code(f"{order}.pdf", order, lying) == "OrderMismatch"
    honest = sample_facturx_pdf(order, buyer_order=order, text="INVOICE\nOrder: 99999999")
    assert code(f"{order}.pdf", order, honest) is None
    silent = sample_facturx_pdf(order, buyer_order=None, text=f"INVOICE\nOrder: {order}")
    assert code(f"{order}.pdf", order, silent) is None  # an XML that names no order decides nothing


def test_the_embedded_xml_is_matched_whole_too() -> None:
    order = "FACX1234"
    longer = sample_facturx_pdf(order, buyer_order=f"{order}5", text=f"INVOICE\nOrder: {order}")
    assert code(f"{order}.pdf", order, longer) == "OrderMismatch"


def test_a_ubl_order_behind_a_comment_is_read() -> None:
    ubl = sample_ubl("OTHER123")
    for hidden in (
        ubl.replace(b">OTHER123</cbc:ID>", b"><!-- -->OTHER123</cbc:ID>", 1),
        ubl.replace(b">OTHER123</cbc:ID>", b">OTHER<!-- x -->123</cbc:ID>", 1),
        ubl.replace(b">OTHER123</cbc:ID>", b"><?pi x?>OTHER123</cbc:ID>", 1),
    ):
        assert hidden != ubl
        verdict = judge_bytes("MINE1234.xml", "MINE1234", hidden)
        assert verdict.error is not None and verdict.error.code == "OrderMismatch", verdict
        assert verdict.order_named == "OTHER123"


def test_a_cii_order_behind_a_comment_is_read() -> None:
    order = "FACX1234"
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf(order, text=f"Order: {order}"))))
    xml = cii_xml("OTHER999").replace(b"<ram:IssuerAssignedID>", b"<ram:IssuerAssignedID><!-- -->")
    assert xml != cii_xml("OTHER999")
    writer.add_attachment("factur-x.xml", xml)
    out = io.BytesIO()
    writer.write(out)
    assert code(f"{order}.pdf", order, out.getvalue()) == "OrderMismatch"
