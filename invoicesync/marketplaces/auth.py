"""marketplaces/auth (shell): OAuth2 client-credentials tokens as an httpx.Auth: fetch, cache, renew.

One cached token, renewed at age `expires_in - min(300, expires_in / 5)`, at most one request a minute
unless forced; a `401` forces one renewal (unless another request already renewed it) and one retry.
A token request answered 5xx or 429, or lost on the network, is repeated (stamina) before giving up.
The token and the secret never reach a log line or an exception message, and no exception raised here
chains to an httpx frame whose locals hold the form (structlog's dict tracebacks can show locals).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import httpx
import stamina
import structlog

from invoicesync.errors import OutboxBlocked, TransientError
from invoicesync.logs import remember_secret
from invoicesync.marketplaces.deadline import within
from invoicesync.marketplaces.http import Refused, json_body, read_within, retry_hook

log = structlog.get_logger(__name__)

REFUSED = (
    "Octopia refused the credentials for this outbox ({status}). Fix client_id or the secret; "
    "files wait in .processing/ until then."
)
DEFAULT_EXPIRES_IN = 300.0
MIN_SECONDS_BETWEEN_REQUESTS = 60.0
ATTEMPTS = 3  # one token request, retried on 5xx, 429 and network errors ...
TIMEOUT_SECONDS = 20.0  # ... within this; then the batch waits on the loop's timer
RETRY_AFTER_CAP_SECONDS = 10.0  # a longer Retry-After is handed to the loop's timer


class TokenAuth(httpx.Auth):
    requires_request_body = False  # a streamed upload stays streamed
    requires_response_body = False

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        read_secret: Callable[[], str],
        client: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
        deadline_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self._deadline_seconds = min(deadline_seconds, TIMEOUT_SECONDS)  # every try together
        self._token_url = token_url
        self._client_id = client_id
        self._read_secret = read_secret
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._generation = 0  # bumped per new token; compared instead of the token itself
        self._requested_at = -float("inf")
        self._renew_at = -float("inf")
        self.token_requests = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        generation = self._authorize(request, stale=None)
        response = yield request
        if response.status_code == 401:
            self._authorize(request, stale=generation)
            yield request

    def renew(self) -> None:
        """Fetch a new token now, whatever the cache holds (start-up check, credentials fixed)."""
        with self._lock:
            self._fetch()

    def _authorize(self, request: httpx.Request, *, stale: int | None) -> int:
        with self._lock:
            now = self._clock()
            due = now >= self._renew_at and now - self._requested_at >= MIN_SECONDS_BETWEEN_REQUESTS
            if self._token is None or due or stale == self._generation:
                self._fetch()
            request.headers["Authorization"] = f"Bearer {self._token}"
            return self._generation

    def _fetch(self) -> None:
        self.token_requests += 1
        self._requested_at = self._clock()
        failure: type[Exception] | None = None
        refused: Refused | None = None
        form = self._form()
        retrying = stamina.retry_context(  # a token request is safe to repeat: 5xx, 429, network
            on=retry_hook(cap_seconds=RETRY_AFTER_CAP_SECONDS, errors=(httpx.TransportError,)),
            attempts=ATTEMPTS,
            timeout=self._deadline_seconds,
        )
        deadline = self._clock() + self._deadline_seconds  # the whole exchange, however it trickles
        try:
            for attempt in retrying:
                with attempt:
                    asked = self._client.stream("POST", self._token_url, data=form, auth=httpx.Auth())
                    with within(max(0.0, deadline - self._clock())), asked as streamed:
                        response = read_within(streamed, deadline=deadline, clock=self._clock)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise Refused(response)
        except Refused as exc:
            refused = exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = type(exc)
        del form
        if refused is not None:  # raised outside `except`, as below
            raise TransientError(
                f"The Octopia token endpoint answered {refused.status_code}; will try again.",
                retry_after_seconds=refused.retry_after,
            )
        if failure is not None:  # raised outside `except`: nothing chains to httpx frames holding the form
            if issubclass(failure, httpx.UnsupportedProtocol | httpx.InvalidURL):
                raise OutboxBlocked(
                    f"The token_url {self._token_url!r} is not a usable http(s) URL. Fix token_url."
                )
            raise TransientError(
                f"Could not reach the Octopia token endpoint ({failure.__name__}); will try again."
            )
        status = response.status_code
        if status in (400, 401, 403):
            raise OutboxBlocked(REFUSED.format(status=status))
        body = json_body(response)
        token = body.get("access_token") if isinstance(body, dict) and status == 200 else None
        if not isinstance(token, str) or not token:
            raise TransientError(
                f"The Octopia token endpoint answered {status} without an access_token; check token_url "
                f"({self._token_url}) if this persists."
            )
        expires_in = _seconds(body.get("expires_in") if isinstance(body, dict) else None)
        remember_secret(token)
        self._token = token
        self._generation += 1
        self._renew_at = self._requested_at + expires_in - min(300.0, expires_in / 5)
        log.info("token_fetched", expires_in_seconds=expires_in, count=self.token_requests)

    def _form(self) -> dict[str, str]:
        try:
            secret = self._read_secret()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        else:
            remember_secret(secret)
            return {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": secret}
        raise OutboxBlocked(
            f"Could not read the Octopia client secret ({reason}); files wait until it is fixed."
        )


def _seconds(value: object) -> float:
    """`expires_in` as seconds: a positive number or numeric string, else the 300 s assumption."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return DEFAULT_EXPIRES_IN
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_EXPIRES_IN
    return seconds if 0 < seconds < float("inf") else DEFAULT_EXPIRES_IN
