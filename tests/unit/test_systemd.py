"""systemd: sd_notify datagrams arrive on a real socket; outside systemd nothing happens or breaks."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from invoicesync.systemd import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in a short /tmp folder (AF_UNIX paths are limited to 108 bytes)."""
    folder = tempfile.mkdtemp(dir="/tmp")
    path = str(Path(folder) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()
    shutil.rmtree(folder)


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_watchdog_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})

    notifier.ready()
    notifier.status("cdiscount: 3 waiting,\n1 in flight")
    notifier.watchdog()
    notifier.stopping()

    assert receive(sock) == ["READY=1"]
    assert receive(sock) == ["STATUS=cdiscount: 3 waiting, 1 in flight"]
    assert receive(sock) == ["WATCHDOG=1"]
    assert receive(sock) == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    Notifier({"NOTIFY_SOCKET": path}).reloading()

    reloading, stamp = receive(sock)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert reloading == "RELOADING=1"
    assert stamp.startswith("MONOTONIC_USEC=")
    assert before <= int(stamp.removeprefix("MONOTONIC_USEC=")) <= after


def test_abstract_socket_address() -> None:
    name = f"invoicesync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)

        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()

        assert receive(sock) == ["READY=1"]


def test_without_notify_socket_every_call_is_a_quiet_no_op() -> None:
    notifier = Notifier({})
    with capture_logs() as captured:
        notifier.ready()
        notifier.status("x")
        notifier.reloading()
        notifier.watchdog()
        notifier.stopping()

    assert captured == []
    assert notifier.watchdog_interval_seconds() is None


def test_a_failing_socket_is_logged_once_and_never_raises(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with capture_logs() as captured:
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()

    assert [(event["event"], event["log_level"]) for event in captured] == [("sd_notify_failed", "warning")]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_deadline_when_it_is_ours(
    environ: dict[str, str], expected: float | None
) -> None:
    assert Notifier(environ).watchdog_interval_seconds() == expected
