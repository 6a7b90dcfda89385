"""checks.template (shell): the process checkers are forked from, and the pool's handle on it.

A checker started on its own spends about 0.2 s of CPU before its first file (an interpreter, PDFium,
pypdf, lxml, the UBL schemas compiled): at the start of a month-end burst, while the daemon loads too, and
again each time a hostile file costs a checker. The template does that once; each checker is then a fork
of it, ready in a few milliseconds, and the checkers share the pages it loaded. It is started with the
first checker (`python -m invoicesync.checks.template FD`, FD a Unix socket to the pool) and answers two
requests, one message each:

- `{"fork": true}`: two pipes and a fork. The child takes them as its stdin and stdout and is a checker
  (`child.forked`); the answer names its pid and carries the pool's ends of the pipes (SCM_RIGHTS).
- `{"reap": PID}`: the checker's exit code once it has ended, else that it runs. Only the template, its
  parent, can wait for it; until then its pid stays its own (a zombie), so the pool may signal it.

The template is single-threaded (forking is safe) and does nothing else. At end of its input (the pool
closed it, or the daemon died) it ends, and each checker dies with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from invoicesync.checks import child, quiet_libraries
from invoicesync.checks.content import self_test
from invoicesync.errors import SchemaUnavailable

MESSAGE_BYTES = 4096
START_LIMIT_SECONDS = 60.0  # imports and the UBL schemas, on a slow disk
ANSWER_LIMIT_SECONDS = 10.0  # a fork or a reap: milliseconds, unless the machine is in trouble
REAP_STEP_SECONDS = 0.005  # how often `Forked.wait` asks whether its checker has ended


def usable() -> bool:
    """Checkers can be forked from a template here (Linux: SOCK_SEQPACKET, SCM_RIGHTS, PR_SET_PDEATHSIG)."""
    return sys.platform == "linux" and hasattr(socket, "SOCK_SEQPACKET") and hasattr(socket, "send_fds")


# -- the template process ----------------------------------------------------------------------


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    child.ignore_stop_signals()  # inherited by every checker
    quiet_libraries()
    sys.stdout = sys.stderr  # a library's stray print() goes where errors go
    try:
        self_test()
    except SchemaUnavailable as exc:
        control.send(_message({"fault": str(exc)}))
        return 1
    # Kept out of the collector's reach, the template's objects are not written to by a checker's
    # collections: fewer of their pages are copied into each checker (peak PSS of a `once` on real
    # invoices, a template and one checker: 122-123 MiB before, 117-118 MiB after).
    gc.collect()
    gc.freeze()
    control.send(_message({"ready": True}))
    while request := control.recv(MESSAGE_BYTES):
        asked = json.loads(request)
        if "reap" in asked:
            control.send(_message(_reap(int(asked["reap"]))))
        else:
            _fork(control)
    return 0


def _fork(control: socket.socket) -> None:
    requests_read, requests_write = os.pipe()
    answers_read, answers_write = os.pipe()
    template = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (requests_read, requests_write, answers_read, answers_write):
            os.close(fd)
        control.send(_message({"fault": f"it could not be forked: {exc.strerror or exc}."}))
        return
    if pid == 0:  # the checker: it never returns into this loop
        code = 1
        try:
            control.close()
            os.close(requests_write)  # else its input would never end
            os.close(answers_read)
            os.dup2(requests_read, 0)
            os.dup2(answers_write, 1)
            os.close(requests_read)
            os.close(answers_write)
            code = child.forked(template)
        finally:
            sys.stderr.flush()
            os._exit(code)  # no teardown (see `child`), and never the template's loop
    os.close(requests_read)
    os.close(answers_write)
    try:
        socket.send_fds(control, [_message({"pid": pid})], [requests_write, answers_read])
    finally:
        os.close(requests_write)
        os.close(answers_read)


def _reap(pid: int) -> dict[str, Any]:
    try:
        ended, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not a checker of this template: say it ended, it is nothing to wait for
        return {"pid": pid, "code": -signal.SIGKILL}
    if ended == 0:
        return {"pid": pid, "code": None}
    return {"pid": pid, "code": os.waitstatus_to_exitcode(status)}


def _message(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode("ascii")


# -- the pool's handle -------------------------------------------------------------------------


class TemplateFault(Exception):
    """No checker can be forked: the sentence says why (the template's own fault, or that it ended)."""


class Template:
    """The template process of one pool: started by the first `fork`, ended by `close` or `release`."""

    def __init__(
        self, command: Sequence[str], *, on_start: Callable[[int, float], None] | None = None
    ) -> None:
        self.command = list(command)
        self.on_start = on_start  # told (pid, seconds to ready) of each template started
        self._lock = threading.Lock()  # one request and its answer at a time, from any lane
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._forked: set[int] = set()  # checkers not reaped yet

    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def fork(self) -> Forked:
        """A new checker (it says it is ready on its stdout first); TemplateFault when none can be made. A
        template found gone (killed, say) is replaced at once, not after the pool's wait between starts."""
        with self._lock:
            fresh = self._control is None
            control = self._control or self._start()
            answer, fds = self._ask_fork(control)
            if answer is None and not fresh:
                answer, fds = self._ask_fork(self._start())
            if answer is None:
                raise TemplateFault("its template process ended.")
            if "pid" not in answer or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                raise TemplateFault(str(answer.get("fault", f"its template answered {answer}.")))
            self._forked.add(answer["pid"])
            return Forked(self, answer["pid"], fds[0], fds[1])

    def _ask_fork(self, control: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
        """The template's answer to a fork and the descriptors it passed; None when it is gone (then
        stopped here)."""
        try:
            control.send(_message({"fork": True}))
            message, fds, _, _ = socket.recv_fds(control, MESSAGE_BYTES, 2)
        except OSError:
            message, fds = b"", []
        if not message:
            for fd in fds:
                os.close(fd)
            self._stop()
            return None, []
        return json.loads(message), fds

    def reap(self, pid: int) -> tuple[int | None, bool]:
        """The checker's exit code once it has ended (its pid given back), None while it runs; and whether
        it ended because its template did (then killed with it: PR_SET_PDEATHSIG)."""
        with self._lock:
            if pid not in self._forked:  # its template was stopped or found gone since
                return -signal.SIGKILL, True
            message = b""
            if self._control is not None:
                try:
                    self._control.send(_message({"reap": pid}))
                    message = self._control.recv(MESSAGE_BYTES)
                except OSError:
                    message = b""
            if not message:
                self._stop()
                return -signal.SIGKILL, True
            code: int | None = json.loads(message)["code"]
            if code is not None:
                self._forked.discard(pid)
            return code, False

    def alive(self, pid: int) -> bool:
        """`pid` is an unreaped checker of a running template: a signal to it reaches no other process."""
        with self._lock:
            return pid in self._forked and self._process is not None and self._process.poll() is None

    def release(self) -> None:
        """End the template when no checker of it is left (an idle pool gives its memory back)."""
        with self._lock:
            if not self._forked:
                self._stop()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> socket.socket:
        started = time.monotonic()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [*self.command, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
            )
        except OSError as exc:
            ours.close()
            fault = f"its template process could not be started: {exc.strerror or exc}."
            raise TemplateFault(fault) from None
        finally:
            theirs.close()
        self._process, self._control = process, ours
        ours.settimeout(START_LIMIT_SECONDS)
        try:
            message = ours.recv(MESSAGE_BYTES)
        except OSError:
            message = b""
        answer = _greeting(message)
        if answer is not None:
            self._stop()
            raise TemplateFault(answer)
        ours.settimeout(ANSWER_LIMIT_SECONDS)
        if self.on_start is not None:
            self.on_start(process.pid, round(time.monotonic() - started, 3))
        return ours

    def _stop(self) -> None:
        """Close its input (it ends, and any checker of it with it) and wait for it."""
        control, process = self._control, self._process
        self._control = self._process = None
        self._forked.clear()
        if control is not None:
            control.close()
        if process is not None:
            try:
                process.wait(timeout=ANSWER_LIMIT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _greeting(message: bytes) -> str | None:
    """None when the template said it is ready, else the fault in words."""
    if not message:
        return "its template process ended before it was ready."
    try:
        return child.greeting_fault(message)
    except ValueError:
        return f"its template's first message was not its greeting: {message[:80]!r}."


class Forked:
    """A checker forked from a template, handled like a `subprocess.Popen` by the pool's lanes."""

    def __init__(self, template: Template, pid: int, requests: int, answers: int) -> None:
        self.template = template
        self.pid = pid
        self.stdin: IO[bytes] | None = open(requests, "wb", buffering=0)  # noqa: SIM115  # closed by the lane
        self.stdout: IO[bytes] | None = open(answers, "rb", buffering=0)  # noqa: SIM115  # closed by the lane
        for fd in (requests, answers):
            os.set_inheritable(fd, False)  # passed without O_CLOEXEC: no other child of the daemon gets them
        self.returncode: int | None = None
        self.orphaned = False  # it ended because its template did

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode, self.orphaned = self.template.reap(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, asked of the template until it has ended (only its parent can wait for it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"checker {self.pid}", timeout or 0.0)
            time.sleep(REAP_STEP_SECONDS)
        return code

    def kill(self) -> None:
        if self.returncode is None and self.template.alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # as a checker does: no teardown of the libraries' objects
