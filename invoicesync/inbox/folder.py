"""inbox.folder (shell): `<root>/inbox/`, where a fetched invoice appears whole or not at all.

A download is written under a hidden temporary name (`.invoicesync-<name>.part`, which accounting
software and the outbox's ignore rules pass over), checked, fsynced, its sidecar (`<name>.json`) put in
place, and only then renamed to its name: a reader never sees half a file, nor a PDF without its sidecar.
A ZIP answer is unpacked under the outbox's archive rules; each PDF in it becomes `<stem>-<n>.pdf`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoicesync import archive
from invoicesync.checks.content import Rules
from invoicesync.checks.pdfbytes import byte_problem, ends_of
from invoicesync.outbox import fsync_dir

PARTIAL_PREFIX = ".invoicesync-"
PARTIAL_SUFFIX = ".part"


class NotAnInvoice(Exception):
    """The download is not a usable invoice file (an error page, half a PDF, an unsafe ZIP)."""


@dataclass(frozen=True, slots=True)
class Placed:
    name: str
    sha256: str
    size: int


def _digest(path: Path) -> tuple[str, int]:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest(), os.fstat(stream.fileno()).st_size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pdf_problem(path: Path) -> str | None:
    """Why the file is not a whole PDF (the byte checks of the outbox), or None."""
    with open(path, "rb") as stream:
        ends = ends_of(stream)
    if not ends:
        return "it is empty"
    if not ends.startswith(b"%PDF-"):
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in ends[:16])
        return f'it is not a PDF (it starts with "{shown}")'
    return byte_problem(ends)


class InboxFolder:
    def __init__(self, path: Path, rules: Rules) -> None:
        self.path = path
        self._rules = rules

    def ensure(self) -> None:
        """Make inbox/ (not through a link: what a link points to is not this root's)."""
        if self.path.is_symlink():
            raise OSError(f"{self.path} is a symbolic link; make it a folder")
        self.path.mkdir(exist_ok=True)

    def clean_partials(self) -> int:
        """Remove what a crash left half-written; returns how many."""
        removed = 0
        for entry in self.path.iterdir():
            if entry.name.startswith(PARTIAL_PREFIX) and entry.name.endswith(PARTIAL_SUFFIX):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def partial(self, name: str) -> Path:
        return self.path / f"{PARTIAL_PREFIX}{name}{PARTIAL_SUFFIX}"

    def holds(self, name: str, invoice_id: str) -> Placed | None:
        """The invoice's file already in place (a crash came after its rename, before the journal heard
        of it): it is ours when its sidecar names this invoice."""
        for candidate in (name, f"{Path(name).stem}-1.pdf"):
            path, sidecar = self.path / candidate, self.path / f"{candidate}.json"
            try:
                said = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(said, dict) and said.get("invoice_id") == invoice_id and path.is_file():
                sha256, size = _digest(path)
                return Placed(candidate, sha256, size)
        return None

    def place(self, partial: Path, name: str, sidecar: dict[str, Any]) -> list[Placed]:
        """Check the download, then put it (or each PDF of a ZIP) in place with its sidecar. Raises
        NotAnInvoice (the partial file is removed) when it is neither a whole PDF nor a safe ZIP of PDFs."""
        try:
            _fsync(partial)
            with open(partial, "rb") as stream:
                zipped = stream.read(4) == b"PK\x03\x04"
            if not zipped:
                problem = pdf_problem(partial)
                if problem is not None:
                    raise NotAnInvoice(f"The download is not a usable PDF: {problem}.")
                return [self._publish(partial, name, sidecar)]
            return self._unzipped(partial, name, sidecar)
        finally:
            partial.unlink(missing_ok=True)

    def _unzipped(self, partial: Path, name: str, sidecar: dict[str, Any]) -> list[Placed]:
        unpack_dir = self.path / f"{PARTIAL_PREFIX}{name}.unpacked{PARTIAL_SUFFIX}"
        unpack_dir.mkdir(exist_ok=True)
        try:
            unpacked = archive.unpack(partial, unpack_dir, self._rules)
            if not isinstance(unpacked, archive.Unpacked):
                raise NotAnInvoice(f"The download is a ZIP that cannot be used: {unpacked.message}")
            pdfs = [entry for entry in unpacked.entries if entry.name.lower().endswith(".pdf")]
            if not pdfs:
                raise NotAnInvoice("The download is a ZIP without a PDF in it.")
            for entry in pdfs:
                problem = pdf_problem(entry.path)
                if problem is not None:
                    raise NotAnInvoice(f"{entry.name} in the downloaded ZIP is not a usable PDF: {problem}.")
            stem = Path(name).stem
            return [
                self._publish(entry.path, f"{stem}-{number}.pdf", {**sidecar, "zip_entry": entry.name})
                for number, entry in enumerate(pdfs, start=1)
            ]
        finally:
            shutil.rmtree(unpack_dir, ignore_errors=True)

    def _publish(self, source: Path, name: str, sidecar: dict[str, Any]) -> Placed:
        sha256, size = _digest(source)
        _fsync(source)
        document = {**sidecar, "file": name, "sha256": sha256, "size": size}
        side = self.path / f"{name}.json"
        side_partial = self.partial(f"{name}.json")
        with open(side_partial, "w", encoding="utf-8") as stream:
            json.dump(document, stream, ensure_ascii=False, indent=2)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(side_partial, side)
        os.replace(source, self.path / name)
        with contextlib.suppress(OSError):
            fsync_dir(self.path)
        return Placed(name, sha256, size)
