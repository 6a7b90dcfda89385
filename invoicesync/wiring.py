"""wiring (shell): an outbox's settings -> the marketplace client it talks to, and the built-in sandbox's
options from the configuration. The one place that knows which adapter serves which `marketplace:`.
"""

from __future__ import annotations

from invoicesync.checks.content import Rules, rules_for
from invoicesync.config import Config, OctopiaSettings, OutboxSettings
from invoicesync.delivery import LOST_GRACE_SECONDS, Limits
from invoicesync.errors import ServiceError
from invoicesync.marketplaces import Marketplace
from invoicesync.marketplaces.kaufland import ACCEPTED_KINDS as KAUFLAND_KINDS
from invoicesync.marketplaces.kaufland import LOST_GRACE_SECONDS as KAUFLAND_LOST_GRACE_SECONDS
from invoicesync.marketplaces.kaufland import KauflandMarketplace
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.sandbox import Sandbox, SandboxOptions

# The built-in sandbox lists an import before it answers the upload (even a dropped or slowed answer),
# so an unanswered upload absent from its list is surely absent at once; the real marketplace gets time.
SANDBOX_LOST_GRACE_SECONDS = 1.0
# Kaufland uploads of one outbox in flight at once: a wave's journal steps are one commit each, so a wide
# wave keeps the requests flowing at the rate limit (which every call still waits for).
PARALLEL_KAUFLAND_UPLOADS = 64


def sandbox_options(config: Config) -> SandboxOptions:
    """The `sandbox` section as the sandbox's options: each fault key is the option of the same name."""
    box = config.sandbox
    return SandboxOptions(
        orders=box.orders,
        processing_seconds=box.processing_seconds,
        client_id=box.client_id,
        client_secret=box.client_secret,
        seller_id=box.seller_id,
        kaufland_client_key=box.kaufland.client_key,
        kaufland_secret_key=box.kaufland.secret_key,
        deemed_supplier_orders=box.kaufland.deemed_supplier_orders,
        kaufland_rate_limit=box.kaufland.max_requests_per_second,
        **dict(box.faults),
    )


def make_marketplace(box: OutboxSettings, sandbox: Sandbox | None) -> Marketplace:
    """The client for `box`'s marketplace (the running built-in sandbox for `base_url: sandbox`)."""
    if box.uses_sandbox and sandbox is None:
        raise ServiceError(f"Outbox {box.name!r} uses the sandbox, but it is not running.")
    if box.kaufland is not None:
        kaufland = box.kaufland
        return KauflandMarketplace(
            base_url=sandbox.kaufland_url if sandbox is not None and box.uses_sandbox else kaufland.base_url,
            client_key=kaufland.client_key,
            read_secret=kaufland.read_secret,
            user_agent=kaufland.user_agent,
            corrections=kaufland.corrections,
            max_requests_per_second=kaufland.max_requests_per_second,
        )
    settings = _octopia(box)
    if sandbox is not None and box.uses_sandbox:
        base_url, token_url = sandbox.base_url, sandbox.token_url
    else:
        base_url, token_url = settings.base_url, settings.token_url or ""
    return OctopiaMarketplace(
        base_url=base_url,
        token_url=token_url,
        seller_id=settings.seller_id,
        client_id=settings.client_id,
        read_secret=settings.read_secret,
    )


def _octopia(box: OutboxSettings) -> OctopiaSettings:
    assert box.octopia is not None  # an outbox has the section of its marketplace (config validates it)
    return box.octopia


def destination_of(box: OutboxSettings) -> str:
    """Where an outbox's files go, as journaled with each batch: its marketplace, endpoint and seller (for
    Kaufland, the client key: one per seller)."""
    where = "the built-in sandbox" if box.uses_sandbox else box.base_url
    account = (
        f"client key {box.kaufland.client_key}"
        if box.kaufland is not None
        else f"seller {_octopia(box).seller_id}"
    )
    return f"{box.marketplace} {where}, {account}"


def rules_of(box: OutboxSettings) -> Rules:
    """An outbox's content rules, with the kinds of file its marketplace accepts."""
    accepted = KAUFLAND_KINDS if box.marketplace == "kaufland" else ("pdf", "xml")
    return rules_for(box.files.max_bytes, box.files.order_labels, accepted)


def limits_of(box: OutboxSettings) -> Limits:
    """An outbox's batching and polling settings as delivery's limits (a Kaufland outbox sends each file
    on its own, answered at once: its `batch:` and `poll:` do not apply)."""
    per_file = box.marketplace == "kaufland"
    return Limits(
        max_files=1 if per_file else box.batch.max_files,
        max_bytes=box.batch.max_bytes,
        max_wait_seconds=0.0 if per_file else box.batch.max_wait_seconds,
        poll_first_seconds=box.poll.first_seconds,
        poll_max_seconds=box.poll.max_seconds,
        give_up_after_seconds=box.poll.give_up_after_seconds,
        lost_grace_seconds=(
            SANDBOX_LOST_GRACE_SECONDS
            if box.uses_sandbox
            else KAUFLAND_LOST_GRACE_SECONDS
            if per_file
            else LOST_GRACE_SECONDS
        ),
        one_per_request=per_file,
        parallel_uploads=PARALLEL_KAUFLAND_UPLOADS if per_file else 1,
    )
