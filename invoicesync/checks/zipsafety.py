"""checks.zipsafety (core): a dropped ZIP's bytes -> is it safe to open, and which entries to keep.

Every rule of libraries.md §4, checked on the central directory and the local headers only (nothing is
decompressed here; `archive.unpack` counts the bytes and sniffs nested archives while copying):

- `PK\\x03\\x04` at offset 0; the end record read first, so a huge central directory is refused before
  `zipfile` parses it; a corrupt central directory is unsafe;
- entry count cap, Σ declared `file_size` cap, per-entry ratio `file_size <= ratio * max(compress_size, 1)`;
- no encryption flag, only STORED and DEFLATED, no symlink entries;
- names: no absolute path, drive, `..`, backslash, `:`, control character; no duplicates (also after
  case folding and Unicode normalisation); no nested archive by name;
- entries may not overlap and each local header must agree with its central name, checked here by
  hand so safety never rests on the CVE-2024-0450 fix (absent from Python 3.11.2 to 3.11.7).

Directories, `__MACOSX/`, `._*` and `.DS_Store` are skipped, not refused.
"""

from __future__ import annotations

import struct
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import IO

from invoicesync.messages import file_error
from invoicesync.model import FileError

LOCAL_MAGIC = b"PK\x03\x04"
END_MAGIC = b"PK\x05\x06"
ZIP64_LOCATOR_MAGIC = b"PK\x06\x07"
ZIP64_END_MAGIC = b"PK\x06\x06"
CENTRAL_BYTES_PER_ENTRY = 46 + 4096  # fixed part + a generous name/extra/comment allowance
NESTED_SUFFIXES = (
    ".zip",
    ".jar",
    ".war",
    ".ear",
    ".apk",
    ".7z",
    ".rar",
    ".gz",
    ".tgz",
    ".tar",
    ".bz2",
    ".tbz",
    ".xz",
    ".txz",
    ".zst",
    ".lz",
    ".lzma",
    ".cab",
    ".arj",
    ".z",
    ".zipx",
)
S_IFMT, S_IFLNK = 0o170000, 0o120000
MAX_NAME_BYTES = 200  # an entry keeps its name in sent/ or failed/: room left for " (2)" and the sidecar


@dataclass(frozen=True, slots=True)
class ArchiveCheck:
    """Outcome of the safety rules: `error` None means safe; `kept` are the entries to unpack."""

    error: FileError | None
    kept: tuple[zipfile.ZipInfo, ...] = ()
    skipped: tuple[str, ...] = ()


def _unsafe(reason: str, detail: str | None = None) -> ArchiveCheck:
    return ArchiveCheck(error=file_error("UnsafeArchive", reason=reason, detail=detail))


def is_metadata(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or base.startswith("._") or base == ".DS_Store"


def name_problem(name: str) -> str | None:
    """Why an entry name is unsafe, or None."""
    if not name:
        return "an entry has an empty name"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "an entry name contains control characters"
    if "\\" in name:
        return f"the entry name {name!r} contains a backslash (a path trick)"
    if ":" in name:
        return f"the entry name {name!r} contains ':' (a drive or stream trick)"
    if name.startswith("/"):
        return f"the entry {name!r} has an absolute path"
    if ".." in name.split("/"):
        return f"the entry {name!r} points outside the archive ('..')"
    if len(name.rstrip("/").rsplit("/", 1)[-1].encode("utf-8")) > MAX_NAME_BYTES:
        return f"the entry name {name[:40]!r}... is longer than {MAX_NAME_BYTES} characters"
    return None


def is_nested_archive_name(name: str) -> bool:
    return name.lower().endswith(NESTED_SUFFIXES)


def check_archive(
    stream: IO[bytes],
    size: int,
    *,
    max_entries: int,
    max_total_bytes: int,
    max_ratio: int,
    max_entry_bytes: int | None = None,
) -> ArchiveCheck:
    """Apply every safety rule to the ZIP in `stream` (seekable, `size` bytes); never raises. An entry
    declaring more than `max_entry_bytes` (the outbox's `files.max_bytes`) makes the ZIP TooLarge."""
    try:
        return _check(stream, size, max_entries, max_total_bytes, max_ratio, max_entry_bytes)
    except Exception as exc:  # zipfile's BadZipFile, struct errors, odd ZIP64 records...
        return _unsafe("its table of contents is damaged", f"{type(exc).__name__}: {exc}")


def _check(
    stream: IO[bytes],
    size: int,
    max_entries: int,
    max_total_bytes: int,
    max_ratio: int,
    max_entry_bytes: int | None,
) -> ArchiveCheck:
    stream.seek(0)
    if stream.read(4) != LOCAL_MAGIC:
        return _unsafe("it does not start like a ZIP file (or it is empty)")
    central = _central_directory_size(stream, size)
    if central is None:
        return _unsafe("its table of contents is missing or damaged")
    if central > max_entries * CENTRAL_BYTES_PER_ENTRY:
        return _unsafe(
            f"it holds more than the {max_entries} files allowed", f"central directory of {central} bytes"
        )
    stream.seek(0)
    with zipfile.ZipFile(stream) as archive:
        infos = archive.infolist()
        start_dir = int(getattr(archive, "start_dir", size))
    if len(infos) > max_entries:
        return _unsafe(f"it holds {len(infos)} files, more than the {max_entries} allowed")
    declared = sum(info.file_size for info in infos)
    if declared > max_total_bytes:
        return _unsafe(f"it would unpack to {declared:,} bytes, more than the {max_total_bytes:,} allowed")

    seen: set[str] = set()
    bases: dict[str, str] = {}  # folded base name -> the entry that has it
    kept: list[zipfile.ZipInfo] = []
    skipped: list[str] = []
    for info in infos:
        problem = _entry_problem(info, max_ratio)
        if problem is not None:
            return _unsafe(problem)
        folded = _folded(info.orig_filename)
        if folded in seen:
            return _unsafe(f"the name {info.filename!r} appears twice")
        seen.add(folded)
        if info.is_dir() or is_metadata(info.filename):
            skipped.append(info.filename)
            continue
        if is_nested_archive_name(info.filename):
            return _unsafe(f"it contains another archive ({info.filename!r}); nested archives are refused")
        base = _folded(info.orig_filename.rsplit("/", 1)[-1])
        if base in bases:  # each entry is sent and filed under its base name: one order, two invoices
            return _unsafe(
                f"the name {info.filename.rsplit('/', 1)[-1]!r} appears twice "
                f"({bases[base]!r} and {info.filename!r}); each file in a ZIP needs a name of its own"
            )
        bases[base] = info.filename
        if max_entry_bytes is not None and info.file_size > max_entry_bytes:
            return ArchiveCheck(error=_entry_too_large(info, max_entry_bytes))
        kept.append(info)

    overlap = _layout_problem(stream, infos, start_dir)
    if overlap is not None:
        return _unsafe("its entries overlap or disagree with their headers (a ZIP bomb trick)", overlap)
    if not kept:  # it would go to sent/ with nothing delivered
        return _unsafe("it holds no files, only folders or system files such as __MACOSX")
    return ArchiveCheck(error=None, kept=tuple(kept), skipped=tuple(skipped))


def _folded(name: str) -> str:
    """A name as a file system or a marketplace may compare it: case and Unicode spelling ignored."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _entry_too_large(info: zipfile.ZipInfo, limit: int) -> FileError:
    size, allowed = f"{info.file_size / 1_000_000:.1f} MB", f"{limit / 1_000_000:.1f} MB"
    if size == allowed:
        size, allowed = f"{info.file_size:,} bytes", f"{limit:,} bytes"
    return file_error(
        "TooLarge",
        reason=f"the file {info.filename!r} inside it is {size}, "
        f"more than the {allowed} allowed for one file",
        detail=f"files.max_bytes: {limit}",
    )


def _entry_problem(info: zipfile.ZipInfo, max_ratio: int) -> str | None:
    problem = name_problem(info.orig_filename)  # before zipfile cut it at a NUL
    if problem is not None:
        return problem
    if info.flag_bits & 0x1:
        return f"the entry {info.filename!r} is encrypted (password protected)"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"the entry {info.filename!r} uses an unsupported compression method ({info.compress_type})"
    if (info.external_attr >> 16) & S_IFMT == S_IFLNK:
        return f"the entry {info.filename!r} is a symbolic link"
    if info.file_size > max_ratio * max(info.compress_size, 1):
        return f"the entry {info.filename!r} expands more than {max_ratio} times (a compression bomb)"
    return None


def _central_directory_size(stream: IO[bytes], size: int) -> int | None:
    """Size of the central directory from the end record (ZIP64 aware), before zipfile reads it."""
    tail_length = min(size, 22 + 65535)
    stream.seek(size - tail_length)
    tail = stream.read(tail_length)
    at = tail.rfind(END_MAGIC)
    if at < 0 or len(tail) - at < 22:
        return None
    (central_size,) = struct.unpack("<I", tail[at + 12 : at + 16])
    locator_at = at - 20
    if central_size == 0xFFFFFFFF or (
        locator_at >= 0 and tail[locator_at : locator_at + 4] == ZIP64_LOCATOR_MAGIC
    ):
        if locator_at < 0 or tail[locator_at : locator_at + 4] != ZIP64_LOCATOR_MAGIC:
            return None
        (zip64_end_offset,) = struct.unpack("<Q", tail[locator_at + 8 : locator_at + 16])
        if zip64_end_offset + 56 > size:
            return None
        stream.seek(zip64_end_offset)
        record = stream.read(56)
        if record[:4] != ZIP64_END_MAGIC:
            return None
        (central_size,) = struct.unpack("<Q", record[40:48])
    return int(central_size)


def _layout_problem(stream: IO[bytes], infos: list[zipfile.ZipInfo], start_dir: int) -> str | None:
    """Entries must not overlap each other or the central directory; local names must match."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for position, info in enumerate(ordered):
        stream.seek(info.header_offset)
        header = stream.read(30)
        if len(header) < 30 or header[:4] != LOCAL_MAGIC:
            return f"no local header for {info.filename!r}"
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        raw_name = stream.read(name_length)
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if raw_name.decode(encoding, errors="replace") != info.orig_filename:
            return f"local name {raw_name!r} differs from central name {info.orig_filename!r}"
        data_end = info.header_offset + 30 + name_length + extra_length + info.compress_size
        limit = ordered[position + 1].header_offset if position + 1 < len(ordered) else start_dir
        if data_end > limit:
            return f"{info.filename!r} runs into the next entry"
    return None
