"""health (shell): can an outbox do its work right now? Local trouble noticed, said once, and cleared.

Four things stop an outbox (or a part of it) but never the daemon, each an `Alarm` logged once when it
begins (or its reason changes) and once when it ends:

- `state_dir` unusable (read-only, not writable, or nearly full): nothing is claimed, polled or
  finished, since each step must be journaled first; files wait where they are.
- the folders unavailable (`Folders.unavailable`: root gone or its share unmounted): nothing is
  claimed or finished, but imports already sent are still polled, their outcomes journaled.
- finishing refused (`sent/` or `failed/` not writable): the file stays in `.processing/` with its
  outcome journaled, and finishing is tried again at the next loop.
- a dropped ZIP that cannot be unpacked (the share is full): it waits in `.processing/`, tried again
  now and then, while every other file goes on (`Intake.unpack_problem`).

Every check is cheap (a `statvfs`, an `access`, a few `stat`s), so it runs before every loop step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from invoicesync.outbox import Folders

# Room for the journal's write-ahead log (about 4 MB at SQLite's default checkpoint) and its growth.
STATE_DIR_MIN_FREE_BYTES = 8 * 1024 * 1024


def state_dir_problem(path: Path, *, min_free_bytes: int = STATE_DIR_MIN_FREE_BYTES) -> str | None:
    """None when `path` can take the journal's next writes, else why not, in one sentence."""
    try:
        info = os.statvfs(path)
    except OSError as exc:
        return f"The state directory {path} cannot be reached ({exc.strerror or exc})."
    if info.f_flag & os.ST_RDONLY:
        return f"The state directory {path} is on a read-only filesystem; nothing is claimed meanwhile."
    if not os.access(path, os.W_OK | os.X_OK):
        return f"The state directory {path} is not writable (permission denied); nothing is claimed now."
    free = info.f_bavail * info.f_frsize
    if free < min_free_bytes:  # the reason names no byte count: it stays the same while the disk fills
        return (
            f"The state directory {path} is full (less than {min_free_bytes:,} bytes free); "
            "nothing is claimed until there is room."
        )
    return None


@dataclass
class Alarm:
    """A condition said once when it begins or its reason changes (error), and once when it ends (info)."""

    log: structlog.typing.FilteringBoundLogger
    begins: str  # event name, e.g. "outbox_unavailable"
    ends: str  # event name, e.g. "outbox_available"
    reason: str | None = None

    def set(self, reason: str | None) -> bool:
        """Record the condition as it stands now; True while there is a problem."""
        if reason != self.reason:
            if reason is None:
                self.log.info(self.ends)
            else:
                self.log.error(self.begins, reason=reason)
            self.reason = reason
        return reason is not None


@dataclass
class Health:
    folders: Folders
    state_dir: Path
    log: structlog.typing.FilteringBoundLogger
    min_free_bytes: int = STATE_DIR_MIN_FREE_BYTES
    storage: Alarm = field(init=False)
    root: Alarm = field(init=False)
    finishing: Alarm = field(init=False)
    unpacking: Alarm = field(init=False)

    def __post_init__(self) -> None:
        self.storage = Alarm(self.log, "state_dir_unusable", "state_dir_usable")
        self.root = Alarm(self.log, "outbox_unavailable", "outbox_available")
        self.finishing = Alarm(self.log, "finish_blocked", "finish_unblocked")
        self.unpacking = Alarm(self.log, "archive_unpack_blocked", "archive_unpack_unblocked")

    def check(self) -> bool:
        """Look at state_dir and the folders now; True when the outbox can claim and finish."""
        if self.storage.set(state_dir_problem(self.state_dir, min_free_bytes=self.min_free_bytes)):
            return False
        return not self.root.set(self.folders.unavailable())

    @property
    def can_poll(self) -> bool:
        """Imports already sent can still be polled: the journal takes their outcomes."""
        return self.storage.reason is None

    def problem(self) -> str | None:
        """What stops this outbox now, for `status` and systemd (the state_dir first, it stops most)."""
        return self.storage.reason or self.root.reason or self.finishing.reason or self.unpacking.reason

    def finish_failed(self, exc: OSError) -> None:
        target = exc.filename2 or exc.filename  # a rename names its destination second
        where = Path(target).parent if target else self.folders.root
        self.finishing.set(
            f"Cannot finish files into {where} ({exc.strerror or exc}); they wait in .processing/ "
            "and are finished once it is fixed."
        )
