"""sandbox.state (shell): what a running sandbox knows besides its imports: options, tokens, faults, counts.

Shared by every handler thread, so each method takes the lock. Fault draws come from one
`random.Random(seed)`: six numbers per request, whatever is decided, so a seeded run repeats.
"""

from __future__ import annotations

import hmac
import math
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from invoicesync.sandbox.imports import ImportStore
from invoicesync.sandbox.issued import IssuedStore
from invoicesync.sandbox.kaufland_store import KauflandStore

if TYPE_CHECKING:
    from invoicesync.sandbox.options import SandboxOptions

SERVER_ERROR = "server_error"  # 500, problem+json
UNAVAILABLE = "unavailable"  # 503, problem+json
UNAVAILABLE_EMPTY = "unavailable_empty"  # 503, empty body
RATE_LIMIT = "rate_limit"  # 429 + Retry-After
SLOW = "slow"
DROP_AFTER_ACCEPT = "drop_after_accept"
DOWNLOAD_CUT = "download_cut"  # a download's connection ended half-way (drop_after_accept_rate of downloads)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What one request suffers: an answer instead of the real one, a delay, a dropped connection."""

    answer: str | None = None
    slow: bool = False
    drop: bool = False


class SandboxState:
    """Options (swappable while running), issued tokens, the fault dice and the counters behind stats()."""

    def __init__(self, options: SandboxOptions) -> None:
        self._lock = threading.Lock()
        self._options = options
        self._rng = random.Random(options.seed)
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._token_requests = 0
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._rate_limits = 0
        self.store = ImportStore()
        self.kaufland = KauflandStore()
        self.issued = IssuedStore()
        self.stopping = threading.Event()

    @property
    def options(self) -> SandboxOptions:
        return self._options

    def set_options(self, options: SandboxOptions) -> None:
        with self._lock:
            if options.seed != self._options.seed:
                self._rng = random.Random(options.seed)
            self._options = options

    def count_request(self, route: str, *, token: bool = False) -> None:
        with self._lock:
            self._requests[route] += 1
            self._token_requests += token

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def draw_faults(self, *, upload: bool) -> FaultPlan:
        options = self._options
        with self._lock:
            error, which, empty, limited, slow, drop = [self._rng.random() for _ in range(6)]
        answer = None
        if error < options.error_rate:
            answer = SERVER_ERROR if which < 0.5 else UNAVAILABLE_EMPTY if empty < 0.5 else UNAVAILABLE
        elif limited < options.rate_limit_rate:
            answer = RATE_LIMIT
        plan = FaultPlan(answer, slow < options.slow_rate, upload and drop < options.drop_after_accept_rate)
        if answer is not None:
            self.count_fault(answer)
        if plan.slow:
            self.count_fault(SLOW)
        return plan

    def retry_after(self) -> str:
        """Alternately the seconds form and the HTTP-date form of Retry-After."""
        seconds = max(0.0, self._options.retry_after_seconds)
        with self._lock:
            self._rate_limits += 1
            as_date = self._rate_limits % 2 == 0
        if as_date:
            return formatdate(math.ceil(time.time() + seconds), usegmt=True)
        return str(math.ceil(seconds))

    def credentials_ok(self, client_id: str, client_secret: str) -> bool:
        options = self._options
        if not client_id or not client_secret:
            return False
        if options.client_id is not None and not _same(client_id, options.client_id):
            return False
        return options.client_secret is None or _same(client_secret, options.client_secret)

    def issue_token(self) -> tuple[str, int]:
        ttl = self._options.token_ttl_seconds
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._tokens = {known: expiry for known, expiry in self._tokens.items() if expiry > now}
            self._tokens[token] = now + ttl
        return token, ttl

    def token_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts: dict[str, Any] = {
                "token_requests": self._token_requests,
                "requests": dict(self._requests),
                "faults": dict(self._faults),
            }
        counts["imports"] = self.store.count()
        return counts


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
