"""marketplaces (shell): the one small interface every marketplace adapter implements.

Two shapes exist and both fit without special cases in the service loop:

- asynchronous (Octopia): `submit` answers with an import whose snapshot is still `Running`; the
  service then calls `poll` until `lifecycle.advance` says the import is finished;
- synchronous (Kaufland): `submit` answers with a snapshot that is already terminal, so the very first
  `advance` finishes it.

`prepare` is called once before a batch's first upload; what it returns is journaled with the batch and
handed back in `Batch.prepared` (Kaufland notes the invoices an order already holds, to settle a lost
answer against them; Octopia needs nothing).

Every method raises only from `invoicesync.errors`: `TransientError` (wait and repeat),
`RejectedError` (the request was refused: its files fail with `Rejected`), `UnknownOutcome` (the
answer to an upload was lost: call `find_lost` before sending again) and `OutboxBlocked`
(credentials or seller refused).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from invoicesync.model import Batch, ImportSnapshot, Submission


class Marketplace(Protocol):
    name: str  # "octopia", "kaufland": written into reports
    # called whenever a request moves bytes: the service feeds systemd's watchdog with it, since one
    # upload on a slow link may outlast WatchdogSec
    progress: Callable[[], None]
    # `prepare` asks the marketplace something (Kaufland reads the order): it runs beside the loop, like an
    # upload. False: it only computes, and the loop calls it on its way to the upload.
    asks_before_upload: bool

    def prepare(self, batch: Batch) -> dict[str, Any]:
        """What to know before the first upload (JSON-able; journaled). May refuse: RejectedError."""
        ...

    def submit(self, batch: Batch) -> Submission:
        """Send the batch once. Never retried blindly after the bytes left."""
        ...

    def poll(self, import_id: str, batch: Batch | None = None) -> ImportSnapshot:
        """The import as it stands now (safe to repeat); `batch` is the batch it came from."""
        ...

    def find_lost(self, batch: Batch, *, sent_after: datetime) -> Submission | None:
        """Was this batch received after all? Looks for its `bundle_name` among imports created
        since `sent_after` (minus a margin). None only when it is surely absent."""
        ...

    def check_online(self) -> None:
        """Get a token: raises OutboxBlocked for refused credentials, TransientError otherwise."""
        ...

    def close(self) -> None: ...
