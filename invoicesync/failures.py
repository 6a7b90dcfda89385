"""failures (core): the sentence and the hint for the codes decided outside content validation.

`message` is for the person at the share, `hint` says what to do next (PRODUCT §3). Content codes
(InvalidPdf, UblSchema, …) come from `validate`; marketplace outcomes from `lifecycle`.
"""

from __future__ import annotations

from invoicesync.model import FileError


def invalid_file_name(name: str) -> FileError:
    return FileError(
        code="InvalidFileName",
        message=f"The file name {name!r} is not an order ID, so the invoice cannot be matched to an order.",
        hint="Rename the file to the marketplace order ID (for example SCID01210525142759UT8E.pdf), "
        "then put it back in outbox/.",
    )


def unsupported_type(name: str) -> FileError:
    return FileError(
        code="UnsupportedType",
        message=f"{name!r} is not a PDF, an XML invoice or a ZIP of those.",
        hint="Export the invoice as PDF or UBL XML, then put it in outbox/.",
    )


def empty_file(waited_seconds: float) -> FileError:
    minutes = round(waited_seconds / 60)
    return FileError(
        code="EmptyFile",
        message=f"The file stayed empty (0 bytes) for {minutes} minutes.",
        hint="Export the invoice again from the ERP; the export that made this file did not finish.",
    )


def not_a_regular_file(kind: str) -> FileError:
    return FileError(
        code="NotARegularFile",
        message=f"This is a {kind}, not an invoice file, so it was not opened.",
        hint="Put the invoice file itself in outbox/, not a link or a special file.",
    )


def unreadable(reason: str) -> FileError:
    return FileError(
        code="Unreadable",
        message="The file could not be read (permission denied or I/O error).",
        hint="Give the invoicesync service read access to the file, then put it back in outbox/.",
        detail=reason,
    )


def too_large(size: int, max_bytes: int) -> FileError:
    return FileError(
        code="TooLarge",
        message=f"The file is {size / 1_000_000:.1f} MB, above the limit of {max_bytes / 1_000_000:.1f} MB.",
        hint="Export a smaller invoice (lower image resolution), or raise files.max_bytes if the marketplace allows it.",
    )


def duplicate(import_id: str | None, finished_at: str | None) -> FileError:
    when = f" on {finished_at[:10]}" if finished_at else ""
    return FileError(
        code="Duplicate",
        message=f"These exact bytes were already delivered to this order{when} (import {import_id}).",
        hint="Nothing to do if it was dropped twice by mistake; to replace the invoice, export a corrected one.",
        detail=f"earlier import {import_id}" if import_id else None,
    )


def rejected(detail: str | None, marketplace_code: str | None, status_code: int | None) -> FileError:
    status = f" (HTTP {status_code})" if status_code else ""
    return FileError(
        code="Rejected",
        message=f"The marketplace refused the upload request{status}.",
        hint="Read the marketplace's detail; fix the file or the configuration, then put the file back in outbox/.",
        detail=detail,
        marketplace_code=marketplace_code,
    )
