"""Messages for people (issue 16): files that went to failed/ reach the accountant as one digest per outbox
and window, through a real SMTP server on 127.0.0.1 (aiosmtpd); an undeliverable message never holds up a
file and never shows the URL's password."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.badfiles import sample_pdf
from tests.e2e.conftest import invoicesync
from tests.harness import drop, files_in, write_config

PASSWORD = "smtp-pass-w0rd"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """A real SMTP server's handler: every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _accept(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    """The mail server checks the login the URL carries."""
    return AuthResult(success=auth_data.password == PASSWORD.encode())


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=_accept, auth_require_tls=False
    )
    controller.start()
    yield inbox, port
    controller.stop()


def _with_notify(tmp_path: Path, port: int, digest: str = "1h") -> Path:
    config = write_config(tmp_path)
    document = yaml.safe_load(config.read_text())
    url = f"mailto://user:{PASSWORD}@127.0.0.1:{port}?from=invoicesync@example.test&to=accounts@example.test&mode=insecure"
    document["notify"] = {"urls": [url], "digest": digest}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


def _text(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(
        part.get_payload(decode=True).decode() for part in parts if part.get_content_type() == "text/plain"
    )


def test_five_failures_make_one_digest_with_each_files_message_and_hint(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    config = _with_notify(tmp_path, port)
    root = tmp_path / "shop"
    for n in range(5):
        drop(root, f"bad name {n}.pdf", sample_pdf(f"NOTE{n:04d}"))
    drop(root, "NOTE9999.pdf", sample_pdf("NOTE9999"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(files_in(root, "failed")) == 5 and files_in(root, "sent") == ["NOTE9999.pdf"]
    assert len(inbox.messages) == 1  # one digest, however many files failed
    mail = inbox.messages[0]
    assert mail["Subject"] == "invoicesync: 5 files in shop/failed/ need you"
    body = _text(mail)
    for n in range(5):
        assert f"\n- failed/bad name {n}.pdf (InvalidFileName)\n" in body.replace("\r\n", "\n")
    assert body.count("What to do: Rename the file") == 5
    assert PASSWORD not in result.stderr and PASSWORD not in result.stdout


def test_an_undeliverable_digest_is_logged_and_holds_up_no_file(tmp_path: Path) -> None:
    config = _with_notify(tmp_path, _free_port())  # nothing listens there
    root = tmp_path / "shop"
    drop(root, "bad name.pdf", sample_pdf("NOTE0001"))
    drop(root, "NOTE0002.pdf", sample_pdf("NOTE0002"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    assert files_in(root, "failed") == ["bad name.pdf"] and files_in(root, "sent") == ["NOTE0002.pdf"]
    assert '"notification_failed"' in result.stderr
    assert PASSWORD not in result.stderr


def test_an_outbox_that_pauses_is_said_at_once(tmp_path: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    config = _with_notify(tmp_path, port)
    document = yaml.safe_load(config.read_text())
    document["sandbox"]["faults"] = {"refuse_tokens": True}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    drop(tmp_path / "shop", "NOTP0001.pdf", sample_pdf("NOTP0001"))
    result = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=90)
    assert result.returncode == 1, result.stderr[-2000:]  # stopped for a reason a person must fix
    subjects = [mail["Subject"] for mail in inbox.messages]
    assert subjects == ["invoicesync: outbox shop paused"], subjects
    assert "refused" in _text(inbox.messages[0]) and "s3cret" not in _text(inbox.messages[0])
