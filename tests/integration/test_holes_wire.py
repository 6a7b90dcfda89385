"""Issue 12, the wire: every exchange has one deadline, however slowly a server answers (item 13, the token
request too), and no answer is read past a size cap (item 25). Real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from invoicesync.config import load_config
from invoicesync.errors import TransientError, UnknownOutcome
from invoicesync.marketplaces.kaufland import KauflandMarketplace
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.sandbox import Sandbox, SandboxOptions
from invoicesync.service import Service
from tests.badfiles import sample_pdf
from tests.conftest import wait_for
from tests.contract.marketplace import one_pdf_batch
from tests.harness import drop, files_in, write_config

Serve = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Serve], str]]:
    """Start a raw TCP server on 127.0.0.1 whose every connection is handled by `serve`; its base URL."""
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def start(serve: Serve) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        sockets.append(listener)

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=_quietly, args=(serve, connection), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    stop.set()
    for each in sockets:
        each.close()


def _quietly(serve: Serve, connection: socket.socket) -> None:
    try:
        with connection:
            connection.recv(65536)  # the request (small here)
            serve(connection)
    except OSError:
        pass


def trickle(connection: socket.socket) -> None:
    """A status line, then one byte every 0.3 s, for ever."""
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    while True:
        connection.sendall(b"X")
        time.sleep(0.3)


def token_then_huge(connection: socket.socket) -> None:
    """A token for a token request; for anything else, a 64 MiB JSON answer."""
    size = 64 * 1024 * 1024
    connection.sendall(
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n".encode()
    )
    chunk = b" " * 65536
    for _ in range(size // len(chunk)):
        connection.sendall(chunk)


def market(base: str, token_url: str, deadline_seconds: float) -> OctopiaMarketplace:
    return OctopiaMarketplace(
        base_url=f"{base}/seller/v2",
        token_url=token_url,
        seller_id="98979",
        client_id="client",
        read_secret=lambda: "s3cret-value-for-tests",
        request_deadline_seconds=deadline_seconds,
    )


def test_a_token_endpoint_trickling_its_answer_is_cut_at_the_deadline(server: Callable[[Serve], str]) -> None:
    base = server(trickle)
    client = market(base, f"{base}/token", deadline_seconds=2)
    started = time.monotonic()
    with pytest.raises(TransientError):
        client.check_online()
    assert time.monotonic() - started < 10  # 2 s and a slice; before, each byte reset a 10 s read timeout
    client.close()


def test_a_poll_answer_trickling_its_headers_is_cut_at_the_deadline(server: Callable[[Serve], str]) -> None:
    tokens = server(_token)
    base = server(trickle)
    client = market(base, f"{tokens}/token", deadline_seconds=1)
    started = time.monotonic()
    with pytest.raises(TransientError):
        client.poll("imp-1")
    # five attempts of at most 1 s each (plus backoff); before, it waited for ever
    assert time.monotonic() - started < 30
    client.close()


def test_an_answer_past_the_size_cap_is_refused_unread(server: Callable[[Serve], str]) -> None:
    tokens = server(_token)
    base = server(token_then_huge)
    client = market(base, f"{tokens}/token", deadline_seconds=30)
    with pytest.raises(TransientError, match="larger than 16 MiB"):
        client.poll("imp-1")
    client.close()


def _token(connection: socket.socket) -> None:
    body = b'{"access_token": "tok-123456", "expires_in": 3600}'
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    connection.sendall(head.encode() + body)


def test_an_upload_listed_late_after_a_late_lost_answer_is_found_not_sent_again(tmp_path: Path) -> None:
    """Item 17: the marketplace reads the body at once, answers nothing for 2 s (then drops the
    connection) and lists the import only 4 s after it began. The grace (3 s here) counts from when the
    answer was given up on, with two empty looks at least: the import is found, never sent twice."""
    options = SandboxOptions(
        processing_seconds=0.1,
        client_id="test-client",
        client_secret="s3cret-value-for-tests",
        seller_id="98979",
        drop_after_accept_rate=1.0,  # every upload: created, then no answer
        slow_rate=1.0,
        slow_seconds=2.0,
        list_delay_seconds=4.0,
    )
    with Sandbox.start(options) as sandbox:
        config = load_config(
            write_config(
                tmp_path,
                outbox_overrides={"octopia": {"base_url": sandbox.base_url, "token_url": sandbox.token_url}},
            )
        )
        service = Service(config, once=True)
        loop = service._build(config.outboxes[0])
        worker = loop.worker
        worker.delivery.limits = replace(worker.delivery.limits, lost_grace_seconds=3.0)
        root = tmp_path / "shop"
        drop(root, "LATE0001.pdf", sample_pdf("LATE0001"))
        try:
            with capture_logs() as events:

                def delivered() -> bool:
                    worker.tick(flush=True)
                    return files_in(root, "sent") == ["LATE0001.pdf"]

                wait_for(delivered, timeout_seconds=60, what="found in the list and finished")
        finally:
            loop.watcher.stop()
            loop.marketplace.close()
            loop.journal.close()
        received = sandbox.received()
    names = [event["event"] for event in events]
    assert "lost_upload_found" in names and "lost_upload_absent" not in names
    assert [row["fileName"] for row in received] == ["LATE0001.pdf"]  # one import, one upload


def test_kaufland_reads_and_uploads_trickled_back_are_cut_at_the_deadline(
    server: Callable[[Serve], str], tmp_path: Path
) -> None:
    """The same deadline holds for the Kaufland client: a read answered one byte at a time is a passing
    trouble; an upload answered so is a lost answer (the order is read again before anything is re-sent)."""
    base = server(trickle)
    client = KauflandMarketplace(
        base_url=f"{base}/v2", client_key="key", read_secret=lambda: "secret", request_deadline_seconds=1
    )
    started = time.monotonic()
    with pytest.raises(TransientError):
        client.check_online()
    with pytest.raises(UnknownOutcome):
        client.submit(one_pdf_batch("MTRICKLE1", tmp_path))
    assert time.monotonic() - started < 30  # five read attempts and one upload of at most 1 s each
    client.close()
