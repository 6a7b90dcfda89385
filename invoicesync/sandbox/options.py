"""sandbox.options (shell): what a sandbox is started with: the orders it knows, the credentials it accepts
and the faults it injects (the configuration's `sandbox` section, or `invoicesync sandbox` flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    orders: frozenset[str] | None = None  # None = every syntactically valid order exists
    processing_seconds: float = 2.0  # how long an import stays Running
    client_id: str | None = None  # expected credentials; None = accept any non-empty
    client_secret: str | None = None
    seller_id: str | None = None  # expected SellerId header; None = any of [A-Za-z0-9_-]{1,64}
    token_ttl_seconds: int = 7200  # expires_in of issued tokens; tokens really expire after it
    error_rate: float = 0.0  # share of API calls answered 500/503 (half of 503s empty) before doing anything
    rate_limit_rate: float = 0.0  # share answered 429 + Retry-After (seconds and HTTP-date forms alternate)
    retry_after_seconds: float = 1.0
    slow_rate: float = 0.0  # share of answers delayed by slow_seconds
    slow_seconds: float = 2.0
    drop_after_accept_rate: float = 0.0  # share of accepted uploads: import created, then no answer at all
    list_delay_seconds: float = 0.0  # an import is known (listed, found by id) only this long after it began
    refuse_tokens: bool = False  # token endpoint answers 401 to everyone
    max_files_per_request: int = 1000  # more (ZIP entries counted one by one) -> 400 with errors.files
    kaufland_client_key: str | None = None  # expected Shop-Client-Key; None = any
    kaufland_secret_key: str | None = None  # signatures are verified with it; None = not verified
    deemed_supplier_orders: frozenset[str] = frozenset()  # orders Kaufland invoices itself
    kaufland_rate_limit: int = 111  # calls per second, all endpoints together; more -> 429
    seed: int | None = None  # for reproducible fault draws


DEFAULT_OPTIONS = SandboxOptions()
