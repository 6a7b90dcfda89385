"""checks.pdfbytes (core): whether raw bytes can be a whole PDF, without parsing it: the first check of a
dropped PDF (`checks.pdf`) and the whole check of a downloaded one (`inbox.folder`, in the daemon's own
process, which never loads a PDF library).

`%PDF-` within the first 1024 bytes with version 1.0-1.7 or 2.0; the last 1024 bytes end in `%%EOF`
(trailing whitespace and NULs allowed) and hold `startxref`. A cut-off file fails here.
"""

from __future__ import annotations

import io
from typing import BinaryIO

VERSIONS = frozenset({b"1.0", b"1.1", b"1.2", b"1.3", b"1.4", b"1.5", b"1.6", b"1.7", b"2.0"})
TRAILING = b" \t\r\n\x0c\x00"


def byte_problem(data: bytes) -> str | None:
    """Why the raw bytes cannot be a whole PDF, or None."""
    head = data[:1024]
    start = head.find(b"%PDF-")
    if start < 0:
        return "it does not start like a PDF"
    version = head[start + 5 : start + 8]
    if version not in VERSIONS or head[start + 8 : start + 9].isdigit():
        shown = version.decode("ascii", "replace")
        return f"it claims PDF version {shown}, which is not 1.0 to 1.7 or 2.0"
    tail = data[-1024:]
    if not tail.rstrip(TRAILING).endswith(b"%%EOF"):
        return "it is cut off (the end of the file is missing)"
    if b"startxref" not in tail:
        return "it is cut off or damaged (its cross-reference pointer is missing)"
    return None


def ends_of(stream: BinaryIO) -> bytes:
    """The first and the last 1024 bytes (all of a small file): what `byte_problem` looks at."""
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    if size <= 2048:
        return stream.read()
    head = stream.read(1024)
    stream.seek(size - 1024)
    return head + stream.read(1024)
