"""sandbox.imports (shell): imports progressing with the clock, attached documents, every file received.

Nothing runs in the background: each read works out, under one lock, where every import stands from
`time.monotonic()`. Of an import's n entries, entry i appears at i*P/n (the first at once), is `OrderCheck`
then `FileCheck`, and is final at (i+1)*P/n, P being `processing_seconds`; the import is final at P.
Documents attach in completion order: a bulk file replaces its order's documents alone when it succeeds;
the successful files of a single-order request replace that order's documents together when the import ends.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from invoicesync.sandbox.checks import FileEntry


def now_iso() -> str:
    """ISO 8601 UTC with milliseconds and Z: 2026-05-12T08:30:00.125Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_cursor(before: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor stands for; ValueError when it is not one of ours."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError("not a cursor") from error
    before = decoded.get("before") if isinstance(decoded, dict) else None
    if not isinstance(before, int) or isinstance(before, bool) or before < 0:
        raise ValueError("not a cursor")
    return before


@dataclass(slots=True)
class _Import:
    import_id: str
    sequence: int
    created_at: str
    started: float
    processing_seconds: float
    entries: tuple[FileEntry, ...]
    order_id: str | None  # the single-order endpoint's order: its files replace together
    settled: int = 0  # bulk: entries whose completion was applied; single order: 0 or 1

    def at(self, share: float) -> float:
        """The moment `share` (0..n) of the n entries' processing time has passed."""
        return self.started + self.processing_seconds * share / len(self.entries)

    def final_at(self, index: int) -> float:
        return self.at(index + 1)

    def view(self, now: float, *, just_created: bool = False) -> dict[str, Any]:
        """The import as GET answers it at `now` (the 201 body when `just_created`)."""
        files: list[dict[str, Any]] = []
        for index, entry in enumerate(self.entries):
            if index and (just_created or now < self.at(index)):
                break
            row: dict[str, Any] = {
                "name": entry.name,
                "fileName": entry.file_name,
                "orderId": entry.order_id,
                "status": "Running",
                "integrationStatus": "OrderCheck",
                "error": None,
            }
            if just_created:
                pass  # the 201 body: the first entry only, Running
            elif now >= self.final_at(index):
                row["status"] = "Success" if entry.error is None else "Failure"
                row["integrationStatus"] = "Integrated" if entry.error is None else "Rejected"
                if entry.error is not None:
                    row["error"] = {"code": entry.error[0], "detail": entry.error[1]}
            elif now >= self.at(index + 0.5):
                row["integrationStatus"] = "FileCheck"
            files.append(row)
        status = "Running"
        if len(files) == len(self.entries) and all(row["status"] != "Running" for row in files):
            failures = sum(row["status"] == "Failure" for row in files)
            status = "Success" if not failures else "Failure" if failures == len(files) else "PartialSuccess"
        return {"importId": self.import_id, "status": status, "createdAt": self.created_at, "files": files}


def _document(entry: FileEntry, import_id: str) -> dict[str, Any]:
    return {"fileName": entry.file_name, "sha256": entry.sha256, "size": entry.size, "importId": import_id}


class ImportStore:
    """Every import, attached document and received file of one sandbox; safe to share between threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._imports: list[_Import] = []
        self._by_id: dict[str, _Import] = {}
        self._unsettled: list[_Import] = []
        self._documents: dict[str, list[dict[str, Any]]] = {}
        self._received: list[dict[str, Any]] = []

    def create(
        self, entries: list[FileEntry], *, order_id: str | None, processing_seconds: float
    ) -> dict[str, Any]:
        """Record a new import and answer its 201 body: only the first entry, everything Running."""
        with self._lock:
            started = self._clock()
            self._advance(started)
            created = _Import(
                import_id=str(uuid.uuid4()),
                sequence=len(self._imports),
                created_at=now_iso(),
                started=started,
                processing_seconds=max(0.0, processing_seconds),
                entries=tuple(entries),
                order_id=order_id,
            )
            self._imports.append(created)
            self._by_id[created.import_id] = created
            self._unsettled.append(created)
            for entry in entries:
                self._received.append(
                    {
                        "importId": created.import_id,
                        "name": entry.name,
                        "fileName": entry.file_name,
                        "orderId": entry.order_id,
                        "sha256": entry.sha256,
                        "size": entry.size,
                        "createdAt": created.created_at,
                    }
                )
            return created.view(started, just_created=True)

    def get(self, import_id: str, *, hidden_seconds: float = 0.0) -> dict[str, Any] | None:
        """An import as GET answers it; None when unknown, or younger than `hidden_seconds`."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            found = self._by_id.get(import_id)
            return found.view(now) if found and now >= found.started + hidden_seconds else None

    def page(
        self, *, page_size: int, before: int | None, hidden_seconds: float = 0.0
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first, those older than the `before` position; the position to go on from, or None.
        Imports younger than `hidden_seconds` are not listed yet (a marketplace slow to index them)."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            known = [item for item in self._imports if now >= item.started + hidden_seconds]
            end = len(known) if before is None else min(before, len(known))
            chosen = known[max(0, end - page_size) : end][::-1]
            next_before = chosen[-1].sequence if chosen and chosen[-1].sequence > 0 else None
            return [item.view(now) for item in chosen], next_before

    def documents(self, order_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._advance(self._clock())
            return [dict(row) for row in self._documents.get(order_id, [])]

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._received]

    def count(self) -> int:
        with self._lock:
            return len(self._imports)

    def _advance(self, now: float) -> None:
        """Apply, in completion order, every completion that happened by `now` (lock held)."""
        events: list[tuple[float, int, int, _Import]] = []
        for item in self._unsettled:
            if item.order_id is None:
                for index in range(item.settled, len(item.entries)):
                    if item.final_at(index) > now:
                        break
                    events.append((item.final_at(index), item.sequence, index, item))
            elif item.final_at(len(item.entries) - 1) <= now:
                events.append((item.final_at(len(item.entries) - 1), item.sequence, -1, item))
        events.sort(key=lambda event: event[:3])
        for _, _, index, item in events:
            if index < 0:
                ok = [_document(entry, item.import_id) for entry in item.entries if entry.error is None]
                if ok and item.order_id is not None:
                    self._documents[item.order_id] = ok
                item.settled = 1
            else:
                entry = item.entries[index]
                if entry.error is None and entry.order_id is not None:
                    self._documents[entry.order_id] = [_document(entry, item.import_id)]
                item.settled = index + 1
        self._unsettled = [
            item for item in self._unsettled if item.settled < (1 if item.order_id else len(item.entries))
        ]
