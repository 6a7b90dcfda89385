"""inbox.journal (shell): what the inbox knows, in `<state_dir>/inbox.sqlite3` (beside the outbox journal,
whose schema it leaves alone): each invoice found, before and after its file is in place, and each pass.

An invoice is `found` when listed (before any download) and `stored` once its file and sidecar are in
`inbox/`; a stored invoice is never fetched again, even when the accountant has moved its file away,
unless asked (`refetch`). Writes are single statements or short `BEGIN IMMEDIATE` transactions, durable
(`synchronous=FULL`), so a crash between any two steps leaves a state the next pass carries on from.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

INBOX_JOURNAL_NAME = "inbox.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    outbox TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    file_name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('found', 'stored')),
    found_at TEXT NOT NULL,
    stored_at TEXT,
    sha256 TEXT,
    size INTEGER,
    PRIMARY KEY (outbox, invoice_id)
);
CREATE TABLE IF NOT EXISTS passes (
    id INTEGER PRIMARY KEY,
    outbox TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0,
    found INTEGER NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0,
    fetched INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS passes_by_outbox ON passes (outbox, id);
"""


@dataclass(frozen=True, slots=True)
class PassRow:
    started_at: datetime
    ended_at: datetime | None
    window_start: datetime
    window_end: datetime
    complete: bool
    found: int
    new: int
    fetched: int
    failed: int
    requests: int
    retries: int
    error: str | None


@dataclass(frozen=True, slots=True)
class PassCounts:
    found: int = 0
    new: int = 0
    fetched: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class InboxJournal:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        uri = f"file:{path}?mode=ro" if read_only else str(path)
        self._db = sqlite3.connect(
            uri, uri=read_only, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self._lock = threading.Lock()
        if not read_only:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def states(self, outbox: str) -> dict[str, str]:
        """invoice id -> `found` or `stored`, for every invoice the outbox's inbox knows."""
        with self._lock:
            rows = self._db.execute("SELECT invoice_id, state FROM invoices WHERE outbox = ?", (outbox,))
            return dict(rows.fetchall())

    def names(self, outbox: str) -> dict[str, str]:
        """invoice id -> the file name it was given, for every invoice the outbox's inbox knows."""
        with self._lock:
            rows = self._db.execute("SELECT invoice_id, file_name FROM invoices WHERE outbox = ?", (outbox,))
            return dict(rows.fetchall())

    def remember(self, outbox: str, marketplace: str, found: list[tuple[str, str]], now: datetime) -> int:
        """Record each (invoice id, file name) not yet known as `found`; returns how many were new."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO invoices"
                    " (outbox, invoice_id, marketplace, file_name, state, found_at)"
                    " VALUES (?, ?, ?, ?, 'found', ?)",
                    [(outbox, invoice_id, marketplace, name, now.isoformat()) for invoice_id, name in found],
                )
                new = self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def stored(self, outbox: str, invoice_id: str, *, sha256: str, size: int, now: datetime) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE invoices SET state = 'stored', stored_at = ?, sha256 = ?, size = ?"
                " WHERE outbox = ? AND invoice_id = ?",
                (now.isoformat(), sha256, size, outbox, invoice_id),
            )

    def refetch(self, outbox: str, invoice_id: str) -> bool:
        """Make a stored invoice wanted again (the accountant lost it); False when the inbox never saw it."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE invoices SET state = 'found' WHERE outbox = ? AND invoice_id = ?",
                (outbox, invoice_id),
            )
            return cursor.rowcount > 0

    def begin_pass(self, outbox: str, window_start: datetime, window_end: datetime, now: datetime) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO passes (outbox, started_at, window_start, window_end) VALUES (?, ?, ?, ?)",
                (outbox, now.isoformat(), window_start.isoformat(), window_end.isoformat()),
            )
            return int(cursor.lastrowid or 0)

    def end_pass(
        self, pass_id: int, *, complete: bool, counts: PassCounts, error: str | None, now: datetime
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE passes SET ended_at = ?, complete = ?, found = ?, new = ?, fetched = ?, failed = ?,"
                " requests = ?, retries = ?, error = ? WHERE id = ?",
                (
                    now.isoformat(),
                    int(complete),
                    counts.found,
                    counts.new,
                    counts.fetched,
                    counts.failed,
                    counts.requests,
                    counts.retries,
                    error,
                    pass_id,
                ),
            )

    def last_complete_end(self, outbox: str) -> datetime | None:
        """The window end of the latest pass that found everything it listed in place."""
        with self._lock:
            row = self._db.execute(
                "SELECT window_end FROM passes WHERE outbox = ? AND complete = 1 ORDER BY id DESC LIMIT 1",
                (outbox,),
            ).fetchone()
        return None if row is None else _when(row[0])

    def last_pass(self, outbox: str) -> PassRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT started_at, ended_at, window_start, window_end, complete, found, new, fetched,"
                " failed, requests, retries, error FROM passes WHERE outbox = ? ORDER BY id DESC LIMIT 1",
                (outbox,),
            ).fetchone()
        if row is None:
            return None
        started, ended, start, end, complete, found, new, fetched, failed, requests, retries, error = row
        return PassRow(
            started_at=datetime.fromisoformat(started),
            ended_at=_when(ended),
            window_start=datetime.fromisoformat(start),
            window_end=datetime.fromisoformat(end),
            complete=bool(complete),
            found=found,
            new=new,
            fetched=fetched,
            failed=failed,
            requests=requests,
            retries=retries,
            error=error,
        )

    def stored_count(self, outbox: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM invoices WHERE outbox = ? AND state = 'stored'", (outbox,)
            ).fetchone()
        return int(row[0])
