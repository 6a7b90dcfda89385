"""Issue 18: the daemon (`run`) passes the inbox beside its outbox: the invoices the built-in sandbox issued
since `since` arrive in inbox/ without anyone asking, `status` shows the pass, SIGTERM ends it cleanly; an
outbox without `inbox:` gets no inbox/ folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.harness import write_config

# cycles on the 9th, 19th and 29th: September to November 2026 are nine, two invoices each
SINCE, AT_LEAST = "2026-09-01", 18


def test_the_daemon_fetches_the_inbox_and_status_shows_the_pass(
    tmp_path: Path, start_daemon: Callable[[Path], Daemon]
) -> None:
    config = write_config(
        tmp_path, ("shop", "plain"), outbox_overrides={"inbox": {"enabled": True, "since": SINCE}}
    )
    document = yaml.safe_load(config.read_text())
    del document["outboxes"][1]["inbox"]  # only the first outbox has an inbox
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    daemon = start_daemon(config)
    inbox = tmp_path / "shop" / "inbox"
    wait_for(
        lambda: "inbox_pass_finished" in daemon.output(),
        timeout_seconds=60,
        what="an inbox pass in the daemon",
    )
    pdfs = sorted(path.name for path in inbox.glob("*.pdf"))
    assert len(pdfs) >= AT_LEAST and all(name.startswith("octopia-") for name in pdfs)
    assert not (tmp_path / "plain" / "inbox").exists()
    status = invoicesync("status", "-c", str(config), "--json", cwd=tmp_path)
    rows = {row["outbox"]: row for row in json.loads(status.stdout)["outboxes"]}
    assert rows["shop"]["inbox"]["stored"] == len(pdfs) and rows["plain"]["inbox"] is None
    assert rows["shop"]["inbox"]["last_pass"]["complete"] is True
    assert daemon.terminate() == 0
