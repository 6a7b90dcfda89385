"""statusview (shell): what `invoicesync status` shows and the metrics endpoint says: per outbox the
journal's figures (in flight, the oldest since when, sent and failed today), the files waiting in outbox/,
and what a running daemon last said (paused, stopped, why files wait, the last error). One source, so the
two never disagree.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from datetime import time as day_time
from pathlib import Path
from typing import Any

from invoicesync.config import Config
from invoicesync.inbox.journal import INBOX_JOURNAL_NAME, InboxJournal
from invoicesync.journal import OutboxFigures, outbox_figures
from invoicesync.naming import is_ignored
from invoicesync.statedir import JOURNAL_NAME, daemon_running, read_status


def status_rows(config: Config) -> tuple[bool, list[dict[str, Any]]]:
    """Whether a daemon runs on the state directory, and one row per outbox (the keys of `status --json`)."""
    journal_path = config.state_dir / JOURNAL_NAME
    live = read_status(config.state_dir)
    running = daemon_running(config.state_dir)
    if not running:  # what a stopped daemon last said is not the state of things now, but its last error is
        outboxes = live.get("outboxes") if isinstance(live, dict) else None
        live = {
            "outboxes": {
                name: {"last_error": info.get("last_error")}
                for name, info in (outboxes or {}).items()
                if isinstance(info, dict)
            }
        }
    midnight = datetime.combine(datetime.now().date(), day_time()).astimezone()
    rows: list[dict[str, Any]] = []
    for box in config.outboxes:
        figures = outbox_figures(journal_path, box.name, root=box.root, since=midnight)
        row = _outbox_status(box.name, box.root, box.files.ignore, figures, live)
        row["why_waiting"] = _why_waiting(row, box.files.empty_after_seconds, figures, live)
        row["inbox"] = _inbox(config.state_dir / INBOX_JOURNAL_NAME, box.name) if box.inbox.enabled else None
        rows.append(row)
    return running, rows


def _inbox(path: Path, outbox: str) -> dict[str, Any]:
    """The last inbox pass and how many invoices the inbox fetched (read-only; nothing yet: zeros)."""
    if not path.exists():
        return {"last_pass": None, "stored": 0}
    journal = InboxJournal(path, read_only=True)
    try:
        last = journal.last_pass(outbox)
        stored = journal.stored_count(outbox)
    except sqlite3.Error:  # made by a daemon starting right now: nothing to show yet
        return {"last_pass": None, "stored": 0}
    finally:
        journal.close()
    if last is None:
        return {"last_pass": None, "stored": stored}
    shown = {key: getattr(last, key) for key in last.__slots__}
    for key in ("started_at", "ended_at", "window_start", "window_end"):
        shown[key] = None if shown[key] is None else shown[key].isoformat(timespec="seconds")
    return {"last_pass": shown, "stored": stored}


def _why_waiting(
    row: dict[str, Any], empty_after_seconds: float, figures: OutboxFigures, live: dict[str, Any]
) -> list[str]:
    """Why files have not moved on: settling or empty in outbox/ (what the daemon last said), uploads
    paused, files held back for an earlier file of the same order still in flight (from the journal)."""
    info = live.get("outboxes", {}).get(row["outbox"], {}) if isinstance(live, dict) else {}
    reasons = []
    if info.get("settling"):
        reasons.append(f"{info['settling']} settling in outbox/ (taken once unchanged for settle_seconds)")
    if info.get("empty"):
        reasons.append(
            f"{info['empty']} empty in outbox/ (kept for a writer to fill; EmptyFile after "
            f"{empty_after_seconds:g} s)"
        )
    if row["paused"]:
        reasons.append("uploads paused (see PAUSED)")
    if figures.held_for_order:
        reasons.append(f"{figures.held_for_order} waiting for an earlier file of the same order to finish")
    return reasons


def _outbox_status(
    name: str, root: Path, ignore: tuple[str, ...], figures: OutboxFigures, live: dict[str, Any]
) -> dict[str, Any]:
    try:
        with os.scandir(root / "outbox") as entries:
            waiting = sum(1 for entry in entries if not is_ignored(entry.name, ignore) and not entry.is_dir())
    except OSError:
        waiting = 0
    oldest = figures.oldest_received_at
    info = live.get("outboxes", {}).get(name, {}) if isinstance(live, dict) else {}
    return {
        "outbox": name,
        "waiting": waiting,
        "in_flight": figures.in_flight,
        "in_flight_since": None
        if oldest is None
        else datetime.fromisoformat(oldest).astimezone().isoformat(timespec="seconds"),
        "sent_today": figures.sent_since,
        "failed_today": figures.failed_since,
        "paused": info.get("paused"),
        "problem": info.get("problem"),
        "last_error": info.get("last_error"),
        "former_roots": figures.former_roots,
    }
