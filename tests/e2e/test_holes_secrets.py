"""Issue 12 item 11: a token that makes the Authorization header invalid is never printed, not by
`invoicesync status`, not in status.json, not in the log (httpx quotes the header it refuses)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from invoicesync.statedir import STATUS_NAME
from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.harness import drop
from tests.oncerun import sandbox_config, start_sandbox

TOKEN = "Sup3rT0kenValue7731 "  # the trailing space makes `Bearer <token>` an illegal header value


class _TokenHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # the name http.server calls
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({"access_token": TOKEN, "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()


def test_a_token_quoted_by_a_refused_header_is_never_shown(
    tmp_path: Path, token_url: str, start_daemon: Callable[[Path], Daemon]
) -> None:
    with start_sandbox() as sandbox:
        config = sandbox_config(tmp_path, sandbox, octopia={"token_url": token_url})
        drop(tmp_path / "shop", "TOKN1234.pdf", sample_pdf("TOKN1234"))
        daemon = start_daemon(config)
        status_file = tmp_path / "state" / STATUS_NAME

        def last_error() -> str | None:
            try:
                document = json.loads(status_file.read_text())
            except (OSError, ValueError):
                return None
            errors = [box.get("last_error") for box in document.get("outboxes", {}).values()]
            return next((error for error in errors if error), None)

        wait_for(last_error, timeout_seconds=30, what="the upload's failure in status.json")
        shown = invoicesync("status", "-c", str(config), cwd=tmp_path)
        as_json = invoicesync("status", "-c", str(config), "--json", cwd=tmp_path)
        daemon.terminate()
    secret = TOKEN.strip()
    assert "Illegal header value" in (last_error() or ""), last_error()
    for text in (status_file.read_text(), shown.stdout + shown.stderr, as_json.stdout, daemon.output()):
        assert secret not in text
    assert sandbox.received() == []
