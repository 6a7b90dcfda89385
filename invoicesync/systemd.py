"""systemd (shell): sd_notify (READY, STATUS, WATCHDOG, STOPPING, RELOADING) over NOTIFY_SOCKET.

The protocol is one datagram of `KEY=value` lines to the AF_UNIX socket named in `NOTIFY_SOCKET` (a leading
`@` means the abstract namespace). Outside systemd every call is a no-op; a failure is logged once and never
raised: the daemon's work matters more than its heartbeat.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

from invoicesync.logs import get_logger

log = get_logger()


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._failed = False

    def _send(self, *lines: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as error:
            if not self._failed:
                self._failed = True
                log.warning("sd_notify_failed", socket=self._address.replace("\0", "@"), error=str(error))

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        self._send("STATUS=" + " ".join(text.split()))  # one line

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def watchdog_interval_seconds(self) -> float | None:
        """How often to call `watchdog()`: half of WATCHDOG_USEC, or None when no watchdog is ours."""
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 2 / 1_000_000 if usec > 0 else None
