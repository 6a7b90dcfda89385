"""archive (shell): a dropped ZIP -> its entries, copied to files we name in a folder we own.

The safety rules are checked again here (`checks.zipsafety.check_archive`, the same code `judge` runs),
then each kept entry is read with `zf.open(info)` and copied to `dest_dir / f"{index:04d}__{name}"`,
where `name` is a cleaned base name: an entry name is never used as a path and `extract*` is never
called. While copying, the bytes are counted against the entry's declared size (more or fewer is
refused) and the archive's total cap, and each entry's first bytes are sniffed for a nested archive.
If anything is wrong, every file written so far is removed and the ZIP gets `UnsafeArchive`: all of it
or none of it is kept.

Reading problems of the ZIP itself are a FileError (`Unreadable`); a failure to write into `dest_dir`
(disk full, permissions) is ours, not the file's, and is raised after the clean-up. Files are not
fsynced: after a crash the caller unpacks the ZIP again from `.processing/`.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

from invoicesync.checks.content import Rules, archive_check
from invoicesync.messages import file_error, unreadable
from invoicesync.model import FileError

CHUNK_BYTES = 64 * 1024
MAX_NAME_CHARS = 120
NESTED_MAGIC = (
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"PK\x07\x08",
    b"\x1f\x8b",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"MSCF",
    b"\x28\xb5\x2f\xfd",
)
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, RuntimeError)


class Entry(NamedTuple):
    """One extracted entry: its name inside the archive, the file we wrote, its size in bytes."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True, slots=True)
class Unpacked:
    """What a safe ZIP held: the entries extracted (archive order) and the metadata entries skipped."""

    entries: tuple[Entry, ...]
    skipped: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


class _Refused(Exception):
    """The ZIP turned out bad while being copied: its code (UnsafeArchive, Unreadable), reason, detail."""

    def __init__(self, reason: str, detail: str | None = None, *, code: str = "UnsafeArchive") -> None:
        super().__init__(reason)
        self.code, self.reason, self.detail = code, reason, detail


def safe_basename(entry_name: str) -> str:
    """The entry's last path part, reduced to plain characters and a bounded length."""
    base = entry_name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^\w.\- ]", "_", base).lstrip(". ") or "entry"
    if len(cleaned) > MAX_NAME_CHARS:
        stem, dot, extension = cleaned.rpartition(".")
        keep = MAX_NAME_CHARS - len(extension) - 1
        cleaned = (
            f"{stem[:keep]}.{extension}" if dot and 0 < len(extension) < 10 else cleaned[:MAX_NAME_CHARS]
        )
    return cleaned


def is_nested_archive(first_bytes: bytes) -> bool:
    return first_bytes.startswith(NESTED_MAGIC) or first_bytes[257:262] == b"ustar"


def unpack(zip_path: Path, dest_dir: Path, rules: Rules) -> Unpacked | FileError:
    """Check `zip_path` again and extract its kept entries into `dest_dir`; a FileError keeps nothing."""
    try:
        stream = open(zip_path, "rb")  # noqa: SIM115  # closed by the with-block just below
    except OSError as exc:
        return unreadable(exc)
    written: list[Path] = []
    with stream:
        try:
            outcome = _unpack(stream, dest_dir, rules, written)
        except _Refused as refused:
            outcome = file_error(refused.code, reason=refused.reason, detail=refused.detail)
        except BaseException:
            _remove(written)
            raise
    if isinstance(outcome, FileError):
        _remove(written)
    return outcome


def _unpack(stream: IO[bytes], dest_dir: Path, rules: Rules, written: list[Path]) -> Unpacked | FileError:
    try:
        size = stream.seek(0, 2)
        stream.seek(0)
    except OSError as exc:
        return unreadable(exc)
    if size > rules.max_bytes:
        reason = f"{size:,} bytes, more than the {rules.max_bytes:,} bytes allowed"
        return file_error("TooLarge", reason=reason)
    check = archive_check(stream, size, rules)
    if check.error is not None:
        return check.error
    dest_dir.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    total = 0
    try:
        archive = zipfile.ZipFile(stream)
    except READ_ERRORS as exc:
        raise _Refused("its table of contents is damaged", repr(exc)) from exc
    with archive:
        for index, info in enumerate(check.kept):
            target = dest_dir / f"{index:04d}__{safe_basename(info.filename)}"
            written.append(target)
            copied = _copy(archive, info, target, room=rules.zip_max_total_bytes - total)
            total += copied
            entries.append(Entry(name=info.filename, path=target, size=copied))
    return Unpacked(entries=tuple(entries), skipped=check.skipped)


def _copy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, room: int) -> int:
    """Copy one entry, counting; raises _Refused past the declared size or the archive's cap."""
    copied = 0
    try:
        source = archive.open(info)
    except READ_ERRORS as exc:
        raise _Refused(f"the entry {info.filename!r} cannot be read", repr(exc)) from exc
    except OSError as exc:
        raise _Refused(f" ({exc.strerror or exc})", repr(exc), code="Unreadable") from exc
    with source, open(target, "xb") as sink:
        while True:
            try:
                chunk = source.read(CHUNK_BYTES)
            except READ_ERRORS as exc:
                raise _Refused(f"the entry {info.filename!r} is damaged", repr(exc)) from exc
            except OSError as exc:  # reading the ZIP failed; a failed write below is ours and propagates
                raise _Refused(f" ({exc.strerror or exc})", repr(exc), code="Unreadable") from exc
            if not chunk:
                break
            if copied == 0 and is_nested_archive(chunk):
                raise _Refused(
                    f"the entry {info.filename!r} is itself an archive; nested archives are refused"
                )
            copied += len(chunk)
            if copied > info.file_size:
                raise _Refused(f"the entry {info.filename!r} holds more than it declares")
            if copied > room:
                raise _Refused("it unpacks to more than the size allowed")
            sink.write(chunk)
    if copied != info.file_size:
        raise _Refused(f"the entry {info.filename!r} is shorter than it declares (damaged)")
    return copied


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
