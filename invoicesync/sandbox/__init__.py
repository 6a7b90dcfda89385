"""sandbox (shell): the built-in Octopia and Kaufland simulators, a real HTTP server on a loopback port.

Tests, `base_url: sandbox` and `invoicesync sandbox` all use it:

```python
with Sandbox.start(SandboxOptions(orders=frozenset({"A1B2C3"}), processing_seconds=0.2)) as sandbox:
    sandbox.base_url      # http://127.0.0.1:PORT/seller/v2
    sandbox.token_url     # http://127.0.0.1:PORT/auth/realms/maas/protocol/openid-connect/token
    sandbox.documents("A1B2C3")
```

It implements octopia.md "Shapes the sandbox implements": `server` (threads, sockets, writing answers),
`api` (routes, token and seller checks, faults: request in, response out), `multipart` (strict, streaming
body parsing), `checks` (per-file verdicts), `imports` (imports progressing with the clock, attached
documents), `state` (options, tokens, fault draws, counters); `kaufland` and `kaufland_store` are the
Kaufland simulator under `kaufland_url` (kaufland.md: signed calls, invoices added per order). The same
data the methods below return is served without auth at `GET /_sandbox/orders/{orderId}`,
`/_sandbox/received`, `/_sandbox/stats` and `/kaufland/_sandbox/orders`.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from invoicesync.sandbox.api import (
    API,
    ROUTE_BULK,
    ROUTE_GET,
    ROUTE_LIST,
    ROUTE_ORDER,
    ROUTE_TOKEN,
    TOKEN_PATH,
)
from invoicesync.sandbox.kaufland import KAUFLAND_API
from invoicesync.sandbox.options import DEFAULT_OPTIONS, SandboxOptions
from invoicesync.sandbox.server import SandboxHTTPServer
from invoicesync.sandbox.state import SandboxState

__all__ = [
    "ROUTE_BULK",
    "ROUTE_GET",
    "ROUTE_LIST",
    "ROUTE_ORDER",
    "ROUTE_TOKEN",
    "Sandbox",
    "SandboxOptions",
]


class Sandbox:
    """A running sandbox; `start` it, use it, `stop` it (or use it as a context manager)."""

    def __init__(self, server: SandboxHTTPServer, state: SandboxState) -> None:
        self._server = server
        self._state = state
        host, port = server.server_address[:2]
        origin = f"http://{host!s}:{port}"
        self.base_url = origin + API
        self.token_url = origin + TOKEN_PATH
        self.kaufland_url = origin + KAUFLAND_API
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
        )

    @classmethod
    def start(
        cls, options: SandboxOptions = DEFAULT_OPTIONS, *, host: str = "127.0.0.1", port: int = 0
    ) -> Sandbox:
        state = SandboxState(options)
        sandbox = cls(SandboxHTTPServer((host, port), state), state)
        sandbox._thread.start()
        return sandbox

    def stop(self) -> None:
        """Stop serving, cut open connections and wake slowed answers; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Block until `stop()` is called (from another thread) or Ctrl-C, then stop."""
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def set_options(self, options: SandboxOptions) -> None:
        """Change faults or credentials while running; imports and tokens are kept."""
        self._state.set_options(options)

    @property
    def options(self) -> SandboxOptions:
        return self._state.options

    def documents(self, order_id: str) -> list[dict[str, Any]]:
        """What is attached to the order now: [{"fileName", "sha256", "size", "importId"}]."""
        return self._state.store.documents(order_id)

    def received(self) -> list[dict[str, Any]]:
        """Every file received in accepted uploads, in order, ZIP entries one row each."""
        return self._state.store.received()

    def kaufland_invoices(self, order_id: str) -> list[dict[str, Any]]:
        """The Kaufland invoices an order holds now, with the sandbox's own `sha256` and `size` of each."""
        return self._state.kaufland.invoices(order_id)

    def kaufland_orders(self) -> dict[str, list[dict[str, Any]]]:
        return self._state.kaufland.all_orders()

    def issued(self) -> list[dict[str, Any]]:
        """Every invoice the simulated Octopia issued to the seller: [{"invoiceId", "issuedAt", "sha256",
        "size"}], oldest first (what a complete inbox holds)."""
        return self._state.issued.listed()

    def issue_cycle(self) -> list[str]:
        """Octopia issues one more billing cycle now; returns its invoice ids."""
        return self._state.issued.new_cycle()

    def kaufland_issue(self, order_id: str) -> dict[str, Any]:
        """Kaufland issues one more deemed-supplier invoice on `order_id` (with its `sha256`)."""
        return self._state.kaufland.add_deemed(order_id, self.kaufland_url.removesuffix(KAUFLAND_API))

    def stats(self) -> dict[str, Any]:
        """{"token_requests": n, "requests": {route: n}, "faults": {kind: n}, "imports": n}."""
        return self._state.stats()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
