"""The bad-input catalogue, generated: every content code with its cases, and valid samples beside them.

Nothing here is an opaque fixture: each file is built from a few lines of code that say what is wrong
with it. Other tests import the builders:

    sample_pdf(order_id, text=...)   a real PDF (hand-written objects, Helvetica text, exact xref)
    sample_ubl(order_id, ...)        a complete UBL 2.1 Invoice or CreditNote that passes the full XSD
    sample_facturx_pdf(order_id, buyer_order=...)   a PDF with an embedded CII factur-x.xml
    zip_of([(name, data), ...])      a plain ZIP;  raw_zip([RawEntry(...)])  a ZIP written byte by byte
    catalogue(order_id)              [Case(name, file_name, data, code, stage)]; code None = must pass

`stage` says who refuses the file: "judge" (validate.judge) or "unpack" (archive.unpack: the ZIP looks
safe from its directory, its bytes are not). The daemon gives both the same code. EmptyFile cases are
held by the watcher for `files.empty_after` before they fail.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from typing import NamedTuple

from pypdf import PdfReader, PdfWriter

# ---- PDF -------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (cp1252), escaped."""
    raw = text.encode("cp1252", errors="replace")
    out = bytearray(b"(")
    for byte in raw:
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b")")


def _content(lines: Iterable[str]) -> bytes:
    ops = [b"BT", b"/F1 11 Tf", b"14 TL", b"56 780 Td"]
    for line in lines:
        ops.append(_pdf_string(line) + b" Tj T*")
    ops.append(b"ET")
    return b"\n".join(ops)


def default_invoice_text(order_id: str) -> str:
    return "\n".join(
        [
            "ACME Supplies SARL - 12 rue des Lilas, 75011 Paris",
            "INVOICE INV-2024-0042",
            "Date: 2024-03-01",
            f"Order: {order_id}",
            "1 x Widget, blue           100.00 EUR",
            "VAT 20%                     20.00 EUR",
            "Total                      120.00 EUR",
        ]
    )


def sample_pdf(
    order_id: str,
    *,
    text: str | None = None,
    pages: int = 1,
    version: str = "1.4",
    padding_bytes: int = 0,
    random_padding: bool = False,
    tail: bytes = b"\n",
) -> bytes:
    """A valid PDF whose first page shows `text` (default: an invoice naming `order_id`).

    Further pages share one small content stream; `padding_bytes` adds an image-like stream object
    (zeros, or incompressible bytes with `random_padding`) to reach a given file size.
    """
    lines = (default_invoice_text(order_id) if text is None else text).split("\n")
    first_content = _content(lines)
    other_content = _content(["(continued)"])
    # object numbers: 1 catalog, 2 pages, 3 font, 4 first content, 5 other content, 6 padding, 7.. pages
    page_numbers = [7 + index for index in range(pages)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % n for n in page_numbers)
        + b"] /Count %d >>" % pages,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Length %d >>\nstream\n" % len(first_content) + first_content + b"\nendstream",
        5: b"<< /Length %d >>\nstream\n" % len(other_content) + other_content + b"\nendstream",
    }
    if padding_bytes:
        filler = random.Random(7).randbytes(padding_bytes) if random_padding else bytes(padding_bytes)
        objects[6] = (
            b"<< /Type /XObject /Subtype /Image /Width 1 /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent 8 /Length %d >>\nstream\n"
            % (padding_bytes, padding_bytes)
            + filler
            + b"\nendstream"
        )
    else:
        objects[6] = b"null"
    for index, number in enumerate(page_numbers):
        content = 4 if index == 0 else 5
        objects[number] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content
        )
    return pdf_of(objects, version=version, tail=tail)


def pdf_of(objects: dict[int, bytes], *, version: str = "1.4", tail: bytes = b"\n", root: int = 1) -> bytes:
    """A PDF of these numbered objects, with a correct cross-reference table (numbers 1..max, all there)."""
    out = bytearray(b"%PDF-" + version.encode() + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF" % (size, root, xref_at)
    return bytes(out + tail)


def one_page_pdf(content: bytes, *, compress: bool = False, extra: dict[int, bytes] | None = None) -> bytes:
    """A one-page PDF showing `content` (PDF operators) in Helvetica; `extra` objects from number 6."""
    body = zlib.compress(content, 9) if compress else content
    flate = b" /Filter /FlateDecode" if compress else b""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        5: b"<< /Length %d%s >>\nstream\n" % (len(body), flate) + body + b"\nendstream",
        **(extra or {}),
    }
    return pdf_of(objects)


def slow_pdf(order_id: str, *, lines: int = 300_000) -> bytes:
    """A valid PDF of about 16 KB whose page holds `lines` lines of text in one compressed stream: with
    the default, seconds of PDFium's page and text loading (and some 600 MB of its memory: PDFium keeps
    every text object of a page, so a hostile page costs memory as well as time)."""
    return one_page_pdf(_content([f"Order: {order_id}"] + ["Invoice line"] * lines), compress=True)


def encrypted_pdf(order_id: str, *, user_password: str, algorithm: str = "RC4-128") -> bytes:
    """`sample_pdf` encrypted by pypdf (RC4 needs no `cryptography`); empty user password = owner only."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf(order_id))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def cii_xml(buyer_order: str | None) -> bytes:
    """A minimal Factur-X/ZUGFeRD CII document, naming `buyer_order` as BuyerOrderReferencedDocument."""
    reference = (
        f"<ram:BuyerOrderReferencedDocument><ram:IssuerAssignedID>{buyer_order}</ram:IssuerAssignedID>"
        "</ram:BuyerOrderReferencedDocument>"
        if buyer_order
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" '
        'xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100">'
        "<rsm:ExchangedDocument><ram:ID>INV-2024-0042</ram:ID></rsm:ExchangedDocument>"
        "<rsm:SupplyChainTradeTransaction><ram:ApplicableHeaderTradeAgreement>"
        f"{reference}</ram:ApplicableHeaderTradeAgreement></rsm:SupplyChainTradeTransaction>"
        "</rsm:CrossIndustryInvoice>"
    ).encode()


def sample_facturx_pdf(order_id: str, *, buyer_order: str | None, text: str | None = None) -> bytes:
    """A PDF with an embedded factur-x.xml naming `buyer_order` (text names no order by default)."""
    shown = "INVOICE INV-2024-0042\nTotal 120.00 EUR" if text is None else text
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf(order_id, text=shown))))
    writer.add_attachment("factur-x.xml", cii_xml(buyer_order))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---- UBL 2.1 ---------------------------------------------------------------------------------------

_UBL_NS = {
    "Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


def _party(role: str, name: str, city: str) -> str:
    return (
        f"  <cac:{role}>\n    <cac:Party>\n"
        f"      <cac:PartyName><cbc:Name>{name}</cbc:Name></cac:PartyName>\n"
        f"      <cac:PostalAddress><cbc:CityName>{city}</cbc:CityName>"
        "<cac:Country><cbc:IdentificationCode>FR</cbc:IdentificationCode></cac:Country></cac:PostalAddress>\n"
        f"    </cac:Party>\n  </cac:{role}>\n"
    )


def sample_ubl(
    order_id: str | None,
    *,
    root: str = "Invoice",
    lines: int = 1,
    encoding: str = "utf-8",
    bom: bool = False,
    line_order_ref: str | None = None,
    namespace: str | None = None,
    prefixed: bool = False,
) -> bytes:
    """A complete minimal UBL 2.1 Invoice/CreditNote, valid against the XSD, naming `order_id`.

    `order_id` None leaves out cac:OrderReference; `lines` InvoiceLines; `line_order_ref` adds a
    line-level OrderLineReference; `encoding` "utf-16" writes a UTF-16 file with its BOM.
    """
    line_tag = "InvoiceLine" if root == "Invoice" else "CreditNoteLine"
    quantity_tag = "InvoicedQuantity" if root == "Invoice" else "CreditedQuantity"
    type_code = (
        "  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>\n"
        if root == "Invoice"
        else "  <cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>\n"
    )
    root_ns = namespace or _UBL_NS.get(root, "urn:example:not-ubl")
    tag = f"ubl:{root}" if prefixed else root
    default_ns = f'xmlns:ubl="{root_ns}"' if prefixed else f'xmlns="{root_ns}"'
    body = [
        f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n',
        f'<{tag} {default_ns} xmlns:cac="{_CAC}" xmlns:cbc="{_CBC}">\n',
        "  <cbc:UBLVersionID>2.1</cbc:UBLVersionID>\n",
        "  <cbc:ID>INV-2024-0042</cbc:ID>\n",
        "  <cbc:IssueDate>2024-03-01</cbc:IssueDate>\n",
        type_code,
        "  <cbc:Note>Thank you for your order.</cbc:Note>\n",
        "  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>\n",
    ]
    if order_id is not None:
        body.append(f"  <cac:OrderReference><cbc:ID>{order_id}</cbc:ID></cac:OrderReference>\n")
    body += [
        _party("AccountingSupplierParty", "ACME Supplies SARL", "Paris"),
        _party("AccountingCustomerParty", "Jeanne Martin", "Lyon"),
        '  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">%.2f</cbc:TaxAmount></cac:TaxTotal>\n'
        % (20 * lines),
        "  <cac:LegalMonetaryTotal>\n"
        f'    <cbc:LineExtensionAmount currencyID="EUR">{100 * lines:.2f}</cbc:LineExtensionAmount>\n'
        f'    <cbc:TaxExclusiveAmount currencyID="EUR">{100 * lines:.2f}</cbc:TaxExclusiveAmount>\n'
        f'    <cbc:TaxInclusiveAmount currencyID="EUR">{120 * lines:.2f}</cbc:TaxInclusiveAmount>\n'
        f'    <cbc:PayableAmount currencyID="EUR">{120 * lines:.2f}</cbc:PayableAmount>\n'
        "  </cac:LegalMonetaryTotal>\n",
    ]
    for number in range(1, lines + 1):
        reference = (
            f"    <cac:OrderLineReference><cbc:LineID>{number}</cbc:LineID>"
            f"<cac:OrderReference><cbc:ID>{line_order_ref}</cbc:ID></cac:OrderReference>"
            "</cac:OrderLineReference>\n"
            if line_order_ref
            else ""
        )
        body.append(
            f"  <cac:{line_tag}>\n"
            f"    <cbc:ID>{number}</cbc:ID>\n"
            f'    <cbc:{quantity_tag} unitCode="C62">1</cbc:{quantity_tag}>\n'
            f'    <cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount>\n'
            f"{reference}"
            f"    <cac:Item><cbc:Name>Widget, blue, size {number}</cbc:Name></cac:Item>\n"
            '    <cac:Price><cbc:PriceAmount currencyID="EUR">100.00</cbc:PriceAmount></cac:Price>\n'
            f"  </cac:{line_tag}>\n"
        )
    body.append(f"</{tag}>\n")
    text = "".join(body)
    if encoding.lower() in ("utf-16", "utf-16le", "utf-16be"):
        return text.encode(encoding)  # "utf-16" writes its BOM
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def _without(data: bytes, fragment: bytes) -> bytes:
    assert fragment in data, fragment
    return data.replace(fragment, b"", 1)


def _swap(data: bytes, first: bytes, second: bytes) -> bytes:
    assert first in data and second in data
    return data.replace(first, b"\x00MARK\x00").replace(second, first).replace(b"\x00MARK\x00", second)


UBL_ORDER_DOCUMENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"
       xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
       xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2">
  <cbc:ID>PO-77</cbc:ID><cbc:IssueDate>2024-03-01</cbc:IssueDate>
</Order>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol9;</Invoice>
"""


def _with_doctype(ubl: bytes, doctype: bytes) -> bytes:
    declaration_end = ubl.index(b"?>") + 2
    return ubl[:declaration_end] + b"\n" + doctype + ubl[declaration_end:]


# ---- ZIP -------------------------------------------------------------------------------------------


def zip_of(entries: Iterable[tuple[str, bytes]], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A plain ZIP written by zipfile (directories: a name ending in '/' with empty data)."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which some cases want
        with zipfile.ZipFile(out, "w", compression=method) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return out.getvalue()


class RawEntry(NamedTuple):
    """One entry for `raw_zip`, with every field a hostile archive might bend."""

    name: str
    data: bytes = b""
    method: int = zipfile.ZIP_STORED  # 0 or 8 really compress; any other number is only declared
    flags: int = 0
    unix_mode: int = 0o100644
    declared_size: int | None = None  # the uncompressed size written into both headers
    local_name: str | None = None  # a different name in the local header
    point_to: int | None = None  # no bytes of its own: its central record points at entry N's


def raw_zip(entries: list[RawEntry], *, truncate_central: bool = False) -> bytes:
    """A ZIP written byte by byte: local headers and data, central directory, end record."""
    out = bytearray()
    records: list[tuple[int, int, int, int]] = []  # header offset, crc, compressed size, size
    for entry in entries:
        if entry.point_to is not None:
            records.append(records[entry.point_to])
            continue
        payload = entry.data
        if entry.method == zipfile.ZIP_DEFLATED:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = compressor.compress(entry.data) + compressor.flush()
        crc = zlib.crc32(entry.data)
        size = len(entry.data) if entry.declared_size is None else entry.declared_size
        name = (entry.local_name or entry.name).encode()
        offset = len(out)
        out += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            entry.flags | 0x800,
            entry.method,
            0,
            0x21,
            crc,
            len(payload),
            size,
            len(name),
            0,
        )
        out += name + payload
        records.append((offset, crc, len(payload), size))
    central_at = len(out)
    for entry, (offset, crc, compressed, size) in zip(entries, records, strict=True):
        name = entry.name.encode()
        out += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            (3 << 8) | 20,
            20,
            entry.flags | 0x800,
            entry.method,
            0,
            0x21,
            crc,
            compressed,
            size,
            len(name),
            0,
            0,
            0,
            0,
            entry.unix_mode << 16,
            offset,
        )
        out += name
    central_size = len(out) - central_at
    if truncate_central:
        out = out[: central_at + central_size // 2]
    out += struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), central_size, central_at, 0
    )
    return bytes(out)


# ---- the catalogue ---------------------------------------------------------------------------------


class Case(NamedTuple):
    name: str
    file_name: str
    data: bytes
    code: str | None  # None: must pass
    stage: str = "judge"  # "judge": validate.judge decides; "unpack": archive.unpack does


def _pdf_cases(o: str) -> list[Case]:
    valid = sample_pdf(o)
    half = len(valid) // 2
    no_xref = valid.replace(b"xref\n", b"xref-broken\n").replace(b"/Type /Catalog", b"/Type /Catalgg")
    trailer_at = valid.rindex(b"\nxref\n") + 1
    garbage_body = valid[:15] + random.Random(3).randbytes(trailer_at - 15) + valid[trailer_at:]
    return [
        Case("pdf_valid", f"{o}.pdf", valid, None),
        Case("pdf_valid_upper_extension", f"{o}.PDF", valid, None),
        Case("pdf_valid_version_2_0", f"{o}.pdf", sample_pdf(o, version="2.0"), None),
        Case("pdf_valid_trailing_nuls", f"{o}.pdf", sample_pdf(o, tail=b"\r\n\x00\x00\x00 \n"), None),
        Case("pdf_valid_names_no_order", f"{o}.pdf", sample_pdf(o, text="INVOICE 42\nTotal 10.00 EUR"), None),
        Case("pdf_valid_order_case_differs", f"{o}.pdf", sample_pdf(o, text=f"Order No. {o.lower()}"), None),
        Case(
            "pdf_valid_own_order_among_others",
            f"{o}.pdf",
            sample_pdf(o, text=f"Bestellung: OTHER123\nBestellnummer: {o}"),
            None,
        ),
        Case(
            "pdf_valid_order_date_only",
            f"{o}.pdf",
            sample_pdf(o, text="Order date: 2024-03-01\nBestellung vom 01.03.2024"),
            None,
        ),
        Case("pdf_valid_facturx_own_order", f"{o}.pdf", sample_facturx_pdf(o, buyer_order=o), None),
        Case("pdf_truncated_half", f"{o}.pdf", valid[:half], "InvalidPdf"),
        Case("pdf_truncated_no_eof", f"{o}.pdf", valid[:-8], "InvalidPdf"),
        Case("pdf_header_only", f"{o}.pdf", b"%PDF-1.4\n%\xaa\xab\xac\xad\n", "InvalidPdf"),
        Case("pdf_not_a_pdf", f"{o}.pdf", b"Invoice 42, total 120.00 EUR\n" * 20, "InvalidPdf"),
        Case("pdf_unknown_version", f"{o}.pdf", valid.replace(b"%PDF-1.4", b"%PDF-3.1", 1), "InvalidPdf"),
        Case("pdf_no_startxref", f"{o}.pdf", valid.replace(b"startxref", b"startxrex"), "InvalidPdf"),
        Case("pdf_corrupt_xref_and_catalog", f"{o}.pdf", no_xref, "InvalidPdf"),
        Case("pdf_body_overwritten", f"{o}.pdf", garbage_body, "InvalidPdf"),
        Case(
            "pdf_encrypted_owner_password_only",
            f"{o}.pdf",
            encrypted_pdf(o, user_password=""),
            "EncryptedPdf",
        ),
        Case(
            "pdf_encrypted_user_password",
            f"{o}.pdf",
            encrypted_pdf(o, user_password="secret"),
            "EncryptedPdf",
        ),
        Case(
            "pdf_encrypted_rc4_40",
            f"{o}.pdf",
            encrypted_pdf(o, user_password="", algorithm="RC4-40"),
            "EncryptedPdf",
        ),
        Case(
            "pdf_text_names_other_order", f"{o}.pdf", sample_pdf(o, text="Order: OTHER123"), "OrderMismatch"
        ),
        Case(
            "pdf_text_commande_other",
            f"{o}.pdf",
            sample_pdf(o, text="Facture F-2024-7\nCommande n° OTHER123"),
            "OrderMismatch",
        ),
        Case(
            "pdf_text_bestellnummer_other",
            f"{o}.pdf",
            sample_pdf(o, text="Rechnung 7\nBestellnummer OTHER123"),
            "OrderMismatch",
        ),
        Case(
            "pdf_facturx_names_other_order",
            f"{o}.pdf",
            sample_facturx_pdf(o, buyer_order="OTHER123"),
            "OrderMismatch",
        ),
        Case("pdf_too_many_pages", f"{o}.pdf", sample_pdf(o, pages=2001), "TooLarge"),
        Case("pdf_over_max_bytes", f"{o}.pdf", sample_pdf(o, padding_bytes=20_000_001), "TooLarge"),
        Case("pdf_empty", f"{o}.pdf", b"", "EmptyFile"),
    ]


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _stream(body: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(body), extra) + body + b"\nendstream"


def _page(extra: bytes = b"", *, contents: int = 5, xobjects: bytes = b"") -> bytes:
    resources = b"/Font << /F1 3 0 R >>" + (b" /XObject << " + xobjects + b" >>" if xobjects else b"")
    return (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << %s >> /Contents %d 0 R%s >>"
        % (resources, contents, extra)
    )


def self_drawing_form_pdf(order_id: str) -> bytes:
    """A page that draws a form which draws itself twice: PDFium follows it 2^n deep, taking memory
    and time without end; only the checker's time and memory limits stop it."""
    form = _stream(
        b"/X Do /X Do",
        b" /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /X 6 0 R >> >>",
    )
    text = _content(default_invoice_text(order_id).split("\n")) + b"\n/X Do"
    pages = b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>"
    page = _page(xobjects=b"/X 6 0 R")
    return pdf_of({1: CATALOG, 2: pages, 3: HELVETICA, 4: page, 5: _stream(text), 6: form})


def _pdfium_cases(o: str) -> list[Case]:
    """Hostile structures for PDFium (native code): each gets a verdict in the process, none crashes it."""
    text = _stream(_content(default_invoice_text(o).split("\n")))
    one_kid = b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>"

    def pdf(pages: bytes, *more: tuple[int, bytes]) -> bytes:
        return pdf_of({1: CATALOG, 2: pages, 3: HELVETICA, **dict(more)})

    broken_font = (
        b"<< /Type /Font /Subtype /TrueType /BaseFont /Bad /FirstChar 32 /LastChar 126 /Widths [] "
        b"/FontDescriptor 6 0 R >>"
    )
    descriptor = (
        b"<< /Type /FontDescriptor /FontName /Bad /Flags 32 /FontBBox [0 0 1 1] /ItalicAngle 0 /Ascent 1 "
        b"/Descent 0 /CapHeight 1 /StemV 1 /FontFile2 7 0 R >>"
    )
    garbage_font = _stream(b"\x00\x01\x00\x00" + bytes(range(256)) * 40)
    return [
        Case(
            "pdfium_page_tree_cycle",
            f"{o}.pdf",
            pdf(b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"),
            "InvalidPdf",
        ),
        Case(
            "pdfium_kid_is_a_font",
            f"{o}.pdf",
            pdf(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
            "InvalidPdf",
        ),
        Case(
            "pdfium_page_count_lies",
            f"{o}.pdf",
            pdf(b"<< /Type /Pages /Kids [4 0 R] /Count 100000 >>", (4, _page()), (5, text)),
            "InvalidPdf",
        ),
        Case(
            "pdfium_arrays_nested_100000_deep",
            f"{o}.pdf",
            pdf(one_kid, (4, _page(b" /Junk " + b"[" * 100_000 + b"]" * 100_000)), (5, text)),
            None,  # PDFium stops at its nesting limit and drops the value: the page is whole
        ),
        Case(
            "pdfium_contents_array_holds_itself",
            f"{o}.pdf",
            pdf(one_kid, (4, _page(contents=6)), (5, text), (6, b"[5 0 R 6 0 R]")),
            None,  # the loop is cut; the page's own text is read
        ),
        Case(
            "pdfium_embedded_font_is_garbage",
            f"{o}.pdf",
            pdf(one_kid, (3, broken_font), (4, _page()), (5, text), (6, descriptor), (7, garbage_font)),
            None,  # a viewer shows it with a substitute font: no text read is no verdict, not a refusal
        ),
    ]


def _xml_cases(o: str) -> list[Case]:
    valid = sample_ubl(o)
    xxe = _with_doctype(
        sample_ubl(o).replace(b"INV-2024-0042", b"&xxe;", 1),
        b'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    )
    utf16_doctype = sample_ubl(o, encoding="utf-16").decode("utf-16")
    utf16_doctype = utf16_doctype.replace("?>", "?>\n<!DOCTYPE Invoice>", 1)
    return [
        Case("ubl_valid_invoice", f"{o}.xml", valid, None),
        Case("ubl_valid_credit_note", f"{o}.xml", sample_ubl(o, root="CreditNote"), None),
        Case("ubl_valid_utf16_bom", f"{o}.xml", sample_ubl(o, encoding="utf-16"), None),
        Case("ubl_valid_utf8_bom", f"{o}.xml", sample_ubl(o, bom=True), None),
        Case("ubl_valid_prefixed_root", f"{o}.xml", sample_ubl(o, prefixed=True), None),
        Case("ubl_valid_no_order_reference", f"{o}.xml", sample_ubl(None), None),
        Case("ubl_valid_line_level_other_order", f"{o}.xml", sample_ubl(o, line_order_ref="OTHER123"), None),
        Case(
            "ubl_valid_order_case_and_spaces",
            f"{o}.xml",
            valid.replace(f"<cbc:ID>{o}</cbc:ID>".encode(), f"<cbc:ID> {o.lower()} </cbc:ID>".encode()),
            None,
        ),
        Case("ubl_valid_upper_extension", f"{o}.XML", valid, None),
        Case("xml_xxe", f"{o}.xml", xxe, "InvalidXml"),
        Case("xml_billion_laughs", f"{o}.xml", BILLION_LAUGHS, "InvalidXml"),
        Case("xml_plain_doctype", f"{o}.xml", _with_doctype(valid, b"<!DOCTYPE Invoice>"), "InvalidXml"),
        Case("xml_lowercase_doctype", f"{o}.xml", _with_doctype(valid, b"<!doctype Invoice>"), "InvalidXml"),
        Case("xml_utf16_doctype", f"{o}.xml", utf16_doctype.encode("utf-16"), "InvalidXml"),
        Case("xml_truncated", f"{o}.xml", valid[: len(valid) // 2], "InvalidXml"),
        Case(
            "xml_mismatched_tags",
            f"{o}.xml",
            valid.replace(b"</cbc:IssueDate>", b"</cbc:IssueDat>"),
            "InvalidXml",
        ),
        Case("xml_not_xml_text", f"{o}.xml", b"ID;Date;Total\nINV-42;2024-03-01;120.00\n", "InvalidXml"),
        Case("xml_wrong_namespace", f"{o}.xml", sample_ubl(o, namespace="urn:example:invoice"), "NotUbl"),
        Case("xml_ubl_order_document", f"{o}.xml", UBL_ORDER_DOCUMENT, "NotUbl"),
        Case("xml_cii_invoice", f"{o}.xml", cii_xml(o), "NotUbl"),
        Case("xml_html_page", f"{o}.xml", b"<html><body><p>Invoice 42</p></body></html>", "NotUbl"),
        Case(
            "ubl_missing_issue_date",
            f"{o}.xml",
            _without(valid, b"  <cbc:IssueDate>2024-03-01</cbc:IssueDate>\n"),
            "UblSchema",
        ),
        Case(
            "ubl_elements_out_of_order",
            f"{o}.xml",
            _swap(
                valid,
                b"<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>",
                b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>",
            ),
            "UblSchema",
        ),
        Case("ubl_bad_date", f"{o}.xml", valid.replace(b"2024-03-01", b"2024-13-45"), "UblSchema"),
        Case(
            "ubl_unknown_element",
            f"{o}.xml",
            valid.replace(b"<cbc:Note>", b"<cbc:Remark>x</cbc:Remark><cbc:Note>"),
            "UblSchema",
        ),
        Case("ubl_no_lines", f"{o}.xml", sample_ubl(o, lines=0), "UblSchema"),
        Case("ubl_order_reference_other", f"{o}.xml", sample_ubl("OTHER123"), "OrderMismatch"),
        Case(
            "ubl_credit_note_other_order",
            f"{o}.xml",
            sample_ubl("OTHER123", root="CreditNote"),
            "OrderMismatch",
        ),
        Case("xml_over_max_bytes", f"{o}.xml", valid + b" " * 20_000_001, "TooLarge"),
        Case("xml_empty", f"{o}.xml", b"", "EmptyFile"),
    ]


def _zip_cases(o: str) -> list[Case]:
    pdf, ubl = sample_pdf(o), sample_ubl(o)
    bomb = RawEntry(f"{o}.xml", b"\x00" * 1_000_000, method=zipfile.ZIP_DEFLATED)
    valid_raw = raw_zip([RawEntry(f"{o}.pdf", pdf)])
    return [
        Case("zip_valid", f"{o}.zip", zip_of([(f"{o}.pdf", pdf), (f"{o}.xml", ubl)]), None),
        Case(
            "zip_valid_stored_in_folder",
            f"{o}.zip",
            zip_of([("invoices/", b""), (f"invoices/{o}.pdf", pdf)], method=zipfile.ZIP_STORED),
            None,
        ),
        Case(
            "zip_valid_with_mac_metadata",
            f"{o}.zip",
            zip_of([(f"{o}.pdf", pdf), (f"__MACOSX/._{o}.pdf", b"\x00\x05"), (".DS_Store", b"\x00")]),
            None,
        ),
        Case("zip_valid_raw", f"{o}.zip", valid_raw, None),
        Case("zip_slip_slash", f"{o}.zip", raw_zip([RawEntry(f"../{o}.pdf", pdf)]), "UnsafeArchive"),
        Case(
            "zip_slip_nested_dotdot",
            f"{o}.zip",
            raw_zip([RawEntry(f"a/../../{o}.pdf", pdf)]),
            "UnsafeArchive",
        ),
        Case("zip_slip_backslash", f"{o}.zip", raw_zip([RawEntry(f"..\\{o}.pdf", pdf)]), "UnsafeArchive"),
        Case("zip_absolute_path", f"{o}.zip", raw_zip([RawEntry(f"/tmp/{o}.pdf", pdf)]), "UnsafeArchive"),
        Case("zip_drive_letter", f"{o}.zip", raw_zip([RawEntry(f"C:/{o}.pdf", pdf)]), "UnsafeArchive"),
        Case("zip_control_character", f"{o}.zip", raw_zip([RawEntry(f"{o}\x07.pdf", pdf)]), "UnsafeArchive"),
        Case("zip_nul_in_name", f"{o}.zip", raw_zip([RawEntry(f"{o}.pdf\x00.txt", pdf)]), "UnsafeArchive"),
        Case(
            "zip_symlink_entry",
            f"{o}.zip",
            raw_zip([RawEntry(f"{o}.pdf", b"/etc/passwd", unix_mode=0o120777)]),
            "UnsafeArchive",
        ),
        Case(
            "zip_zipcrypto_flag", f"{o}.zip", raw_zip([RawEntry(f"{o}.pdf", pdf, flags=0x1)]), "UnsafeArchive"
        ),
        Case("zip_bomb_1000_to_1", f"{o}.zip", raw_zip([bomb]), "UnsafeArchive"),
        Case(
            "zip_declared_total_too_big",
            f"{o}.zip",
            raw_zip([RawEntry(f"{o}.pdf", pdf, declared_size=600_000_000)]),
            "UnsafeArchive",
        ),
        Case(
            "zip_nested_zip",
            f"{o}.zip",
            zip_of([("inner.zip", zip_of([(f"{o}.pdf", pdf)]))]),
            "UnsafeArchive",
        ),
        Case(
            "zip_nested_tar_gz",
            f"{o}.zip",
            zip_of([("invoices.tar.gz", b"\x1f\x8b\x08\x00")]),
            "UnsafeArchive",
        ),
        Case(
            "zip_nested_disguised_as_pdf",
            f"{o}.zip",
            zip_of([(f"{o}.pdf", zip_of([("x.pdf", pdf)]))]),
            "UnsafeArchive",
            stage="unpack",
        ),
        Case(
            "zip_duplicate_names", f"{o}.zip", zip_of([(f"{o}.pdf", pdf), (f"{o}.pdf", pdf)]), "UnsafeArchive"
        ),
        Case(
            "zip_duplicate_names_case",
            f"{o}.zip",
            zip_of([(f"{o}.pdf", pdf), (f"{o.swapcase()}.pdf", pdf)]),
            "UnsafeArchive",
        ),
        Case(
            "zip_corrupt_central_directory",
            f"{o}.zip",
            raw_zip([RawEntry(f"{o}.pdf", pdf)], truncate_central=True),
            "UnsafeArchive",
        ),
        Case("zip_no_end_record", f"{o}.zip", valid_raw[:-22], "UnsafeArchive"),
        Case(
            "zip_method_bzip2",
            f"{o}.zip",
            zip_of([(f"{o}.xml", ubl)], method=zipfile.ZIP_BZIP2),
            "UnsafeArchive",
        ),
        Case(
            "zip_method_lzma",
            f"{o}.zip",
            zip_of([(f"{o}.xml", ubl)], method=zipfile.ZIP_LZMA),
            "UnsafeArchive",
        ),
        Case(
            "zip_method_aes",
            f"{o}.zip",
            raw_zip([RawEntry(f"{o}.pdf", pdf, method=99, flags=0x1)]),
            "UnsafeArchive",
        ),
        Case(
            "zip_too_many_entries",
            f"{o}.zip",
            zip_of((f"{o}-{n}.xml", ubl) for n in range(201)),
            "UnsafeArchive",
        ),
        Case(
            "zip_overlapping_entries",
            f"{o}.zip",
            raw_zip([RawEntry(f"{o}.pdf", pdf), RawEntry(f"{o}-2.pdf", point_to=0)]),
            "UnsafeArchive",
        ),
        Case(
            "zip_local_name_differs",
            f"{o}.zip",
            raw_zip([RawEntry(f"{o}.pdf", pdf, local_name=f"../{o}.pdf")]),
            "UnsafeArchive",
        ),
        Case("zip_self_extracting_prefix", f"{o}.zip", b"MZ\x90\x00" + valid_raw, "UnsafeArchive"),
        Case("zip_empty_archive", f"{o}.zip", zip_of([]), "UnsafeArchive"),
    ]


def _type_cases(o: str) -> list[Case]:
    pdf, ubl, archive = sample_pdf(o), sample_ubl(o), zip_of([(f"{o}.pdf", sample_pdf(o))])
    return [
        Case("type_docx", f"{o}.docx", archive, "UnsupportedType"),
        Case("type_txt", f"{o}.txt", b"hello", "UnsupportedType"),
        Case("type_no_extension", o, pdf, "UnsupportedType"),
        Case("mismatch_pdf_named_xml", f"{o}.xml", pdf, "ContentMismatch"),
        Case("mismatch_zip_named_pdf", f"{o}.pdf", archive, "ContentMismatch"),
        Case("mismatch_xml_named_pdf", f"{o}.pdf", ubl, "ContentMismatch"),
        Case("mismatch_pdf_named_zip", f"{o}.zip", pdf, "ContentMismatch"),
        Case("mismatch_png_named_pdf", f"{o}.pdf", b"\x89PNG\r\n\x1a\n" + bytes(64), "ContentMismatch"),
        Case("mismatch_jpeg_named_xml", f"{o}.xml", b"\xff\xd8\xff\xe0" + bytes(64), "ContentMismatch"),
    ]


@functools.lru_cache(maxsize=4)
def _catalogue(order_id: str) -> tuple[Case, ...]:
    return tuple(
        _type_cases(order_id)
        + _pdf_cases(order_id)
        + _pdfium_cases(order_id)
        + _xml_cases(order_id)
        + _zip_cases(order_id)
    )


def catalogue(order_id: str) -> list[Case]:
    """Every generated case for files dropped for `order_id` (at least two per content code)."""
    return list(_catalogue(order_id))
