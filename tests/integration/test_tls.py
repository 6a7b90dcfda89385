"""TLS as the marketplace clients speak it: a loopback HTTPS server whose certificate no CA signed is refused.

The certificate (tests/integration/tls/, self-signed for 127.0.0.1, made once with openssl) is what a man in
the middle could show. A transport makes its TLS context once for itself and the pool it rebuilds
(`deadline_transport`): both must keep verifying.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from invoicesync.marketplaces.deadline import deadline_transport

HERE = Path(__file__).parent / "tls"


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture
def https_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(HERE / "selfsigned.pem", HERE / "selfsigned.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_no_ca_signed_is_refused_by_every_transport(https_url: str) -> None:
    for _ in range(2):  # two transports, each with the context it made
        with (
            httpx.Client(transport=deadline_transport(httpx.Limits())) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get(https_url)


def test_the_server_answers_a_client_that_trusts_its_certificate(https_url: str) -> None:
    """The refusal above is the certificate's, not a broken server's."""
    trusting = ssl.create_default_context(cafile=str(HERE / "selfsigned.pem"))
    with httpx.Client(verify=trusting) as client:
        assert client.get(https_url).json() == {"ok": True}
