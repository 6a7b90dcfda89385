"""examine (shell): one file on disk -> its order, size, hash and verdict, as the daemon judges it.

Used by intake (files claimed into .processing/) and by `invoicesync validate`, so both say the
same of the same file. What is not a regular file is never opened (a FIFO would block); a file
above `max_bytes` is refused before it is read; every other file is read once for its SHA-256 and
once by the content checks. A dropped ZIP (not an entry of one) is judged for archive safety only:
its entries are examined one by one after unpacking.
"""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from invoicesync.messages import file_error, unreadable
from invoicesync.model import FileError
from invoicesync.naming import order_id_of
from invoicesync.validate import Rules, judge, kind_of


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
    try:
        info = path.lstat()
    except FileNotFoundError:
        return Examined(order_id, None, None, file_error("Unreadable", reason=": it does not exist"), False)
    except OSError as exc:
        return Examined(order_id, None, None, unreadable(exc), False)
    if not stat.S_ISREG(info.st_mode):
        return Examined(order_id, None, None, file_error("NotARegularFile", what=_what(info.st_mode)), False)
    size = info.st_size
    if not is_archive and size > rules.max_bytes:
        reason = f"{size:,} bytes, more than the {rules.max_bytes:,} bytes allowed"
        error = file_error("TooLarge", reason=reason, detail=f"files.max_bytes: {rules.max_bytes}")
        return Examined(order_id, size, None, error, False)
    try:
        with open(path, "rb") as stream:
            sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
            if order_id is None and not is_archive:
                error = file_error("InvalidFileName", reason=f" ({name!r})")
                return Examined(None, size, sha256, error, False)
            stream.seek(0)
            verdict = judge(name, order_id, stream, size, rules)
    except OSError as exc:  # a permission refused is the file's problem, never a reason to stop the loop
        return Examined(order_id, size, None, unreadable(exc), False)
    return Examined(order_id, size, sha256, verdict.error, is_archive and verdict.error is None)


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file (FIFO, socket or device)"
