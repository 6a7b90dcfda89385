"""messages (core): every file error code's plain sentence and next step, in one place.

Each code of PRODUCT §3 has a `message` template (one sentence for the accountant who reads the report
in `failed/`) and a `hint` (what to do next). Templates take named fields; a field the caller does not
give falls back to a neutral wording, so a message is always a whole sentence:

    file_error("OrderMismatch", named="A1B2C4", order="A1B2C3")
    file_error("UblSchema", problem="at line 12, the element cbc:IssueDate is missing", detail=raw)

`detail` is for the technical words (a parser's own message, the marketplace's text) and is kept verbatim.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from invoicesync.model import FileError


@dataclass(frozen=True, slots=True)
class Text:
    message: str
    hint: str
    defaults: tuple[tuple[str, str], ...] = ()


TEXTS: dict[str, Text] = {
    # decided by naming / the watcher / the journal
    "InvalidFileName": Text(
        "The file name does not contain an order number in the form this outbox expects{reason}.",
        "Rename the file to the order number it belongs to (for example A1B2C3.pdf), "
        "then put it back in outbox/.",
        (("reason", ""),),
    ),
    "UnusableFileName": Text(
        "The file's name cannot be kept as it is: {reason}. It was moved here as {safe}; its name as "
        "dropped is in the detail.",
        "Rename the file to the order number it belongs to (for example A1B2C3.pdf), in letters, digits, "
        "- and _ only, then put it back in outbox/.",
        (("reason", "it cannot be carried through"), ("safe", "a safe name")),
    ),
    "EmptyFile": Text(
        "The file is empty (0 bytes).",
        "Export the invoice again from the ERP; this file has no content.",
    ),
    "NotARegularFile": Text(
        "This is not an invoice file but {what}, so it cannot be sent.",
        "Put the invoice file itself into outbox/, not a folder, link or device.",
        (("what", "a folder, a link or another special entry"),),
    ),
    "Unreadable": Text(
        "The file could not be read{reason}.",
        "Check that the file is complete and that the invoicesync service may read it, "
        "then put it back in outbox/.",
        (("reason", ""),),
    ),
    "ReportFile": Text(
        "This is a report written by invoicesync (a .error.json or .receipt.json file), not an invoice, "
        "so it was not sent.",
        "Nothing to send: to send a fixed invoice again, put only the invoice file back in outbox/, "
        "without its report.",
    ),
    "ArchiveNotSent": Text(
        "None of the files in this ZIP was sent: {fates}.",
        "See each file's own report in failed/: fix the files there and put them back in outbox/ (one by "
        "one or in a new ZIP); this ZIP itself needs nothing more.",
        (("fates", "each failed on its own"),),
    ),
    "WrongOrderImported": Text(
        "The marketplace reports this invoice as imported for order {other}, not for order {order}: "
        "it may now be attached to the wrong order.",
        "Check both orders in the seller back office at once and remove the invoice from the wrong one; "
        "then put the file back in outbox/ to send it again.",
        (("order", "this order"), ("other", "another order")),
    ),
    # decided by validate
    "UnsupportedType": Text(
        "A file {ext} cannot be sent; only {accepted}.",
        "Export the invoice as {wanted} and put that into outbox/ instead.",
        (
            ("ext", "of this type"),
            ("accepted", "PDF, UBL 2.1 XML and ZIP files can"),
            ("wanted", "a PDF or UBL 2.1 XML file"),
        ),
    ),
    "ContentMismatch": Text(
        "The file name says {claimed} but the content is {actual}.",
        "Export the invoice again in the format its name says, or give the file its right extension, "
        "then put it back in outbox/.",
        (("claimed", "one type of file"), ("actual", "another")),
    ),
    "TooLarge": Text(
        "The file is too large: {reason}.",
        "Make the file smaller (fewer pages, lower image resolution) or split it, "
        "then put it back in outbox/.",
        (("reason", "it is over the size limit"),),
    ),
    "InvalidPdf": Text(
        "This PDF is damaged and cannot be opened: {reason}.",
        "Export the invoice again from the ERP; this file is cut off or damaged.",
        (("reason", "its structure is broken"),),
    ),
    "EncryptedPdf": Text(
        "This PDF is protected by a password or security settings, so it cannot be checked or sent.",
        "Export the invoice again without a password or security settings (no encryption), "
        "then put it back in outbox/.",
    ),
    "InvalidXml": Text(
        "This XML file cannot be read: {reason}.",
        "Export the invoice again from the ERP; this file is damaged or was edited by hand.",
        (("reason", "it is not well-formed XML"),),
    ),
    "NotUbl": Text(
        "This XML file is not a UBL 2.1 invoice or credit note: it is {found}.",
        "Export the invoice in UBL 2.1 format (Invoice or CreditNote), or send the PDF instead.",
        (("found", "another kind of XML document"),),
    ),
    "UblSchema": Text(
        "The invoice does not follow the UBL 2.1 format: {problem}.",
        "Export the invoice again from the ERP; if this keeps happening, send this report to "
        "whoever looks after the ERP's e-invoice export.",
        (("problem", "it breaks the UBL 2.1 schema"),),
    ),
    "OrderMismatch": Text(
        "The invoice names order {named}, but the file name says {order}.",
        "Rename the file to the order the invoice belongs to, then put it back in outbox/.",
        (("named", "another order"), ("order", "a different one")),
    ),
    "UnsafeArchive": Text(
        "This ZIP file cannot be opened safely: {reason}.",
        "Put the invoices into a plain ZIP (no password, no links, no folders like '..', no ZIP inside "
        "a ZIP) or drop them one by one.",
        (("reason", "it breaks the archive safety rules"),),
    ),
    # decided by the marketplace
    "Rejected": Text(
        "The marketplace refused the upload of this file.",
        "Read the marketplace's own words in the detail; fix the file or the order, "
        "then put it back in outbox/.",
    ),
    "DeemedSupplier": Text(
        "The marketplace invoices the buyer of order {order} itself (it is the deemed supplier for this "
        "order), so no invoice of ours may be attached to it; nothing was uploaded.",
        "Nothing to send for this order: keep the file for your records. If the order should be yours to "
        "invoice, check it in the marketplace's seller portal.",
        (("order", "this order"),),
    ),
    "ImportFailed": Text(
        "The marketplace could not attach the invoice to order {order}.",
        "Read the marketplace's own words in the detail; fix the file or the order, "
        "then put it back in outbox/.",
        (("order", "its order"),),
    ),
    "ImportTimeout": Text(
        "The marketplace did not finish processing the invoice in time{waited}.",
        "Check the order on the marketplace: if the invoice is not there, put the file back in outbox/.",
        (("waited", ""),),
    ),
}


# The marketplace's own code, where it tells the person what to do better than the generic hint.
MARKETPLACE_HINTS: dict[str, str] = {
    "OrderNotFound": "Check that the file name is the marketplace's order ID, rename the file, "
    "then put it back in outbox/.",
    "InvalidFileName": "Rename the file to the marketplace order ID "
    "(for example SCID01210525142759UT8E.pdf), "
    "then put it back in outbox/.",
    "InvalidFileFormat": "Export the invoice again from the ERP as a PDF or UBL 2.1 XML, "
    "then put it back in outbox/.",
}


class _Fields(dict[str, str]):
    """Named fields for a template; an absent one becomes its code's default (or a neutral '?')."""

    def __init__(self, given: dict[str, str | None], defaults: tuple[tuple[str, str], ...]) -> None:
        super().__init__(defaults)
        self.update({key: value for key, value in given.items() if value is not None})

    def __missing__(self, key: str) -> str:
        return "?"


def file_error(
    code: str,
    *,
    detail: str | None = None,
    marketplace_code: str | None = None,
    **fields: str | None,
) -> FileError:
    """The FileError for `code`, its message filled from `fields` and its hint attached."""
    text = TEXTS.get(code)
    if text is None:
        return FileError(
            code=code,
            message=f"The file failed with code {code}.",
            hint="Read the detail in this report, fix the file, then put it back in outbox/.",
            detail=detail,
            marketplace_code=marketplace_code,
        )
    message = text.message.format_map(_Fields(fields, text.defaults))
    hint = MARKETPLACE_HINTS.get(marketplace_code or "", text.hint.format_map(_Fields(fields, text.defaults)))
    return FileError(code=code, message=message, hint=hint, detail=detail, marketplace_code=marketplace_code)


def unreadable(exc: OSError) -> FileError:
    """`Unreadable` for an error raised while opening or reading a file, in the words its cause needs."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FileError(
            code="Unreadable",
            message="The file could not be read: the invoicesync service is not allowed to open it "
            "(permission denied).",
            hint="Ask whoever looks after the file server to let the invoicesync service read the files "
            "in outbox/ (or save this file there again), then put it back in outbox/.",
            detail=f"{type(exc).__name__}: {exc}",
        )
    return file_error("Unreadable", reason=f" ({exc.strerror or exc})", detail=f"{type(exc).__name__}: {exc}")
