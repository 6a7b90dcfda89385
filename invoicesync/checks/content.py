"""checks.content (core): a file's name, order and bytes -> verdict (PDF, UBL 2.1, ZIP safety, order).

`judge` is the one entry point: the shell opens the file and passes the stream; everything here decides
and nothing here does I/O beyond reading that stream (and loading the UBL XSDs once, as data). A bad
file is a value: `judge` always returns a `Verdict`, whatever the bytes.

    extension -> UnsupportedType       bytes clearly another kind -> ContentMismatch
    size      -> EmptyFile, TooLarge   then per kind: checks.pdf, checks.ubl, checks.zipsafety

For a ZIP only the archive's safety is judged; the shell (`archive.unpack`) extracts its entries and each
is judged on its own. Message and hint texts of every code live in `messages`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, BinaryIO

from invoicesync.checks.zipsafety import ArchiveCheck, check_archive
from invoicesync.errors import SchemaUnavailable
from invoicesync.messages import file_error, unreadable
from invoicesync.model import FileError, Verdict

# checks.pdf and checks.ubl (pypdfium2, pypdf, lxml: about 20 MB) are imported where a PDF or XML is judged:
# the daemon's main process names rules and opens ZIPs but never judges content itself (its checkers do).

__all__ = ["DEFAULT_ORDER_LABELS", "Rules", "SchemaUnavailable", "judge", "kind_of", "self_test", "sniff"]

DEFAULT_ORDER_LABELS: tuple[str, ...] = (
    "Order",
    "Order number",
    "Order No",
    "Order ID",
    "Order reference",
    "Your order",
    "Commande",
    "Commande n°",
    "N° de commande",
    "Numéro de commande",
    "Bestellnummer",
    "Bestellung",
    "Bestell-Nr",
    "Bestellnr",
    "Auftragsnummer",
    "Auftrags-Nr",
    "Auftragsnr",
)

KINDS = ("pdf", "xml", "zip")

# magic numbers of other kinds people drop by mistake: (prefix, words for the accountant)
OTHER_KINDS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document (.doc or .xls)"),
    (b"{\\rtf", "an RTF text document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
)
KIND_WORDS = {
    "pdf": "a PDF document",
    "xml": "XML or HTML text",
    "zip": "a ZIP archive (or an Office document, which is a ZIP inside)",
}


ZIP_MAX_TOTAL_BYTES = 500_000_000  # what a dropped ZIP may unpack to, at most


DEFAULT_MAX_BYTES = 20_000_000  # files.max_bytes unless an outbox says otherwise


@dataclass(frozen=True, slots=True)
class Rules:
    """Limits and labels of the content check; defaults match `files:` in config.example.yaml."""

    max_bytes: int = (
        DEFAULT_MAX_BYTES  # any file, a dropped ZIP too; what a ZIP unpacks to: zip_max_total_bytes
    )
    order_labels: tuple[str, ...] = DEFAULT_ORDER_LABELS
    pdf_pages_for_text: int = 3
    pdf_max_pages: int = 2000
    zip_max_entries: int = 200
    zip_max_total_bytes: int = ZIP_MAX_TOTAL_BYTES
    zip_max_ratio: int = 100
    accepted: tuple[str, ...] = ("pdf", "xml")  # what the outbox's marketplace takes (a ZIP is unpacked here)


def rules_for(
    max_bytes: int, order_labels: tuple[str, ...] | None = None, accepted: tuple[str, ...] = ("pdf", "xml")
) -> Rules:
    """An outbox's rules: what a dropped ZIP may unpack to is bounded by its `max_bytes` too (five times
    it, at most 500 MB), so a small ZIP cannot fill the share."""
    total = min(5 * max_bytes, ZIP_MAX_TOTAL_BYTES)
    labels = DEFAULT_ORDER_LABELS if order_labels is None else order_labels
    return Rules(max_bytes=max_bytes, order_labels=labels, zip_max_total_bytes=total, accepted=accepted)


def _not_accepted(kind: str, accepted: tuple[str, ...]) -> FileError:
    """A kind this outbox's marketplace does not take (an XML for Kaufland, which takes PDF only)."""
    names = " or ".join({"pdf": "PDF", "xml": "UBL 2.1 XML"}[k] for k in accepted)
    return file_error(
        "UnsupportedType",
        ext=f"ending in .{kind}",
        accepted=f"{names} invoices (and ZIPs of them) can: the marketplace of this outbox accepts no other",
        wanted=f"a {names} file",
    )


def kind_of(file_name: str) -> str | None:
    """ "pdf", "xml" or "zip" by extension (any case), else None."""
    _, dot, extension = file_name.rpartition(".")
    kind = extension.lower() if dot else ""
    return kind if kind in KINDS else None


def sniff(head: bytes) -> str | None:
    """What the first bytes clearly are: "pdf", "xml", "zip", words for another known kind, or None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    from invoicesync.checks.ubl import looks_like_xml  # lazily: see the imports

    if looks_like_xml(head):
        return "xml"
    if head.startswith(b"%PDF-"):  # a PDF may carry junk before it, but only at 0 is it clear
        return "pdf"
    for magic, words in OTHER_KINDS:
        if head.startswith(magic):
            return words
    return None


def self_test() -> None:
    """Load the PDF and XML checks and compile the UBL 2.1 XSDs now (a checker's start, `check`), so that a
    broken installation is found there and never becomes a verdict on a file: raises SchemaUnavailable."""
    try:  # lazily: see the imports
        from invoicesync.checks.pdf import judge_pdf  # noqa: F401  # loaded, not used: that is the test
        from invoicesync.checks.schemas import self_test as xsd_self_test
    except ImportError as exc:
        raise SchemaUnavailable(f"A library the checks need is missing or broken: {exc}.") from exc
    xsd_self_test()


def archive_check(stream: IO[bytes], size: int, rules: Rules) -> ArchiveCheck:
    """The ZIP safety rules with this outbox's limits (used by `judge` and by `archive.unpack`)."""
    return check_archive(
        stream,
        size,
        max_entries=rules.zip_max_entries,
        max_total_bytes=rules.zip_max_total_bytes,
        max_ratio=rules.zip_max_ratio,
        max_entry_bytes=rules.max_bytes,
    )


def judge(file_name: str, order_id: str | None, stream: BinaryIO, size: int, rules: Rules) -> Verdict:
    """The content verdict on one file. Never raises for any bytes (SchemaUnavailable is an install fault)."""
    kind = kind_of(file_name)
    if kind is None:
        _, dot, extension = file_name.rpartition(".")
        shown = f"ending in .{extension}" if dot and extension else "without an extension"
        return Verdict(kind=extension.lower() if dot else "", error=file_error("UnsupportedType", ext=shown))
    if kind != "zip" and kind not in rules.accepted:
        return Verdict(kind=kind, error=_not_accepted(kind, rules.accepted))
    try:
        return _judge(kind, order_id, stream, size, rules)
    except SchemaUnavailable:
        raise
    except OSError as exc:
        return Verdict(kind=kind, error=unreadable(exc))
    except MemoryError:  # out of memory under the checker's limit: the file is too much to check, not passed
        return Verdict(
            kind=kind,
            error=file_error("TooLarge", reason="checking it takes more memory than a checker may use"),
        )
    except Exception as exc:  # a last net: a verdict, never a crash of the outbox loop
        code = {"pdf": "InvalidPdf", "xml": "InvalidXml", "zip": "UnsafeArchive"}[kind]
        return Verdict(kind=kind, error=file_error(code, detail=f"{type(exc).__name__}: {exc}"))


def _judge(kind: str, order_id: str | None, stream: BinaryIO, size: int, rules: Rules) -> Verdict:
    limit = rules.max_bytes
    if size > limit:
        return Verdict(kind=kind, error=_too_large(size, limit))
    if size <= 0:
        return Verdict(kind=kind, error=file_error("EmptyFile"))

    stream.seek(0)
    head = stream.read(1024)
    actual = sniff(head)
    if actual is not None and actual != kind:
        return Verdict(
            kind=kind,
            error=file_error(
                "ContentMismatch",
                claimed=kind.upper(),
                actual=KIND_WORDS.get(actual, actual),
                detail=f"it starts with: {readable_start(head[:16])}",
            ),
        )

    if kind == "zip":
        return Verdict(kind="zip", error=archive_check(stream, size, rules).error)

    if kind == "pdf":  # PDFium reads from the stream what it needs: a large PDF is never held whole
        from invoicesync.checks.pdf import judge_pdf  # lazily: see the imports

        end = stream.seek(0, io.SEEK_END)
        if end > limit:  # the file grew past what `size` said
            return Verdict(kind=kind, error=_too_large(end, limit))
        if end == 0:
            return Verdict(kind=kind, error=file_error("EmptyFile"))
        return judge_pdf(
            stream,
            order_id,
            labels=rules.order_labels,
            pages_for_text=rules.pdf_pages_for_text,
            max_pages=rules.pdf_max_pages,
        )
    stream.seek(0)
    data = stream.read(limit + 1)
    if len(data) > limit:  # the file grew past what `size` said
        return Verdict(kind=kind, error=_too_large(len(data), limit))
    if not data:
        return Verdict(kind=kind, error=file_error("EmptyFile"))
    from invoicesync.checks.ubl import judge_xml  # lazily: see the imports

    return judge_xml(data, order_id)


def _too_large(size: int, limit: int) -> FileError:
    shown, allowed = _megabytes(size), _megabytes(limit)
    if shown == allowed:  # just over the line: say it in bytes
        shown, allowed = f"{size:,} bytes", f"{limit:,}"
    return file_error("TooLarge", reason=f"{shown}, more than the {allowed} allowed")


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size < 10_000_000_000 else f"{size / 1e9:.1f} GB"


def readable_start(data: bytes) -> str:
    """First bytes as a person can read them: printable ASCII as is, others as '.', then in hex."""
    text = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in data)
    return f'"{text}" (hex {data.hex(" ")})'


def judge_bytes(file_name: str, order_id: str | None, data: bytes, rules: Rules | None = None) -> Verdict:
    """`judge` on bytes in memory (tests, the `validate` command on small files)."""
    return judge(file_name, order_id, io.BytesIO(data), len(data), rules or Rules())
