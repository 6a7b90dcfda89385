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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
        with private_copy(path, limit=rules.max_bytes) as (copy, size, sha256):
            # `sha256` is of the very bytes judged (a copy nobody else can write): what is sent must match
            if order_id is None and not is_archive:
                error = file_error("InvalidFileName", reason=f": {why_no_order(name, pattern)}")
                return Examined(None, size, sha256, error, False)
            verdict = judge(name, order_id, copy, size, rules)
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


IN_MEMORY_BYTES = 8 * 1024 * 1024  # a file this small is judged from memory; a larger one from a temp copy
CHUNK_BYTES = 1024 * 1024


@contextmanager
def private_copy(path: Path, *, limit: int) -> Iterator[tuple[BinaryIO, int, str]]:
    """A private, seekable copy of a regular file (`open_regular`), with its size and SHA-256: at most
    `limit` bytes (else `TooBig`). The judge reads the copy, so the bytes judged are the bytes hashed even
    if the file is rewritten meanwhile; a large file is copied to an unnamed temporary file, in chunks,
    never held whole in memory."""
    with os.fdopen(open_regular(path), "rb") as stream:
        if os.fstat(stream.fileno()).st_size > limit:
            raise TooBig(os.fstat(stream.fileno()).st_size)
        digest, size = hashlib.sha256(), 0
        copy: BinaryIO = io.BytesIO()
        try:
            while chunk := stream.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise TooBig(size)
                if size > IN_MEMORY_BYTES and isinstance(copy, io.BytesIO):
                    spilled = tempfile.TemporaryFile()  # noqa: SIM115  # closed below, with the copy
                    spilled.write(copy.getbuffer())
                    copy.close()
                    copy = spilled
                digest.update(chunk)
                copy.write(chunk)
            copy.seek(0)
            yield copy, size, digest.hexdigest()
        finally:
            copy.close()


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode) or mode == stat.S_IFLNK:
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file (FIFO, socket or device)"
