"""sandbox.checks (shell): what the sandbox makes of each received file, decided at upload time.

One multipart part becomes one `FileEntry`, or one per file entry of a ZIP. Each entry's fate follows
octopia.md: the order check (`InvalidFileName`, `OrderNotFound`) comes before the file check
(`InvalidFileFormat`: `%PDF-` header, well-formed UBL 2.1 Invoice/CreditNote XML without DOCTYPE, safe ZIP
entries). Everything reads from spooled temporary files in chunks, never a whole file at once.
"""

from __future__ import annotations

import hashlib
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO
from xml.parsers import expat

from invoicesync.sandbox.multipart import CHUNK_BYTES, SPOOL_BYTES, Part

ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,63}$")
MAX_ENTRY_BYTES = 256 * 1024 * 1024
UBL_ROOTS = frozenset(
    {
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2 Invoice",
        "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2 CreditNote",
    }
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

INVALID_FILE_NAME = "InvalidFileName"
ORDER_NOT_FOUND = "OrderNotFound"
INVALID_FILE_FORMAT = "InvalidFileFormat"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of an import as the sandbox judged it; `error` None means it will be integrated.

    `sha256` is None only for a ZIP entry whose bytes could not be read (encrypted, broken).
    """

    name: str
    file_name: str
    order_id: str | None
    sha256: str | None
    size: int
    error: tuple[str, str] | None = None


def order_not_found_detail(order_id: str) -> str:
    return f"Order {order_id} was not found for this seller — check the order identifier."


def order_known(order_id: str, orders: frozenset[str] | None) -> bool:
    return bool(ORDER_ID.match(order_id)) and (orders is None or order_id in orders)


def expand(part: Part, *, path_order: str | None, orders: frozenset[str] | None) -> list[FileEntry]:
    """The entries of one part: bulk when `path_order` is None, else the single-order endpoint's."""
    head = part.file.read(4)
    part.file.seek(0)
    is_zip = (
        part.filename.lower().endswith(".zip")
        or (part.content_type or "").split(";")[0].strip().lower() == "application/zip"
        or head in _ZIP_MAGIC
    )
    if is_zip:
        return _expand_zip(part, path_order=path_order, orders=orders)
    return [_judge(part.name, part.filename, part.file, part.sha256, part.size, path_order, orders)]


def _order_check(
    file_name: str, path_order: str | None, orders: frozenset[str] | None
) -> tuple[str | None, tuple[str, str] | None]:
    """(order id, order-check error): the order comes from the path, else from the file name."""
    if path_order is not None:
        order_id = path_order
    else:
        order_id = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
        if not ORDER_ID.match(order_id):
            detail = (
                f"File name {file_name!r} does not name a valid order identifier: "
                "expected <orderId>.<ext> with 4-64 letters, digits, '-' or '_'."
            )
            return None, (INVALID_FILE_NAME, detail)
    if not order_known(order_id, orders):
        return order_id, (ORDER_NOT_FOUND, order_not_found_detail(order_id))
    return order_id, None


def _judge(
    name: str,
    file_name: str,
    data: IO[bytes],
    sha256: str | None,
    size: int,
    path_order: str | None,
    orders: frozenset[str] | None,
) -> FileEntry:
    order_id, error = _order_check(file_name, path_order, orders)
    if error is None and (problem := _format_problem(file_name, data)):
        error = (INVALID_FILE_FORMAT, problem)
    return FileEntry(name, file_name, order_id, sha256, size, error)


def _format_problem(file_name: str, data: IO[bytes]) -> str | None:
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    data.seek(0)
    if extension == "pdf":
        return None if data.read(5) == b"%PDF-" else "The file is not a PDF: it does not start with %PDF-."
    if extension == "xml":
        return _xml_problem(data)
    return f"Unsupported file extension {('.' + extension) if extension else '(none)'}: send PDF or UBL XML."


def _xml_problem(data: IO[bytes]) -> str | None:
    tail = b""
    while chunk := data.read(CHUNK_BYTES):
        if b"<!DOCTYPE" in tail + chunk:
            return "The XML has a DOCTYPE declaration, which is not accepted."
        tail = chunk[-8:]
    data.seek(0)
    roots: list[str] = []
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def start(tag: str, attributes: object) -> None:
        if not roots:
            roots.append(tag)

    def refuse_doctype(*_: object) -> None:
        raise ValueError("DOCTYPE")

    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = refuse_doctype
    try:
        parser.ParseFile(data)
    except ValueError:
        return "The XML has a DOCTYPE declaration, which is not accepted."
    except expat.ExpatError as error:
        return f"The XML is not well-formed: {error}."
    if not roots or roots[0] not in UBL_ROOTS:
        found = roots[0].split(" ")[-1] if roots else "nothing"
        return f"The XML is not a UBL 2.1 Invoice or CreditNote (root element: {found})."
    return None


def _entry_name_problem(entry_name: str) -> str | None:
    segments = re.split(r"[/\\]", entry_name)
    if entry_name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", entry_name) or ".." in segments:
        return f"ZIP entry {entry_name!r} has an absolute path or '..': not accepted."
    if len(segments) > 1:
        return f"ZIP entry {entry_name!r} is in a folder: entries must be at the archive root."
    return None


def _expand_zip(part: Part, *, path_order: str | None, orders: frozenset[str] | None) -> list[FileEntry]:
    def whole_zip_fails(detail: str) -> list[FileEntry]:
        error = (INVALID_FILE_FORMAT, detail)
        return [FileEntry(part.name, part.filename, path_order, part.sha256, part.size, error)]

    try:
        archive = zipfile.ZipFile(part.file)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return whole_zip_fails(f"The ZIP archive cannot be read: {error}.")
    entries: list[FileEntry] = []
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            entries.append(_zip_entry(part.name, archive, info, path_order, orders))
    return entries or whole_zip_fails("The ZIP archive contains no files.")


def _zip_entry(
    name: str,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    path_order: str | None,
    orders: frozenset[str] | None,
) -> FileEntry:
    entry_name = info.filename
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        sha256, size, problem = _extract(archive, info, spool)
        if name_problem := _entry_name_problem(entry_name):
            return FileEntry(name, entry_name, None, sha256, size, (INVALID_FILE_NAME, name_problem))
        order_id, error = _order_check(entry_name, path_order, orders)
        if error is None:
            if problem is None and info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
                problem = f"ZIP entry {entry_name!r} is a symbolic link."
            spool.seek(0)
            if problem is None and (entry_name.lower().endswith(".zip") or spool.read(4) in _ZIP_MAGIC):
                problem = f"ZIP entry {entry_name!r} is a nested archive."
            problem = problem or _format_problem(entry_name, spool)
            error = (INVALID_FILE_FORMAT, problem) if problem else None
        return FileEntry(name, entry_name, order_id, sha256, size, error)


def _extract(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, spool: IO[bytes]
) -> tuple[str | None, int, str | None]:
    """Copy one entry into `spool`: (sha256 or None when unreadable, size, why it is unreadable)."""
    entry_name = info.filename
    if info.flag_bits & 0x1:
        return None, info.file_size, f"ZIP entry {entry_name!r} is encrypted."
    too_large = f"ZIP entry {entry_name!r} is larger than {MAX_ENTRY_BYTES} bytes."
    if info.file_size > MAX_ENTRY_BYTES:
        return None, info.file_size, too_large
    digest = hashlib.sha256()
    size = 0
    try:
        with archive.open(info) as source:
            while chunk := source.read(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_ENTRY_BYTES:
                    return None, size, too_large
                digest.update(chunk)
                spool.write(chunk)
    except (zipfile.BadZipFile, NotImplementedError, OSError, RuntimeError, EOFError, ValueError) as error:
        return None, info.file_size, f"ZIP entry {entry_name!r} cannot be read: {error}."
    return digest.hexdigest(), size, None
