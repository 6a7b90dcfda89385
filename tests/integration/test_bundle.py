"""A batch's ZIP holds every file's very bytes: PDFs stored, XML deflated (by ISA-L: plain deflate, as any
unzip reads it), readable back by any unzip with matching CRCs."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from invoicesync.bundle import build_bundle
from invoicesync.model import BatchItem
from tests.badfiles import sample_pdf, sample_ubl


def _with_attachment(order_id: str, size: int) -> bytes:
    """A UBL invoice carrying a PDF as base64 (random bytes: a compressed PDF's are as good as random)."""
    encoded = base64.b64encode(os.urandom(size))
    element = b'<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="f.pdf">'
    element += encoded + b"</cbc:EmbeddedDocumentBinaryObject>"
    invoice = sample_ubl(order_id)
    head, _, tail = invoice.partition(b"<cac:AccountingSupplierParty>")
    return (
        head
        + b"<cac:AdditionalDocumentReference><cbc:ID>1</cbc:ID><cac:Attachment>"
        + element
        + (b"</cac:Attachment></cac:AdditionalDocumentReference>\n  <cac:AccountingSupplierParty>" + tail)
    )


def _item(folder: Path, name: str, data: bytes) -> BatchItem:
    path = folder / name
    path.write_bytes(data)
    return BatchItem(
        item_id=name, order_id=name.split(".")[0], upload_name=name, path=str(path), size=len(data),
        content_type="application/octet-stream", sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip


def test_every_file_is_in_the_zip_byte_for_byte(tmp_path: Path) -> None:
    files = {
        "ORDER0001.pdf": sample_pdf("ORDER0001"),
        "ORDER0002.xml": sample_ubl("ORDER0002", lines=400),  # plain XML
        "ORDER0003.xml": _with_attachment("ORDER0003", 300_000),
        "ORDER0004.xml": sample_ubl("ORDER0004"),  # small
    }
    items = [_item(tmp_path, name, data) for name, data in files.items()]
    bundle = tmp_path / "bundle.zip"
    assert build_bundle(items, bundle) == {}
    with zipfile.ZipFile(bundle) as archive:
        assert archive.testzip() is None  # every CRC matches
        assert {info.filename: archive.read(info) for info in archive.infolist()} == files
        entries = {info.filename: info for info in archive.infolist()}
    assert entries["ORDER0001.pdf"].compress_type == zipfile.ZIP_STORED
    plain, attached = entries["ORDER0002.xml"], entries["ORDER0003.xml"]
    assert plain.compress_type == attached.compress_type == zipfile.ZIP_DEFLATED
    assert plain.compress_size < 0.2 * plain.file_size
    # base64 is 6 bits a byte: Huffman codes take a quarter off it, whatever its content
    assert attached.compress_size < 0.8 * attached.file_size


def test_zipfile_still_has_the_compressor_the_bundle_replaces(tmp_path: Path) -> None:
    """`_add` swaps a private attribute of zipfile's entry writer: were it renamed, the swap would do nothing
    (the ZIP still right, only slower to make). This says so at once."""
    with zipfile.ZipFile(tmp_path / "probe.zip", "w") as archive:
        entry = zipfile.ZipInfo("a.xml")
        entry.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(entry, "w") as writer:
            assert hasattr(writer, "_compressor")
