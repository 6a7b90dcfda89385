"""The built-in Octopia sandbox, driven over real loopback HTTP with httpx: no mocks, no sleeps."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from invoicesync.sandbox import ROUTE_BULK, ROUTE_TOKEN, Sandbox, SandboxOptions
from tests.conftest import REALWORLD, wait_for

SELLER = "98979"
KNOWN = frozenset({"SCID01210525142759UT8E", "MARJMA24031215601SELLER", "A1B2C3", "D4E5F6"})
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
UBL_INVOICE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"'
    b' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
    b"<cbc:ID>INV-1</cbc:ID></Invoice>\n"
)
UBL_CREDIT_NOTE = (
    b'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2">'
    b"<ID>CN-1</ID></CreditNote>"
)
FAST = 0.2

StartSandbox = Callable[..., Sandbox]


@pytest.fixture
def start_sandbox() -> Iterator[StartSandbox]:
    started: list[Sandbox] = []

    def start(**options: Any) -> Sandbox:
        options.setdefault("orders", KNOWN)
        options.setdefault("processing_seconds", FAST)
        sandbox = Sandbox.start(SandboxOptions(**options))
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    return start_sandbox()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def get_token(sandbox: Sandbox, client: httpx.Client, **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": "invoicesync", "client_secret": "s3cret", **form}
    return client.post(sandbox.token_url, data=data)


def api_headers(sandbox: Sandbox, client: httpx.Client) -> dict[str, str]:
    answer = get_token(sandbox, client)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}", "SellerId": SELLER}


def bulk(
    sandbox: Sandbox,
    client: httpx.Client,
    headers: dict[str, str],
    files: list[tuple[str, tuple[str, bytes, str]]],
) -> httpx.Response:
    return client.post(f"{sandbox.base_url}/order-invoice-imports", headers=headers, files=files)


def finished(
    sandbox: Sandbox, client: httpx.Client, headers: dict[str, str], import_id: str
) -> dict[str, Any]:
    """Poll the import until it is no longer Running; its final body."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        answer = client.get(f"{sandbox.base_url}/order-invoice-imports/{import_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        seen.update(answer.json())
        return bool(seen["status"] != "Running")

    wait_for(done, timeout_seconds=10, what=f"import {import_id} to finish")
    return seen


def origin(sandbox: Sandbox) -> str:
    return sandbox.base_url.removesuffix("/seller/v2")


# --- tokens -------------------------------------------------------------------------------------------


def test_token_for_good_credentials_has_the_documented_shape(
    start_sandbox: StartSandbox, client: httpx.Client
) -> None:
    sandbox = start_sandbox(client_id="invoicesync", client_secret="s3cret", token_ttl_seconds=600)
    answer = get_token(sandbox, client)
    assert answer.status_code == 200
    body = answer.json()
    assert body["expires_in"] == 600
    assert body["token_type"] == "Bearer"
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    assert get_token(sandbox, client).json()["access_token"] != body["access_token"]


def test_wrong_secret_is_401_until_the_secret_is_fixed(
    start_sandbox: StartSandbox, client: httpx.Client
) -> None:
    sandbox = start_sandbox(client_id="invoicesync", client_secret="other")
    refused = get_token(sandbox, client)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 401
    sandbox.set_options(SandboxOptions(orders=KNOWN, client_id="invoicesync", client_secret="s3cret"))
    assert get_token(sandbox, client).status_code == 200


@pytest.mark.parametrize(
    "form",
    [{"grant_type": "password"}, {"client_id": ""}, {"client_secret": ""}],
    ids=["wrong-grant", "no-client-id", "no-secret"],
)
def test_malformed_token_request_is_400(sandbox: Sandbox, client: httpx.Client, form: dict[str, str]) -> None:
    answer = get_token(sandbox, client, **form)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"


def test_token_request_as_json_is_400(sandbox: Sandbox, client: httpx.Client) -> None:
    answer = client.post(sandbox.token_url, json={"grant_type": "client_credentials", "client_id": "a"})
    assert answer.status_code == 400


def test_refuse_tokens_answers_401_to_everyone(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(refuse_tokens=True)
    assert get_token(sandbox, client).status_code == 401
    assert sandbox.stats()["token_requests"] == 1


def test_token_really_expires_after_its_ttl(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(token_ttl_seconds=1)
    headers = api_headers(sandbox, client)
    url = f"{sandbox.base_url}/order-invoice-imports?pageSize=1"
    assert client.get(url, headers=headers).status_code == 200
    wait_for(
        lambda: client.get(url, headers=headers).status_code == 401, timeout_seconds=5, what="token expiry"
    )
    expired = client.get(url, headers=headers)
    assert expired.headers["www-authenticate"] == 'Bearer realm="maas", error="invalid_token"'
    assert expired.json()["status"] == 401


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic Zm9vOmJhcg=="])
def test_api_call_without_a_valid_token_is_401(
    sandbox: Sandbox, client: httpx.Client, authorization: str | None
) -> None:
    headers = {"SellerId": SELLER} | ({"Authorization": authorization} if authorization else {})
    answer = client.get(f"{sandbox.base_url}/order-invoice-imports", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="maas", error="invalid_token"'
    assert answer.headers["content-type"] == "application/problem+json"


# --- seller -------------------------------------------------------------------------------------------


def test_missing_seller_id_is_400_naming_the_header(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    del headers["SellerId"]
    answer = client.get(f"{sandbox.base_url}/order-invoice-imports", headers=headers)
    assert answer.status_code == 400
    assert "SellerId" in answer.json()["errors"]


def test_other_seller_is_403(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(seller_id="11111")
    answer = client.get(f"{sandbox.base_url}/order-invoice-imports", headers=api_headers(sandbox, client))
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"


# --- uploads and processing ---------------------------------------------------------------------------


def test_bulk_zip_expands_into_entries_and_ends_partial_success(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    headers = api_headers(sandbox, client)
    archive = zip_of(
        {
            "A1B2C3.pdf": PDF,
            "D4E5F6.xml": UBL_INVOICE,
            "ZZZZ9999.pdf": PDF,
            "../A1B2C3.pdf": PDF,
            "no order.pdf": PDF,
            "SCID01210525142759UT8E.pdf": b"not a pdf",
            "MARJMA24031215601SELLER.txt": b"text",
        }
    )
    answer = bulk(
        sandbox, client, headers, [("bundle-000417", ("BULK_20251212.zip", archive, "application/zip"))]
    )
    assert answer.status_code == 201
    created = answer.json()
    assert answer.headers["location"] == f"/seller/v2/order-invoice-imports/{created['importId']}"
    assert created["status"] == "Running"
    assert created["createdAt"].endswith("Z") and len(created["createdAt"]) == len("2026-05-12T08:30:00.125Z")
    assert [row["fileName"] for row in created["files"]] == ["A1B2C3.pdf"]
    assert created["files"][0]["status"] == "Running"

    final = finished(sandbox, client, headers, created["importId"])
    assert final["status"] == "PartialSuccess"
    by_name = {row["fileName"]: row for row in final["files"]}
    assert len(final["files"]) == 7
    assert {row["name"] for row in final["files"]} == {"bundle-000417"}
    ok = by_name["A1B2C3.pdf"]
    assert (ok["status"], ok["integrationStatus"], ok["error"], ok["orderId"]) == (
        "Success",
        "Integrated",
        None,
        "A1B2C3",
    )
    assert by_name["D4E5F6.xml"]["status"] == "Success"
    unknown = by_name["ZZZZ9999.pdf"]
    assert (unknown["status"], unknown["integrationStatus"]) == ("Failure", "Rejected")
    assert unknown["error"]["code"] == "OrderNotFound"
    assert "—" in unknown["error"]["detail"]
    assert by_name["../A1B2C3.pdf"]["error"]["code"] == "InvalidFileName"
    assert by_name["../A1B2C3.pdf"]["orderId"] is None
    assert by_name["no order.pdf"]["error"]["code"] == "InvalidFileName"
    assert by_name["SCID01210525142759UT8E.pdf"]["error"]["code"] == "InvalidFileFormat"
    assert by_name["MARJMA24031215601SELLER.txt"]["error"]["code"] == "InvalidFileFormat"
    assert [doc["fileName"] for doc in sandbox.documents("A1B2C3")] == ["A1B2C3.pdf"]
    assert sandbox.documents("SCID01210525142759UT8E") == []


def test_entries_appear_one_by_one_while_running(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(processing_seconds=1.0)
    headers = api_headers(sandbox, client)
    archive = zip_of({f"{order}.pdf": PDF for order in sorted(KNOWN)})
    created = bulk(sandbox, client, headers, [("bundle-1", ("b.zip", archive, "application/zip"))]).json()
    counts: list[int] = []
    steps: set[str] = set()

    def look() -> bool:
        body = client.get(
            f"{sandbox.base_url}/order-invoice-imports/{created['importId']}", headers=headers
        ).json()
        counts.append(len(body["files"]))
        steps.update(row["integrationStatus"] for row in body["files"])
        return bool(body["status"] == "Success")

    wait_for(look, timeout_seconds=10, what="import to succeed")
    assert counts == sorted(counts) and counts[0] < 4 and counts[-1] == 4
    assert {"OrderCheck", "Integrated"} <= steps


def test_single_order_upload_attaches_pdf_and_xml_together(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    files = [
        ("bundle-7", ("A1B2C3.pdf", PDF, "application/pdf")),
        ("bundle-7", ("A1B2C3.xml", UBL_INVOICE, "application/xml")),
    ]
    answer = client.post(f"{sandbox.base_url}/orders/A1B2C3/invoice-documents", headers=headers, files=files)
    assert answer.status_code == 201
    final = finished(sandbox, client, headers, answer.json()["importId"])
    assert final["status"] == "Success"
    assert {row["orderId"] for row in final["files"]} == {"A1B2C3"}
    documents = sandbox.documents("A1B2C3")
    assert [(doc["fileName"], doc["sha256"]) for doc in documents] == [
        ("A1B2C3.pdf", sha(PDF)),
        ("A1B2C3.xml", sha(UBL_INVOICE)),
    ]
    over_http = client.get(f"{origin(sandbox)}/_sandbox/orders/A1B2C3").json()
    assert over_http == {"orderId": "A1B2C3", "documents": documents}


def test_single_order_upload_for_an_unknown_order_is_400(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    files = [("bundle-8", ("ZZZZ9999.pdf", PDF, "application/pdf"))]
    answer = client.post(
        f"{sandbox.base_url}/orders/ZZZZ9999/invoice-documents", headers=headers, files=files
    )
    assert answer.status_code == 400
    assert "—" in answer.json()["detail"]
    assert sandbox.stats()["imports"] == 0


def test_later_upload_replaces_documents_and_a_failed_one_does_not(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    headers = api_headers(sandbox, client)
    url = f"{sandbox.base_url}/orders/D4E5F6/invoice-documents"
    first = client.post(url, headers=headers, files=[("b1", ("D4E5F6.pdf", PDF, "application/pdf"))]).json()
    finished(sandbox, client, headers, first["importId"])
    newer_pdf = PDF + b"% corrected\n"
    second = client.post(
        url, headers=headers, files=[("b2", ("D4E5F6.pdf", newer_pdf, "application/pdf"))]
    ).json()
    finished(sandbox, client, headers, second["importId"])
    assert [(doc["sha256"], doc["importId"]) for doc in sandbox.documents("D4E5F6")] == [
        (sha(newer_pdf), second["importId"])
    ]
    broken = client.post(
        url, headers=headers, files=[("b3", ("D4E5F6.pdf", b"garbage", "application/pdf"))]
    ).json()
    assert finished(sandbox, client, headers, broken["importId"])["status"] == "Failure"
    assert [doc["sha256"] for doc in sandbox.documents("D4E5F6")] == [sha(newer_pdf)]


def test_bulk_files_of_one_order_replace_each_other(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    files = [
        ("p1", ("A1B2C3.pdf", PDF, "application/pdf")),
        ("p2", ("A1B2C3.xml", UBL_INVOICE, "application/xml")),
    ]
    created = bulk(sandbox, client, headers, files).json()
    assert finished(sandbox, client, headers, created["importId"])["status"] == "Success"
    assert [doc["fileName"] for doc in sandbox.documents("A1B2C3")] == ["A1B2C3.xml"]


@pytest.mark.parametrize(
    ("content", "accepted"),
    [
        (UBL_INVOICE, True),
        (UBL_CREDIT_NOTE, True),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><Invoice/>', False),
        (UBL_INVOICE[:-12], False),
        (b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>', False),
        (b"<Invoice><ID>no namespace</ID></Invoice>", False),
    ],
    ids=["invoice", "credit-note", "doctype", "truncated", "ubl-order", "no-namespace"],
)
def test_xml_must_be_well_formed_ubl_without_doctype(
    sandbox: Sandbox, client: httpx.Client, content: bytes, accepted: bool
) -> None:
    headers = api_headers(sandbox, client)
    created = bulk(sandbox, client, headers, [("x1", ("A1B2C3.xml", content, "application/xml"))]).json()
    (row,) = finished(sandbox, client, headers, created["importId"])["files"]
    assert row["status"] == ("Success" if accepted else "Failure")
    assert row["error"] is None if accepted else row["error"]["code"] == "InvalidFileFormat"


def test_real_world_invoices_are_accepted(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(orders=None)  # every well-formed order identifier exists
    samples = sorted(REALWORLD.glob("ubl-*.xml")) + sorted(REALWORLD.glob("pdf-*.pdf"))
    if not samples:
        pytest.skip("no shared/realworld samples here")
    headers = api_headers(sandbox, client)
    archive = zip_of(
        {f"ORDER{index:04d}{path.suffix}": path.read_bytes() for index, path in enumerate(samples)}
    )
    created = bulk(sandbox, client, headers, [("real", ("real.zip", archive, "application/zip"))]).json()
    final = finished(sandbox, client, headers, created["importId"])
    assert [row["error"] for row in final["files"] if row["error"]] == []
    assert len(final["files"]) == len(samples)


def _bad_zip_entries() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("A1B2C3.zip", zip_of({"A1B2C3.pdf": PDF}))
        link = zipfile.ZipInfo("D4E5F6.pdf")
        link.create_system = 3
        link.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(link, "/etc/passwd")
        archive.writestr("/abs/A1B2C3.pdf", PDF)
    return buffer.getvalue()


def _encrypted_entry_zip() -> bytes:
    data = bytearray(zip_of({"A1B2C3.pdf": PDF}))
    # set the "encrypted" flag bit in the local header (offset 6) and the central directory (offset 8)
    data[6] |= 1
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 1
    return bytes(data)


def test_unsafe_zip_entries_are_refused_one_by_one(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    files = [
        ("z1", ("mixed.zip", _bad_zip_entries(), "application/zip")),
        ("z2", ("secret.bin", _encrypted_entry_zip(), "application/octet-stream")),  # a ZIP by its magic
    ]
    final = finished(sandbox, client, headers, bulk(sandbox, client, headers, files).json()["importId"])
    codes = {(row["name"], row["fileName"]): row["error"]["code"] for row in final["files"]}
    assert codes == {
        ("z1", "A1B2C3.zip"): "InvalidFileFormat",
        ("z1", "D4E5F6.pdf"): "InvalidFileFormat",
        ("z1", "/abs/A1B2C3.pdf"): "InvalidFileName",
        ("z2", "A1B2C3.pdf"): "InvalidFileFormat",
    }
    assert final["status"] == "Failure"


@pytest.mark.parametrize("content", [b"PK\x03\x04 broken archive", zip_of({})], ids=["unreadable", "empty"])
def test_unreadable_or_empty_zip_is_one_entry_named_after_it(
    sandbox: Sandbox, client: httpx.Client, content: bytes
) -> None:
    headers = api_headers(sandbox, client)
    created = bulk(sandbox, client, headers, [("z", ("BUNDLE_1.zip", content, "application/zip"))]).json()
    (row,) = finished(sandbox, client, headers, created["importId"])["files"]
    assert (row["fileName"], row["orderId"], row["error"]["code"]) == (
        "BUNDLE_1.zip",
        None,
        "InvalidFileFormat",
    )


def test_received_lists_each_file_once_with_its_sha256(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    archive = zip_of({"A1B2C3.pdf": PDF, "D4E5F6.xml": UBL_INVOICE})
    created = bulk(
        sandbox,
        client,
        headers,
        [
            ("zipped", ("b.zip", archive, "application/zip")),
            ("plain", ("ZZZZ9999.pdf", PDF, "application/pdf")),
        ],
    ).json()
    rows = client.get(f"{origin(sandbox)}/_sandbox/received").json()["files"]
    assert rows == sandbox.received()
    assert [(row["name"], row["fileName"], row["orderId"], row["sha256"], row["size"]) for row in rows] == [
        ("zipped", "A1B2C3.pdf", "A1B2C3", sha(PDF), len(PDF)),
        ("zipped", "D4E5F6.xml", "D4E5F6", sha(UBL_INVOICE), len(UBL_INVOICE)),
        ("plain", "ZZZZ9999.pdf", "ZZZZ9999", sha(PDF), len(PDF)),
    ]
    assert {row["importId"] for row in rows} == {created["importId"]}
    assert {row["createdAt"] for row in rows} == {created["createdAt"]}


# --- refused uploads ----------------------------------------------------------------------------------


def test_upload_that_is_not_multipart_is_415(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client) | {"Content-Type": "application/pdf"}
    answer = client.post(f"{sandbox.base_url}/order-invoice-imports", headers=headers, content=PDF)
    assert answer.status_code == 415


def test_upload_without_a_file_part_is_400(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    no_file = raw_multipart(b'Content-Disposition: form-data; name="note"\r\n\r\nhello')
    answer = post_raw(sandbox, client, headers, no_file)
    assert answer.status_code == 400
    assert "files" in answer.json()["errors"]


def raw_multipart(*parts: bytes, boundary: bytes = b"b0undary", close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary + b"--\r\n" if close else b"")


def post_raw(
    sandbox: Sandbox, client: httpx.Client, headers: dict[str, str], body: bytes, boundary: str = "b0undary"
) -> httpx.Response:
    headers = headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return client.post(f"{sandbox.base_url}/order-invoice-imports", headers=headers, content=body)


PDF_PART = (
    b'Content-Disposition: form-data; name="f"; filename="A1B2C3.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n"
)


@pytest.mark.parametrize(
    ("body", "boundary"),
    [
        (raw_multipart(PDF_PART + PDF, close=False), "b0undary"),
        (raw_multipart(PDF_PART + PDF).replace(b"\r\n", b"\n"), "b0undary"),
        (raw_multipart(PDF_PART + PDF, boundary=b"x" * 71), "x" * 71),
        (raw_multipart(b'Content-Disposition: attachment; filename="A1B2C3.pdf"\r\n\r\n' + PDF), "b0undary"),
    ],
    ids=["no-closing-boundary", "bare-lf", "boundary-too-long", "not-form-data"],
)
def test_broken_multipart_is_400(sandbox: Sandbox, client: httpx.Client, body: bytes, boundary: str) -> None:
    answer = post_raw(sandbox, client, api_headers(sandbox, client), body, boundary)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert sandbox.stats()["imports"] == 0


def test_strict_multipart_by_hand_is_accepted(sandbox: Sandbox, client: httpx.Client) -> None:
    filename_star = b"Content-Disposition: form-data; name=\"g\"; filename*=UTF-8''D4E5F6.pdf\r\n\r\n"
    body = b"preamble\r\n" + raw_multipart(PDF_PART + PDF, filename_star + PDF) + b"epilogue"
    answer = post_raw(sandbox, client, api_headers(sandbox, client), body)
    assert answer.status_code == 201, answer.text
    assert [row["fileName"] for row in sandbox.received()] == ["A1B2C3.pdf", "D4E5F6.pdf"]
    assert {row["sha256"] for row in sandbox.received()} == {sha(PDF)}


def test_too_many_files_is_400(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(max_files_per_request=2)
    headers = api_headers(sandbox, client)
    archive = zip_of({"A1B2C3.pdf": PDF, "D4E5F6.pdf": PDF, "ZZZZ9999.pdf": PDF})
    answer = bulk(sandbox, client, headers, [("z", ("b.zip", archive, "application/zip"))])
    assert answer.status_code == 400
    assert "files" in answer.json()["errors"]


def test_large_chunked_upload_is_streamed_and_hashed(sandbox: Sandbox, client: httpx.Client) -> None:
    big = PDF + bytes(range(256)) * (24 * 1024 * 4)  # about 24 MiB
    boundary = b"----big-upload"
    head = b"--" + boundary + b"\r\n" + PDF_PART
    tail = b"\r\n--" + boundary + b"--\r\n"

    def chunks() -> Iterator[bytes]:
        yield head
        for start in range(0, len(big), 1_000_003):  # odd sizes: boundaries fall anywhere
            yield big[start : start + 1_000_003]
        yield tail

    headers = api_headers(sandbox, client) | {
        "Content-Type": f"multipart/form-data; boundary={boundary.decode()}"
    }
    answer = client.post(f"{sandbox.base_url}/order-invoice-imports", headers=headers, content=chunks())
    assert answer.status_code == 201, answer.text
    assert [(row["sha256"], row["size"]) for row in sandbox.received()] == [(sha(big), len(big))]


# --- listing ------------------------------------------------------------------------------------------


def test_paging_follows_link_and_next_cursor_newest_first(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    created = [
        bulk(sandbox, client, headers, [(f"bundle-{n}", ("A1B2C3.pdf", PDF, "application/pdf"))]).json()[
            "importId"
        ]
        for n in range(5)
    ]
    seen: list[str] = []
    url: str | None = f"{sandbox.base_url}/order-invoice-imports?pageSize=2"
    pages = 0
    while url:
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200
        body = answer.json()
        pages += 1
        assert body["itemsPerPage"] == 2
        seen += [item["importId"] for item in body["items"]]
        link = answer.links.get("next", {}).get("url")
        assert (link is None) == ("nextCursor" not in body)
        if link:
            assert link.startswith("/seller/v2/order-invoice-imports?pageSize=2&cursor=")
            assert httpx.URL(link).params["cursor"] == body["nextCursor"]
        url = str(httpx.URL(url).join(link)) if link else None
    assert pages == 3
    assert seen == created[::-1]
    stamps = [
        item["createdAt"]
        for item in client.get(f"{sandbox.base_url}/order-invoice-imports", headers=headers).json()["items"]
    ]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("pageSize=0", "pageSize"),
        ("pageSize=101", "pageSize"),
        ("pageSize=two", "pageSize"),
        ("pageSize=2&cursor=garbage!", "cursor"),
        ("pageSize=2&cursor=eyJ4IjoxfQ", "cursor"),
    ],
)
def test_bad_page_size_or_cursor_is_400(
    sandbox: Sandbox, client: httpx.Client, query: str, field: str
) -> None:
    answer = client.get(
        f"{sandbox.base_url}/order-invoice-imports?{query}", headers=api_headers(sandbox, client)
    )
    assert answer.status_code == 400
    assert field in answer.json()["errors"]


def test_unknown_import_is_404_problem(sandbox: Sandbox, client: httpx.Client) -> None:
    answer = client.get(
        f"{sandbox.base_url}/order-invoice-imports/nope", headers=api_headers(sandbox, client)
    )
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/seller/v2/orders/A1B2C3"),
        ("GET", "/seller/v2/orders/A1B2C3/invoice-documents"),
        ("DELETE", "/seller/v2/order-invoice-imports"),
        ("GET", "/seller/v2/order-invoice-imports/"),
        ("GET", "/"),
        ("GET", "/_sandbox/nothing"),
    ],
)
def test_unknown_route_is_plain_text_404(
    sandbox: Sandbox, client: httpx.Client, method: str, path: str
) -> None:
    answer = client.request(method, origin(sandbox) + path, headers=api_headers(sandbox, client))
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/plain")


# --- faults -------------------------------------------------------------------------------------------


def test_drop_after_accept_creates_the_import_but_never_answers(
    start_sandbox: StartSandbox, client: httpx.Client
) -> None:
    sandbox = start_sandbox(drop_after_accept_rate=1.0)
    headers = api_headers(sandbox, client)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        bulk(sandbox, client, headers, [("bundle-lost-1", ("A1B2C3.pdf", PDF, "application/pdf"))])
    items = client.get(f"{sandbox.base_url}/order-invoice-imports?pageSize=10", headers=headers).json()[
        "items"
    ]
    assert [row["name"] for item in items for row in item["files"]] == ["bundle-lost-1"]
    assert sandbox.stats()["faults"] == {"drop_after_accept": 1}


def test_error_rate_answers_5xx_before_doing_anything(
    start_sandbox: StartSandbox, client: httpx.Client
) -> None:
    sandbox = start_sandbox(error_rate=1.0, seed=7)
    answers = [
        bulk(sandbox, client, {"SellerId": SELLER}, [("f", ("A1B2C3.pdf", PDF, "application/pdf"))])
        for _ in range(12)
    ]
    answers.append(get_token(sandbox, client))
    assert {answer.status_code for answer in answers} == {500, 503}
    empty = [answer for answer in answers if answer.status_code == 503 and not answer.content]
    assert empty, "some 503s come with an empty body"
    problems = [answer for answer in answers if answer.content]
    assert all(answer.json()["status"] == answer.status_code for answer in problems)
    stats = sandbox.stats()
    assert stats["imports"] == 0
    assert sum(stats["faults"].values()) == 13
    assert stats["requests"][ROUTE_BULK] == 12 and stats["requests"][ROUTE_TOKEN] == 1


def test_seeded_faults_repeat(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    def statuses(sandbox: Sandbox) -> list[int]:
        return [get_token(sandbox, client).status_code for _ in range(20)]

    first = statuses(start_sandbox(error_rate=0.3, rate_limit_rate=0.3, seed=42))
    assert first == statuses(start_sandbox(error_rate=0.3, rate_limit_rate=0.3, seed=42))
    assert len(set(first)) > 1


def test_rate_limit_answers_429_with_both_retry_after_forms(
    start_sandbox: StartSandbox, client: httpx.Client
) -> None:
    sandbox = start_sandbox(rate_limit_rate=1.0, retry_after_seconds=3)
    answers = [get_token(sandbox, client) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [429, 429]
    retry_after = [answer.headers["retry-after"] for answer in answers]
    assert retry_after[0] == "3"
    wait = parsedate_to_datetime(retry_after[1]).timestamp() - time.time()
    assert 1 < wait <= 4
    assert sandbox.stats()["faults"] == {"rate_limit": 2}


def test_slow_answer_is_delayed(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(slow_rate=1.0, slow_seconds=0.3)
    began = time.monotonic()
    assert get_token(sandbox, client).status_code == 200
    assert time.monotonic() - began >= 0.3
    assert client.get(f"{origin(sandbox)}/_sandbox/stats").json()["faults"] == {"slow": 1}


def test_introspection_is_never_faulted(start_sandbox: StartSandbox, client: httpx.Client) -> None:
    sandbox = start_sandbox(error_rate=1.0, rate_limit_rate=1.0)
    for path in ("/_sandbox/received", "/_sandbox/stats", "/_sandbox/orders/A1B2C3"):
        assert client.get(origin(sandbox) + path).status_code == 200


# --- robustness ---------------------------------------------------------------------------------------


def test_client_vanishing_mid_upload_leaves_the_server_serving(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    headers = api_headers(sandbox, client)
    port = int(sandbox.base_url.split(":")[2].split("/")[0])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            request = (
                "POST /seller/v2/order-invoice-imports HTTP/1.1\r\nHost: sandbox\r\n"
                f"Authorization: {headers['Authorization']}\r\nSellerId: {SELLER}\r\n"
                "Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: 10000000\r\n\r\n"
            )
            raw.sendall(request.encode() + b"--b0undary\r\n" + PDF_PART + PDF * 100)
    answer = bulk(sandbox, client, headers, [("after", ("A1B2C3.pdf", PDF, "application/pdf"))])
    assert answer.status_code == 201
    assert [row["name"] for row in sandbox.received()] == ["after"]


def test_stop_is_quick_even_while_an_answer_is_slowed(start_sandbox: StartSandbox) -> None:
    sandbox = start_sandbox(slow_rate=1.0, slow_seconds=60)
    outcome: list[object] = []

    def call() -> None:
        try:
            with httpx.Client(timeout=30) as http:
                outcome.append(get_token(sandbox, http).status_code)
        except httpx.HTTPError as error:
            outcome.append(error)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait_for(lambda: sandbox.stats()["faults"].get("slow") == 1, timeout_seconds=5, what="the slowed call")
    began = time.monotonic()
    sandbox.stop()
    assert time.monotonic() - began < 3
    caller.join(timeout=5)
    assert outcome, "the slowed client got an answer or an error, and did not hang"
    with pytest.raises(httpx.ConnectError):
        httpx.get(sandbox.token_url, timeout=2)


def test_sandbox_json_is_utf8_with_the_em_dash_verbatim(sandbox: Sandbox, client: httpx.Client) -> None:
    headers = api_headers(sandbox, client)
    created = bulk(sandbox, client, headers, [("u", ("ZZZZ9999.pdf", PDF, "application/pdf"))]).json()
    finished(sandbox, client, headers, created["importId"])
    raw = client.get(
        f"{sandbox.base_url}/order-invoice-imports/{created['importId']}", headers=headers
    ).content
    assert "—".encode() in raw
    assert json.loads(raw)["files"][0]["error"]["code"] == "OrderNotFound"
