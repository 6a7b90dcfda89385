"""rootlock (shell): one daemon per outbox root, whatever its state directory or host.

Two daemons on one root would adopt each other's files in `.processing/` and send them twice. Each root
holds `<root>/.invoicesync.lock` (beside the four folders, hidden): an exclusive flock for as long as
the daemon runs, and inside it who holds it (host, pid, state_dir) and when it last said so. flock is
not reliable on every share (NFS and SMB may grant it to two hosts), so the content counts too: a lock
refreshed by another holder within `STALE_SECONDS` is respected even when flock was granted; one not
refreshed for that long (its daemon died, its host is gone) is taken over, and said so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from invoicesync.errors import ServiceError

LOCK_NAME = ".invoicesync.lock"
REFRESH_SECONDS = 30.0
STALE_SECONDS = 180.0  # six missed refreshes: its holder is gone


@dataclass
class RootLock:
    root: Path
    handle: IO[str]
    me: dict[str, Any]
    refreshed_at: float = 0.0
    taken_over: dict[str, Any] | None = None  # the stale holder this lock replaced, if any

    def refresh(self, *, now: float | None = None) -> None:
        """Say again that this daemon holds the root (called every round; writes every REFRESH_SECONDS)."""
        now = time.time() if now is None else now
        if now - self.refreshed_at < REFRESH_SECONDS:
            return
        self.refreshed_at = now
        with contextlib.suppress(OSError):  # a share gone for a moment: the next round tries again
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.write(json.dumps({**self.me, "refreshed_at": now}) + "\n")
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.flush()
        self.handle.close()


def acquire_root(root: Path, *, host: str, state_dir: Path, now: float | None = None) -> RootLock:
    """The lock of `root` for this daemon, or ServiceError naming the daemon that holds it."""
    now = time.time() if now is None else now
    try:
        handle = open(root / LOCK_NAME, "a+")  # noqa: SIM115  # held open for the daemon's life
    except OSError as exc:
        raise ServiceError(f"The outbox root {root} cannot be locked ({exc.strerror or exc}).") from None
    me = {"host": host, "pid": os.getpid(), "state_dir": str(state_dir)}
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(handle)
        handle.close()
        raise ServiceError(_refusal(root, holder)) from None
    holder = _holder(handle)
    if holder is not None and not _is_me(holder, me) and not _stale(holder, host, now):
        handle.close()
        raise ServiceError(_refusal(root, holder))
    lock = RootLock(root, handle, me, taken_over=holder if holder and not _is_me(holder, me) else None)
    lock.refresh(now=now)
    return lock


def _holder(handle: IO[str]) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        handle.seek(0)
        found = json.loads(handle.read() or "null")
        if isinstance(found, dict):
            return found
    return None


def _is_me(holder: dict[str, Any], me: dict[str, Any]) -> bool:
    return bool(holder.get("host") == me["host"] and holder.get("pid") == me["pid"])


def _stale(holder: dict[str, Any], host: str, now: float) -> bool:
    """Its holder is surely gone: a process of this host that no longer exists, or silence too long."""
    pid = holder.get("pid")
    if holder.get("host") == host and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    refreshed = holder.get("refreshed_at")
    return not isinstance(refreshed, int | float) or now - refreshed > STALE_SECONDS


def _refusal(root: Path, holder: dict[str, Any] | None) -> str:
    who = (
        f"pid {holder.get('pid')} on {holder.get('host')}, state_dir {holder.get('state_dir')}"
        if holder
        else "another process"
    )
    return (
        f"Another invoicesync ({who}) is using the outbox root {root}; two daemons on one root would send "
        "each other's files twice. Stop the other one, or give this one another root."
    )
