"""marketplaces/deadline (shell): one deadline for a whole HTTP exchange, and a way to cut them all short.

httpx bounds each socket operation, never the whole: a server that answers one byte every few seconds
(headers or body) holds a request for as long as it likes. Every connection is opened through
`DeadlineBackend`, whose streams give each socket operation at most what is left of the deadline set by
`within(seconds)` around the exchange, and never more than `SLICE_SECONDS` at a time, so that
`abort_all()` (the service is stopping) ends every exchange within a second.
"""

from __future__ import annotations

import contextvars
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

SLICE_SECONDS = 1.0  # the longest a socket operation blocks before the deadline and the stop are looked at

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
_stopping = threading.Event()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Everything sent and read inside the block ends within `seconds` (else httpx's timeouts)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def abort_all() -> None:
    """The process is stopping: every exchange in progress ends with a timeout within SLICE_SECONDS."""
    _stopping.set()


def resume_all() -> None:
    """A new start in the same process (tests, a service run again): exchanges may run again."""
    _stopping.clear()


def _read_in_slices(timeout: float | None, read: Callable[[float], bytes]) -> bytes:
    """A blocking socket `read` in slices until it returns, its own `timeout` passes, the deadline passes or
    the process stops (then httpcore.ReadTimeout, which httpx turns into its own)."""
    started = time.monotonic()
    while True:
        now = time.monotonic()
        left = [SLICE_SECONDS]
        if timeout is not None:
            left.append(started + timeout - now)
        deadline = _deadline.get()
        if deadline is not None:
            left.append(deadline - now)
        if _stopping.is_set() or min(left) <= 0:
            reason = "the service is stopping" if _stopping.is_set() else "the exchange ran out of its time"
            raise httpcore.ReadTimeout(reason)
        try:
            return read(min(left))
        except httpcore.ReadTimeout:
            continue


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _read_in_slices(timeout, lambda part: self._inner.read(max_bytes, part))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # a partial send cannot be repeated safely, so the write gets what is left of the deadline at once
        deadline = _deadline.get()
        if _stopping.is_set():
            raise httpcore.WriteTimeout("the service is stopping")
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.WriteTimeout("the exchange ran out of its time")
            timeout = left if timeout is None else min(timeout, left)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = _deadline.get()
        if deadline is not None:
            left = max(0.001, deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """An httpx transport whose connections obey `within` and `abort_all`."""
    # httpx's TLS defaults (certifi's CAs, or SSL_CERT_FILE/SSL_CERT_DIR), made once for the transport and
    # its rebuilt pool (loading the CAs costs 25-45 ms of CPU); a reload builds new transports, so CAs
    # updated on disk are read again then
    tls = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(limits=limits, verify=tls)
    # httpx has no setting for the network backend: its pool is rebuilt with ours (same TLS defaults)
    transport._pool = httpcore.ConnectionPool(  # the one way to give httpx a backend
        ssl_context=tls,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=DeadlineBackend(),
    )
    return transport
