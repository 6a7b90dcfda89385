"""checks.pool (shell): content checks in worker processes, each file with a time limit.

`examine` runs in checker processes (`checks.child`, forked from one template process that loaded their
libraries: `checks.template`), one file at a time each, so that:
- a month-end burst is checked on every core, and the daemon's own loop keeps its core;
- PDFium (native code) and lxml run outside the daemon: a file that makes one spin (or grow: a checker's
  address space is capped) is cut off at `time_limit_seconds` and refused as `TooLarge`, instead of
  stalling its outbox for good;
- a file that crashes the parser (or gets its checker killed) costs a checker, not the daemon: it is tried
  once more in a fresh checker, then refused as damaged.

A checker that cannot start (its imports or the UBL schemas fail) is an installation fault, never a verdict:
the future raises `CheckerUnavailable` and the file stays claimed. Checkers start on `warm()` (a file began
settling) and stop after `idle_seconds` without work, so an idle daemon holds none (nor a template).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import structlog

from invoicesync.checks.child import decode_answer, encode_request, greeting_fault
from invoicesync.checks.content import Rules, kind_of
from invoicesync.checks.examine import Examined
from invoicesync.checks.template import Forked, Template, TemplateFault, usable
from invoicesync.config import DEFAULT_CHECK_SECONDS
from invoicesync.errors import CheckerUnavailable
from invoicesync.messages import file_error
from invoicesync.model import FileError
from invoicesync.naming import order_id_of

TIME_LIMIT_SECONDS = DEFAULT_CHECK_SECONDS  # files.check_seconds; a 1,500-page PDF opens in about 0.1 s
IDLE_SECONDS = 120.0  # a checker without work for this long is stopped
START_LIMIT_SECONDS = 60.0  # imports and the UBL schemas, on a slow disk
START_RETRY_SECONDS = 10.0  # after a checker failed to start, the next start is tried after this long
MAX_WORKERS = 2  # each holds 40-50 MB while it works; a file server has little memory to spare
# Requests queued in each checker's input ahead of its answers: the checker never waits for this process's
# loop thread (which may hold the GIL for milliseconds) to hand it the next file.
PIPELINE_DEPTH = 8
DAMAGED_CODES = {"pdf": "InvalidPdf", "xml": "InvalidXml", "zip": "UnsafeArchive"}
WARM = "warm"  # a queue item: start your checker now


STOPPED = CheckerUnavailable("The content checkers were stopped.")


class CheckerProcess(Protocol):
    """A checker as a lane handles it: started on its own (`subprocess.Popen`) or forked (`Forked`)."""

    pid: int
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


def default_workers() -> int:
    """One checker per CPU beyond the first, which the daemon's own loop needs in a burst (on 2 CPUs, two
    checkers were no faster than one and held 35 MiB more)."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))


@dataclass(slots=True)
class Job:
    path: Path
    name: str
    pattern: re.Pattern[str]
    rules: Rules
    entry: bool
    time_limit_seconds: float
    future: Future[Examined]
    crashes: int = 0  # checkers that died while this file was theirs to check

    def request(self) -> bytes:
        return encode_request(self.path, self.name, pattern=self.pattern, rules=self.rules, entry=self.entry)


class Checkers:
    """A pool of up to `workers` checker processes shared by every outbox; `submit` never blocks."""

    def __init__(
        self,
        *,
        workers: int | None = None,
        time_limit_seconds: float = TIME_LIMIT_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
        log: structlog.typing.FilteringBoundLogger | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        """Checkers are forked from a template process, or each started with `command` (followed by this
        process's pid, so that it dies with it) when one is given, when no template can be used here, or
        for a single checker: a template saves the start of every checker after the first, and a checker
        holds a private copy of a part of its memory (a template and one checker: about 20 MiB more)."""
        self.workers = workers or default_workers()
        self.time_limit_seconds = time_limit_seconds
        self.idle_seconds = idle_seconds
        self.log = log or structlog.get_logger("invoicesync")
        self.template: Template | None = None
        if command is None and self.workers > 1 and usable():
            template_command = (sys.executable, "-m", "invoicesync.checks.template")
            self.template = Template(template_command, on_start=self._started)
        own = (sys.executable, "-m", "invoicesync.checks.child") if command is None else command
        self.command = [*own, str(os.getpid())]  # the checker dies with this process
        self._jobs: queue.SimpleQueue[Job | str | None] = queue.SimpleQueue()
        self._lanes: list[Lane] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self,
        path: Path,
        name: str,
        *,
        pattern: re.Pattern[str],
        rules: Rules,
        entry: bool,
        time_limit_seconds: float | None = None,
    ) -> Future[Examined]:
        """Check `path` (dropped as `name`); the pool's time limit unless the outbox has its own."""
        future: Future[Examined] = Future()
        self._start_lanes()
        limit = self.time_limit_seconds if time_limit_seconds is None else time_limit_seconds
        self._jobs.put(Job(path, name, pattern, rules, entry, limit, future))
        return future

    def warm(self) -> None:
        """Start the checkers now (a file is settling), so the first check does not wait for them."""
        self._start_lanes()
        for lane in self._lanes:
            if lane.process is None:
                self._jobs.put(WARM)

    def pids(self) -> list[int]:
        return [pid for lane in self._lanes if (pid := lane.pid()) is not None]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop every checker; checks not done yet are abandoned (their files stay claimed). An idle checker
        ends at the end of its input (logging its peak memory); a busy one is killed."""
        with self._lock:
            self._closed = True
            lanes = list(self._lanes)
        for _ in lanes:
            self._jobs.put(None)
        for lane in lanes:
            lane.interrupt()
        for lane in lanes:
            lane.thread.join(timeout=10)
        if self.template is not None:
            self.template.close()  # a checker still running (a lane that did not end in time) ends with it
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, Job):
                job.future.cancel()

    def _started(self, pid: int, seconds: float) -> None:
        self.log.info("checker_template_started", pid=pid, seconds=seconds)

    def _start_lanes(self) -> None:
        with self._lock:
            if self._closed:
                raise CheckerUnavailable("The content checkers are stopped.")
            while len(self._lanes) < self.workers:
                lane = Lane(self, len(self._lanes) + 1)
                self._lanes.append(lane)
                lane.thread.start()


class Lane:
    """One thread feeding one checker process; answers come back in the order the requests went in."""

    def __init__(self, pool: Checkers, number: int) -> None:
        self.pool = pool
        self.number = number
        self.process: CheckerProcess | None = None
        self._buffer = b""
        self._sent: deque[Job] = deque()  # requests in the checker's input, oldest (being checked) first
        self._head_since = 0.0  # when the oldest request's check began (monotonic)
        self._start_fault: tuple[float, CheckerUnavailable] | None = None  # (retry after, fault)
        self.thread = threading.Thread(target=self._serve, name=f"checker-{number}", daemon=True)

    def pid(self) -> int | None:
        process = self.process
        return None if process is None else process.pid

    def interrupt(self) -> None:
        """From another thread, at close: a checker in the middle of a file is killed."""
        process = self.process
        if self._sent and process is not None:
            process.kill()

    def _serve(self) -> None:
        while True:
            try:
                if not self._take_work():
                    return
                if self._sent:
                    self._answer_oldest()
            except Exception as exc:  # a garbled answer, an odd pipe error: its files are asked again later
                self.pool.log.exception("checker_failed", checker=self.number)
                self.stop_process(kill=True)
                self._fail_sent(CheckerUnavailable(f"A content checker failed: {type(exc).__name__}: {exc}"))

    def _take_work(self) -> bool:
        """Fill the pipeline from the pool's queue (waiting only when it is empty); False on close."""
        while len(self._sent) < PIPELINE_DEPTH:
            try:
                job = self.pool._jobs.get(block=not self._sent, timeout=self.pool.idle_seconds)
            except queue.Empty:
                if not self._sent:
                    self.stop_process()  # idle: give its memory back
                    if self.pool.template is not None:
                        self.pool.template.release()  # the last checker of it gone: the template too
                return True
            if job is None:
                self._fail_sent(STOPPED)
                self.stop_process()
                return False
            if job == WARM:
                if not self._sent:
                    self._start_quietly()
            elif isinstance(job, Job) and job.future.set_running_or_notify_cancel():
                self._send(job)
        return True

    def _send(self, job: Job) -> None:
        """Into the pipeline. A checker is started only for an empty one: a checker that died with requests
        in its input is found, charged and replaced by `_answer_oldest` alone."""
        if not self._sent:
            try:
                self._ensure_started()
            except CheckerUnavailable as exc:
                job.future.set_exception(exc)
                return
            self._head_since = time.monotonic()
        self._sent.append(job)  # first: whatever goes wrong from here, `_serve` resolves it with the rest
        self._write(job)

    def _write(self, job: Job) -> None:
        assert self.process is not None and self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it died: reading its answer finds out
            self.process.stdin.write(job.request())

    def _resend(self) -> None:
        """A fresh checker: everything still unanswered goes to it, in the same order."""
        self._head_since = time.monotonic()
        for job in self._sent:
            self._write(job)

    def _answer_oldest(self) -> None:
        assert self.process is not None
        job = self._sent[0]
        line = self._read_line(self.process, self._head_since + job.time_limit_seconds)
        if line:
            try:  # a garbled answer raises here, the job still in `_sent`: `_serve` fails it with the rest
                outcome: Examined | CheckerUnavailable = decode_answer(line)
            except CheckerUnavailable as exc:
                outcome = exc
            self._sent.popleft()
            self._head_since = time.monotonic()
            if isinstance(outcome, CheckerUnavailable):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)
            return
        if line == b"":  # its time limit passed
            self.stop_process(kill=True)
            self._sent.popleft()
            self.pool.log.warning("check_timed_out", file=job.name, seconds=job.time_limit_seconds)
            limit = f"{job.time_limit_seconds:g} s"
            reason = f"checking it took longer than {limit}"
            job.future.set_result(
                _refused(job, file_error("TooLarge", reason=reason, detail=f"time limit {limit}"))
            )
        else:
            process = self.process
            ended = self._reap()
            if self.pool.closed:  # killed by `close`
                self._fail_sent(STOPPED)
                return
            # a checker killed with its template (killed itself, by a person or the OOM killer) died of
            # nothing in this file: the file is simply checked again
            orphaned = isinstance(process, Forked) and process.orphaned
            self.pool.log.warning("checker_died", file=job.name, ended=ended, template_ended=orphaned)
            if not orphaned:
                job.crashes += 1
            if job.crashes >= 2:  # a fresh checker died on it too: the file, not the checker
                self._sent.popleft()
                code = DAMAGED_CODES.get(kind_of(job.name) or "", "Unreadable")
                detail = f"the checker process ended ({ended}) while reading this file, twice"
                job.future.set_result(_refused(job, file_error(code, detail=detail)))
        if self._sent:  # what was queued behind it goes to a fresh checker
            try:
                self._ensure_started()
            except CheckerUnavailable as exc:
                self._fail_sent(exc)
            else:
                self._resend()

    def _fail_sent(self, exc: CheckerUnavailable) -> None:
        while self._sent:
            self._sent.popleft().future.set_exception(exc)

    def _start_quietly(self) -> None:
        try:
            self._ensure_started()
        except CheckerUnavailable as exc:  # said again, with the file, when a check needs it
            self.pool.log.debug("checker_start_failed", reason=str(exc))

    def _ensure_started(self) -> None:
        """A running checker, started if need be. After a failed start, starting is not tried again for
        `START_RETRY_SECONDS` (the same fault is raised at once): a broken installation costs one process
        start per interval, not one per file."""
        if self.process is not None and self.process.poll() is None:
            return
        self.stop_process(kill=True)  # reap a dead one
        if self.pool.closed:
            raise STOPPED
        started = time.monotonic()
        if self._start_fault is not None and started < self._start_fault[0]:
            raise self._start_fault[1]
        try:
            fault = self._start()
        except OSError as exc:
            fault = f"{exc.strerror or exc}."
        except TemplateFault as exc:
            fault = str(exc)
        if fault is not None:
            self.stop_process(kill=True)
            unavailable = CheckerUnavailable(f"A content checker could not be started: {fault}")
            self._start_fault = (started + START_RETRY_SECONDS, unavailable)
            raise unavailable
        self._start_fault = None
        assert self.process is not None
        self.pool.log.info(
            "checker_started",
            checker=self.number,
            pid=self.process.pid,
            seconds=round(time.monotonic() - started, 3),
        )

    def _start(self) -> str | None:
        """Spawn a checker and wait for its first line; the fault in words, or None when it is ready."""
        started = time.monotonic()
        template = self.pool.template
        self.process = (
            subprocess.Popen(
                self.pool.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, bufsize=0
            )
            if template is None
            else template.fork()
        )
        self._buffer = b""
        line = self._read_line(self.process, started + START_LIMIT_SECONDS)
        if line is None:
            return f"it ended ({self._reap()}) before it was ready"
        if line == b"":
            return f"it was not ready within {START_LIMIT_SECONDS:g} s"
        try:
            return greeting_fault(line)
        except ValueError:
            return f"its first line was not its greeting: {line[:80]!r}"

    def _read_line(self, process: CheckerProcess, deadline: float) -> bytes | None:
        """The next line; b"" when the deadline passed first, None when the process ended."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not readable:
                if remaining <= 0:  # looked once more at the deadline: an answer already there counts
                    return b""
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _reap(self) -> str:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.stop_process(kill=True)
            return "it stopped answering"
        self.process = None
        return f"signal {-code}" if code < 0 else f"exit code {code}"

    def stop_process(self, *, kill: bool = False) -> None:
        """End the checker: at end of its input (it prints its peak memory then), or killed."""
        process, self.process = self.process, None
        if process is None:
            return
        last: dict[str, Any] = {}
        if not kill:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            deadline = time.monotonic() + 5
            while line := self._read_line(process, deadline):
                if line.startswith(b'{"max_rss_kib"'):
                    last = json.loads(line)
        if process.poll() is None and (kill or not last):
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        if last:
            self.pool.log.info(
                "checker_stopped",
                checker=self.number,
                max_rss_kib=last.get("max_rss_kib"),
                cpu_seconds=last.get("cpu_seconds"),
            )


def _refused(job: Job, error: FileError) -> Examined:
    try:
        size: int | None = job.path.stat().st_size
    except OSError:
        size = None
    return Examined(order_id_of(job.name, job.pattern), size, None, error, False)


__all__ = ["Checkers", "default_workers"]
