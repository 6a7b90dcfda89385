"""The Octopia client against a real loopback HTTP server (pytest-httpserver) scripting each answer.

What is proven: tokens are fetched, cached, renewed and never shown; uploads are multipart and
streamed, repeated only when nothing can have been received; polls and the lost-upload lookup retry
what is safe and never mistake a failure for "not there".
"""

from __future__ import annotations

import dataclasses
import json
import socket
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import stamina
from pytest_httpserver import HTTPServer
from structlog.testing import capture_logs
from structlog.tracebacks import ExceptionDictTransformer
from werkzeug import Request, Response

from invoicesync.errors import OutboxBlocked, RejectedError, TransientError, UnknownOutcome
from invoicesync.marketplaces import Marketplace
from invoicesync.marketplaces.auth import TokenAuth
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.model import Batch, BatchItem, Endpoint, ImportSnapshot, ImportStatus
from tests.conftest import wait_for

SECRET = "Zq9#s"  # short, so a rendered local holding the token form would show all of it
CLIENT_ID = "c1"
SELLER = "98979"
BUNDLE = "bundle-000417"
ORDER = "SCID01210525142759UT8E"
IMPORT_ID = "0c9f3d2e-6a1b-4f57-8e0a-5d4c3b2a1f09"
API = "/seller/v2"
IMPORTS = f"{API}/order-invoice-imports"
TOKEN_PATH = "/auth/realms/maas/protocol/openid-connect/token"
PROBLEM = "application/problem+json"
SENT_AT = datetime(2026, 5, 12, 8, 30, tzinfo=UTC)


class TokenServer:
    """The token endpoint: checks the form, hands out numbered tokens, or refuses as told."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.expires_in: int | None = 7200
        self.status = 200

    def __call__(self, request: Request) -> Response:
        form = parse_qs(request.get_data(as_text=True))
        assert form.keys() == {"grant_type", "client_id", "client_secret"}
        assert (form["grant_type"], form["client_id"]) == (["client_credentials"], [CLIENT_ID])
        status = 401 if form["client_secret"] != [SECRET] else self.status
        if status != 200:
            problem = {"title": "Unauthorized", "status": status, "detail": "Invalid client credentials"}
            return Response(json.dumps(problem), status=status, content_type=PROBLEM)
        token = f"tok-{len(self.issued) + 1}-eyJhbGciOiJSUzI1NiJ9"
        self.issued.append(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "scope": "profile email"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Response(json.dumps(body), content_type="application/json")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TickingClock(FakeClock):
    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def tokens(httpserver: HTTPServer) -> TokenServer:
    server = TokenServer()
    httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(server)
    return server


MakeMarket = Callable[..., OctopiaMarketplace]


@pytest.fixture
def make_market(httpserver: HTTPServer, tokens: TokenServer) -> Iterator[MakeMarket]:
    made: list[OctopiaMarketplace] = []

    def make(**overrides: Any) -> OctopiaMarketplace:
        settings: dict[str, Any] = {
            "base_url": httpserver.url_for(API),
            "token_url": httpserver.url_for(TOKEN_PATH),
            "seller_id": SELLER,
            "client_id": CLIENT_ID,
            "read_secret": lambda: SECRET,
            "timeout": httpx.Timeout(5),
        }
        market = OctopiaMarketplace(**(settings | overrides))
        made.append(market)
        return market

    yield make
    for market in made:
        market.close()


@pytest.fixture
def market(make_market: MakeMarket) -> OctopiaMarketplace:
    return make_market()


@pytest.fixture
def bulk(tmp_path: Path) -> Batch:
    bundle = tmp_path / f"{BUNDLE}.zip"
    bundle.write_bytes(b"PK\x03\x04" + b"zip-bytes-" * 100)
    item = BatchItem("item-1", ORDER, f"{ORDER}.pdf", str(tmp_path / "x"), 10, "application/pdf")
    return Batch("batch-1", BUNDLE, Endpoint.BULK_IMPORT, (item,), bundle_path=str(bundle))


def import_body(
    import_id: str = IMPORT_ID, *, name: str = BUNDLE, created_at: datetime = SENT_AT
) -> dict[str, Any]:
    stamp = created_at.isoformat().replace("+00:00", "Z")
    entry = {"name": name, "fileName": f"{ORDER}.pdf", "orderId": ORDER, "status": "Running", "error": None}
    return {"importId": import_id, "status": "Running", "createdAt": stamp, "files": [entry]}


def created(import_id: str = IMPORT_ID) -> Response:
    return Response(
        json.dumps(import_body(import_id)),
        status=201,
        content_type="application/json",
        headers={"Location": f"{IMPORTS}/{import_id}"},
    )


def problem(status: int, title: str, detail: str, **errors: list[str]) -> Response:
    body = {"type": f"https://developer.octopia-io.net/errors/{status}", "title": title, "status": status}
    body |= {"detail": detail, "traceId": "5f0e2c7d"} | ({"errors": errors} if errors else {})
    return Response(json.dumps(body), status=status, content_type=PROBLEM)


def drop_connection(request: Request) -> Response:
    """Close the socket unanswered, as after an import was created and the answer got lost."""
    request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
    return Response(status=500)  # never reaches the client


def requests_to(httpserver: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in httpserver.log if request.path == path]


def assert_no_secret(exc: BaseException, tokens: list[str] | None = None) -> None:
    """Neither the message, nor a chained exception, nor a rendered traceback with locals shows a secret."""
    rendered = json.dumps(ExceptionDictTransformer(show_locals=True)((type(exc), exc, exc.__traceback__)))
    seen: BaseException | None = exc
    while seen is not None:
        assert SECRET not in str(seen) and "tok-" not in str(seen)
        seen = seen.__cause__ or seen.__context__
    assert SECRET not in rendered
    assert all(token not in rendered for token in tokens or [])


def test_it_is_a_marketplace(market: OctopiaMarketplace) -> None:
    checked: Marketplace = market  # mypy checks the Protocol here
    assert checked.name == "octopia"


# --- upload ---------------------------------------------------------------------------------------


class TestUpload:
    def test_bulk_upload_sends_token_seller_and_one_named_zip_part(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch, tokens: TokenServer
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(created())

        submission = market.submit(bulk)

        assert submission.import_id == IMPORT_ID
        assert submission.snapshot.status is ImportStatus.RUNNING
        assert submission.snapshot.files[0].name == BUNDLE
        (upload,) = requests_to(httpserver, IMPORTS)
        assert upload.headers["Authorization"] == f"Bearer {tokens.issued[0]}"
        assert upload.headers["SellerId"] == SELLER
        assert upload.headers["Accept"] == "application/json"
        assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        body = upload.get_data()
        assert body.count(b"Content-Disposition") == 1
        assert f'form-data; name="{BUNDLE}"; filename="{BUNDLE}.zip"'.encode() in body
        assert b"Content-Type: application/zip" in body
        assert Path(bulk.bundle_path or "").read_bytes() in body
        assert int(upload.headers["Content-Length"]) == len(body)

    def test_order_documents_sends_one_part_per_file_to_the_encoded_order_path(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, tmp_path: Path
    ) -> None:
        order = "AB/12 C"
        (tmp_path / "a.pdf").write_bytes(b"%PDF-1.7 pdf bytes")
        (tmp_path / "a.xml").write_bytes(b"<Invoice>xml bytes</Invoice>")
        items = (
            BatchItem("i1", order, "AB12C.pdf", str(tmp_path / "a.pdf"), 18, "application/pdf"),
            BatchItem("i2", order, "AB12C.xml", str(tmp_path / "a.xml"), 28, "application/xml"),
        )
        batch = Batch("b2", BUNDLE, Endpoint.ORDER_DOCUMENTS, items, order_id=order)
        httpserver.expect_request(
            f"{API}/orders/{order}/invoice-documents", method="POST"
        ).respond_with_response(created())

        assert market.submit(batch).import_id == IMPORT_ID

        (upload,) = [
            request for request, _ in httpserver.log if request.method == "POST" and "orders" in request.path
        ]
        assert upload.environ["RAW_URI"] == f"{API}/orders/AB%2F12%20C/invoice-documents"
        body = upload.get_data()
        assert f'name="{BUNDLE}"; filename="AB12C.pdf"\r\nContent-Type: application/pdf'.encode() in body
        assert f'name="{BUNDLE}"; filename="AB12C.xml"\r\nContent-Type: application/xml'.encode() in body
        assert b"%PDF-1.7 pdf bytes" in body and b"<Invoice>xml bytes</Invoice>" in body

    def test_import_id_falls_back_to_location(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(
            Response("", status=201, headers={"Location": f"{IMPORTS}/from-location"})
        )
        submission = market.submit(bulk)
        assert submission.import_id == "from-location"
        assert submission.snapshot.import_id == "from-location"
        assert submission.snapshot.status is ImportStatus.UNKNOWN

    def test_expired_token_is_renewed_and_the_upload_repeated_once(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch, tokens: TokenServer
    ) -> None:
        httpserver.expect_oneshot_request(IMPORTS, method="POST").respond_with_response(
            problem(401, "Unauthorized", "The access token expired.")
        )
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(created())

        assert market.submit(bulk).import_id == IMPORT_ID

        first, second = requests_to(httpserver, IMPORTS)
        assert first.headers["Authorization"] == f"Bearer {tokens.issued[0]}"
        assert second.headers["Authorization"] == f"Bearer {tokens.issued[1]}"
        assert market.auth.token_requests == 2
        assert second.get_data() == first.get_data().replace(*_boundaries(first, second))

    def test_second_401_blocks_the_outbox(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(
            problem(401, "Unauthorized", "invalid_token")
        )
        with pytest.raises(OutboxBlocked, match="401") as caught:
            market.submit(bulk)
        assert len(requests_to(httpserver, IMPORTS)) == 2
        assert market.auth.token_requests == 2
        assert_no_secret(caught.value)

    def test_403_blocks_the_outbox_naming_the_seller(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(
            problem(403, "Forbidden", "Seller not allowed.")
        )
        with pytest.raises(OutboxBlocked, match=f"forbids seller {SELLER}.*Forbidden: Seller not allowed"):
            market.submit(bulk)
        assert len(requests_to(httpserver, IMPORTS)) == 1

    def test_429_waits_and_sends_once_more(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_oneshot_request(IMPORTS, method="POST").respond_with_response(
            Response("", status=429, headers={"Retry-After": "2"})
        )
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(created())

        assert market.submit(bulk).import_id == IMPORT_ID
        assert len(requests_to(httpserver, IMPORTS)) == 2

    def test_retry_after_is_honoured_in_real_time(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        stamina.set_testing(False)  # real waits for this one test; 0.3 s
        httpserver.expect_oneshot_request(IMPORTS, method="POST").respond_with_response(
            Response("", status=429, headers={"Retry-After": "0.3"})
        )
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(created())
        clock = datetime.now(UTC)
        market.submit(bulk)
        assert datetime.now(UTC) - clock >= timedelta(seconds=0.3)

    def test_long_retry_after_is_handed_to_the_service_without_sleeping(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        stamina.set_testing(False)  # would sleep an hour if the cap were ignored
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(
            Response("", status=429, headers={"Retry-After": "3600"})
        )
        with pytest.raises(TransientError, match="429") as caught:
            market.submit(bulk)
        assert caught.value.retry_after_seconds == 3600
        assert len(requests_to(httpserver, IMPORTS)) == 1

    def test_429_until_attempts_run_out_is_transient(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(Response("", status=429))
        with pytest.raises(TransientError, match="429"):
            market.submit(bulk)
        assert len(requests_to(httpserver, IMPORTS)) == 3  # the test-mode attempts

    @pytest.mark.parametrize("body", [b"", b'{"title": "Service Unavailable", "status": 503}'])
    def test_503_after_sending_is_an_unknown_outcome_never_resent(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch, body: bytes
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(Response(body, status=503))
        with pytest.raises(UnknownOutcome, match="looked up before anything is sent again"):
            market.submit(bulk)
        assert len(requests_to(httpserver, IMPORTS)) == 1

    def test_dropped_connection_after_sending_is_an_unknown_outcome(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch, tokens: TokenServer
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_handler(drop_connection)
        with pytest.raises(UnknownOutcome, match=f"bundle {BUNDLE} was lost") as caught:
            market.submit(bulk)
        assert_no_secret(caught.value, tokens.issued)
        # The server logs a request after its handler returns, which may be after the client gave up.
        wait_for(lambda: requests_to(httpserver, IMPORTS), timeout_seconds=2, what="the upload to be logged")
        assert len(requests_to(httpserver, IMPORTS)) == 1

    def test_connection_refused_is_retried_then_transient(
        self, make_market: MakeMarket, bulk: Batch, tokens: TokenServer
    ) -> None:
        with socket.socket() as sock:  # a port nobody listens on once closed
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        market = make_market(base_url=f"http://127.0.0.1:{port}{API}")
        with pytest.raises(TransientError, match="nothing was sent"):
            market.submit(bulk)
        assert len(tokens.issued) == 1

    def test_a_connect_error_is_retried_with_the_file_rewound(self, bulk: Batch) -> None:
        bodies: list[bytes] = []

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path == TOKEN_PATH:
                return httpx.Response(200, json={"access_token": "tok-1", "expires_in": 7200})
            bodies.append(request.read())
            if len(bodies) == 1:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(201, json=import_body())

        market = OctopiaMarketplace(
            base_url=f"https://octopia.test{API}",
            token_url=f"https://octopia.test{TOKEN_PATH}",
            seller_id=SELLER,
            client_id=CLIENT_ID,
            read_secret=lambda: SECRET,
            transport=httpx.MockTransport(answer),
        )
        try:
            assert market.submit(bulk).import_id == IMPORT_ID
        finally:
            market.close()
        assert len(bodies) == 2 and Path(bulk.bundle_path or "").read_bytes() in bodies[1]

    def test_400_problem_is_rejected_with_the_marketplace_words(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(
            problem(400, "Bad Request", "Too many files — max 10.", files=["At most 10 files per request."])
        )
        with pytest.raises(RejectedError) as caught:
            market.submit(bulk)
        rejected = caught.value
        assert rejected.status_code == 400
        assert rejected.marketplace_code == "Bad Request"
        assert (
            rejected.detail == "Bad Request: Too many files — max 10. (files: At most 10 files per request.)"
        )
        assert len(requests_to(httpserver, IMPORTS)) == 1

    def test_413_plain_text_is_rejected_keeping_the_raw_body(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(
            Response("Request Entity Too Large", status=413, content_type="text/plain")
        )
        with pytest.raises(RejectedError) as caught:
            market.submit(bulk)
        assert (caught.value.status_code, caught.value.detail) == (413, "Request Entity Too Large")
        assert caught.value.marketplace_code is None

    def test_plain_404_means_base_url_is_wrong(
        self, httpserver: HTTPServer, make_market: MakeMarket, bulk: Batch
    ) -> None:
        market = make_market(base_url=httpserver.url_for("/seller/v3"))
        httpserver.expect_request("/seller/v3/order-invoice-imports").respond_with_response(
            Response("Not Found", status=404, content_type="text/plain")
        )
        with pytest.raises(OutboxBlocked, match="base_url looks wrong"):
            market.submit(bulk)

    def test_an_upload_past_its_deadline_is_cut_and_unknown(
        self, httpserver: HTTPServer, make_market: MakeMarket, tmp_path: Path
    ) -> None:
        clock = TickingClock()  # every look at the clock costs a second: a crawling upload
        bundle = tmp_path / "big.zip"
        bundle.write_bytes(b"\0" * (2 * 1024 * 1024))  # 32 chunks of 64 KiB
        batch = Batch("b", BUNDLE, Endpoint.BULK_IMPORT, (), bundle_path=str(bundle))
        market = make_market(clock=clock, request_deadline_seconds=10)
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(created())
        with pytest.raises(UnknownOutcome, match="no answer within 10 s"):
            market.submit(batch)
        assert clock.now - 1000 < 20  # cut after about ten chunks, not after all 32

    def test_a_50_mb_bundle_is_streamed_not_loaded(self, tmp_path: Path) -> None:
        bundle = tmp_path / "big.zip"
        with bundle.open("wb") as file:
            file.truncate(50 * 1024 * 1024)
        received = 0

        class Consume(httpx.BaseTransport):
            """Reads the body chunk by chunk as a socket would (MockTransport buffers it whole)."""

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                nonlocal received
                if request.url.path == TOKEN_PATH:
                    return httpx.Response(200, json={"access_token": "tok-1"})
                assert isinstance(request.stream, httpx.SyncByteStream)
                received = sum(len(chunk) for chunk in request.stream)
                return httpx.Response(201, json=import_body())

        market = OctopiaMarketplace(
            base_url=f"https://octopia.test{API}",
            token_url=f"https://octopia.test{TOKEN_PATH}",
            seller_id=SELLER,
            client_id=CLIENT_ID,
            read_secret=lambda: SECRET,
            transport=Consume(),
        )
        batch = Batch("b", BUNDLE, Endpoint.BULK_IMPORT, (), bundle_path=str(bundle))
        tracemalloc.start()
        try:
            market.submit(batch)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            market.close()
        assert received > 50 * 1024 * 1024
        assert peak < 25 * 1024 * 1024  # buffering needs 50-100 MB; the rest is other threads' noise


def _boundaries(first: Request, second: Request) -> tuple[bytes, bytes]:
    def boundary(request: Request) -> bytes:
        return request.headers["Content-Type"].split("boundary=")[1].encode()

    return boundary(first), boundary(second)


# --- tokens ---------------------------------------------------------------------------------------


class TestTokens:
    def test_refused_credentials_block_the_outbox_without_the_secret(
        self, market: OctopiaMarketplace, tokens: TokenServer
    ) -> None:
        tokens.status = 401
        with capture_logs() as logs, pytest.raises(OutboxBlocked) as caught:
            market.check_online()
        assert str(caught.value) == (
            "Octopia refused the credentials for this outbox (401). Fix client_id or the secret; "
            "files wait in .processing/ until then."
        )
        assert_no_secret(caught.value)
        assert SECRET not in repr(logs)

    def test_token_endpoint_dropping_the_connection_is_transient_and_shows_nothing(
        self, httpserver: HTTPServer, make_market: MakeMarket, bulk: Batch
    ) -> None:
        httpserver.clear()  # replace the token route
        httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_handler(drop_connection)
        market = make_market()
        with capture_logs() as logs, pytest.raises(TransientError, match="token endpoint") as caught:
            market.submit(bulk)
        assert_no_secret(caught.value)
        assert SECRET not in repr(logs)
        assert requests_to(httpserver, IMPORTS) == []

    def test_token_endpoint_503_is_transient_with_its_retry_after(
        self, httpserver: HTTPServer, make_market: MakeMarket
    ) -> None:
        httpserver.clear()
        httpserver.expect_request(TOKEN_PATH, method="POST").respond_with_response(
            Response("", status=503, headers={"Retry-After": "42"})
        )
        with pytest.raises(TransientError) as caught:
            make_market().check_online()
        assert caught.value.retry_after_seconds == 42

    def test_a_fixed_secret_is_read_again_on_the_next_request(
        self, httpserver: HTTPServer, make_market: MakeMarket, tokens: TokenServer
    ) -> None:
        secrets = iter(["wrong-secret", SECRET])
        market = make_market(read_secret=lambda: next(secrets))
        with pytest.raises(OutboxBlocked):
            market.check_online()
        market.check_online()
        assert tokens.issued == ["tok-1-eyJhbGciOiJSUzI1NiJ9"]

    def test_token_is_cached_then_renewed_before_it_expires(
        self, httpserver: HTTPServer, make_market: MakeMarket, tokens: TokenServer
    ) -> None:
        clock = FakeClock()
        tokens.expires_in = 600  # renewed at age 600 - min(300, 120) = 480 s
        market = make_market(clock=clock)
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_json(import_body())

        market.poll(IMPORT_ID)
        clock.now += 479
        market.poll(IMPORT_ID)
        assert market.auth.token_requests == 1
        clock.now += 2
        market.poll(IMPORT_ID)
        assert market.auth.token_requests == 2
        used = [
            request.headers["Authorization"] for request in requests_to(httpserver, f"{IMPORTS}/{IMPORT_ID}")
        ]
        assert used == [f"Bearer {tokens.issued[0]}"] * 2 + [f"Bearer {tokens.issued[1]}"]

    def test_missing_expires_in_means_300_seconds(
        self, httpserver: HTTPServer, make_market: MakeMarket, tokens: TokenServer
    ) -> None:
        clock = FakeClock()
        tokens.expires_in = None  # renewed at age 300 - 60 = 240 s
        market = make_market(clock=clock)
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_json(import_body())
        market.poll(IMPORT_ID)
        clock.now += 239
        market.poll(IMPORT_ID)
        assert market.auth.token_requests == 1
        clock.now += 2
        market.poll(IMPORT_ID)
        assert market.auth.token_requests == 2

    def test_short_lived_tokens_are_still_requested_at_most_once_a_minute(
        self, httpserver: HTTPServer, make_market: MakeMarket, tokens: TokenServer
    ) -> None:
        clock = FakeClock()
        tokens.expires_in = 20
        market = make_market(clock=clock)
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_json(import_body())
        for _ in range(5):
            market.poll(IMPORT_ID)
            clock.now += 11
        assert market.auth.token_requests == 1
        clock.now += 10  # 65 s after the first request
        market.poll(IMPORT_ID)
        assert market.auth.token_requests == 2

    def test_a_401_after_someone_else_renewed_retries_without_a_new_request(self) -> None:
        issued: list[str] = []
        auth_holder: list[TokenAuth] = []

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path == TOKEN_PATH:
                issued.append(f"tok-{len(issued) + 1}")
                return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 7200})
            if request.headers["Authorization"] == "Bearer tok-1":
                auth_holder[0].renew()  # another request renewed while this one was in flight
                return httpx.Response(401)
            return httpx.Response(200, json={"ok": True})

        with httpx.Client(transport=httpx.MockTransport(answer)) as client:
            auth = TokenAuth(
                token_url=f"https://octopia.test{TOKEN_PATH}",
                client_id=CLIENT_ID,
                read_secret=lambda: SECRET,
                client=client,
            )
            auth_holder.append(auth)
            response = client.get("https://octopia.test/x", auth=auth)
        assert response.status_code == 200
        assert auth.token_requests == 2
        assert response.request.headers["Authorization"] == "Bearer tok-2"

    def test_the_secret_never_reaches_logs_or_messages(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch, tokens: TokenServer
    ) -> None:
        httpserver.expect_oneshot_request(IMPORTS, method="POST").respond_with_response(
            Response("", status=429)
        )
        httpserver.expect_oneshot_request(IMPORTS, method="POST").respond_with_response(
            problem(401, "Unauthorized", "invalid_token")
        )
        httpserver.expect_request(IMPORTS, method="POST").respond_with_response(Response("", status=503))
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_response(Response("", status=502))
        failures: list[BaseException] = []
        with capture_logs() as logs:
            for call in (lambda: market.submit(bulk), lambda: market.poll(IMPORT_ID)):
                with pytest.raises((UnknownOutcome, TransientError)) as caught:
                    call()
                failures.append(caught.value)
            tokens.status = 401
            with pytest.raises(OutboxBlocked) as blocked:
                market.check_online()
            failures.append(blocked.value)
        assert any(entry["event"] == "token_fetched" for entry in logs)
        assert any(entry["event"] == "request_retried" for entry in logs)  # retries were logged
        for failure in failures:
            assert_no_secret(failure, tokens.issued)
        shown = json.dumps(logs, default=repr)
        assert SECRET not in shown
        assert all(token not in shown for token in tokens.issued)


# --- poll -----------------------------------------------------------------------------------------


class TestPoll:
    def test_503_then_200_gives_the_snapshot(
        self, httpserver: HTTPServer, market: OctopiaMarketplace
    ) -> None:
        finished = import_body() | {"status": "Success"}
        httpserver.expect_oneshot_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_response(
            Response("", status=503)
        )
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_json(finished)

        snapshot = market.poll(IMPORT_ID)

        assert snapshot.status is ImportStatus.SUCCESS
        assert snapshot.raw == finished
        assert len(requests_to(httpserver, f"{IMPORTS}/{IMPORT_ID}")) == 2

    def test_a_dropped_connection_is_retried(
        self, httpserver: HTTPServer, market: OctopiaMarketplace
    ) -> None:
        httpserver.expect_oneshot_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_handler(drop_connection)
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_json(import_body())
        assert market.poll(IMPORT_ID).status is ImportStatus.RUNNING

    def test_failing_until_attempts_run_out_is_transient(
        self, httpserver: HTTPServer, market: OctopiaMarketplace
    ) -> None:
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_response(
            problem(500, "Internal Server Error", "boom")
        )
        with pytest.raises(TransientError, match=r"500.*boom"):
            market.poll(IMPORT_ID)
        assert len(requests_to(httpserver, f"{IMPORTS}/{IMPORT_ID}")) == 3

    def test_404_problem_is_a_missing_snapshot_keeping_the_body(
        self, httpserver: HTTPServer, market: OctopiaMarketplace
    ) -> None:
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_response(
            problem(404, "Not Found", "Unknown importId.")
        )
        snapshot = market.poll(IMPORT_ID)
        assert (snapshot.import_id, snapshot.status, snapshot.files) == (IMPORT_ID, ImportStatus.MISSING, ())
        assert snapshot.raw["body"]["detail"] == "Unknown importId."

    def test_403_blocks_the_outbox(self, httpserver: HTTPServer, market: OctopiaMarketplace) -> None:
        httpserver.expect_request(f"{IMPORTS}/{IMPORT_ID}").respond_with_response(
            problem(403, "Forbidden", "No.")
        )
        with pytest.raises(OutboxBlocked, match=SELLER):
            market.poll(IMPORT_ID)

    def test_a_weird_import_id_is_one_path_segment(
        self, httpserver: HTTPServer, market: OctopiaMarketplace
    ) -> None:
        httpserver.expect_request(f"{IMPORTS}/a/b").respond_with_json(import_body("a/b"))
        assert market.poll("a/b").import_id == "a/b"
        (request,) = requests_to(httpserver, f"{IMPORTS}/a/b")
        assert request.environ["RAW_URI"] == f"{IMPORTS}/a%2Fb"


# --- find_lost ------------------------------------------------------------------------------------


def listing(pages: list[list[dict[str, Any]]], *, link: bool) -> Callable[[Request], Response]:
    """`GET /order-invoice-imports`: pages of items, chained by Link header or by nextCursor."""

    def answer(request: Request) -> Response:
        assert request.args["pageSize"] == "100"
        index = int(request.args.get("cursor", "0").removeprefix("c"))
        body: dict[str, Any] = {"itemsPerPage": 100, "items": pages[index]}
        headers = {}
        if index + 1 < len(pages):
            if link:
                headers["Link"] = f'<{IMPORTS}?pageSize=100&cursor=c{index + 1}>; rel="next"'
            else:
                body["nextCursor"] = f"c{index + 1}"
        return Response(json.dumps(body), content_type="application/json", headers=headers)

    return answer


def others(count: int, start: datetime) -> list[dict[str, Any]]:
    return [
        import_body(f"other-{start:%H%M%S}-{n}", name=f"bundle-x{n}", created_at=start) for n in range(count)
    ]


class TestFindLost:
    @pytest.mark.parametrize("link", [True, False], ids=["link", "next-cursor"])
    def test_found_on_the_third_page(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch, link: bool
    ) -> None:
        later = SENT_AT + timedelta(minutes=5)
        pages = [
            others(2, later),
            others(2, later),
            [*others(1, later), import_body("ours"), *others(1, SENT_AT)],
        ]
        httpserver.expect_request(IMPORTS, method="GET").respond_with_handler(listing(pages, link=link))

        found = market.find_lost(bulk, sent_after=SENT_AT)

        assert found is not None and found.import_id == "ours"
        assert found.snapshot.files[0].name == BUNDLE
        assert len(requests_to(httpserver, IMPORTS)) == 3

    def test_found_inside_the_clock_skew_margin(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        pages = [[import_body("ours", created_at=SENT_AT - timedelta(seconds=90))]]
        httpserver.expect_request(IMPORTS, method="GET").respond_with_handler(listing(pages, link=True))
        found = market.find_lost(bulk, sent_after=SENT_AT)
        assert found is not None and found.import_id == "ours"

    def test_surely_absent_once_the_list_reaches_before_the_send(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        before = SENT_AT - timedelta(minutes=3)
        pages = [others(2, SENT_AT), others(2, before), [import_body("ours-but-older")]]
        httpserver.expect_request(IMPORTS, method="GET").respond_with_handler(listing(pages, link=True))
        assert market.find_lost(bulk, sent_after=SENT_AT) is None
        assert len(requests_to(httpserver, IMPORTS)) == 2  # stopped at the first older import

    def test_surely_absent_after_the_last_page(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        pages = [others(2, SENT_AT), [], others(1, SENT_AT)]
        httpserver.expect_request(IMPORTS, method="GET").respond_with_handler(listing(pages, link=False))
        assert market.find_lost(bulk, sent_after=SENT_AT) is None
        assert len(requests_to(httpserver, IMPORTS)) == 3

    def test_a_page_that_keeps_failing_is_transient_not_absent(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        first = listing([others(2, SENT_AT), others(2, SENT_AT)], link=True)

        def answer(request: Request) -> Response:
            if "cursor" in request.args:
                return Response("", status=503)
            return first(request)

        httpserver.expect_request(IMPORTS, method="GET").respond_with_handler(answer)
        with pytest.raises(TransientError, match="503"):
            market.find_lost(bulk, sent_after=SENT_AT)

    def test_a_page_link_to_another_server_is_not_followed(
        self, httpserver: HTTPServer, market: OctopiaMarketplace, bulk: Batch
    ) -> None:
        httpserver.expect_request(IMPORTS, method="GET").respond_with_response(
            Response(
                json.dumps({"items": others(1, SENT_AT)}),
                content_type="application/json",
                headers={"Link": '<https://elsewhere.example/imports?cursor=x>; rel="next"'},
            )
        )
        with pytest.raises(TransientError, match="another server"):
            market.find_lost(bulk, sent_after=SENT_AT)


# --- against the built-in sandbox -----------------------------------------------------------------

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
UBL = b'<?xml version="1.0"?><Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>'


@pytest.fixture
def sandbox() -> Iterator[Any]:
    module = pytest.importorskip("invoicesync.sandbox")
    options = module.SandboxOptions(
        processing_seconds=0.2, client_id=CLIENT_ID, client_secret=SECRET, seller_id=SELLER, seed=7
    )
    running = module.Sandbox.start(options)
    yield running
    running.stop()


@pytest.fixture
def sandbox_market(sandbox: Any) -> Iterator[OctopiaMarketplace]:
    market = OctopiaMarketplace(
        base_url=sandbox.base_url,
        token_url=sandbox.token_url,
        seller_id=SELLER,
        client_id=CLIENT_ID,
        read_secret=lambda: SECRET,
    )
    yield market
    market.close()


def sandbox_bulk(tmp_path: Path, bundle_name: str, *orders: str) -> Batch:
    bundle = tmp_path / f"{bundle_name}.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for order in orders:
            archive.writestr(f"{order}.pdf", PDF)
    items = tuple(
        BatchItem(f"i-{o}", o, f"{o}.pdf", str(bundle), len(PDF), "application/pdf") for o in orders
    )
    return Batch(f"b-{bundle_name}", bundle_name, Endpoint.BULK_IMPORT, items, bundle_path=str(bundle))


def poll_until_final(market: OctopiaMarketplace, import_id: str) -> ImportSnapshot:
    seen: list[ImportSnapshot] = []

    def final() -> bool:
        seen.append(market.poll(import_id))
        return seen[-1].status.is_terminal

    wait_for(final, timeout_seconds=10, what=f"import {import_id} to finish")
    return seen[-1]


class TestAgainstSandbox:
    def test_bulk_submit_poll_and_find_lost(self, sandbox_market: OctopiaMarketplace, tmp_path: Path) -> None:
        sent_after = datetime.now(UTC)
        batch = sandbox_bulk(tmp_path, "bundle-sb-1", "A1B2C3D4", "E5F6G7H8")

        submission = sandbox_market.submit(batch)
        final = poll_until_final(sandbox_market, submission.import_id)

        assert final.status is ImportStatus.SUCCESS
        assert sorted(f.file_name or "" for f in final.files) == ["A1B2C3D4.pdf", "E5F6G7H8.pdf"]
        assert {f.name for f in final.files} == {batch.bundle_name}
        found = sandbox_market.find_lost(batch, sent_after=sent_after)
        assert found is not None and found.import_id == submission.import_id
        other = sandbox_bulk(tmp_path, "bundle-sb-never-sent", "A1B2C3D4")
        assert sandbox_market.find_lost(other, sent_after=sent_after) is None

    def test_order_documents_pair_in_one_request(
        self, sandbox: Any, sandbox_market: OctopiaMarketplace, tmp_path: Path
    ) -> None:
        (tmp_path / "p.pdf").write_bytes(PDF)
        (tmp_path / "x.xml").write_bytes(UBL)
        items = (
            BatchItem("i1", "K9L8M7N6", "K9L8M7N6.pdf", str(tmp_path / "p.pdf"), len(PDF), "application/pdf"),
            BatchItem("i2", "K9L8M7N6", "K9L8M7N6.xml", str(tmp_path / "x.xml"), len(UBL), "application/xml"),
        )
        batch = Batch("b-pair", "bundle-sb-2", Endpoint.ORDER_DOCUMENTS, items, order_id="K9L8M7N6")

        final = poll_until_final(sandbox_market, sandbox_market.submit(batch).import_id)

        assert final.status is ImportStatus.SUCCESS, final.raw
        assert sorted(d["fileName"] for d in sandbox.documents("K9L8M7N6")) == [
            "K9L8M7N6.pdf",
            "K9L8M7N6.xml",
        ]

    def test_lost_answer_is_found_not_resent(
        self, sandbox: Any, sandbox_market: OctopiaMarketplace, tmp_path: Path
    ) -> None:
        sandbox.set_options(dataclasses.replace(sandbox.options, drop_after_accept_rate=1.0))
        sent_after = datetime.now(UTC)
        batch = sandbox_bulk(tmp_path, "bundle-sb-3", "P1Q2R3S4")

        with pytest.raises(UnknownOutcome):
            sandbox_market.submit(batch)

        found = sandbox_market.find_lost(batch, sent_after=sent_after)
        assert found is not None
        assert poll_until_final(sandbox_market, found.import_id).status is ImportStatus.SUCCESS
        assert len(sandbox.received()) == 1

    def test_refused_credentials_block_the_outbox(
        self, sandbox: Any, sandbox_market: OctopiaMarketplace
    ) -> None:
        sandbox.set_options(dataclasses.replace(sandbox.options, refuse_tokens=True))
        with pytest.raises(OutboxBlocked, match="refused the credentials"):
            sandbox_market.check_online()

    def test_rate_limited_poll_is_transient_with_its_retry_after(
        self, sandbox: Any, sandbox_market: OctopiaMarketplace
    ) -> None:
        sandbox.set_options(dataclasses.replace(sandbox.options, rate_limit_rate=1.0, retry_after_seconds=3))
        with pytest.raises(TransientError, match="429") as caught:
            sandbox_market.poll(IMPORT_ID)
        assert caught.value.retry_after_seconds is not None and 0 < caught.value.retry_after_seconds <= 3
