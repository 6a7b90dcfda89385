"""wiring (shell): an outbox's settings -> the marketplace client it talks to, and the built-in sandbox's
options from the configuration. The one place that knows which adapter serves which `marketplace:`.
"""

from __future__ import annotations

from invoicesync.config import SANDBOX, Config, OutboxSettings
from invoicesync.delivery import LOST_GRACE_SECONDS, Limits
from invoicesync.errors import ServiceError
from invoicesync.marketplaces import Marketplace
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.sandbox import Sandbox, SandboxOptions

# The built-in sandbox lists an import before it answers the upload (even a dropped or slowed answer),
# so an unanswered upload absent from its list is surely absent at once; the real marketplace gets time.
SANDBOX_LOST_GRACE_SECONDS = 1.0


def sandbox_options(config: Config) -> SandboxOptions:
    """The `sandbox` section as the sandbox's options: each fault key is the option of the same name."""
    box = config.sandbox
    return SandboxOptions(
        orders=box.orders,
        processing_seconds=box.processing_seconds,
        client_id=box.client_id,
        client_secret=box.client_secret,
        seller_id=box.seller_id,
        **dict(box.faults),
    )


def make_marketplace(box: OutboxSettings, sandbox: Sandbox | None) -> Marketplace:
    """The client for `box`'s marketplace (the running built-in sandbox for `base_url: sandbox`)."""
    settings = box.octopia
    if settings.base_url == SANDBOX:
        if sandbox is None:
            raise ServiceError(f"Outbox {box.name!r} uses the sandbox, but it is not running.")
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


def destination_of(box: OutboxSettings) -> str:
    """Where an outbox's files go, as journaled with each batch: its marketplace, endpoint and seller."""
    where = "the built-in sandbox" if box.octopia.base_url == SANDBOX else box.octopia.base_url
    return f"{box.marketplace} {where}, seller {box.octopia.seller_id}"


def limits_of(box: OutboxSettings) -> Limits:
    """An outbox's batching and polling settings as delivery's limits."""
    return Limits(
        max_files=box.batch.max_files,
        max_bytes=box.batch.max_bytes,
        max_wait_seconds=box.batch.max_wait_seconds,
        poll_first_seconds=box.poll.first_seconds,
        poll_max_seconds=box.poll.max_seconds,
        give_up_after_seconds=box.poll.give_up_after_seconds,
        lost_grace_seconds=SANDBOX_LOST_GRACE_SECONDS
        if box.octopia.base_url == SANDBOX
        else LOST_GRACE_SECONDS,
    )
