"""Resilience in-process: the daemon (`Service.run` in a thread) against the built-in sandbox with faults,
wrong credentials, a vanishing or unmounted outbox root, an unusable state_dir and refused folders.

Every test asserts the same three things besides its own: no file in `failed/` for a transient reason,
nothing sent twice, and no secret in any log event, report or status output.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from invoicesync import commands
from invoicesync.bundle import build_bundle
from invoicesync.config import Config, load_config
from invoicesync.errors import TransientError
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.model import Batch, BatchItem, Endpoint
from invoicesync.sandbox import Sandbox, SandboxOptions
from invoicesync.service import Service
from invoicesync.statedir import STATUS_NAME
from invoicesync.systemd import Notifier
from invoicesync.wiring import sandbox_options
from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for
from tests.harness import drop, files_in, leftovers, report, write_config

SECRET = "s3cret-value-for-tests"
WRONG_SECRET = "not-the-s3cret-at-all"
_UNREDACTED_BEARER = re.compile(r"Bearer (?!\[redacted\])\S+")


# -- helpers ------------------------------------------------------------------------------------------


def sample(order: str, n: int) -> tuple[str, bytes]:
    """A PDF or a UBL XML for `order`, alternating."""
    return (f"{order}.pdf", sample_pdf(order)) if n % 2 else (f"{order}.xml", sample_ubl(order))


def drop_many(root: Path, prefix: str, count: int) -> list[str]:
    names = []
    for n in range(count):
        name, data = sample(f"{prefix}{n:04d}", n)
        drop(root, name, data)
        names.append(name)
    return names


def configure(
    tmp_path: Path, change: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any
) -> Config:
    """The harness's config (sandbox, fast timings), edited as a document before it is loaded."""
    path = write_config(tmp_path, **kwargs)
    if change is not None:
        document = yaml.safe_load(path.read_text())
        change(document)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(path)


class Running:
    """`invoicesync run` in-process: the service in a thread, stopped (and checked) on exit."""

    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.config = config
        self.service = Service(config, notifier=notifier)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="service", daemon=True)

    def _run(self) -> None:
        try:
            self.service.run(reload_config=lambda: load_config(self.config.source))
        except BaseException as exc:  # handed to the test thread, which fails on it
            self.error = exc

    @property
    def sandbox(self) -> Sandbox:
        assert self.service.sandbox is not None
        return self.service.sandbox

    def status_file(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.config.state_dir / STATUS_NAME).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def outbox_status(self, name: str = "shop") -> dict[str, Any]:
        info: dict[str, Any] = self.status_file().get("outboxes", {}).get(name, {})
        return info

    def ticks(self, count: int = 3) -> None:
        """Wait until every outbox loop has gone round `count` more times (their heartbeats move)."""
        loops = list(self.service._loops)
        for _ in range(count):
            marks = [loop.heartbeat for loop in loops]
            wait_for(
                lambda marks=marks: all(
                    loop.heartbeat > mark for loop, mark in zip(loops, marks, strict=True)
                ),
                timeout_seconds=20,
                what="the outbox loops went round",
            )


@contextlib.contextmanager
def running(config: Config, notifier: Notifier | None = None) -> Iterator[Running]:
    daemon = Running(config, notifier)
    daemon.thread.start()
    try:
        wait_for(
            lambda: bool(daemon.status_file()) or daemon.error is not None,
            timeout_seconds=30,
            what="service started",
        )
        if daemon.error is not None:
            raise daemon.error
        yield daemon
    finally:
        daemon.service.request_stop()
        daemon.thread.join(timeout=60)
    assert not daemon.thread.is_alive(), "the service did not stop"
    assert daemon.error is None, f"the service stopped with {daemon.error!r}"


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET (abstract, so no path length limit)."""

    def __init__(self) -> None:
        self.address = f"@invoicesync-test-{uuid.uuid4().hex}"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + self.address[1:])
        self.socket.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.socket.recv(65536).decode())

    def notifier(self) -> Notifier:
        return Notifier(environ={"NOTIFY_SOCKET": self.address})

    def statuses(self) -> list[str]:
        return [
            line[7:]
            for message in list(self.messages)
            for line in message.splitlines()
            if line.startswith("STATUS=")
        ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] == name]


def reports_text(*roots: Path) -> str:
    return "\n".join(path.read_text() for root in roots for path in root.rglob("*.json"))


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and WRONG_SECRET not in text
        assert not _UNREDACTED_BEARER.search(text), "an access token reached a log line or report"


def assert_each_sent_once(root: Path, sandbox: Sandbox, names: list[str]) -> None:
    """Every name has a receipt whose bytes the sandbox received exactly once."""
    received = Counter(row["sha256"] for row in sandbox.received())
    assert files_in(root, "sent") == sorted(names)
    for name in names:
        sha256 = report(root, "sent", name)["sha256"]
        assert received[sha256] == 1, f"{name} was received {received[sha256]} times"
    assert max(received.values()) == 1


def status_json(config: Config, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert commands.status(config, as_json=True) == 0
    out = capsys.readouterr().out
    assert_no_secret(out)
    data: dict[str, Any] = json.loads(out)
    return data


# -- marketplace faults -------------------------------------------------------------------------------


def test_thirty_percent_faults_deliver_a_hundred_files_once_each(tmp_path: Path) -> None:
    faults = {
        "error_rate": 0.15,  # 500, 503 with a problem, 503 empty
        "rate_limit_rate": 0.1,  # 429 with Retry-After, seconds and HTTP-date forms alternating
        "retry_after_seconds": 1,
        "slow_rate": 0.05,
        "slow_seconds": 0.2,
        "drop_after_accept_rate": 0.03,  # accepted, then the connection closes without an answer
        "seed": 6,
    }
    config = configure(
        tmp_path,
        faults=faults,
        processing_seconds=1.0,  # several polls per import, each a chance for a fault
        outbox_overrides={"batch": {"max_files": 5}},  # twenty uploads
    )
    root = tmp_path / "shop"
    names = drop_many(root, "FAULT", 100)
    with capture_logs() as events, running(config) as daemon:
        wait_for(lambda: len(files_in(root, "sent")) == 100, timeout_seconds=90, what="100 files sent")
        assert_each_sent_once(root, daemon.sandbox, names)
        stats = daemon.sandbox.stats()
    assert files_in(root, "failed") == [] and leftovers(root) == []
    seen = stats["faults"]
    calls = sum(stats["requests"].values())
    assert sum(seen.values()) >= 0.2 * calls, (seen, calls)
    assert seen.get("rate_limit", 0) > 0 and seen.get("slow", 0) > 0
    assert seen.get("server_error", 0) + seen.get("unavailable", 0) + seen.get("unavailable_empty", 0) > 0
    assert events_named(events, "request_retried"), "faults were retried (stamina)"
    assert events_named(events, "upload_answer_lost"), "a 5xx after an upload was looked up, not re-sent"
    assert not events_named(events, "outbox_loop_failed") and not events_named(events, "outbox_paused")
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


def test_seed_is_settable_from_the_config_and_faults_stay_off_by_default(tmp_path: Path) -> None:
    """The `sandbox.faults` section reaches the sandbox the daemon starts; no faults unless asked."""
    plain = sandbox_options(configure(tmp_path / "plain"))
    assert (plain.error_rate, plain.rate_limit_rate, plain.slow_rate, plain.drop_after_accept_rate) == (
        0,
        0,
        0,
        0,
    )
    faulty = sandbox_options(
        configure(
            tmp_path / "faulty", faults={"error_rate": 0.2, "token_ttl_seconds": 3, "refuse_tokens": True}
        )
    )
    assert faulty.error_rate == 0.2 and faulty.token_ttl_seconds == 3 and faulty.refuse_tokens


def test_tokens_expiring_every_second_are_renewed_and_bounded(tmp_path: Path) -> None:
    ttl = 1
    config = configure(
        tmp_path,
        faults={"token_ttl_seconds": ttl},
        processing_seconds=0.3,
        outbox_overrides={"batch": {"max_files": 10}},
    )
    root = tmp_path / "shop"
    names = drop_many(root, "TOKN", 200)
    with capture_logs() as events, running(config) as daemon:
        started = time.monotonic()
        wait_for(lambda: len(files_in(root, "sent")) == 200, timeout_seconds=90, what="200 files sent")
        elapsed = time.monotonic() - started
        assert_each_sent_once(root, daemon.sandbox, names)
        stats = daemon.sandbox.stats()
    token_requests = stats["token_requests"]
    api_requests = sum(count for route, count in stats["requests"].items() if "token" not in route)
    assert token_requests >= 2, "the run outlived its first token, which was renewed"
    # At most one token per lifetime while calls are made (a 401 forces one renewal), plus the first.
    assert token_requests <= elapsed / ttl + 2, (token_requests, elapsed)
    assert token_requests < api_requests / 2, (token_requests, api_requests)
    assert files_in(root, "failed") == []
    assert not events_named(events, "outbox_paused")
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


# -- credentials --------------------------------------------------------------------------------------


def test_wrong_secret_pauses_only_that_outbox_keeps_its_files_and_resumes_once_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "octopia-secret"
    secret_file.write_text(WRONG_SECRET + "\n")

    def wrong_secret_for_shop(document: dict[str, Any]) -> None:
        octopia = document["outboxes"][0]["octopia"]
        del octopia["client_secret"]
        octopia["client_secret_file"] = str(secret_file)

    config = configure(tmp_path, wrong_secret_for_shop, outboxes=("shop", "other"))
    shop, other = tmp_path / "shop", tmp_path / "other"
    names = drop_many(shop, "PAUS", 6)
    systemd = NotifySocket()
    with capture_logs() as events, running(config, systemd.notifier()) as daemon:
        wait_for(lambda: daemon.outbox_status()["paused"], timeout_seconds=20, what="shop paused")
        reason = daemon.outbox_status()["paused"]
        assert "refused the credentials" in reason and "(401)" in reason
        wait_for(lambda: f"shop: paused: {reason}" in systemd.statuses(), timeout_seconds=10, what="STATUS=")
        # The other outbox is not held up.
        drop(other, "OTHR0001.pdf", sample_pdf("OTHR0001"))
        wait_for(lambda: files_in(other, "sent") == ["OTHR0001.pdf"], timeout_seconds=20, what="other sent")
        # The paused outbox still scans, claims and checks: its files wait in .processing/, none failed.
        drop(shop, "PAUS0100.pdf", sample_pdf("PAUS0100"))
        wait_for(lambda: not list((shop / "outbox").iterdir()), timeout_seconds=20, what="all claimed")
        daemon.ticks()
        assert files_in(shop, "failed") == [] and files_in(shop, "sent") == []
        assert len(leftovers(shop)) == 7
        shown = {row["outbox"]: row for row in status_json(config, capsys)["outboxes"]}
        assert shown["shop"]["paused"] == reason and shown["shop"]["in_flight"] == 7
        assert shown["shop"]["in_flight_since"] is not None and shown["other"]["paused"] is None
        capsys.readouterr()
        commands.status(config, as_json=False)
        assert f"PAUSED: {reason}" in capsys.readouterr().out

        # fixed, no restart: the file is read at each token request. Replaced whole, as an editor saves it:
        # rewritten in place, a token request could read it empty (another pause, said as such)
        fixed = secret_file.with_name("octopia-secret.new")
        fixed.write_text(SECRET + "\n")
        fixed.replace(secret_file)
        wait_for(lambda: len(files_in(shop, "sent")) == 7, timeout_seconds=60, what="shop resumed")
        assert_each_sent_once(shop, daemon.sandbox, [*names, "PAUS0100.pdf"])
        wait_for(lambda: daemon.outbox_status()["paused"] is None, timeout_seconds=10, what="status cleared")
        wait_for(lambda: systemd.statuses()[-1:] == ["delivering"], timeout_seconds=10, what="STATUS= clear")
    systemd.close()
    assert files_in(shop, "failed") == [] and leftovers(shop) == []
    assert_no_secret(*systemd.messages)
    paused = events_named(events, "outbox_paused")
    assert len(paused) == 1 and paused[0]["outbox"] == "shop", "said once, not at every retry"
    assert [event["outbox"] for event in events_named(events, "outbox_resumed")] == ["shop"]
    assert_no_secret(json.dumps(events, default=str), reports_text(shop, other))


def test_a_paused_outbox_retries_slowly_not_in_a_loop(tmp_path: Path) -> None:
    """Refused tokens: the retries back off (poll.first_seconds doubling, at most 30 s apart)."""
    config = configure(
        tmp_path,
        faults={"refuse_tokens": True},
        outbox_overrides={"poll": {"first_seconds": 0.2, "max_seconds": 60}},
    )
    root = tmp_path / "shop"
    drop_many(root, "SLOW", 3)
    with capture_logs() as events, running(config) as daemon:
        wait_for(lambda: daemon.outbox_status()["paused"], timeout_seconds=20, what="paused")
        first, started = daemon.sandbox.stats()["token_requests"], time.monotonic()
        wait_for(
            lambda: daemon.sandbox.stats()["token_requests"] >= first + 3, timeout_seconds=20, what="3 tries"
        )
        elapsed = time.monotonic() - started
    # Tries 0.2, 0.4, then 0.8 s apart: three more take over a second (one per loop turn: milliseconds).
    assert elapsed >= 1.0, elapsed
    assert files_in(root, "failed") == []
    assert len(events_named(events, "outbox_paused")) == 1
    assert_no_secret(json.dumps(events, default=str))


def test_credentials_revoked_while_an_import_runs_pause_its_polls_too(tmp_path: Path) -> None:
    """A poll refused for credentials waits like an upload would, instead of asking again at once."""
    config = configure(
        tmp_path,
        faults={"token_ttl_seconds": 1},
        processing_seconds=4,
        outbox_overrides={"poll": {"first_seconds": 0.2, "max_seconds": 60}},
    )
    root = tmp_path / "shop"
    drop(root, "RVKD0001.pdf", sample_pdf("RVKD0001"))
    with capture_logs() as events, running(config) as daemon:
        wait_for(lambda: events_named(events, "batch_uploaded"), timeout_seconds=20, what="uploaded")
        daemon.sandbox.set_options(replace(daemon.sandbox.options, refuse_tokens=True))
        wait_for(lambda: daemon.outbox_status()["paused"], timeout_seconds=20, what="paused while polling")
        first, started = daemon.sandbox.stats()["token_requests"], time.monotonic()
        wait_for(
            lambda: daemon.sandbox.stats()["token_requests"] >= first + 3, timeout_seconds=20, what="3 tries"
        )
        assert time.monotonic() - started >= 1.0
        daemon.sandbox.set_options(replace(daemon.sandbox.options, refuse_tokens=False))
        wait_for(lambda: files_in(root, "sent") == ["RVKD0001.pdf"], timeout_seconds=30, what="sent")
        assert_each_sent_once(root, daemon.sandbox, ["RVKD0001.pdf"])
    assert len(events_named(events, "outbox_paused")) == 1
    assert not events_named(events, "outbox_loop_failed")
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


# -- polling ------------------------------------------------------------------------------------------


def test_import_still_running_after_give_up_after_fails_as_import_timeout(tmp_path: Path) -> None:
    config = configure(
        tmp_path,
        processing_seconds=60,  # the sandbox keeps the import Running
        outbox_overrides={"poll": {"first_seconds": 0.1, "max_seconds": 0.3, "give_up_after": "1s"}},
    )
    root = tmp_path / "shop"
    drop(root, "TIME0001.pdf", sample_pdf("TIME0001"))
    with capture_logs() as events:
        tally = Service(config, once=True).run()
    assert tally == {"sent": 0, "failed": 1, "in_flight": 0, "waiting": 0}
    document = report(root, "failed", "TIME0001.pdf")
    assert document["error"]["code"] == "ImportTimeout" and document["stage"] == "import"
    assert document["hint"] and document["import_id"]
    assert "1 seconds" in document["error"]["message"]
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


def test_an_import_never_answered_again_still_times_out(tmp_path: Path) -> None:
    """After the upload every poll fails (500): past give_up_after the files fail as ImportTimeout
    instead of waiting on the loop's timer forever."""
    options = SandboxOptions(
        processing_seconds=60, client_id="test-client", client_secret=SECRET, seller_id="98979"
    )
    with Sandbox.start(options) as sandbox:
        config = configure(
            tmp_path,
            outbox_overrides={
                "octopia": {"base_url": sandbox.base_url, "token_url": sandbox.token_url},
                "poll": {"first_seconds": 0.1, "max_seconds": 0.3, "give_up_after": "2s"},
            },
        )
        root = tmp_path / "shop"
        drop(root, "SILE0001.pdf", sample_pdf("SILE0001"))

        def break_polls() -> None:
            wait_for(lambda: sandbox.stats()["imports"] >= 1, timeout_seconds=30, what="import created")
            sandbox.set_options(replace(sandbox.options, error_rate=1.0))

        breaker = threading.Thread(target=break_polls)
        breaker.start()
        tally = Service(config, once=True).run()
        breaker.join()
    assert tally == {"sent": 0, "failed": 1, "in_flight": 0, "waiting": 0}
    assert report(root, "failed", "SILE0001.pdf")["error"]["code"] == "ImportTimeout"


def test_an_import_the_marketplace_forgot_is_looked_up_then_sent_again(tmp_path: Path) -> None:
    """Polling answers 404 (the marketplace lost the import): the upload is looked up, found absent,
    and sent again, once. Driven tick by tick against a sandbox restarted on the same port."""
    options = SandboxOptions(
        processing_seconds=30, client_id="test-client", client_secret=SECRET, seller_id="98979"
    )
    first = Sandbox.start(options)
    port = int(first.base_url.split(":")[2].split("/")[0])
    config = configure(
        tmp_path, outbox_overrides={"octopia": {"base_url": first.base_url, "token_url": first.token_url}}
    )
    service = Service(config, once=True)
    loop = service._build(config.outboxes[0])
    worker = loop.worker
    # An unanswered upload is re-sent once absent from the list for `lost_grace_seconds`; 10 s is for
    # the real marketplace's lagging list, this sandbox lists at once.
    worker.delivery.limits = replace(worker.delivery.limits, lost_grace_seconds=0.2)
    root = tmp_path / "shop"
    drop(root, "LOST0001.pdf", sample_pdf("LOST0001"))
    second: Sandbox | None = None
    try:
        with capture_logs() as events:

            def submitted() -> bool:
                worker.tick(flush=True)
                return any(row.state == "submitted" for row in worker.journal.open_batches("shop"))

            wait_for(submitted, timeout_seconds=20, what="uploaded to the first sandbox")
            first.stop()
            second = Sandbox.start(replace(options, processing_seconds=0.1), port=port)

            def delivered() -> bool:
                worker.tick(flush=True)
                return files_in(root, "sent") == ["LOST0001.pdf"]

            wait_for(delivered, timeout_seconds=30, what="sent again to the second sandbox")
            received = second.received()
    finally:
        first.stop()
        if second is not None:
            second.stop()
        loop.watcher.stop()
        loop.marketplace.close()
        loop.journal.close()
    names = [event["event"] for event in events]
    assert "import_unknown_to_marketplace" in names and "lost_upload_absent" in names
    assert names.count("batch_uploaded") == 2
    assert [row["fileName"] for row in received] == ["LOST0001.pdf"]
    assert report(root, "sent", "LOST0001.pdf")["import_id"] == received[0]["importId"]
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


def test_a_trickling_answer_is_cut_at_its_deadline() -> None:
    """httpx bounds each read; the client bounds the whole answer (then retries, then gives up)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            request = connection.recv(65536)
            if request.startswith(b"POST /token"):
                body = b'{"access_token": "t0ken", "expires_in": 3600}'
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                connection.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
                return
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            for _ in range(1000):  # one byte every 20 ms: each read is quick, the whole is not
                if stop.wait(0.02):
                    return
                try:
                    connection.sendall(b" ")
                except OSError:
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    market = OctopiaMarketplace(
        base_url=f"http://127.0.0.1:{port}/seller/v2",
        token_url=f"http://127.0.0.1:{port}/token",
        seller_id="98979",
        client_id="c",
        read_secret=lambda: SECRET,
        request_deadline_seconds=0.3,
    )
    started = time.monotonic()
    try:
        with pytest.raises(TransientError) as caught:
            market.poll("some-import")
    finally:
        stop.set()
        listener.close()
        market.close()
    assert time.monotonic() - started < 5.0  # three attempts of 0.3 s, not three of 20 s of trickle
    assert "ReadTimeout" in str(caught.value)


def test_requests_report_headway_so_a_long_upload_is_not_taken_for_a_hung_loop(tmp_path: Path) -> None:
    """Each chunk of an upload (and of an answer) calls `progress`, which the service wires to the loop's
    heartbeat: the watchdog stays fed while a big bundle crawls up a slow link."""
    order = "BIGU0001"
    pdf = tmp_path / f"{order}.pdf"
    pdf.write_bytes(sample_pdf(order, padding_bytes=2_000_000, random_padding=True))
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    item = BatchItem("i1", order, f"{order}.pdf", str(pdf), pdf.stat().st_size, "application/pdf", digest)
    bundle = tmp_path / "bundle.zip"
    assert build_bundle([item], bundle) == {}
    options = SandboxOptions(processing_seconds=0.1)
    with Sandbox.start(options) as sandbox:
        market = OctopiaMarketplace(
            base_url=sandbox.base_url,
            token_url=sandbox.token_url,
            seller_id="98979",
            client_id="c",
            read_secret=lambda: SECRET,
        )
        beats: list[float] = []
        market.progress = lambda: beats.append(time.monotonic())
        try:
            submission = market.submit(
                Batch("b1", "big-1", Endpoint.BULK_IMPORT, (item,), bundle_path=str(bundle))
            )
            sent = len(beats)
            market.poll(submission.import_id)
        finally:
            market.close()
    assert sent >= bundle.stat().st_size // 65536  # one per 64 KiB chunk read from the bundle
    assert len(beats) > sent


# -- local faults -------------------------------------------------------------------------------------


def test_outbox_root_removed_and_recreated_while_running(tmp_path: Path) -> None:
    config = configure(tmp_path)
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "ROOT0001.pdf", sample_pdf("ROOT0001"))
        wait_for(lambda: files_in(root, "sent") == ["ROOT0001.pdf"], timeout_seconds=20, what="first sent")
        moved = tmp_path / "moved-away"
        root.rename(moved)  # the share's folder is gone
        wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="problem in status")
        daemon.ticks(5)
        assert not root.exists(), "the daemon must not create the root once started"
        root.mkdir()  # a person makes it again
        wait_for(lambda: (root / "outbox").is_dir(), timeout_seconds=20, what="sub-folders made again")
        drop(root, "ROOT0002.pdf", sample_pdf("ROOT0002"))
        wait_for(lambda: files_in(root, "sent") == ["ROOT0002.pdf"], timeout_seconds=20, what="second sent")
        wait_for(lambda: daemon.outbox_status()["problem"] is None, timeout_seconds=10, what="status clear")
    unavailable = events_named(events, "outbox_unavailable")
    assert len(unavailable) == 1, "said once, not at every scan"
    assert str(root) in unavailable[0]["reason"]
    assert len(events_named(events, "outbox_available")) == 1
    assert not events_named(events, "outbox_loop_failed"), "no traceback at every scan"
    assert_no_secret(json.dumps(events, default=str), reports_text(root, tmp_path / "moved-away"))


def test_events_lost_with_a_removed_outbox_fall_back_to_polling(tmp_path: Path) -> None:
    """inotify's watch ends with the folder it watched: the loop notices and lists outbox/ every
    poll_seconds instead of waiting for a rescan an hour away."""
    config = configure(tmp_path, outbox_overrides={"watch": {"mode": "events", "rescan_seconds": 3600}})
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "EVNT0001.pdf", sample_pdf("EVNT0001"))
        wait_for(lambda: files_in(root, "sent") == ["EVNT0001.pdf"], timeout_seconds=20, what="first sent")
        gone = tmp_path / "gone"
        root.rename(gone)  # at once: the daemon cannot make folders in it while it is being removed
        shutil.rmtree(gone)
        wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="noticed")
        root.mkdir()
        wait_for(lambda: (root / "outbox").is_dir(), timeout_seconds=20, what="sub-folders made again")
        drop(root, "EVNT0002.pdf", sample_pdf("EVNT0002"))
        wait_for(lambda: len(files_in(root, "sent")) == 1, timeout_seconds=20, what="picked up by polling")
    assert [event["watching"] for event in events_named(events, "watch_events_stopped")] == ["poll"]
    assert not events_named(events, "outbox_loop_failed")


def test_a_reload_while_the_root_is_gone_neither_makes_it_nor_stops(tmp_path: Path) -> None:
    """SIGHUP while the share is away: the root is not made on the disk beneath, the daemon goes on."""
    config = configure(tmp_path)
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "RELD0001.pdf", sample_pdf("RELD0001"))
        wait_for(lambda: files_in(root, "sent") == ["RELD0001.pdf"], timeout_seconds=20, what="first sent")
        root.rename(tmp_path / "away")
        wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="noticed")
        daemon.service.request_reload()
        wait_for(lambda: events_named(events, "service_reloaded"), timeout_seconds=20, what="reloaded")
        wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="noticed again")
        daemon.ticks(3)
        assert not root.exists()
        (tmp_path / "away").rename(root)  # the share is back
        drop(root, "RELD0002.pdf", sample_pdf("RELD0002"))
        wait_for(lambda: len(files_in(root, "sent")) == 2, timeout_seconds=20, what="second sent")
    assert not events_named(events, "reload_failed") and not events_named(events, "outbox_loop_failed")
    assert_no_secret(json.dumps(events, default=str))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def _can_mount(tmp_path: Path) -> str | None:
    """None when this process may mount (root with CAP_SYS_ADMIN), else why not."""
    if os.geteuid() != 0:
        return "mounting needs root"
    probe = tmp_path / ".mount-probe"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"mount is not permitted here ({exc})"
    _umount(probe)
    probe.rmdir()
    return None


def test_unmounted_share_keeps_polling_in_flight_and_finishes_once_back(tmp_path: Path) -> None:
    reason = _can_mount(tmp_path)
    if reason:
        pytest.skip(reason)
    backing, root = tmp_path / "share", tmp_path / "shop"
    backing.mkdir()
    root.mkdir()
    _mount("--bind", str(backing), str(root))  # the share, mounted where the outbox root is
    mounted = True
    config = configure(tmp_path, processing_seconds=2.0)
    try:
        with capture_logs() as events, running(config) as daemon:
            names = drop_many(root, "MNT", 4)
            wait_for(lambda: events_named(events, "batch_uploaded"), timeout_seconds=20, what="uploaded")
            _umount(root)
            mounted = False
            wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="unavailable")
            # The imports in flight are still polled and their outcomes journaled meanwhile.
            wait_for(lambda: events_named(events, "import_finished"), timeout_seconds=20, what="polled")
            daemon.ticks(3)
            assert list(root.iterdir()) == [], "nothing created on the disk beneath the share"
            _mount("--bind", str(backing), str(root))
            mounted = True
            wait_for(lambda: len(files_in(root, "sent")) == 4, timeout_seconds=30, what="finished once back")
            assert_each_sent_once(root, daemon.sandbox, names)
    finally:
        if mounted:
            _umount(root)
    unavailable = events_named(events, "outbox_unavailable")
    assert len(unavailable) == 1 and "mounted" in unavailable[0]["reason"]
    assert len(events_named(events, "outbox_available")) == 1
    assert not events_named(events, "outbox_loop_failed")
    assert leftovers(backing) == []
    assert_no_secret(json.dumps(events, default=str), reports_text(backing))


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only while inside: a read-only bind mount over it as root, its mode bits otherwise.
    (A running daemon keeps files it already has open, as on a filesystem remounted read-only.)"""
    if os.geteuid() == 0:
        _mount("--bind", str(path), str(path))
        try:
            _mount("-o", "remount,ro,bind", str(path))
            yield
        finally:
            _umount(path)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def _read_only_impossible(tmp_path: Path) -> str | None:
    return _can_mount(tmp_path) if os.geteuid() == 0 else None


def test_read_only_state_dir_stops_claiming_keeps_files_and_resumes(tmp_path: Path) -> None:
    reason = _read_only_impossible(tmp_path)
    if reason:
        pytest.skip(f"state_dir cannot be made read-only: {reason}")
    config = configure(tmp_path)
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "ROST0001.pdf", sample_pdf("ROST0001"))
        wait_for(lambda: files_in(root, "sent") == ["ROST0001.pdf"], timeout_seconds=20, what="first sent")
        with read_only(config.state_dir):
            wait_for(lambda: events_named(events, "state_dir_unusable"), timeout_seconds=20, what="noticed")
            drop(root, "ROST0002.pdf", sample_pdf("ROST0002"))
            daemon.ticks(5)
            assert (root / "outbox" / "ROST0002.pdf").exists(), "nothing is claimed meanwhile"
            assert files_in(root, "failed") == []
        wait_for(lambda: files_in(root, "sent") == ["ROST0001.pdf", "ROST0002.pdf"], timeout_seconds=20)
        assert_each_sent_once(root, daemon.sandbox, ["ROST0001.pdf", "ROST0002.pdf"])
    unusable = events_named(events, "state_dir_unusable")
    assert len(unusable) == 1 and str(config.state_dir) in unusable[0]["reason"]
    assert len(events_named(events, "state_dir_usable")) == 1
    assert not events_named(events, "outbox_loop_failed")
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


def _fill(path: Path, *, leave_bytes: int) -> Path:
    """Write a filler file until only about `leave_bytes` remain free on `path`'s filesystem."""
    filler = path / "filler"
    chunk = b"\0" * (1024 * 1024)
    with open(filler, "wb") as stream:
        while True:
            info = os.statvfs(path)
            free = info.f_bavail * info.f_frsize
            if free <= leave_bytes:
                break
            try:
                stream.write(chunk[: min(len(chunk), free - leave_bytes)])
                stream.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


def test_full_state_dir_stops_claiming_keeps_files_and_resumes_when_space_returns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = _can_mount(tmp_path)
    if reason:
        pytest.skip(f"no small filesystem for state_dir: {reason}")
    state = tmp_path / "state"
    state.mkdir()
    _mount("-t", "tmpfs", "-o", "size=32m", "tmpfs", str(state))
    try:
        config = configure(tmp_path)
        root = tmp_path / "shop"
        with capture_logs() as events, running(config) as daemon:
            drop(root, "FULL0001.pdf", sample_pdf("FULL0001"))
            wait_for(lambda: files_in(root, "sent") == ["FULL0001.pdf"], timeout_seconds=20, what="sent")
            filler = _fill(state, leave_bytes=1024 * 1024)  # below the 8 MiB the journal is given
            wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="noticed")
            assert "full" in daemon.outbox_status()["problem"]
            shown = status_json(config, capsys)["outboxes"][0]
            assert "full" in shown["problem"]
            drop(root, "FULL0002.pdf", sample_pdf("FULL0002"))
            daemon.ticks(5)
            assert (root / "outbox" / "FULL0002.pdf").exists(), "nothing is claimed meanwhile"
            filler.unlink()  # space returns
            wait_for(lambda: len(files_in(root, "sent")) == 2, timeout_seconds=20, what="resumed")
            wait_for(lambda: daemon.outbox_status()["problem"] is None, timeout_seconds=10)
            assert_each_sent_once(root, daemon.sandbox, ["FULL0001.pdf", "FULL0002.pdf"])
    finally:
        _umount(state)
    assert files_in(root, "failed") == []
    assert len(events_named(events, "state_dir_unusable")) == 1
    assert len(events_named(events, "state_dir_usable")) == 1
    assert not events_named(events, "outbox_loop_failed")
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


def test_refused_failed_folder_keeps_the_file_in_processing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = _read_only_impossible(tmp_path)
    if reason:
        pytest.skip(f"failed/ cannot be made unwritable: {reason}")
    config = configure(tmp_path)
    root = tmp_path / "shop"
    with capture_logs() as events, running(config) as daemon:
        drop(root, "GOOD0001.pdf", sample_pdf("GOOD0001"))
        wait_for(lambda: files_in(root, "sent") == ["GOOD0001.pdf"], timeout_seconds=20, what="first sent")
        with read_only(root / "failed"):
            drop(root, "BADP0001.pdf", b"not a pdf at all\n" * 20)  # decided: failed/, which refuses it
            drop(root, "GOOD0002.pdf", sample_pdf("GOOD0002"))  # not held up by the refused one
            wait_for(lambda: daemon.outbox_status()["problem"], timeout_seconds=20, what="reported")
            wait_for(lambda: len(files_in(root, "sent")) == 2, timeout_seconds=20, what="second sent")
            problem = daemon.outbox_status()["problem"]
            assert str(root / "failed") in problem
            assert status_json(config, capsys)["outboxes"][0]["problem"] == problem
            daemon.ticks(3)
            assert [Path(p).name.split("__", 1)[1] for p in leftovers(root)] == ["BADP0001.pdf"]
        wait_for(lambda: files_in(root, "failed") == ["BADP0001.pdf"], timeout_seconds=20, what="finished")
        wait_for(lambda: daemon.outbox_status()["problem"] is None, timeout_seconds=10)
    assert report(root, "failed", "BADP0001.pdf")["error"]["code"] == "InvalidPdf"
    assert leftovers(root) == []
    assert len(events_named(events, "finish_blocked")) == 1
    assert len(events_named(events, "finish_unblocked")) == 1
    assert not events_named(events, "outbox_loop_failed")
    assert_no_secret(json.dumps(events, default=str), reports_text(root))


def test_status_without_a_running_daemon_says_so_and_shows_no_stale_pause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    stale = {"pid": 1, "outboxes": {"shop": {"paused": "old news", "problem": None, "last_error": "x"}}}
    (config.state_dir / STATUS_NAME).write_text(json.dumps(stale))
    (config.state_dir / "invoicesync.lock").write_text("999999999\n")  # no such process
    data = status_json(config, capsys)
    assert data["daemon_running"] is False
    assert data["outboxes"][0]["paused"] is None
    commands.status(config, as_json=False)
    assert "no daemon is running" in capsys.readouterr().out


def test_each_figure_of_status_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = configure(tmp_path, orders=["STAT0001"])
    root = tmp_path / "shop"
    drop(root, "STAT0001.pdf", sample_pdf("STAT0001"))
    drop(root, "STAT0002.pdf", sample_pdf("STAT0002"))  # unknown to the sandbox: ImportFailed
    Service(config, once=True).run()
    drop(root, "STAT0003.pdf", sample_pdf("STAT0003"))  # waiting, no daemon
    row = status_json(config, capsys)["outboxes"][0]
    assert (row["waiting"], row["in_flight"], row["sent_today"], row["failed_today"]) == (1, 0, 1, 1)
    assert row["in_flight_since"] is None and row["paused"] is None and row["problem"] is None
    commands.status(config, as_json=False)
    assert "shop: waiting=1 in_flight=0 sent_today=1 failed_today=1" in capsys.readouterr().out
