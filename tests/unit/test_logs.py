"""logs: JSON lines that parse, console lines on request, secrets redacted, journald priorities."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from invoicesync.logs import REDACTED, configure_logging, get_logger, redact

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_event_level_timestamp_and_keys() -> None:
    stream = io.StringIO()
    configure_logging(format="auto", stream=stream)  # a StringIO is no terminal: JSON

    get_logger(outbox="cdiscount").info("batch_uploaded", import_id="8f3c", files=3)

    [line] = json_lines(stream)
    assert line["event"] == "batch_uploaded"
    assert (line["level"], line["outbox"], line["import_id"], line["files"]) == (
        "info",
        "cdiscount",
        "8f3c",
        3,
    )
    assert line["timestamp"].endswith("Z")


def test_secret_keys_and_bearer_values_are_redacted_in_output() -> None:
    stream = io.StringIO()
    configure_logging(format="json", stream=stream)

    get_logger().warning(
        "token_refused",
        access_token=TOKEN,
        client_secret="s3cr3t",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"},
        detail=f"server said: Bearer {TOKEN} is expired",
        token_url="https://auth.example.test/token",
    )

    output = stream.getvalue()
    assert TOKEN not in output and "s3cr3t" not in output
    [line] = json_lines(stream)
    assert line["access_token"] == REDACTED
    assert line["client_secret"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert line["detail"] == f"server said: Bearer {REDACTED} is expired"
    assert line["token_url"] == "https://auth.example.test/token"  # about a secret, not one


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("password", "pw", REDACTED),
        ("Authorization", "Basic dXNlcjpwYXNz", REDACTED),
        ("note", "Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {REDACTED}"),
        ("items", [{"secret": 1}, "bearer abc.def"], [{"secret": REDACTED}, f"bearer {REDACTED}"]),
        ("token_ttl_seconds", 7200, 7200),
        ("client_secret_file", "/run/credentials/x", "/run/credentials/x"),
        ("order_id", "A1B2C3", "A1B2C3"),
    ],
)
def test_redaction_processor(key: str, value: object, expected: object) -> None:
    assert redact(None, "info", {"event": "e", key: value})[key] == expected


def test_tracebacks_are_structured_and_never_show_locals() -> None:
    stream = io.StringIO()
    configure_logging(format="json", stream=stream)

    def fail() -> None:
        password_in_a_local = "hunter2-local"  # noqa: F841  # the local that must not be rendered
        raise RuntimeError(f"upstream said Bearer {TOKEN}")

    try:
        fail()
    except RuntimeError:
        get_logger().exception("upload_crashed")

    assert "hunter2-local" not in stream.getvalue() and TOKEN not in stream.getvalue()
    [line] = json_lines(stream)
    assert line["level"] == "error"
    [exception] = line["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["exc_value"] == f"upstream said Bearer {REDACTED}"


def test_level_filters_lower_events() -> None:
    stream = io.StringIO()
    configure_logging(format="json", level="warning", stream=stream)

    log = get_logger()
    log.debug("noise")
    log.info("noise")
    log.warning("outbox_blocked", outbox="cdiscount")

    assert [line["event"] for line in json_lines(stream)] == ["outbox_blocked"]


def test_console_format_is_plain_text_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging(format="console", stream=stream)

    get_logger().info("token_fetched", access_token=TOKEN, outbox="cdiscount")

    output = stream.getvalue()
    assert "token_fetched" in output and "outbox=cdiscount" in output
    assert TOKEN not in output
    assert "\x1b[" not in output  # no colours when the stream is not a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)


def test_journal_stream_gets_syslog_priority_prefixes(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+", encoding="utf-8") as stream:
        stat = os.fstat(stream.fileno())
        configure_logging(
            format="json", stream=stream, environ={"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        )
        log = get_logger()
        log.debug("dropped_by_level")
        log.info("started")
        log.warning("slow_scan")
        log.error("outbox_blocked")
        stream.seek(0)
        lines = stream.read().splitlines()

    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>"]
    assert [json.loads(line[3:])["event"] for line in lines] == ["started", "slow_scan", "outbox_blocked"]


def test_piped_output_stays_pure_json_even_under_systemd() -> None:
    stream = io.StringIO()  # JOURNAL_STREAM names another file: our stdout was redirected
    configure_logging(format="json", stream=stream, environ={"JOURNAL_STREAM": "8:12345"})

    get_logger().info("started")

    assert json.loads(stream.getvalue())["event"] == "started"


def test_http_libraries_log_warnings_only() -> None:
    configure_logging(format="json", stream=io.StringIO())

    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING


def test_events_are_captured_as_flat_dicts() -> None:
    with capture_logs() as captured:
        get_logger(outbox="cdiscount").info("batch_uploaded", bundle="cdiscount-0007.zip", files=3)

    assert captured == [
        {
            "event": "batch_uploaded",
            "log_level": "info",
            "outbox": "cdiscount",
            "bundle": "cdiscount-0007.zip",
            "files": 3,
        }
    ]
