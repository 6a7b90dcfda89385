"""sandbox.server (shell): the HTTP plumbing: threads, sockets, reading requests and writing answers.

`api.handle` decides every answer; this module carries it out: a slowed answer waits first (woken by
`stop`), a dropped one closes the socket without a byte, and a request body left unread is drained after
the answer (a lingering close) so a client still sending reads the answer rather than a reset. Client
disconnects end a request quietly, and nothing is logged per request.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from invoicesync.sandbox.api import Request, Response, handle, problem
from invoicesync.sandbox.kaufland import handle as handle_kaufland
from invoicesync.sandbox.multipart import BodyReader, ClientGone
from invoicesync.sandbox.state import SandboxState

DRAIN_LIMIT = 1024 * 1024 * 1024  # read an unwanted body this far so the client sees our answer
LINGER_SECONDS = 2.0  # ... unless the client stops sending for this long

log = logging.getLogger("invoicesync.sandbox")


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server that knows its sandbox state and can cut every open connection on stop."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the other side
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError | ClientGone):
            log.error("sandbox: request from %s failed", client_address, exc_info=error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "invoicesync-sandbox"
    error_message_format = "%(code)d %(message)s\n"  # the base class's own errors (bad request line)
    error_content_type = "text/plain; charset=utf-8"
    timeout = 60  # seconds a silent client may hold its thread

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log."""

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        state = cast(SandboxHTTPServer, self.server).state
        url = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        encoding = headers.get("transfer-encoding", "").strip().lower()
        length = headers.get("content-length")
        if (encoding and encoding != "chunked") or (length is not None and not length.isdigit()):
            no_body = BodyReader(self.rfile, length=0, chunked=False)
            self.close_connection = True
            bad = problem(400, "The request has a bad Content-Length or Transfer-Encoding.", url.path)
            self._write(bad, no_body, state)
            return
        declared = int(length) if length is not None and not encoding else None
        body = BodyReader(self.rfile, length=declared, chunked=encoding == "chunked")
        try:
            request = Request(self.command, url.path, url.query, headers, body)
            answer = (handle_kaufland if url.path.startswith("/kaufland/") else handle)(state, request)
            self._write(answer, body, state)
        except (ClientGone, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("sandbox: %s %s failed", self.command, url.path)
            self.close_connection = True

    def _write(self, answer: Response, body: BodyReader, state: SandboxState) -> None:
        unread = not body.done
        if answer.drop:
            body.drain(limit=DRAIN_LIMIT)
            if answer.delay_seconds:
                state.stopping.wait(answer.delay_seconds)
            self.close_connection = True
            return
        if unread:
            self.close_connection = True
        if answer.delay_seconds:
            state.stopping.wait(answer.delay_seconds)
        self.send_response(answer.status)
        for key, value in answer.headers:
            self.send_header(key, value)
        if answer.content_type:
            self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and answer.cut_after is not None:
            self.wfile.write(answer.body[: answer.cut_after])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        if unread:
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(LINGER_SECONDS)
                body.drain(limit=DRAIN_LIMIT)
