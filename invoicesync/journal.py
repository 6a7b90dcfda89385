"""journal (shell): the SQLite record of every file and batch, the truth for what was sent.

Item states: `claimed -> ready -> batched -> decided -> finished` (a validation failure goes from
`claimed` straight to `decided`; a dropped ZIP is a `container` until its entries are finished).
Batch states: `planned -> uploading -> submitted -> done`. Every step is written before the next
one starts, so each can be repeated after a crash.

Durability. The database runs in WAL mode with `synchronous=FULL`: each COMMIT is fsynced to the
WAL before it returns, so a power cut loses no committed step (NORMAL could lose the latest
commits, and the latest commit may be "this bundle is uploading", the one that prevents sending it
twice). Transactions are explicit (`isolation_level=None`, `BEGIN IMMEDIATE`) and never span a
network call. Several items change in one transaction where they change together (a batch's
creation, its outcomes), so the fsync cost is per batch, not per file.

Where the other fsyncs are, and why (each makes a step durable before the journal records it):

- claims: after renaming a cycle's files into `.processing/`, both folders are fsynced once before
  the claim rows commit, so a power cut cannot leave a row for a file that is back in `outbox/`;
- bundles: the ZIP is fsynced before it is renamed into place, so an upload never sends a bundle
  cut short by a power cut (it would fail its files at the marketplace for no fault of theirs);
- sidecars: temp file, fsync, rename, fsync of the folder, so a report is whole or absent;
- moves to `sent/` / `failed/`: both folders are fsynced after the rename, before `finished`
  is journaled; on a share the folder fsync may be refused, which is harmless (the local journal's
  durability is what counts, and every finishing step is safe to repeat).

Recovery reads only open rows: a partial index on unfinished items keeps start-up independent of
how many finished files the journal remembers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from invoicesync.model import BatchState, FileError, ItemOutcome, ItemState, Stage

# 2: batches.lost_at, empty_looks; 3: items.root; 4: batches.destination; 5: prepared; 6: empty_waiting
SCHEMA_VERSION = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id     TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    outbox      TEXT NOT NULL,
    host        TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    claim_name  TEXT NOT NULL,
    origin_id   TEXT,
    order_id    TEXT,
    ext         TEXT NOT NULL,
    size        INTEGER,
    sha256      TEXT,
    ready_at    REAL,
    state       TEXT NOT NULL,
    batch_id    TEXT,
    stage       TEXT,
    error       TEXT,
    result      TEXT,
    import_id   TEXT,
    outcome     TEXT,
    dest_name   TEXT,
    received_at TEXT NOT NULL,
    finished_at TEXT,
    root        TEXT
);
CREATE INDEX IF NOT EXISTS items_open ON items (outbox, state, seq) WHERE state != 'finished';
DROP INDEX IF EXISTS items_delivered;  -- schema < 4: duplicates were looked up per outbox
CREATE INDEX IF NOT EXISTS items_delivered_to ON items (order_id, sha256) WHERE outcome = 'sent';
CREATE INDEX IF NOT EXISTS items_batch ON items (batch_id);
CREATE INDEX IF NOT EXISTS items_origin ON items (origin_id) WHERE origin_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_finished ON items (outbox, finished_at) WHERE state = 'finished';
CREATE TABLE IF NOT EXISTS batches (
    batch_id        TEXT PRIMARY KEY,
    outbox          TEXT NOT NULL,
    bundle_name     TEXT NOT NULL UNIQUE,
    endpoint        TEXT NOT NULL,
    order_id        TEXT,
    state           TEXT NOT NULL,
    import_id       TEXT,
    sent_at         REAL,
    submitted_at    REAL,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    poll_attempt    INTEGER NOT NULL DEFAULT 0,
    raw             TEXT,
    created_at      REAL NOT NULL,
    lost_at         REAL,
    empty_looks     INTEGER NOT NULL DEFAULT 0,
    destination     TEXT,
    prepared        TEXT
);
CREATE INDEX IF NOT EXISTS batches_open ON batches (outbox, state) WHERE state != 'done';
CREATE TABLE IF NOT EXISTS empty_waiting (
    outbox  TEXT NOT NULL,
    name    BLOB NOT NULL,  -- the name's bytes: it may not be UTF-8
    since   REAL NOT NULL,  -- wall time it was first seen empty
    PRIMARY KEY (outbox, name)
);
"""


@dataclass(frozen=True, slots=True)
class ItemRow:
    item_id: str
    seq: int
    outbox: str
    host: str
    file_name: str
    claim_name: str
    origin_id: str | None
    order_id: str | None
    ext: str
    size: int | None
    sha256: str | None
    ready_at: float | None
    state: ItemState
    batch_id: str | None
    stage: str | None
    error: str | None
    result: str | None
    import_id: str | None
    outcome: str | None
    dest_name: str | None
    received_at: str
    finished_at: str | None
    root: str | None  # the outbox root it was claimed under (None: journaled before schema 3, today's)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", ItemState(self.state))  # the column's text, as the enum

    @property
    def file_error(self) -> FileError | None:
        return None if self.error is None else _file_error(self.error)


@functools.lru_cache(maxsize=256)
def _file_error(text: str) -> FileError:
    """A journaled error, decoded once: finishing a file asks for it several times, and a month-end burst
    repeats the same few errors (a FileError is frozen, so one may be shared)."""
    return FileError(**json.loads(text))


# ItemRow's columns in its fields' order, so a row becomes an ItemRow by position (`ItemRow(*row)`)
SELECT_ITEMS = f"SELECT {', '.join(field.name for field in dataclasses.fields(ItemRow))} FROM items"
_ITEM_COLUMNS = ", ".join(f"items.{field.name}" for field in dataclasses.fields(ItemRow))


@dataclass(frozen=True, slots=True)
class BatchRow:
    batch_id: str
    outbox: str
    bundle_name: str
    endpoint: str
    order_id: str | None
    state: BatchState
    import_id: str | None
    sent_at: float | None
    submitted_at: float | None
    next_attempt_at: float
    poll_attempt: int
    raw: str | None
    created_at: float
    lost_at: float | None  # when the answer to its upload was given up on (None: not lost)
    empty_looks: int  # import lists searched in vain since then
    destination: str | None  # the marketplace and seller it went to (None: before schema 4)
    prepared: str | None  # JSON: what the marketplace noted before the first upload (None: not yet)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", BatchState(self.state))  # the column's text, as the enum


def _error_json(error: FileError | None) -> str | None:
    if error is None:
        return None
    return json.dumps(
        {
            "code": error.code,
            "message": error.message,
            "hint": error.hint,
            "detail": error.detail,
            "marketplace_code": error.marketplace_code,
        },
        ensure_ascii=False,
    )


def journal_problem(path: Path) -> str | None:
    """Why the journal at `path` cannot be trusted (not a database, damaged pages), in the sentence the
    operator reads next; None when it is sound or not there yet. `PRAGMA quick_check` reads every page,
    so damage is found at start-up, before a file is claimed that the journal could not record."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        found = str(exc)
    else:
        found = "; ".join(str(row[0]) for row in rows[:3])
        if found == "ok":
            return None
    return (
        f"The journal {path} is damaged ({found}). Stop: nothing will be claimed or sent with it. Move it "
        f"aside (e.g. `mv {path} {path}.damaged`), check each file in the outboxes' .processing/ folders "
        "against the marketplace's back office (it may have been sent), move the ones not sent back to "
        "outbox/, then start again."
    )


def orphans_problem(path: Path, processing_dirs: Iterable[Path]) -> str | None:
    """A journal that is gone while files are in flight: they may have been sent, and a new journal would
    send them again. The sentence the operator reads next, or None."""
    if path.exists():
        return None
    held = []
    for folder in processing_dirs:
        with contextlib.suppress(OSError):
            count = sum(1 for entry in folder.rglob("*") if entry.is_file() and entry.name[:1] != ".")
            if count:
                held.append(f"{folder} ({count} file{'s' if count != 1 else ''})")
    if not held:
        return None
    return (
        f"The journal {path} is missing, but files are in flight in {', '.join(held)}: they may already "
        "have been sent, and starting with a new journal could send them twice. Check them in the "
        "marketplace's back office, move the ones not delivered back to outbox/ and the others out of "
        ".processing/, then start again (or put the journal back if it was moved)."
    )


class Journal:
    """One connection; use one Journal per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Built by the main thread, then used by one outbox thread at a time: never concurrently.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"the journal {path} was written by a newer invoicesync (schema {version})"
            )
        self._db.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(batches)")}
        added = (
            ("lost_at", "REAL"),
            ("empty_looks", "INTEGER NOT NULL DEFAULT 0"),
            ("destination", "TEXT"),
            ("prepared", "TEXT"),
        )
        for column, kind in added:
            if column not in columns:  # a journal of an earlier schema
                self._db.execute(f"ALTER TABLE batches ADD COLUMN {column} {kind}")
        if "root" not in {row[1] for row in self._db.execute("PRAGMA table_info(items)")}:  # schema < 3
            self._db.execute("ALTER TABLE items ADD COLUMN root TEXT")
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several steps in one transaction, so one commit (one fsync) instead of one per file. Only for
        steps that a crash before the commit simply leaves to be done again: a file's validation verdict
        (it stays `claimed` and is checked again), `finished` (the finishing steps are repeated)."""
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._db.in_transaction:  # inside `transaction()`: its commit makes this step durable too
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- items -------------------------------------------------------------------------------

    def record_claims(
        self, claims: Iterable[dict[str, Any]], *, container: tuple[str, int, str] | None = None
    ) -> None:
        """Journal claimed files (already renamed into .processing/) in one transaction.
        Each dict: item_id, outbox, host, file_name, claim_name, ext, received_at, origin_id?, root?
        (the outbox root it lies under, so it is found there if `root` is changed while it is in flight),
        and optionally state (default 'claimed'). `container` (item_id, size, sha256): the dropped
        ZIP these entries came from becomes a container in the same transaction, so a crash can
        never leave entries journaled under a ZIP that would be unpacked again."""
        with self._write() as db:
            if container is not None:
                container_id, size, sha256 = container
                db.execute(
                    "UPDATE items SET state = 'container', size = ?, sha256 = ? WHERE item_id = ?",
                    (size, sha256, container_id),
                )
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0]
            for claim in claims:
                seq += 1
                db.execute(
                    "INSERT OR IGNORE INTO items (item_id, seq, outbox, host, file_name, claim_name,"
                    " origin_id, ext, state, received_at, root) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        claim["item_id"],
                        seq,
                        claim["outbox"],
                        claim["host"],
                        claim["file_name"],
                        claim["claim_name"],
                        claim.get("origin_id"),
                        claim["ext"],
                        claim.get("state", ItemState.CLAIMED),
                        claim["received_at"],
                        claim.get("root"),
                    ),
                )

    def knows(self, item_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM items WHERE item_id = ?", (item_id,)).fetchone() is not None

    def item(self, item_id: str) -> ItemRow | None:
        row = self._db.execute(f"{SELECT_ITEMS} WHERE item_id = ?", (item_id,)).fetchone()
        return None if row is None else ItemRow(*row)

    def items(self, outbox: str, state: ItemState, *, after_seq: int = 0, limit: int = -1) -> list[ItemRow]:
        """The outbox's items in `state`, oldest claim first: those claimed after `after_seq` (their `seq`),
        the first `limit` only (-1: all)."""
        rows = self._db.execute(
            f"{SELECT_ITEMS} WHERE outbox = ? AND state = ? AND state != 'finished' AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (outbox, state, after_seq, limit),
        )
        return [ItemRow(*row) for row in rows]

    def count_open(self, outbox: str) -> int:
        query = "SELECT COUNT(*) FROM items WHERE outbox = ? AND state != 'finished'"
        return int(self._db.execute(query, (outbox,)).fetchone()[0])

    def entries_of(self, origin_id: str) -> list[ItemRow]:
        rows = self._db.execute(f"{SELECT_ITEMS} WHERE origin_id = ? ORDER BY seq", (origin_id,))
        return [ItemRow(*row) for row in rows]

    def mark_ready(self, item_id: str, *, order_id: str, size: int, sha256: str, ready_at: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = 'ready', order_id = ?, size = ?, sha256 = ?, ready_at = ?"
                " WHERE item_id = ? AND state = 'claimed'",
                (order_id, size, sha256, ready_at, item_id),
            )

    def decide(
        self,
        item_id: str,
        *,
        stage: Stage,
        error: FileError | None,
        order_id: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """A fate decided without the marketplace (validation, a duplicate) or for a container; `result`
        is kept for its report (a duplicate's `duplicate_of`)."""
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = 'decided', stage = ?, error = ?, outcome = ?,"
                " order_id = COALESCE(?, order_id), size = COALESCE(?, size), sha256 = COALESCE(?, sha256),"
                " result = COALESCE(?, result)"
                " WHERE item_id = ? AND state IN ('claimed', 'ready', 'container')",
                (
                    stage.value,
                    _error_json(error),
                    "sent" if error is None else "failed",
                    order_id,
                    size,
                    sha256,
                    None if result is None else json.dumps(result, ensure_ascii=False),
                    item_id,
                ),
            )

    def set_dest(self, item_id: str, dest_name: str) -> None:
        with self._write() as db:
            db.execute("UPDATE items SET dest_name = ? WHERE item_id = ?", (dest_name, item_id))

    def unbatch(self, item_id: str, *, error: FileError | None = None) -> None:
        """Take a file out of its batch before upload: back to `claimed` to be checked again (its bytes
        changed since its check), or `decided` as failed with `error` (it is gone or no longer a file)."""
        with self._write() as db:
            if error is None:
                db.execute(
                    "UPDATE items SET state = 'claimed', batch_id = NULL, sha256 = NULL, size = NULL"
                    " WHERE item_id = ? AND state = 'batched'",
                    (item_id,),
                )
            else:
                db.execute(
                    "UPDATE items SET state = 'decided', batch_id = NULL, stage = ?, error = ?,"
                    " outcome = 'failed' WHERE item_id = ? AND state = 'batched'",
                    (Stage.UPLOAD.value, _error_json(error), item_id),
                )

    def reserved_names(self, outbox: str) -> list[tuple[str, bool, str | None]]:
        """Names handed out in sent/ or failed/ to files not moved there yet: (name, in failed/, the root
        whose folder it is, None for today's)."""
        rows = self._db.execute(
            "SELECT dest_name, outcome, root FROM items WHERE outbox = ? AND state = 'decided'"
            " AND dest_name IS NOT NULL",
            (outbox,),
        )
        return [(row[0], row[1] == "failed", row[2]) for row in rows]

    def empty_since(self, outbox: str) -> dict[str, float]:
        """The empty files waiting in outbox/ and since when (wall time): their `empty_after` clock survives
        a restart, so a zero-byte file under a cron `once` still reaches failed/."""
        rows = self._db.execute("SELECT name, since FROM empty_waiting WHERE outbox = ?", (outbox,))
        return {os.fsdecode(bytes(row[0])): float(row[1]) for row in rows}

    def set_empty_waiting(self, outbox: str, waiting: dict[str, float]) -> None:
        """The empty files waiting now (name -> wall time first seen empty), replacing what was journaled."""
        with self._write() as db:
            db.execute("DELETE FROM empty_waiting WHERE outbox = ?", (outbox,))
            db.executemany(
                "INSERT INTO empty_waiting (outbox, name, since) VALUES (?, ?, ?)",
                [(outbox, os.fsencode(name), since) for name, since in waiting.items()],
            )

    def open_roots(self, outbox: str) -> dict[str, int]:
        """Roots that files not finished yet were claimed under, with how many each (legacy rows left out)."""
        rows = self._db.execute(
            "SELECT root, COUNT(*) FROM items WHERE outbox = ? AND state != 'finished' AND root IS NOT NULL"
            " GROUP BY root",
            (outbox,),
        )
        return {row[0]: int(row[1]) for row in rows}

    def mark_finished(self, item_id: str, *, finished_at: datetime) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE items SET state = 'finished', finished_at = ? WHERE item_id = ?",
                (finished_at.astimezone(UTC).isoformat(), item_id),
            )

    def delivered_for_ready(self, outbox: str, destination: str) -> dict[str, tuple[ItemRow, str | None]]:
        """For each ready file of the outbox, the earlier delivery of the same bytes to the same order at the
        same destination (marketplace and seller: a rehearsal on the sandbox never counts against the real
        marketplace), and where it went; one query per loop step. A delivery journaled before destinations
        were (schema 4) counts for its own outbox."""
        rows = self._db.execute(
            f"SELECT ready.item_id, {_ITEM_COLUMNS}, batches.destination FROM items AS ready"
            " JOIN items ON items.order_id = ready.order_id AND items.sha256 = ready.sha256"
            " JOIN batches ON batches.batch_id = items.batch_id"
            " WHERE ready.outbox = ? AND ready.state = 'ready'"
            " AND items.outcome = 'sent' AND items.ext != 'zip'"
            " AND (batches.destination = ? OR (batches.destination IS NULL AND items.outbox = ?))"
            " ORDER BY items.seq DESC",
            (outbox, destination, outbox),
        )
        # the earliest delivery wins: rows come latest first, so each item keeps the last one seen
        return {row[0]: (ItemRow(*row[1:-1]), row[-1]) for row in rows}

    def orders_in_flight(self, outbox: str) -> set[str]:
        rows = self._db.execute(
            "SELECT DISTINCT order_id FROM items WHERE outbox = ? AND state = 'batched'", (outbox,)
        )
        return {row[0] for row in rows}

    # -- batches -----------------------------------------------------------------------------

    def create_batch(
        self,
        *,
        batch_id: str,
        outbox: str,
        bundle_name: str,
        endpoint: str,
        order_id: str | None,
        item_ids: Iterable[str],
        now: float,
        destination: str | None = None,
    ) -> None:
        """The batch and its items, in one transaction: the bundle name is durable before upload."""
        with self._write() as db:
            db.execute(
                "INSERT INTO batches (batch_id, outbox, bundle_name, endpoint, order_id, state, created_at,"
                " destination) VALUES (?, ?, ?, ?, ?, 'planned', ?, ?)",
                (batch_id, outbox, bundle_name, endpoint, order_id, now, destination),
            )
            db.executemany(
                "UPDATE items SET state = 'batched', batch_id = ? WHERE item_id = ? AND state = 'ready'",
                [(batch_id, item_id) for item_id in item_ids],
            )

    def batch(self, batch_id: str) -> BatchRow | None:
        row = self._db.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        return None if row is None else BatchRow(**dict(row))

    def open_batches(self, outbox: str) -> list[BatchRow]:
        rows = self._db.execute(
            "SELECT * FROM batches WHERE outbox = ? AND state != 'done' ORDER BY created_at", (outbox,)
        )
        return [BatchRow(**dict(row)) for row in rows]

    def batch_items(self, batch_id: str) -> list[ItemRow]:
        rows = self._db.execute(f"{SELECT_ITEMS} WHERE batch_id = ? ORDER BY seq", (batch_id,))
        return [ItemRow(*row) for row in rows]

    def batch_uploading(self, batch_id: str, *, sent_at: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE batches SET state = 'uploading', sent_at = COALESCE(sent_at, ?) WHERE batch_id = ?",
                (sent_at, batch_id),
            )

    def batch_prepared(self, batch_id: str, prepared: Mapping[str, Any]) -> None:
        """What the marketplace noted before the first upload, journaled before that upload."""
        with self._write() as db:
            db.execute(
                "UPDATE batches SET prepared = ? WHERE batch_id = ?",
                (json.dumps(prepared, ensure_ascii=False), batch_id),
            )

    def earlier_deliveries(self, order_id: str, destination: str, *, before: str) -> list[str]:
        """The marketplace's IDs of the files delivered to `order_id` at `destination` by other batches than
        `before`, oldest first (a correction replaces them where the marketplace adds)."""
        rows = self._db.execute(
            "SELECT DISTINCT items.import_id FROM items JOIN batches ON batches.batch_id = items.batch_id"
            " WHERE items.order_id = ? AND items.outcome = 'sent' AND items.import_id IS NOT NULL"
            " AND batches.destination = ? AND batches.batch_id != ? ORDER BY items.seq",
            (order_id, destination, before),
        )
        return [row[0] for row in rows]

    def batch_submitted(
        self, batch_id: str, *, import_id: str, raw: dict[str, Any], submitted_at: float
    ) -> None:
        """The import ID, journaled the moment it arrives."""
        with self._write() as db:
            db.execute(
                "UPDATE batches SET state = 'submitted', import_id = ?, raw = ?,"
                " submitted_at = COALESCE(submitted_at, ?), next_attempt_at = ?, poll_attempt = 0"
                " WHERE batch_id = ?",
                (import_id, json.dumps(raw, ensure_ascii=False), submitted_at, submitted_at, batch_id),
            )
            db.execute("UPDATE items SET import_id = ? WHERE batch_id = ?", (import_id, batch_id))

    def batch_lost(self, batch_id: str, *, lost_at: float | None, empty_looks: int) -> None:
        """The answer to the upload was given up on at `lost_at` (None: found, or about to be re-sent), and
        the marketplace's import list was searched `empty_looks` times in vain since then."""
        with self._write() as db:
            db.execute(
                "UPDATE batches SET lost_at = ?, empty_looks = ? WHERE batch_id = ?",
                (lost_at, empty_looks, batch_id),
            )

    def schedule_batch(self, batch_id: str, *, state: BatchState, next_attempt_at: float) -> None:
        """Back to `planned` (try again) or stay `uploading` (look the upload up) at a later time."""
        with self._write() as db:
            db.execute(
                "UPDATE batches SET state = ?, next_attempt_at = ?, poll_attempt = poll_attempt + 1"
                " WHERE batch_id = ?",
                (state, next_attempt_at, batch_id),
            )

    def set_next_poll(self, batch_id: str, *, at: float, attempt: int, raw: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE batches SET next_attempt_at = ?, poll_attempt = ?, raw = ? WHERE batch_id = ?",
                (at, attempt, json.dumps(raw, ensure_ascii=False), batch_id),
            )

    def record_outcomes(
        self,
        batch_id: str,
        outcomes: Iterable[ItemOutcome],
        *,
        results: dict[str, dict[str, Any]] | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        """Every item's outcome and the batch's end, in one transaction."""
        results = results or {}
        with self._write() as db:
            for outcome in outcomes:
                result = results.get(outcome.item_id)
                db.execute(
                    "UPDATE items SET state = 'decided', stage = ?, error = ?, outcome = ?, result = ?"
                    " WHERE item_id = ? AND state = 'batched'",
                    (
                        outcome.stage.value,
                        _error_json(outcome.error),
                        "sent" if outcome.delivered else "failed",
                        None if result is None else json.dumps(result, ensure_ascii=False),
                        outcome.item_id,
                    ),
                )
            db.execute(
                "UPDATE batches SET state = 'done', raw = COALESCE(?, raw) WHERE batch_id = ?",
                (None if raw is None else json.dumps(raw, ensure_ascii=False), batch_id),
            )


@dataclass(frozen=True, slots=True)
class OutboxFigures:
    """What `status` shows of one outbox from the journal."""

    in_flight: int  # claimed, not finished (a dropped ZIP unpacked into its entries counts by them)
    oldest_received_at: str | None  # the file waiting in .processing/ longest (UTC, ISO)
    sent_since: int  # finished since the given time (an unpacked ZIP counted by its entries)
    failed_since: int
    held_for_order: int  # ready, waiting for an earlier file of the same order still in flight
    former_roots: dict[str, int]  # in flight under a root other than today's: finished there


def outbox_figures(path: Path, outbox: str, *, root: Path, since: datetime) -> OutboxFigures:
    """The figures of `outbox` read from the journal at `path`, read-only (a running daemon is never
    disturbed); all zero when there is no journal yet."""
    if not path.exists():
        return OutboxFigures(0, None, 0, 0, 0, {})
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _figures(db, outbox, root, since)
    finally:
        db.close()


def _figures(db: sqlite3.Connection, outbox: str, root: Path, since: datetime) -> OutboxFigures:
    in_flight = db.execute(
        "SELECT COUNT(*) FROM items WHERE outbox = ? AND state != 'finished' AND state != 'container'",
        (outbox,),
    ).fetchone()[0]
    oldest = db.execute(  # claimed first among those not finished: waiting in .processing/ longest
        "SELECT received_at FROM items WHERE outbox = ? AND state != 'finished' ORDER BY seq LIMIT 1",
        (outbox,),
    ).fetchone()
    finished = dict(
        db.execute(  # an unpacked ZIP is counted by its entries, an unsafe one by itself
            "SELECT outcome, COUNT(*) FROM items WHERE outbox = ? AND state = 'finished' AND finished_at >= ?"
            " AND NOT (ext = 'zip' AND origin_id IS NULL"
            " AND EXISTS (SELECT 1 FROM items AS entry WHERE entry.origin_id = items.item_id))"
            " GROUP BY outcome",
            (outbox, since.astimezone(UTC).isoformat()),  # finished_at is stored in UTC
        ).fetchall()
    )
    held = db.execute(
        "SELECT COUNT(*) FROM items WHERE outbox = ? AND state = 'ready' AND order_id IN"
        " (SELECT order_id FROM items WHERE outbox = ? AND state = 'batched')",
        (outbox, outbox),
    ).fetchone()[0]
    try:
        rows = db.execute(
            "SELECT root, COUNT(*) FROM items WHERE outbox = ? AND state != 'finished' AND root IS NOT NULL"
            " GROUP BY root",
            (outbox,),
        ).fetchall()
    except sqlite3.OperationalError:  # no root column yet (schema < 3, no daemon started since)
        rows = []
    return OutboxFigures(
        in_flight=int(in_flight),
        oldest_received_at=None if oldest is None else str(oldest[0]),
        sent_since=int(finished.get("sent", 0)),
        failed_since=int(finished.get("failed", 0)),
        held_for_order=int(held),
        former_roots={str(former): int(count) for former, count in rows if Path(former) != root},
    )
