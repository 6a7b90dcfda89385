"""Kaufland's request signature (kaufland.md): the published test vector, and the streamed upload body whose
signature is made over a first pass of the file: it must be the signature of the very bytes then sent."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicesync.marketplaces.kaufland import CHUNK_BYTES, UploadBody, sign

SECRET = "a7d0cb1da1ddbc86c96ee5fedd341b7d8ebfbb2f5c83cfe0909f4e57f05dd403"


def test_the_published_vector() -> None:
    signature = sign("POST", "https://sellerapi.kaufland.com/v2/units/", b"", 1411055926, SECRET)
    assert signature == "da0b65f51c0716c1d3fa658b7eaf710583630a762a98c9af8e9b392bd9df2e2a"


def test_the_method_is_signed_in_upper_case_and_an_empty_body_keeps_its_line() -> None:
    uri = "https://sellerapi.kaufland.com/v2/orders/MB7UWLD?embedded=order_invoices"
    assert sign("get", uri, b"", 1, SECRET) == sign("GET", uri, b"", 1, SECRET)
    assert sign("GET", uri, b"", 1, SECRET) != sign("GET", uri, b"x", 1, SECRET)
    assert sign("GET", uri, b"", 1, SECRET) != sign("GET", uri, b"", 2, SECRET)  # fresh timestamp, new one


NAMES = st.sampled_from(["MB7UWLD.pdf", 'a"b\\c.pdf', "é.pdf"])


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3 * CHUNK_BYTES + 7), name=NAMES)
def test_the_streamed_body_is_the_json_signed_and_its_length_is_known_before(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, name: str
) -> None:
    path = tmp_path_factory.mktemp("body") / "staged"
    path.write_bytes(data)
    body = UploadBody(path, name)
    sent = b"".join(body.chunks())
    assert len(sent) == body.length
    assert json.loads(sent) == {
        "original_name": name,
        "mime_type": "application/pdf",
        "data": base64.b64encode(data).decode(),
    }
    uri = "https://sellerapi.kaufland.com/v2/order-invoices/MB7UWLD"
    assert body.signature("POST", uri, 1700000000, SECRET) == sign("POST", uri, sent, 1700000000, SECRET)
