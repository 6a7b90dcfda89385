"""notify (shell): messages for people — mail, Teams, Slack, … through apprise — off unless `notify.urls`.

- **One digest per outbox and window** (`notify.digest`, default 1 h): the files that went to failed/ in that
  window, each with its plain message and hint; one message however many failed, none when none did.
- **At once**: an outbox pausing (with its reason) and resuming.

Fed by the daemon's own log events (`logs.OBSERVERS`, as the metrics are). Sent from a thread of its own, so
a slow or unreachable mail server never holds up a file; a message that cannot be delivered is logged
(`notification_failed`) and tried again at the next window. What is pending when the daemon stops is sent
then (a `once` from cron ends with its digest). The URLs, which may hold a password, are never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import apprise
import structlog

from invoicesync.config import NotifySettings
from invoicesync.logs import OBSERVERS

MAX_FILES_LISTED = 50  # files named one by one in a digest; the rest are counted
STOP_WAIT_SECONDS = 30.0  # the last digest's send, at most, when the daemon stops (systemd waits 60 s)


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str


def digest(outbox: str, failures: list[Mapping[str, Any]]) -> Message:
    """The digest of an outbox's files that went to failed/, as one message."""
    count = len(failures)
    files = f"{count} file{'s' if count != 1 else ''}"
    lines = [f"{files} of outbox {outbox} went to failed/, each with a report beside it:", ""]
    for failure in failures[:MAX_FILES_LISTED]:
        lines += [
            f"- {failure.get('dest') or failure.get('file')} ({failure.get('code')})",
            f"  {failure.get('message') or ''}",
            f"  What to do: {failure.get('hint') or ''}",
        ]
    if count > MAX_FILES_LISTED:
        lines.append(f"… and {count - MAX_FILES_LISTED} more: see failed/.")
    return Message(
        f"invoicesync: {count} file{'s' if count != 1 else ''} in {outbox}/failed/ need you", "\n".join(lines)
    )


class Messenger:
    def __init__(self, settings: NotifySettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its lines could show a URL; ours say it
        self._apprise = apprise.Apprise()
        for url in settings.urls:
            self._apprise.add(url.get_secret_value())
        self._window = settings.digest_seconds
        self._clock = clock
        self._log = structlog.get_logger("invoicesync")
        self._lock = threading.Lock()
        self._failures: dict[str, list[Mapping[str, Any]]] = {}  # by outbox, this window
        self._at_once: list[Message] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_digest = clock() + self._window
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)

    def observe(self, event: str, fields: Mapping[str, Any]) -> None:
        outbox = str(fields.get("outbox") or "")
        if event == "file_finished" and fields.get("outcome") == "failed":
            with self._lock:
                self._failures.setdefault(outbox, []).append(dict(fields))
        elif event == "outbox_paused":
            reason = fields.get("reason") or ""
            self._now(
                Message(
                    f"invoicesync: outbox {outbox} paused", f"Uploads of outbox {outbox} are paused: {reason}"
                )
            )
        elif event == "outbox_resumed":
            self._now(
                Message(f"invoicesync: outbox {outbox} resumed", f"Uploads of outbox {outbox} go on again.")
            )

    def _now(self, message: Message) -> None:
        with self._lock:
            self._at_once.append(message)
        self._wake.set()

    def start(self) -> None:
        OBSERVERS.append(self.observe)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, then send what is pending (one try)."""
        if self.observe in OBSERVERS:
            OBSERVERS.remove(self.observe)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=STOP_WAIT_SECONDS)

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=max(0.0, self._next_digest - self._clock()))
            self._wake.clear()
            stopping = self._stop.is_set()
            self._send_at_once()
            if stopping or self._clock() >= self._next_digest:
                self._send_digests()
                self._next_digest = self._clock() + self._window
            if stopping:
                return

    def _send_at_once(self) -> None:
        with self._lock:
            pending, self._at_once = self._at_once, []
        kept = [message for message in pending if not self._send(message)]
        with self._lock:  # tried again at the next window
            self._at_once = kept + self._at_once

    def _send_digests(self) -> None:
        with self._lock:
            pending, self._failures = self._failures, {}
        for outbox, failures in pending.items():
            if not self._send(digest(outbox, failures)):
                with self._lock:  # kept for the next window: one digest then, with the newer ones
                    self._failures[outbox] = failures + self._failures.get(outbox, [])

    def _send(self, message: Message) -> bool:
        try:
            sent = bool(
                self._apprise.notify(
                    title=message.title, body=message.body, body_format=apprise.NotifyFormat.TEXT
                )
            )
        except Exception as exc:  # apprise's own trouble: never the daemon's
            sent = False
            reason = type(exc).__name__
        else:
            reason = "the notification service refused it or could not be reached"
        if not sent:
            self._log.warning("notification_failed", title=message.title, reason=reason, retry="next window")
        return sent
