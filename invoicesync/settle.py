"""settle (core): directory snapshots + monotonic `now` -> which files are ready.

A file is ready when its size, mtime and inode have not changed across the daemon's own
observations spanning `settle_seconds` (never `now - mtime`: copies keep old mtimes and the share's
clock is not ours). Empty regular files keep waiting; one still empty after `empty_after_seconds`
is reported so it can go to `failed/` as `EmptyFile`. The state lives in memory: after a restart
the settle window simply starts again (an empty file's clock is kept in the journal by `intake`, and
handed back here as its `Seen.since`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    FILE = "file"
    SYMLINK = "symlink"
    OTHER = "other"  # FIFO, socket, device: never opened


@dataclass(frozen=True, slots=True)
class Stat:
    size: int
    mtime_ns: int
    inode: int = 0
    kind: Kind = Kind.FILE


@dataclass(frozen=True, slots=True)
class Seen:
    stat: Stat
    since: float  # monotonic time this exact stat was first observed


@dataclass(frozen=True, slots=True)
class Settled:
    seen: dict[str, Seen]
    ready: list[str]  # in the order first seen, oldest first
    empty_expired: list[str]
    next_check_at: float | None  # when a waiting file could next become ready


NOTHING_SEEN: dict[str, Seen] = {}


def settle(
    seen: Mapping[str, Seen],
    listing: Mapping[str, Stat],
    *,
    now: float,
    settle_seconds: float,
    empty_after_seconds: float,
) -> Settled:
    """Compare the new listing with what was seen before; files gone from the listing are forgotten."""
    new_seen: dict[str, Seen] = {}
    ready: list[str] = []
    empty_expired: list[str] = []
    next_check: float | None = None
    for name, stat in listing.items():
        before = seen.get(name)
        entry = before if before is not None and before.stat == stat else Seen(stat, now)
        new_seen[name] = entry
        waited = now - entry.since
        if stat.kind is Kind.FILE and stat.size == 0:
            due = entry.since + empty_after_seconds
            if now >= due:
                empty_expired.append(name)
                continue
        else:
            due = entry.since + settle_seconds
            if now >= due and (waited > 0 or settle_seconds <= 0):
                ready.append(name)
                continue
        next_check = due if next_check is None else min(next_check, due)
    ready.sort(key=lambda name: (new_seen[name].since, name))
    return Settled(new_seen, ready, empty_expired, next_check)
