"""checks.child (shell): a checker process, and the wire format `checks.pool` speaks with it.

A checker is forked from the template process (`checks.template`), its libraries loaded and the UBL schemas
compiled there once; a single checker (which a template would not speed up), a test's own command, or a
platform without the template, starts it on its own: `python -m invoicesync.checks.child PARENT_PID`.

It reads one JSON request per line (a file to examine, with its outbox's pattern and rules) and writes one
JSON answer per line: `examine`'s result, or a `fault` (an installation fault, never a verdict). Its
first line says it is ready (the UBL schemas compiled) or names the fault. At end of input it prints its
peak memory and CPU time and ends; if its parent dies, it dies too. SIGINT and SIGTERM are left to the
parent, which stops its checkers itself. Lines are ASCII JSON, so file names that are not UTF-8
(surrogate escapes) travel intact.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import re
import resource
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from invoicesync.checks import quiet_libraries
from invoicesync.checks.content import Rules, SchemaUnavailable, self_test
from invoicesync.checks.examine import Examined, examine
from invoicesync.errors import CheckerUnavailable
from invoicesync.model import FileError

PR_SET_PDEATHSIG = 1
# A checker's address space, at most: what a hostile file can make it take. Past it, the allocation fails,
# MemoryError is the file's TooLarge (`validate.judge`), and the checker goes on with the next file.
MAX_MEMORY_BYTES = 2 * 1024**3


def limit_memory(max_bytes: int) -> None:
    """Cap this process's address space at `max_bytes` (never raising a hard limit set from outside)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        max_bytes = min(max_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, hard))


def die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: end of input still ends the checker
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(0)


@functools.lru_cache(maxsize=16)
def _pattern(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags)


@functools.lru_cache(maxsize=16)
def _rules(encoded: str) -> Rules:
    fields: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in json.loads(encoded).items()
    }
    return Rules(**fields)


@functools.lru_cache(maxsize=16)
def _rules_document(rules: Rules) -> dict[str, Any]:
    """An outbox's rules as JSON-ready values, made once (`asdict` copies every field: a month-end burst
    asks for them thousands of times). Only read, never changed."""
    return asdict(rules)


def encode_request(path: Path, name: str, *, pattern: re.Pattern[str], rules: Rules, entry: bool) -> bytes:
    document = {
        "path": str(path),
        "name": name,
        "entry": entry,
        "pattern": pattern.pattern,
        "flags": int(pattern.flags),
        "rules": _rules_document(rules),
    }
    return _line(document)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        found = examine(
            Path(request["path"]),
            request["name"],
            pattern=_pattern(request["pattern"], request["flags"]),
            rules=_rules(json.dumps(request["rules"], sort_keys=True)),
            entry=bool(request["entry"]),
        )
    except SchemaUnavailable as exc:
        return {"fault": str(exc)}
    return {
        "order_id": found.order_id,
        "size": found.size,
        "sha256": found.sha256,
        "error": None if found.error is None else asdict(found.error),
        "archive": found.archive,
    }


def greeting_fault(greeting: bytes) -> str | None:
    """None when a first line (a checker's, or its template's) says it is ready, else the fault it names;
    ValueError when it is not JSON."""
    answer = json.loads(greeting)
    if isinstance(answer, dict) and answer.get("ready") is True:
        return None
    return str(answer.get("fault") if isinstance(answer, dict) else answer)


def decode_answer(line: bytes) -> Examined:
    """The `Examined` in an answer line; raises CheckerUnavailable for a fault, ValueError or KeyError for
    a garbled line."""
    document = json.loads(line)
    if "fault" in document:
        raise CheckerUnavailable(str(document["fault"]))
    error = document["error"]
    return Examined(
        order_id=document["order_id"],
        size=document["size"],
        sha256=document["sha256"],
        error=None if error is None else FileError(**error),
        archive=bool(document["archive"]),
    )


def _line(document: dict[str, Any]) -> bytes:
    return (json.dumps(document) + "\n").encode("ascii")


def _write(stream: Any, document: dict[str, Any]) -> None:
    stream.write(_line(document))
    stream.flush()


def ignore_stop_signals() -> None:
    """SIGINT and SIGTERM (a Ctrl-C and systemd's stop reach the whole group) are the parent's to act on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str]) -> int:
    """A checker started on its own: `python -m invoicesync.checks.child PARENT_PID`."""
    ignore_stop_signals()
    if argv:
        die_with_parent(int(argv[0]))
    limit_memory(MAX_MEMORY_BYTES)
    quiet_libraries()
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's stray print() must not garble the answers
    try:
        self_test()
    except SchemaUnavailable as exc:
        _write(out, {"fault": str(exc)})
        return 1
    return serve(sys.stdin.buffer, out)


def forked(parent_pid: int) -> int:
    """A checker forked from the template (`checks.template`), which loaded the libraries, compiled the
    schemas and ignores the stop signals; its requests on fd 0, its answers on fd 1."""
    die_with_parent(parent_pid)
    limit_memory(MAX_MEMORY_BYTES)
    sys.stdout = sys.stderr
    with open(0, "rb", closefd=False) as requests, open(1, "wb", closefd=False) as answers:
        return serve(requests, answers)


def serve(requests: BinaryIO, answers: BinaryIO) -> int:
    """Say ready, answer each request, and at end of input say peak memory and CPU time."""
    _write(answers, {"ready": True})
    for line in requests:
        _write(answers, answer(json.loads(line)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = round(usage.ru_utime + usage.ru_stime, 3)
    _write(answers, {"max_rss_kib": usage.ru_maxrss, "cpu_seconds": cpu_seconds})
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # Nothing is left to tidy (every answer flushed; a large file's copy is an unnamed temporary file): the
    # interpreter's teardown of PDFium's, pypdf's and lxml's objects is skipped, ~45 ms that the daemon
    # waits for at every stop of a checker (the end of each `once`).
    sys.stderr.flush()
    os._exit(code)
