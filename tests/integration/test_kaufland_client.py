"""The Kaufland client against the built-in Kaufland simulator (signatures checked, invoices added per order)
and against a recording server on 127.0.0.1 for the exact shape of what is sent and how odd answers map."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from invoicesync.errors import OutboxBlocked, RejectedError, TransientError, UnknownOutcome
from invoicesync.marketplaces.kaufland import KauflandMarketplace, sign
from invoicesync.model import Batch
from invoicesync.sandbox import Sandbox
from tests.badfiles import sample_pdf
from tests.contract.marketplace import one_pdf_batch
from tests.integration.test_kaufland_contract import CLIENT_KEY, SECRET_KEY, kaufland_client, kaufland_sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with kaufland_sandbox(
        deemed_supplier_orders=frozenset({"MDEEMED1"}), orders=frozenset({"MKNOWN1", "MKNOWN2"})
    ) as running:
        yield running


def _prepared(client: KauflandMarketplace, batch: Batch) -> Batch:
    return dataclasses.replace(batch, prepared=client.prepare(batch))


def test_an_unknown_order_is_rejected_and_a_deemed_supplier_one_refused_before_any_upload(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    client = kaufland_client(sandbox.kaufland_url)
    with pytest.raises(RejectedError) as unknown:
        client.prepare(one_pdf_batch("MNOPE99", tmp_path))
    assert unknown.value.code == "Rejected" and "MNOPE99" in str(unknown.value)
    assert unknown.value.marketplace_code == "/problems/not-found"
    with pytest.raises(RejectedError) as deemed:
        client.prepare(one_pdf_batch("MDEEMED1", tmp_path))
    assert deemed.value.code == "DeemedSupplier"
    held = [invoice for invoices in sandbox.kaufland_orders().values() for invoice in invoices]
    assert all(invoice["is_marketplace_deemed_supplier"] for invoice in held)  # Kaufland's own: none uploaded


def test_a_correction_replaces_only_our_earlier_invoices_and_keep_keeps_them(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    client = kaufland_client(sandbox.kaufland_url)
    first = client.submit(_prepared(client, one_pdf_batch("MKNOWN1", tmp_path)))
    second_batch = dataclasses.replace(
        _prepared(client, one_pdf_batch("MKNOWN1", tmp_path, sample_pdf("MKNOWN1", text="corrected"))),
        earlier=(first.import_id,),
    )
    second = client.submit(second_batch)
    held = sandbox.kaufland_invoices("MKNOWN1")
    assert [str(invoice["id_invoice"]) for invoice in held] == [second.import_id]
    assert second.snapshot.raw["files"][0]["replaced"] == [first.import_id]
    assert "url" not in json.dumps(second.snapshot.raw)  # the url carries an access token: never kept

    keeping = kaufland_client(sandbox.kaufland_url, corrections="keep")
    third = keeping.submit(
        dataclasses.replace(
            _prepared(keeping, one_pdf_batch("MKNOWN1", tmp_path)), earlier=(second.import_id,)
        )
    )
    assert sorted(str(i["id_invoice"]) for i in sandbox.kaufland_invoices("MKNOWN1")) == sorted(
        [second.import_id, third.import_id]
    )


def test_a_lost_answer_is_settled_by_the_order_and_only_a_new_invoice_with_our_bytes_is_adopted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    client = kaufland_client(sandbox.kaufland_url)
    # an invoice of that name was on the order before ours: it is not ours
    client.submit(
        _prepared(client, one_pdf_batch("MKNOWN2", tmp_path, sample_pdf("MKNOWN2", text="by hand")))
    )
    ours = _prepared(client, one_pdf_batch("MKNOWN2", tmp_path))
    assert client.find_lost(ours, sent_after=_now()) is None
    # another file of our name arrives meanwhile, with other bytes (its url can be fetched): not ours
    client.submit(
        _prepared(client, one_pdf_batch("MKNOWN2", tmp_path, sample_pdf("MKNOWN2", text="someone else")))
    )
    assert client.find_lost(ours, sent_after=_now()) is None
    stored = client.submit(ours)
    found = client.find_lost(ours, sent_after=_now())
    assert found is not None and found.import_id == stored.import_id


def test_wrong_secret_and_a_clock_ten_minutes_off_block_the_outbox_naming_the_time(sandbox: Sandbox) -> None:
    wrong = kaufland_client(sandbox.kaufland_url, secret="not-the-secret-key")
    with pytest.raises(OutboxBlocked) as refused:
        wrong.check_online()
    assert "not-the-secret-key" not in str(refused.value) and SECRET_KEY not in str(refused.value)
    late = kaufland_client(sandbox.kaufland_url, wall=lambda: time.time() - 600)
    with pytest.raises(OutboxBlocked) as skewed:
        late.check_online()
    said = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() - 600))
    assert said in str(skewed.value) and "clock" in str(skewed.value)
    kaufland_client(sandbox.kaufland_url).check_online()  # the right key and clock: accepted


def test_the_rate_limit_is_kept_for_all_calls_together_and_429_is_signed_afresh(tmp_path: Path) -> None:
    with kaufland_sandbox(kaufland_rate_limit=20, orders=frozenset({"MRATE01"})) as sandbox:
        # as configured by default (100 of Kaufland's 111): a margin for the calls' own jitter
        client = kaufland_client(sandbox.kaufland_url, max_requests_per_second=18)
        for _ in range(45):
            client.check_online()
        assert sandbox.stats()["faults"].get("rate_limited", 0) == 0
    with kaufland_sandbox(rate_limit_rate=0.25, retry_after_seconds=0, seed=1) as sandbox:
        client = kaufland_client(sandbox.kaufland_url)
        for order in ("MRATE01", "MRATE02", "MRATE03"):
            client.submit(_prepared(client, one_pdf_batch(order, tmp_path)))
        assert sandbox.stats()["faults"].get("rate_limit", 0) > 0  # met 429s, and each retry was signed again
        assert all(len(sandbox.kaufland_invoices(o)) == 1 for o in ("MRATE01", "MRATE02", "MRATE03"))


# -- the exact request, and odd answers, on a recording server -------------------------------------------


def test_an_upload_sends_exactly_the_signed_json_with_the_headers_kaufland_reads(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    seen: list[Request] = []

    def record(request: Request) -> Response:
        seen.append(request)
        return Response(
            json.dumps({"data": {"id_invoice": 7, "id_order": "MSHAPE1"}}),
            201,
            content_type="application/json",
        )

    httpserver.expect_request("/v2/order-invoices/MSHAPE1", method="POST").respond_with_handler(record)
    client = kaufland_client(httpserver.url_for("/v2"), user_agent="acme-erp")
    batch = one_pdf_batch("MSHAPE1", tmp_path)
    assert client.submit(batch).import_id == "7"
    request = seen[0]
    body = request.get_data()
    assert json.loads(body)["original_name"] == "MSHAPE1.pdf" and set(json.loads(body)) == {
        "original_name",
        "mime_type",
        "data",
    }
    headers = request.headers
    assert headers["Shop-Client-Key"] == CLIENT_KEY
    assert headers["Content-Type"] == "application/json" and int(headers["Content-Length"]) == len(body)
    assert headers["User-Agent"].startswith("acme-erp")
    timestamp = int(headers["Shop-Timestamp"])
    assert abs(timestamp - time.time()) < 60
    uri = httpserver.url_for("/v2/order-invoices/MSHAPE1")
    assert headers["Shop-Signature"] == sign("POST", uri, body, timestamp, SECRET_KEY)


def test_refusals_keep_kauflands_words_and_odd_answers_never_pass_for_delivered(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    client = kaufland_client(httpserver.url_for("/v2"))
    problem = {
        "type": "/problems/validation-error",
        "message": "Invalid request.",
        "errors": [{"field": "data", "message": "too big"}],
    }
    httpserver.expect_oneshot_request("/v2/order-invoices/MODD001", method="POST").respond_with_json(
        problem, status=400
    )
    with pytest.raises(RejectedError) as rejected:
        client.submit(one_pdf_batch("MODD001", tmp_path))
    assert rejected.value.marketplace_code == "/problems/validation-error"
    assert rejected.value.detail is not None and "too big" in rejected.value.detail
    # a gateway's HTML 502 after the bytes left: the outcome is unknown, the order will be read again
    httpserver.expect_oneshot_request("/v2/order-invoices/MODD002", method="POST").respond_with_data(
        "<html>Bad Gateway</html>", status=502, content_type="text/html"
    )
    with pytest.raises(UnknownOutcome):
        client.submit(one_pdf_batch("MODD002", tmp_path))
    # a redirect is never followed with a signed call
    httpserver.expect_oneshot_request("/v2/order-invoices/MODD003", method="POST").respond_with_data(
        "", status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"}
    )
    with pytest.raises(OutboxBlocked, match="redirects"):
        client.submit(one_pdf_batch("MODD003", tmp_path))
    # an order read that keeps failing is a transient trouble, not a refusal of the file
    httpserver.expect_request("/v2/orders/MODD004").respond_with_data("", status=503)
    with pytest.raises(TransientError):
        client.prepare(one_pdf_batch("MODD004", tmp_path))


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_lost_answer_is_settled_even_when_the_staged_copy_is_gone(sandbox: Sandbox, tmp_path: Path) -> None:
    """A crash can come after a batch's staged copies were discarded and before its outcome was committed:
    the order is read again and the invoice recognised by the SHA-256 journaled at the check (found by the
    SIGKILL soak, where this once stopped a batch for good)."""
    client = kaufland_client(sandbox.kaufland_url)
    batch = _prepared(client, one_pdf_batch("MKNOWN1", tmp_path))
    stored = client.submit(batch)
    Path(batch.items[0].path).unlink()
    found = client.find_lost(batch, sent_after=_now())
    assert found is not None and found.import_id == stored.import_id
