"""bundle (shell): stream a batch's files into one ZIP in state_dir, never a whole file in memory.

PDFs are stored (deflating them costs time and saves under 1 %), XML is deflated. The ZIP is
written under a temporary name and renamed into place, so a bundle on disk is always complete.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from invoicesync.model import BatchItem


def build_bundle(items: Sequence[BatchItem], path: Path) -> Path:
    temp = path.with_name(f".{path.name}.tmp")
    try:
        # strict_timestamps=False: a file copied in with a pre-1980 mtime gets 1980-01-01 in the bundle
        with zipfile.ZipFile(temp, "w", allowZip64=True, strict_timestamps=False) as archive:
            for item in items:
                xml = item.upload_name.lower().endswith(".xml")
                method = zipfile.ZIP_DEFLATED if xml else zipfile.ZIP_STORED
                archive.write(item.path, arcname=item.upload_name, compress_type=method, compresslevel=6)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())  # a bundle renamed into place is complete, even after a power cut
    except BaseException:
        temp.unlink(missing_ok=True)  # a full disk must not keep the half-written bundle's space
        raise
    os.replace(temp, path)
    return path
