"""watching (shell): watchdog events as wake-ups for one outbox, never as the queue.

`auto` picks events on local filesystems and plain polling on network shares (cifs, smb3, nfs,
fuse), where inotify sees no remote writes. When the observer cannot start (inotify limits) the
outbox falls back to polling. The handler only calls `on_event` and never raises: an exception
would kill watchdog's dispatcher thread for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

NETWORK_FILESYSTEMS = ("cifs", "smb3", "smbfs", "nfs", "nfs4", "9p", "afs", "ceph", "glusterfs", "sshfs")


def mount_of(path: Path, mountinfo: str | None = None) -> tuple[str, str] | None:
    """The mount point holding `path` and its filesystem type, from /proc/self/mountinfo (the longest
    mount point that contains it; the last one mounted there wins); None when mountinfo is unreadable."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = str(path.resolve())
    best: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= len(best[0])):
            best = (mount_point, right.split()[0])
    return best


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (see `mount_of`)."""
    found = mount_of(path, mountinfo)
    return None if found is None else found[1]


def is_network(fs_type: str | None) -> bool:
    return fs_type is not None and (fs_type in NETWORK_FILESYSTEMS or fs_type.startswith(("fuse.", "nfs")))


class _Wake(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        with contextlib.suppress(Exception):  # an exception here would kill watchdog's thread for good
            self._watcher.on_event()


class Watcher:
    def __init__(self, folder: Path, *, mode: str, log: structlog.typing.FilteringBoundLogger) -> None:
        self.folder = folder
        self.mode = mode
        self.log = log
        self.on_event: Callable[[], None] = lambda: None
        self._observer: BaseObserver | None = None

    def start(self) -> bool:
        """Start events where the mode allows; True when events are flowing."""
        if self.mode == "poll":
            return False
        if self.mode == "auto":
            fs_type = filesystem_type(self.folder)
            if is_network(fs_type):
                self.log.info("watch_mode_chosen", mode="poll", filesystem=fs_type)
                return False
        observer = Observer()
        try:
            observer.schedule(_Wake(self), str(self.folder), recursive=False)
            observer.start()
        except OSError as exc:
            self.log.warning("watch_events_unavailable", reason=str(exc))
            return False
        self._observer = observer
        return True

    def alive(self) -> bool:
        """False once events stopped flowing: the observer died, or one of its emitters did, which it
        does quietly when the watched folder is removed (the observer itself looks alive)."""
        observer = self._observer
        return observer is None or (
            observer.is_alive() and all(emitter.is_alive() for emitter in observer.emitters)
        )

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
