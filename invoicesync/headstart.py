"""headstart (shell): what `run` and `once` can do before the service's modules have loaded.

Loading the service (HTTP client, marketplaces, journal, sandbox) takes about 0.3 s of one CPU, and a
month-end backlog used to wait that long before its first look at outbox/ began its settle window, then
as long again for the content checkers to start. `begin` runs as soon as the configuration is read: it
looks at each outbox once, and when a file is waiting it starts the checkers, whose start-up (PDFium,
lxml, the UBL schemas) then runs on the other CPUs while this process loads the rest. The service takes
both over (`Service(head_start=...)`): the looks as each intake's first observations, the checkers as its
pool. A look is only an observation: a file is still ready only once it is unchanged across the daemon's
own looks spanning `settle_seconds`, and nothing is claimed or opened here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from invoicesync.checks.pool import Checkers
from invoicesync.config import Config
from invoicesync.outbox import Folders, this_host
from invoicesync.settle import Kind, Seen


@dataclass
class HeadStart:
    checkers: Checkers
    first_looks: dict[Path, dict[str, Seen]] = field(default_factory=dict)  # outbox/ -> what it held

    def first_look(self, outbox: Path) -> dict[str, Seen]:
        """What `outbox` held at the first look, handed over once (a reload starts from its own look)."""
        return self.first_looks.pop(outbox, {})


def begin(config: Config, *, monotonic: Callable[[], float] = time.monotonic) -> HeadStart:
    head_start = HeadStart(Checkers(workers=config.checkers, log=structlog.get_logger("invoicesync")))
    for box in config.outboxes:
        folders = Folders(box.root, this_host(), ignore=box.files.ignore)
        try:
            listing, _ = folders.scan()  # sub-folders are said by the intake's own first look
        except OSError:  # a missing or unusable root: the service's health check says what is wrong
            continue
        now = monotonic()
        head_start.first_looks[folders.outbox] = {name: Seen(stat, now) for name, stat in listing.items()}
    waiting = (
        seen.stat.kind is Kind.FILE and seen.stat.size > 0
        for look in head_start.first_looks.values()
        for seen in look.values()
    )
    if any(waiting):
        head_start.checkers.warm()
    return head_start
