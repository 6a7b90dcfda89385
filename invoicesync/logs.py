"""logs (shell): structlog set-up: console on a terminal, JSON lines otherwise; secrets redacted.

Events are stable snake_case names with flat keys (`batch_uploaded outbox=cdiscount files=3`), written to
stderr: stdout is left to what a command prints as its result (`once`'s summary, `status`), so that
`invoicesync once | jq` reads only that. Under systemd, when stderr is the journal stream, each JSON line
starts with its syslog priority (`<6>{...}`) so `journalctl -p err` works; piped output stays pure JSON.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO, cast

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from invoicesync.checks import quiet_libraries

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"authorization|token|secret|password|passwd|credential", re.IGNORECASE)
# Metadata about a secret is not the secret: token_url, token_ttl_seconds, client_secret_file, ...
_HARMLESS_KEY = re.compile(r"_(url|seconds|at|count|file|path)$", re.IGNORECASE)
_AUTH_VALUE = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3, "critical": 2}


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _is_secret_name(key)


@functools.lru_cache(maxsize=1024)
def _is_secret_name(key: str) -> bool:
    """Decided once per key: every event asks it of each of its keys, and events reuse a few dozen names."""
    return bool(_SECRET_KEY.search(key)) and not _HARMLESS_KEY.search(key)


_SECRETS: dict[str, None] = {}  # tokens and secrets this process holds, newest last (an ordered set)
_LONGEST_FIRST: list[str] = []  # the same, longest first: one secret may contain another
MAX_SECRETS = 64  # tokens are renewed every hour or two: the oldest are long expired


def remember_secret(value: str) -> None:
    """A token or secret that must never appear in any text this process writes (see `redact_text`)."""
    for each in {value, value.strip()}:
        if len(each) >= 6:
            _SECRETS.pop(each, None)
            _SECRETS[each] = None
    while len(_SECRETS) > MAX_SECRETS:
        del _SECRETS[next(iter(_SECRETS))]
    _LONGEST_FIRST[:] = sorted(_SECRETS, key=len, reverse=True)


def redact_text(text: str) -> str:
    """`text` without any secret this process holds, nor `Bearer …`/`Basic …` credentials: applied where
    an error becomes text (logs, `last_error`, status), since an HTTP library's own message may quote a
    header it refused (`Illegal header value b'Bearer …'`)."""
    for secret in _LONGEST_FIRST:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _AUTH_VALUE.sub(lambda match: f"{match.group(1)} {REDACTED}", text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 8:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_key(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item, depth + 1) for item in value)
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace values under secret-sounding keys, and `Bearer …`/`Basic …` credentials anywhere."""
    return cast(EventDict, _scrub(event_dict))


class _JournalRenderer:
    """JSON line prefixed with `<N>`, the syslog priority journald turns into PRIORITY."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer()

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        priority = _PRIORITIES.get(str(event_dict.get("level", name)), 6)
        line = self._json(logger, name, event_dict)
        return f"<{priority}>{line.decode() if isinstance(line, bytes) else line}"


def _writes_to_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when `stream` is the very file systemd connected to the journal (JOURNAL_STREAM=dev:ino)."""
    try:
        device, inode = (int(part) for part in environ.get("JOURNAL_STREAM", "").split(":"))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError):  # unset or malformed, or a stream without a file descriptor
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


# Called with each event that passes the level filter (name, flat keys), before it is rendered: metrics
# are counted from the same stable events a person reads (`metrics.Metrics.observe`).
OBSERVERS: list[Callable[[str, Mapping[str, Any]], None]] = []


def _observe(logger: Any, method: str, event_dict: EventDict) -> EventDict:
    for observer in OBSERVERS:
        with contextlib.suppress(Exception):  # a counting fault must never cost a log line
            observer(str(event_dict.get("event", "")), event_dict)
    return event_dict


def configure_logging(
    *,
    format: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Set up structlog for the process; safe to call again (a reload may change the level)."""
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    as_json = format == "json" or (format == "auto" and not out.isatty())
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _observe,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if as_json:
        # Locals in tracebacks could hold a secret: never render them.
        processors.append(structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)))
        processors.append(redact)
        processors.append(
            _JournalRenderer() if _writes_to_journal(out, env) else structlog.processors.JSONRenderer()
        )
    else:
        processors.append(redact)
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    for name in ("httpx", "httpcore"):  # they log request lines, and we log our own events
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_libraries()
    # its one error is a race at shutdown ("queue_events() called when the thread is inactive"), printed as
    # a bare line; a watch that really ends is noticed by the loop (`watch_events_stopped`)
    logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)


def get_logger(**bound: Any) -> FilteringBoundLogger:
    """A logger with `bound` keys on every event (e.g. `get_logger(outbox="cdiscount")`)."""
    return cast(FilteringBoundLogger, structlog.get_logger(**bound))


__all__ = ["REDACTED", "configure_logging", "get_logger", "redact"]
