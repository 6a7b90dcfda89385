"""validate.judge: every generated bad input gets its code, every valid sample passes, messages read well."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from invoicesync.checks.content import Rules, judge, kind_of, self_test, sniff
from invoicesync.checks.pdf import labelled_orders
from invoicesync.checks.schemas import explain_xsd_error
from invoicesync.messages import TEXTS, file_error
from invoicesync.model import Verdict
from tests.badfiles import Case, catalogue, sample_facturx_pdf, sample_pdf, sample_ubl, zip_of

ORDER = "A1B2C3"
CASES = catalogue(ORDER)
CONTENT_CODES = (
    "UnsupportedType",
    "ContentMismatch",
    "TooLarge",
    "InvalidPdf",
    "EncryptedPdf",
    "InvalidXml",
    "NotUbl",
    "UblSchema",
    "OrderMismatch",
    "UnsafeArchive",
)
LOCAL_CODES = (
    "InvalidFileName",
    "UnsupportedType",
    "ContentMismatch",
    "EmptyFile",
    "TooLarge",
    "InvalidPdf",
    "EncryptedPdf",
    "InvalidXml",
    "NotUbl",
    "UblSchema",
    "UnsafeArchive",
    "OrderMismatch",
    "NotARegularFile",
    "Unreadable",
)
RULES = Rules()


def run(file_name: str, data: bytes, order_id: str | None = ORDER, rules: Rules = RULES) -> Verdict:
    return judge(file_name, order_id, io.BytesIO(data), len(data), rules)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_catalogue_case_gets_its_code(case: Case) -> None:
    verdict = run(case.file_name, case.data)
    expected = None if case.stage == "unpack" else case.code
    assert (verdict.error.code if verdict.error else None) == expected, verdict.error
    if verdict.error is not None:
        assert verdict.error.message.endswith(".") and "?" not in verdict.error.message
        assert verdict.error.hint


def test_every_content_code_has_at_least_two_cases() -> None:
    counts = Counter(case.code for case in CASES)
    assert {code: counts[code] for code in CONTENT_CODES if counts[code] < 2} == {}
    assert counts[None] >= 10


def test_verdict_kind_is_the_claimed_kind() -> None:
    assert run(f"{ORDER}.pdf", sample_pdf(ORDER)).kind == "pdf"
    assert run(f"{ORDER}.XML", sample_ubl(ORDER)).kind == "xml"
    assert run(f"{ORDER}.zip", zip_of([(f"{ORDER}.pdf", sample_pdf(ORDER))])).kind == "zip"
    assert run(f"{ORDER}.xml", sample_pdf(ORDER)).kind == "xml"  # ContentMismatch keeps the claim
    assert run(f"{ORDER}.docx", b"x").kind == "docx"


@pytest.mark.parametrize(
    ("file_name", "data", "named"),
    [
        ("x.xml", sample_ubl(" OTHER-9 "), "OTHER-9"),
        ("x.xml", sample_ubl(None), None),
        ("x.pdf", sample_pdf("x", text="Bestellnummer: PO-4711"), "PO-4711"),
        ("x.pdf", sample_facturx_pdf("x", buyer_order="PO-4712"), "PO-4712"),
        ("x.pdf", sample_pdf("x", text="no order here"), None),
    ],
)
def test_order_named_is_reported_and_no_order_id_means_no_mismatch(
    file_name: str, data: bytes, named: str | None
) -> None:
    verdict = run(file_name, data, order_id=None)
    assert verdict.ok
    assert verdict.order_named == named


def test_order_mismatch_names_both_orders() -> None:
    error = run(f"{ORDER}.xml", sample_ubl("OTHER123")).error
    assert error is not None
    assert error.message == f"The invoice names order OTHER123, but the file name says {ORDER}."
    assert "Rename the file" in error.hint


def test_own_order_in_embedded_xml_beats_other_in_text() -> None:
    data = sample_facturx_pdf(ORDER, buyer_order=ORDER.lower(), text="Order: OTHER123")
    assert run(f"{ORDER}.pdf", data).ok


def test_ubl_schema_message_names_element_and_line_and_keeps_raw_detail() -> None:
    data = sample_ubl(ORDER).replace(b"2024-03-01", b"1st of March")
    error = run(f"{ORDER}.xml", data).error
    assert error is not None and error.code == "UblSchema"
    assert "line 5" in error.message and "cbc:IssueDate" in error.message
    assert error.detail is not None and "SCHEMAV" in error.detail and "IssueDate" in error.detail


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Order: X12345", ["X12345"]),
        ("ORDER NUMBER 2211251234ABCD", ["2211251234ABCD"]),
        ("Order No. AB-1234.", ["AB-1234"]),
        ("Order #55512", ["55512"]),
        ("Your order AB321", ["AB321"]),
        ("Commande n° CMD7788", ["CMD7788"]),
        ("N° BON DE COMMANDE : PO201925478", ["PO201925478"]),
        ("N° de commande : 12345678", ["12345678"]),
        ("Bestellnummer 0815-99-1", ["0815-99-1"]),
        ("Bestellung:\u00a0\u00a0\u00a0: PO445", ["PO445"]),
        ("* Bestellung Nr. ORDER84359 Zeile 1", ["ORDER84359"]),
        ("Ihre Auftragsnummer: ABC-123", ["ABC-123"]),
        ("Bestellung vom 01.03.2018.", []),
        ("Order date: 2024-03-01", []),
        ("Order: 01.03.2024", []),
        ("Reorder 12345 now", []),
        ("Orders: 12345", []),
        ("Order: none", []),
        ("Order 1 of 3", []),
        ("Total 120.00 EUR", []),
    ],
)
def test_labelled_orders_in_text(text: str, found: list[str]) -> None:
    assert labelled_orders(text, RULES.order_labels) == found


def test_order_labels_are_configurable() -> None:
    data = sample_pdf(ORDER, text="Pedido: OTHER123")
    assert run(f"{ORDER}.pdf", data).ok
    verdict = run(f"{ORDER}.pdf", data, rules=Rules(order_labels=("Pedido",)))
    assert verdict.error is not None and verdict.error.code == "OrderMismatch"


def test_only_the_configured_first_pages_are_read_for_text() -> None:
    data = sample_pdf(ORDER, text="Order: OTHER123")
    assert run(f"{ORDER}.pdf", data, rules=Rules(pdf_pages_for_text=0)).ok


def test_page_and_size_caps_follow_the_rules() -> None:
    verdict = run(f"{ORDER}.pdf", sample_pdf(ORDER, pages=3), rules=Rules(pdf_max_pages=2))
    assert verdict.error is not None and verdict.error.code == "TooLarge"
    assert "3 pages" in verdict.error.message
    verdict = run(f"{ORDER}.xml", sample_ubl(ORDER), rules=Rules(max_bytes=100))
    assert verdict.error is not None and verdict.error.code == "TooLarge"


def test_zip_limits_follow_the_rules() -> None:
    archive = zip_of([(f"{ORDER}-{n}.xml", sample_ubl(ORDER)) for n in range(3)])
    assert run(f"{ORDER}.zip", archive).ok
    for rules in (
        Rules(zip_max_entries=2),
        Rules(zip_max_total_bytes=len(archive) + 10),
        Rules(zip_max_ratio=2),
    ):
        verdict = run(f"{ORDER}.zip", archive, rules=rules)
        assert verdict.error is not None and verdict.error.code == "UnsafeArchive", rules


def test_doctype_is_refused_even_when_the_raw_scan_misses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("invoicesync.checks.ubl.has_doctype", lambda data: False)
    data = sample_ubl(ORDER).replace(b"?>", b"?>\n<!DOCTYPE Invoice>", 1)
    verdict = run(f"{ORDER}.xml", data)
    assert verdict.error is not None and verdict.error.code == "InvalidXml"
    assert "DOCTYPE" in verdict.error.message


def test_text_over_the_parser_limit_is_explained() -> None:
    data = sample_ubl(ORDER).replace(b"Thank you for your order.", b"A" * 10_500_000)
    verdict = run(f"{ORDER}.xml", data)
    assert verdict.error is not None and verdict.error.code == "InvalidXml"
    assert "safety limit" in verdict.error.message


def test_a_stream_that_fails_to_read_is_unreadable() -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    verdict = judge(f"{ORDER}.pdf", ORDER, Broken(b"%PDF-1.4"), 8, RULES)
    assert verdict.error is not None and verdict.error.code == "Unreadable"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("A.pdf", "pdf"),
        ("A.PDF", "pdf"),
        ("a.b.Xml", "xml"),
        ("x.zip", "zip"),
        ("x.docx", None),
        ("pdf", None),
        ("x.", None),
        ("", None),
        (".pdf", "pdf"),
    ],
)
def test_kind_of(name: str, kind: str | None) -> None:
    assert kind_of(name) == kind


def test_sniff() -> None:
    assert sniff(sample_pdf("x")) == "pdf"
    assert sniff(sample_ubl("x", encoding="utf-16")) == "xml"
    assert sniff(b"  \n<x/>") == "xml"
    assert sniff(zip_of([("a.pdf", b"x")])) == "zip"
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "a PNG image"
    assert sniff(b"hello") is None


def test_self_test_compiles_both_schemas() -> None:
    self_test()


UBL = "urn:oasis:names:specification:ubl:schema:xsd"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            f"Element '{{{UBL}:CommonBasicComponents-2}}PaymentID': This element is not expected. "
            f"Expected is one of ( {{{UBL}:CommonBasicComponents-2}}ID, "
            f"{{{UBL}:CommonBasicComponents-2}}PaymentMeansCode ).",
            "at line 108, the element cbc:PaymentID is not allowed in this place (expected cbc:ID, "
            "cbc:PaymentMeansCode)",
        ),
        (
            f"Element '{{{UBL}:Invoice-2}}Invoice': Missing child element(s). Expected is "
            f"( {{{UBL}:CommonAggregateComponents-2}}InvoiceLine ).",
            "at line 108, the element Invoice lacks a required part (expected cac:InvoiceLine)",
        ),
        (
            f"Element '{{{UBL}:CommonBasicComponents-2}}LineExtensionAmount': "
            "The attribute 'currencyID' is required but missing.",
            "at line 108, the element cbc:LineExtensionAmount lacks its required attribute currencyID",
        ),
        ("Something new from libxml2.", "at line 108, Something new from libxml2"),
    ],
)
def test_xsd_errors_become_sentences(raw: str, expected: str) -> None:
    assert explain_xsd_error(raw, 108) == expected


def test_every_local_code_has_a_message_and_hint() -> None:
    for code in LOCAL_CODES:
        error = file_error(code)
        assert error.code == code
        assert error.message.endswith(".") and "?" not in error.message and "{" not in error.message, code
        assert error.hint.endswith(".") and len(error.hint) > 20, code
    assert set(LOCAL_CODES) <= set(TEXTS)


def test_unknown_code_still_gets_a_sentence() -> None:
    error = file_error("SomethingNew", detail="raw")
    assert error.message and error.hint and error.detail == "raw"
