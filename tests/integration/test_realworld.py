"""Real invoices from other people's software (shared/realworld) get the verdict their manifest records.

Valid files must pass: a valid invoice refused is as bad as a broken one sent. Each XML's order
references (document and line level) are rewritten to the order of the drop name first, so only the
defect a broken file is filed under remains; PDFs that name another order (`mismatch_ok`) may instead
get OrderMismatch, and must pass when dropped under an order they name. The files are read from the
shared folder at test time, never copied into the project.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import pytest
from lxml import etree

from invoicesync.checks.content import Rules, judge
from invoicesync.checks.ubl import PARSER
from invoicesync.model import Verdict
from tests.conftest import REALWORLD

if not (REALWORLD / "manifest.json").is_file():
    pytest.skip(
        f"no real-world corpus at {REALWORLD} (shared/realworld is not laid out here)",
        allow_module_level=True,
    )

MANIFEST: dict[str, Any] = json.loads((REALWORLD / "manifest.json").read_text(encoding="utf-8"))
FILES: list[dict[str, Any]] = MANIFEST["files"]
ORDER = "RW2024A1B2"
RULES = Rules()


def read(entry: dict[str, Any]) -> bytes:
    data = (REALWORLD / str(entry["file"])).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{entry['file']} differs from its manifest"
    return data


def with_order_refs(data: bytes, order_id: str) -> tuple[bytes, list[str]]:
    """The XML with every OrderReference/cbc:ID (document and line level) set to `order_id`."""
    tree = etree.parse(io.BytesIO(data), PARSER)
    found: list[str] = []
    for element in tree.getroot().iter("{*}OrderReference"):
        for child in element:
            if isinstance(child.tag, str) and etree.QName(child).localname == "ID":
                found.append(child.text or "")
                child.text = order_id
    if not found:
        return data, found
    encoding = tree.docinfo.encoding or "UTF-8"
    return etree.tostring(tree, xml_declaration=True, encoding=encoding), found


def verdict_of(entry: dict[str, Any], order_id: str) -> Verdict:
    data = read(entry)
    extension = entry["file"].rsplit(".", 1)[-1]
    if extension == "xml" and entry.get("order_refs"):
        data, found = with_order_refs(data, order_id)
        assert found == [ref or "" for ref in entry["order_refs"]], "manifest order_refs not all found"
    return judge(f"{order_id}.{extension}", order_id, io.BytesIO(data), len(data), RULES)


def code(verdict: Verdict) -> str | None:
    return verdict.error.code if verdict.error else None


VALID = [entry for entry in FILES if entry["expect"] == "sent"]
BROKEN = [entry for entry in FILES if entry["expect"] != "sent"]


@pytest.mark.parametrize("entry", VALID, ids=[entry["file"] for entry in VALID])
def test_valid_real_invoice_passes(entry: dict[str, Any]) -> None:
    verdict = verdict_of(entry, ORDER)
    if entry.get("mismatch_ok"):
        assert code(verdict) in (None, "OrderMismatch"), verdict.error
    else:
        assert verdict.ok, verdict.error


@pytest.mark.parametrize("entry", BROKEN, ids=[entry["file"] for entry in BROKEN])
def test_broken_real_file_gets_its_code(entry: dict[str, Any]) -> None:
    verdict = verdict_of(entry, ORDER)
    assert code(verdict) in entry["codes"], verdict.error


NAMED_XML = [entry for entry in VALID if entry["file"].endswith(".xml") and entry.get("order_ref")]


@pytest.mark.parametrize("entry", NAMED_XML, ids=[entry["file"] for entry in NAMED_XML])
def test_real_ubl_naming_another_order_is_refused(entry: dict[str, Any]) -> None:
    data = read(entry)
    verdict = judge(f"{ORDER}.xml", ORDER, io.BytesIO(data), len(data), RULES)
    assert code(verdict) == "OrderMismatch", verdict.error
    assert verdict.order_named == entry["order_ref"].strip()


NAMING = [entry for entry in VALID if entry.get("names_order")]


@pytest.mark.parametrize("entry", NAMING, ids=[entry["file"] for entry in NAMING])
def test_pdf_naming_an_order_passes_under_that_order(entry: dict[str, Any]) -> None:
    verdicts = {named: verdict_of(entry, named) for named in entry["names_order"]}
    assert any(verdict.ok for verdict in verdicts.values()), verdicts


def test_manifest_counts_match_its_files() -> None:
    assert sum(MANIFEST["counts"].values()) == len(FILES)
