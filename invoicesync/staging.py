"""staging (shell): the bytes a batch sends, copied out of .processing/ and proven to be the bytes checked.

Between its check and its upload a claimed file can change: a writer that kept its descriptor rewrites
it, a person swaps it for another, a link appears in its place, an antivirus takes it away. Before a
batch leaves, each file is copied into `<state_dir>/bundles/<bundle>.d/<item_id>` (opened without
following links, refused when it has a second name) and hashed while it is copied; only a copy whose
SHA-256 is the one journaled at the check is uploaded, and every upload of the batch (a retry, a re-send
after a lost answer) reads those copies, never the share again. A staged copy is checked again before
each use, so one cut short by a power cut is made again. A bulk batch is sent as one ZIP, which is its
copy: `bundle` makes it from the claimed files with the same rules and proof.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from invoicesync.checks.examine import NotRegular, open_regular

COPY_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Staged:
    """What became of one file: copied as checked, changed since its check, or gone."""

    path: Path
    matches: bool  # the copy holds exactly the bytes checked


def stage_dir(bundle_dir: Path, bundle_name: str) -> Path:
    return bundle_dir / f"{bundle_name}.d"


def stage(source: Path, target: Path, sha256: str) -> Staged:
    """`target` holding `source`'s bytes, and whether they hash to `sha256`. A `target` already there and
    matching is used as it is. Raises FileNotFoundError (the file is gone), NotRegular, OSError."""
    if target.exists() and _digest_of(target) == sha256:
        return Staged(target, True)
    temp = target.with_name(f".{target.name}.tmp")
    digest = hashlib.sha256()
    fd = open_regular(source)
    with os.fdopen(fd, "rb") as reader, open(temp, "wb") as writer:
        while chunk := reader.read(COPY_CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
    if digest.hexdigest() != sha256:
        temp.unlink(missing_ok=True)
        return Staged(target, False)
    os.replace(temp, target)
    return Staged(target, True)


def _digest_of(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def discard(bundle_dir: Path, bundle_name: str) -> None:
    """The staged copies of a finished batch: no longer needed."""
    shutil.rmtree(stage_dir(bundle_dir, bundle_name), ignore_errors=True)


__all__ = ["NotRegular", "Staged", "discard", "stage", "stage_dir"]
