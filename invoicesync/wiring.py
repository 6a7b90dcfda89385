"""wiring (shell): an outbox's settings -> its parts: the marketplace client it talks to (the one place
that knows which adapter serves which `marketplace:`), its content rules and delivery limits, and the
journal, checks, intake, delivery, watcher and worker of its loop (`assemble`); the built-in sandbox's
options from the configuration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from invoicesync.checks.content import Rules, rules_for
from invoicesync.checks.pool import Checkers
from invoicesync.checks.queue import CheckQueue
from invoicesync.config import Config, OctopiaSettings, OutboxSettings
from invoicesync.delivery import LOST_GRACE_SECONDS, Delivery, Limits
from invoicesync.errors import ServiceError
from invoicesync.health import Health
from invoicesync.intake import Intake
from invoicesync.journal import Journal
from invoicesync.marketplaces import Marketplace
from invoicesync.marketplaces.kaufland import ACCEPTED_KINDS as KAUFLAND_KINDS
from invoicesync.marketplaces.kaufland import LOST_GRACE_SECONDS as KAUFLAND_LOST_GRACE_SECONDS
from invoicesync.marketplaces.kaufland import KauflandMarketplace
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.outbox import Folders
from invoicesync.sandbox import Sandbox, SandboxOptions
from invoicesync.settle import NOTHING_SEEN, Seen
from invoicesync.statedir import JOURNAL_NAME, last_error_before
from invoicesync.watching import Watcher
from invoicesync.worker import Worker

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
        parallel_uploads=PARALLEL_KAUFLAND_UPLOADS if per_file else 1,  # Octopia: one bulk import at a time
    )


@dataclass
class Loop:
    """One outbox's parts and the state its thread shares with the service's main thread."""

    worker: Worker
    marketplace: Marketplace
    journal: Journal
    watcher: Watcher
    wake: threading.Event = field(default_factory=threading.Event)
    changed: bool = False  # outbox/ changed (a watch event) since the last turn
    stop: threading.Event = field(default_factory=threading.Event)
    heartbeat: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None
    done: bool = False

    def folder_changed(self) -> None:
        self.changed = True
        self.wake.set()

    def beat(self) -> None:
        """The loop made headway (a turn, or a request moving bytes): the watchdog may be fed."""
        self.heartbeat = time.monotonic()


def assemble(
    box: OutboxSettings,
    folders: Folders,
    marketplace: Marketplace,
    *,
    state_dir: Path,
    checkers: Checkers,
    log: structlog.typing.FilteringBoundLogger,
    first_look: Mapping[str, Seen] | None = None,
) -> Loop:
    """The loop of one outbox: its journal connection, check queue, intake, delivery, watcher and worker,
    every clock the real one, every wake-up on the loop's event. `first_look`: what outbox/ held when the
    process started (`headstart`), the settle window's first observations."""
    journal = Journal(state_dir / JOURNAL_NAME)
    bundle_dir = state_dir / "bundles"
    bundle_dir.mkdir(parents=True, exist_ok=True)
    rules = rules_of(box)
    wake = threading.Event()
    queue = CheckQueue(
        checkers=checkers,
        order_pattern=box.files.order_id,
        rules=rules,
        check_seconds=box.files.check_seconds,
        monotonic=time.monotonic,
        log=log,
        on_checked=wake.set,
    )
    intake = Intake(
        outbox_name=box.name,
        folders=folders,
        journal=journal,
        rules=rules,
        settle_seconds=box.watch.settle_seconds,
        empty_after_seconds=box.files.empty_after_seconds,
        monotonic=time.monotonic,
        wall=time.time,
        log=log,
        queue=queue,
        seen=dict(first_look or NOTHING_SEEN),
    )
    delivery = Delivery(
        last_error=last_error_before(state_dir, box.name),
        outbox_name=box.name,
        destination=destination_of(box),
        folders=folders,
        journal=journal,
        marketplace=marketplace,
        limits=limits_of(box),
        bundle_dir=bundle_dir,
        wall=time.time,
        log=log,
        on_answer=wake.set,
    )
    watcher = Watcher(folders.outbox, mode=box.watch.mode, log=log)
    events = watcher.start()
    worker = Worker(
        name=box.name,
        folders=folders,
        journal=journal,
        intake=intake,
        delivery=delivery,
        marketplace_name=marketplace.name,
        monotonic=time.monotonic,
        wall=time.time,
        scan_interval_seconds=box.watch.rescan_seconds if events else box.watch.poll_seconds,
        settling_interval_seconds=box.watch.poll_seconds,
        health=Health(folders, state_dir, log),
    )
    loop = Loop(worker=worker, marketplace=marketplace, journal=journal, watcher=watcher, wake=wake)
    watcher.on_event = loop.folder_changed
    marketplace.progress = loop.beat  # an upload may outlast WatchdogSec on a slow link
    return loop
