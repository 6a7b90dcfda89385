"""checks.pdf (core): bytes of a .pdf file -> verdict (bytes, PDFium, encryption, pages, order named).

In this order:

1. bytes: `%PDF-` within the first 1024 bytes with version 1.0-1.7 or 2.0; the last 1024 bytes end in
   `%%EOF` (trailing whitespace and NULs allowed) and hold `startxref`. A cut-off file fails here.
2. PDFium (`pypdfium2`, the engine of Chrome's viewer) opens it: a document it cannot load is
   InvalidPdf, one that asks for a password (or uses a security handler it does not know) EncryptedPdf,
   and so is any encrypted one it opens (owner password only: a policy, as before).
3. the page count: none is InvalidPdf, more than the cap is TooLarge; the first page must load, as a
   buyer's viewer loads it.
4. the order named: the buyer's order reference of an embedded Factur-X/ZUGFeRD/UBL XML decides when
   there is one; else labelled numbers in the text of the first pages ("Order: X", "Bestellnummer X",
   "N° de commande X"). Scans have no text and layout splits words, so finding nothing is no verdict:
   only a positively found other order (and the file's own order found nowhere) is OrderMismatch.

PDFium is native code: it runs in the checker processes, which cut off a hang and outlive a crash
(`checks.pool`). It decompresses an attachment whole, with no bound, so the XML attachments are read by
pypdf, whose decompression is bounded (MAX_STREAM_BYTES): that is all pypdf still does here.
"""

from __future__ import annotations

import functools
import io
import re
from typing import BinaryIO

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError

from invoicesync.checks.pdfbytes import byte_problem, ends_of
from invoicesync.checks.ubl import embedded_order_refs, same_order
from invoicesync.messages import file_error
from invoicesync.model import FileError, Verdict

MAX_ATTACHMENTS = 20
MAX_STREAM_BYTES = 32_000_000  # what one attachment may decompress to (pypdf's default is 75 MB)
# The text read for the order check, at most, over all pages read. Safe: a dense A4 page holds about
# 3,000-6,000 characters and an invoice names its order in its header, so the first pages of a real invoice
# are read whole and the bound never changes a verdict; only a page built to be huge is cut, and for it the
# bound caps the string and the label search (PDFium's own work is bounded by the pages read and the
# checker's time limit).
MAX_TEXT_CHARS = 60_000
# the offset `startxref` gives, on the last line
XREF_POINTER = re.compile(rb"(\d{1,15})\s*%%EOF[ \t\r\n\x0c\x00]*$")
XREF_TABLE = re.compile(rb"xref\s+\d+\s+\d+")  # a table's keyword and its first subsection's header
LOCKED = (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)  # load errors that mean encryption


def judge_pdf(
    data: bytes | BinaryIO,
    order_id: str | None,
    *,
    labels: tuple[str, ...],
    pages_for_text: int,
    max_pages: int,
) -> Verdict:
    """The verdict on the bytes of a .pdf file, in memory or as a seekable stream (PDFium then reads only
    the parts it needs: a large scan is never held whole in memory); never raises."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        error, order_named = _check(stream, order_id, labels, pages_for_text, max_pages)
    except LimitReachedError as exc:
        error, order_named = _too_much(exc), None
    except MemoryError:
        raise  # `judge` makes it the file's TooLarge, never a pass
    except Exception as exc:  # whatever the bytes do to the parsers, the file gets a verdict
        error, order_named = _invalid("its internal structure is broken", exc), None
    return Verdict(kind="pdf", error=error, order_named=order_named)


def _too_much(exc: LimitReachedError) -> FileError:
    return file_error(
        "TooLarge",
        reason="a part of it unpacks to more than this service reads of one file",
        detail=f"{type(exc).__name__}: {exc}",
    )


def _invalid(reason: str, exc: BaseException | None = None) -> FileError:
    detail = f"{type(exc).__name__}: {exc}" if exc is not None else None
    return file_error("InvalidPdf", reason=reason, detail=detail)


def _check(
    stream: BinaryIO, order_id: str | None, labels: tuple[str, ...], pages_for_text: int, max_pages: int
) -> tuple[FileError | None, str | None]:
    ends = ends_of(stream)
    problem = byte_problem(ends) or _xref_problem(stream, ends)
    if problem is not None:
        return _invalid(problem), None
    stream.seek(0)
    try:
        document = pdfium.PdfDocument(stream)
    except pdfium.PdfiumError as exc:
        if exc.err_code in LOCKED:
            return file_error("EncryptedPdf", detail=str(exc)), None
        return _invalid("its internal structure is broken", exc), None
    try:
        return _read(document, stream, order_id, labels, pages_for_text, max_pages)
    finally:
        document.close()


def _xref_problem(stream: BinaryIO, ends: bytes) -> str | None:
    """A cross-reference table whose keyword is where `startxref` points but whose entries are not: a
    damaged table (a pointer a few bytes off, or to no table at all, is rebuilt by every viewer, PDFium
    and pypdf alike, and is no verdict)."""
    pointer = XREF_POINTER.search(ends)
    if pointer is None:
        return None
    stream.seek(int(pointer[1]))
    found = stream.read(64)
    if found.startswith(b"xref") and XREF_TABLE.match(found) is None:
        return "its cross-reference table is damaged"
    return None


def _read(
    document: pdfium.PdfDocument,
    stream: BinaryIO,
    order_id: str | None,
    labels: tuple[str, ...],
    pages_for_text: int,
    max_pages: int,
) -> tuple[FileError | None, str | None]:
    if pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1:
        return file_error("EncryptedPdf"), None
    page_count = len(document)
    if page_count <= 0:
        return _invalid("it has no pages"), None
    if page_count > max_pages:
        if not _loads(document, page_count - 1):  # a /Count that lies: a broken page tree, not a large file
            return _invalid("its list of pages is broken"), None
        return file_error(
            "TooLarge", reason=f"it has {page_count:,} pages, more than the {max_pages:,} allowed"
        ), None
    xml_refs = _attached_order_refs(document, stream)
    text_refs: list[str] = []
    chars_left = MAX_TEXT_CHARS
    for index in range(min(max(pages_for_text, 1), page_count)):
        # Only as far as needed: an embedded XML decides alone, and a page naming the file's own order
        # settles it (later text cannot make it a mismatch); the first page is always loaded.
        wanted = not xml_refs and not _settled(order_id, text_refs) and index < pages_for_text
        if index > 0 and not wanted:
            break
        try:
            page = document[index]
        except pdfium.PdfiumError as exc:
            return _invalid(f"page {index + 1} cannot be read", exc), None
        try:
            text = _text(page, chars_left) if wanted and chars_left > 0 else ""
        finally:
            page.close()
        chars_left -= len(text)
        text_refs.extend(ref for ref in labelled_orders(text, labels) if ref not in text_refs)
    return _order_decision(order_id, xml_refs, text_refs)


def _loads(document: pdfium.PdfDocument, index: int) -> bool:
    try:
        document[index].close()
    except pdfium.PdfiumError:
        return False
    return True


def _settled(order_id: str | None, text_refs: list[str]) -> bool:
    if order_id is None:
        return bool(text_refs)
    return any(order_in(ref, order_id) for ref in text_refs)


def _text(page: pdfium.PdfPage, max_chars: int) -> str:
    """The page's text, at most `max_chars` of it; a page PDFium cannot read text from has none (a scan,
    an odd font): no text is no verdict."""
    try:
        textpage = page.get_textpage()
    except pdfium.PdfiumError:
        return ""
    try:
        count = min(textpage.count_chars(), max_chars)
        return textpage.get_text_range(0, count) if count > 0 else ""
    finally:
        textpage.close()


def _attached_order_refs(document: pdfium.PdfDocument, stream: BinaryIO) -> list[str]:
    """Order references of embedded .xml files; a broken attachment names nothing (no verdict). PDFium
    finds their names; pypdf decompresses only those named .xml, at most MAX_ATTACHMENTS of them, each
    within MAX_STREAM_BYTES: one too large to read raises LimitReachedError (the file is TooLarge)."""
    named_xml = False
    for index in range(document.count_attachments()):
        try:
            name = document.get_attachment(index).get_name()
        except pdfium.PdfiumError:
            continue
        named_xml = named_xml or name.lower().endswith(".xml")
    if not named_xml:
        return []
    stream.seek(0)
    with apply_configuration(zlib_maximum_output_length=MAX_STREAM_BYTES):
        try:
            reader = PdfReader(stream, strict=False)
            attachments = [entry for entry in reader.attachment_list if entry.name.lower().endswith(".xml")]
        except (LimitReachedError, MemoryError):
            raise
        except Exception:  # PDFium opened it; pypdf's trouble with it is not the PDF's verdict
            return []
        found: list[str] = []
        for attachment in attachments[:MAX_ATTACHMENTS]:
            try:
                content = attachment.content
            except (LimitReachedError, MemoryError):
                raise
            except Exception:  # a broken stream is not the PDF's verdict
                continue
            try:
                found.extend(embedded_order_refs(content))
            except MemoryError:
                raise
            except Exception:  # an odd embedded XML is not the PDF's verdict
                continue
    return found


def _order_decision(
    order_id: str | None, xml_refs: list[str], text_refs: list[str]
) -> tuple[FileError | None, str | None]:
    """An embedded invoice XML that names an order decides (its field holds the order and nothing else);
    else the text does, where the order must appear as a whole (`order_in`)."""
    named = xml_refs + text_refs
    if not named:
        return None, None
    if order_id is None:
        return None, named[0]
    if xml_refs:
        for ref in xml_refs:
            if same_order(ref, order_id):
                return None, ref
        return file_error("OrderMismatch", named=xml_refs[0], order=order_id), xml_refs[0]
    for ref in text_refs:
        if order_in(ref, order_id):
            return None, ref
    return file_error("OrderMismatch", named=text_refs[0], order=order_id), text_refs[0]


def order_in(ref: str, order_id: str) -> bool:
    """True when the number `ref` read after a label holds `order_id` as a whole token, in any case: not
    inside a longer run of letters and digits ("12345678" is not order 1234567, "SCID01210525142759UT8E"
    not SCID0121). Text layout may glue the next word on ("SCID01210525142759UT8EDate"): a capitalised
    word right after the order ends it; anything else glued on makes another order."""
    wanted = order_id.strip()
    if not wanted:
        return False
    for match in re.finditer(f"(?=({re.escape(wanted)}))", ref, re.IGNORECASE):
        start, end = match.start(1), match.end(1)
        if start > 0 and ref[start - 1].isalnum():
            continue
        if end == len(ref) or not ref[end].isalnum() or _capitalised_word_at(ref, end):
            return True
    return False


def _capitalised_word_at(text: str, at: int) -> bool:
    return text[at].isupper() and at + 1 < len(text) and text[at + 1].islower()


# ---- labelled order numbers in text -----------------------------------------------------------

_ISO_DATE = re.compile(r"^(?P<y>\d{4})[-./](?P<m>\d{1,2})[-./](?P<d>\d{1,2})$")
_LOCAL_DATE = re.compile(r"^(?P<a>\d{1,2})[-./](?P<b>\d{1,2})[-./](?P<y>\d{2}|\d{4})$")
_AMOUNT = re.compile(r"^\d{1,3}(?:[.,']\d{3})*[.,]\d{2}$|^\d{1,3}(?:[.,']\d{3})+$")


def looks_like_date_or_amount(token: str) -> bool:
    """ "01.03.2018", "2024-03-01", "3/1/24", "1.234,56", "120.00": a label's neighbour, not an order."""
    iso = _ISO_DATE.match(token)
    if iso is not None:
        return 1 <= int(iso["m"]) <= 12 and 1 <= int(iso["d"]) <= 31
    local = _LOCAL_DATE.match(token)
    if local is not None:
        a, b = int(local["a"]), int(local["b"])
        return 1 <= min(a, b) <= 12 and 1 <= max(a, b) <= 31
    return _AMOUNT.match(token) is not None


def _label_regex(label: str) -> str:
    words = [re.escape(word).replace("°", "[°º]") for word in label.split()]
    return r"\s+".join(words)


@functools.lru_cache(maxsize=8)
def _label_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted({_label_regex(label) for label in labels if label.strip()}, key=len, reverse=True)
    if not alternatives:
        return re.compile(r"(?!x)x")  # no labels: never matches
    return re.compile(
        r"(?<![^\W\d_])(?:" + "|".join(alternatives) + r")(?![^\W\d_])"  # a label, not inside a word
        r"[\s:#.\-\u2013]*"  # separators (\u2013: en dash)
        r"(?:(?:n[°º]|no|nr|num(?:ber|[ée]ro)?)(?![^\W\d_])[\s:#.]*)?"  # "Nr.", "n°", "number"
        r"(?P<number>[^\W_][\w\-/.]{2,63})",
        re.IGNORECASE,
    )


def labelled_orders(text: str, labels: tuple[str, ...]) -> list[str]:
    """Order numbers that follow one of `labels` in `text`: must hold a digit, not be a date/amount."""
    found: list[str] = []
    for match in _label_pattern(labels).finditer(text):
        number = match["number"].rstrip(".-/")
        if len(number) < 3 or not any(ch.isdigit() for ch in number):
            continue
        if looks_like_date_or_amount(number):
            continue
        if number not in found:
            found.append(number)
    return found
