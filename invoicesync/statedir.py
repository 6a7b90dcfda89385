"""statedir (shell): what lives in the state directory beside the journal: the single-instance lock (one
daemon per state directory) and status.json, what a running daemon last said about each outbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from invoicesync.errors import ServiceError
from invoicesync.outbox import write_json_atomic

JOURNAL_NAME = "journal.sqlite3"
LOCK_NAME = "invoicesync.lock"
STATUS_NAME = "status.json"


def acquire_lock(state_dir: Path) -> IO[str]:
    """One daemon per state directory: an exclusive, non-blocking flock held for the process's life."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / LOCK_NAME, "a+")  # noqa: SIM115  # held open until exit on purpose
    except OSError as exc:
        raise ServiceError(f"The state directory {state_dir} cannot be used: {exc.strerror}.") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ServiceError(
            f"Another invoicesync is already running on {state_dir}; stop it first "
            "(only one may use a state directory)."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def daemon_running(state_dir: Path) -> bool:
    """Whether the process named in the lock file is alive (the lock itself is left alone: taking it,
    even for an instant, could turn away a daemon starting at that moment)."""
    try:
        pid = int((state_dir / LOCK_NAME).read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def write_status(state_dir: Path, outboxes: dict[str, dict[str, Any]]) -> None:
    """status.json, written atomically; OSError when the state directory cannot take it."""
    write_json_atomic(state_dir / STATUS_NAME, {"pid": os.getpid(), "outboxes": outboxes})


def read_status(state_dir: Path) -> dict[str, Any]:
    """What the daemon last wrote ({} when there is nothing readable)."""
    with contextlib.suppress(OSError, ValueError):
        said = json.loads((state_dir / STATUS_NAME).read_text())
        if isinstance(said, dict):
            return said
    return {}


def last_error_before(state_dir: Path, outbox: str) -> str | None:
    """The last error an earlier run said for `outbox`: kept over a restart."""
    try:
        error = read_status(state_dir)["outboxes"][outbox]["last_error"]
    except (KeyError, TypeError):
        return None
    return error if isinstance(error, str) else None
