"""report (core): an item's outcome -> the sidecar's dict and its name (PRODUCT §3).

The shell writes what this returns (temp, fsync, rename); nothing here touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from invoicesync.messages import file_error
from invoicesync.model import FileError, Stage

SCHEMA = "invoicesync.report/1"


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the journal knows of one file when it is finished."""

    file: str
    order_id: str | None
    sha256: str | None
    size: int | None
    origin: str | None
    stage: Stage
    error: FileError | None
    marketplace: str
    outbox: str
    import_id: str | None
    received_at: datetime
    marketplace_result: dict[str, Any] | None = None  # this file's raw entry in the import answer
    duplicate_of: dict[str, Any] | None = None  # the earlier delivery of these bytes (nothing sent again)


def outcome_of(error: FileError | None) -> str:
    return "sent" if error is None else "failed"


def sidecar_suffix(error: FileError | None) -> str:
    return ".receipt.json" if error is None else ".error.json"


def sidecar_name(dest_name: str, error: FileError | None) -> str:
    return f"{dest_name}{sidecar_suffix(error)}"


MAX_FATES_NAMED = 20  # entries named one by one in a ZIP's summary message; the rest are counted


def entry_fates(entries: list[dict[str, Any]]) -> str:
    """What happened to each entry of a dropped ZIP, for its summary's message: `a.pdf (InvalidPdf)`."""
    named = [f"{entry['file']} ({entry['code'] or entry['outcome']})" for entry in entries[:MAX_FATES_NAMED]]
    if not named:
        return "it held no invoice"
    more = len(entries) - len(named)
    return ", ".join(named) + (f" and {more} more (see `entries`)" if more else "")


def archive_error(entries: list[dict[str, Any]]) -> FileError | None:
    """A dropped ZIP goes to sent/ when any of its files was sent; to failed/, where a person looks, when
    none was (`ArchiveNotSent`, naming each file's fate)."""
    if any(entry["outcome"] == "sent" for entry in entries):
        return None
    return file_error("ArchiveNotSent", fates=entry_fates(entries))


def build_report(
    facts: ReportFacts, *, finished_at: datetime, entries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The sidecar for one file; `entries` lists a dropped ZIP's files and their outcomes."""
    error = facts.error
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "outcome": outcome_of(error),
        "file": facts.file,
        "order_id": facts.order_id,
        "sha256": facts.sha256,
        "size": facts.size,
        "origin": facts.origin,
        "stage": facts.stage.value,
        "error": None
        if error is None
        else {
            "code": error.code,
            "message": error.message,
            "detail": error.detail,
            "marketplace_code": error.marketplace_code,
        },
        "hint": _hint(error, entries, facts.duplicate_of),
        "marketplace": facts.marketplace,
        "outbox": facts.outbox,
        "import_id": facts.import_id,
        "received_at": facts.received_at.isoformat(),
        "finished_at": finished_at.isoformat(),
    }
    if facts.marketplace_result is not None:
        report["marketplace_result"] = facts.marketplace_result
    if facts.duplicate_of is not None:
        report["duplicate_of"] = facts.duplicate_of
    if entries is not None:
        report["entries"] = entries
    return report


def _hint(
    error: FileError | None, entries: list[dict[str, Any]] | None, duplicate_of: dict[str, Any] | None
) -> str:
    if error is not None:
        return error.hint
    if duplicate_of is not None:
        when = str(duplicate_of.get("delivered_at") or "")[:10]
        return (
            f"Nothing was sent again: the same file was delivered to this order on {when} (import "
            f"{duplicate_of.get('import_id')}, {duplicate_of.get('destination')}). To replace it, drop a "
            "corrected file."
        )
    if entries is not None and any(entry["outcome"] == "failed" for entry in entries):
        return "Some invoices of this archive failed: see their reports in failed/."
    return "Nothing to do: the invoice is attached to its order."
