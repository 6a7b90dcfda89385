"""checks.examine (shell): one file on disk -> its order, size, hash and verdict, as the daemon judges it.

Used by intake (files claimed into .processing/) and by `invoicesync validate`, so both say the
same of the same file. What is not a regular file with one name is refused (opened without following
links or blocking on a FIFO); a file above `max_bytes` (a dropped ZIP too) is refused before it is
read. A dropped ZIP (not an entry of one) is judged for archive safety only: its entries are examined
one by one after unpacking. The file is read once, into memory (at most `max_bytes`), and both hashed
and judged from those bytes: the hash in the journal is of the bytes checked, and delivery sends only
bytes with that hash.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from invoicesync.checks.content import Rules, judge, kind_of
from invoicesync.messages import file_error, unreadable
from invoicesync.model import FileError
from invoicesync.naming import order_id_of, why_no_order

REPORT_SUFFIXES = (".error.json", ".receipt.json")


@dataclass(frozen=True, slots=True)
class Examined:
    order_id: str | None
    size: int | None
    sha256: str | None
    error: FileError | None
    archive: bool  # a dropped ZIP that may be unpacked (its entries are examined next)


def examine(path: Path, name: str, *, pattern: re.Pattern[str], rules: Rules, entry: bool) -> Examined:
    """`name` is the file's name as dropped (or as inside its ZIP, for an `entry`)."""
    is_archive = kind_of(name) == "zip" and not entry
    order_id = None if is_archive else order_id_of(name, pattern)
    if name.casefold().endswith(REPORT_SUFFIXES):  # a report moved back by a person, with its file
        return Examined(None, None, None, file_error("ReportFile"), False)
    try:
        with opened_checked(path, limit=rules.max_bytes) as data:  # kept open while judged
            size = len(data)
            sha256 = hashlib.sha256(data).hexdigest()  # of the very bytes judged: what is sent must match
            if order_id is None and not is_archive:
                error = file_error("InvalidFileName", reason=f": {why_no_order(name, pattern)}")
                return Examined(None, size, sha256, error, False)
            verdict = judge(name, order_id, io.BytesIO(data), size, rules)
    except NotRegular as exc:
        return Examined(order_id, None, None, file_error("NotARegularFile", what=exc.what), False)
    except TooBig as exc:
        reason = f"{exc.size:,} bytes, more than the {rules.max_bytes:,} bytes allowed"
        error = file_error("TooLarge", reason=reason, detail=f"files.max_bytes: {rules.max_bytes}")
        return Examined(order_id, exc.size, None, error, False)
    except FileNotFoundError:
        return Examined(order_id, None, None, file_error("Unreadable", reason=": it does not exist"), False)
    except OSError as exc:  # a permission refused is the file's problem, never a reason to stop the loop
        return Examined(order_id, None, None, unreadable(exc), False)
    return Examined(order_id, size, sha256, verdict.error, is_archive and verdict.error is None)


class NotRegular(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class TooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def open_regular(path: Path) -> int:
    """A file descriptor on `path` if it is a regular file with no other name: a link is never followed
    (O_NOFOLLOW), a FIFO never blocks (O_NONBLOCK), and a hard link to a file elsewhere is refused."""
    mode = os.lstat(path).st_mode  # a socket cannot even be opened: say what it is
    if not stat.S_ISREG(mode):
        raise NotRegular(_what(mode))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(_what(stat.S_IFLNK)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(_what(info.st_mode))
        if info.st_nlink > 1:
            raise NotRegular("a second name (a hard link) of a file kept elsewhere")
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def opened_checked(path: Path, *, limit: int) -> Iterator[bytes]:
    """The whole of a regular file (`open_regular`), at most `limit` bytes (else `TooBig`), with the file
    held open until the block ends."""
    with os.fdopen(open_regular(path), "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise TooBig(size)
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise TooBig(len(data))
        yield data


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode) or mode == stat.S_IFLNK:
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file (FIFO, socket or device)"
