"""Issue 18: the inbox against both built-in sandboxes over loopback (real HTTP, real folders, the real
journal): every invoice issued since `since` arrives once; a second pass finds none new; a new cycle
brings only the new ones; 30 % faults and downloads cut half-way still give each invoice exactly once and
no partial file; a file moved away is not fetched again unless asked; Kaufland's url token is nowhere."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml
from structlog.testing import capture_logs

from invoicesync.config import OutboxSettings, load_config
from invoicesync.inbox.fetch import PassResult
from invoicesync.inbox.runner import run_once
from invoicesync.marketplaces.issued import ShapeChanged
from invoicesync.marketplaces.octopia import OctopiaMarketplace
from invoicesync.sandbox import Sandbox, SandboxOptions

SINCE = date(2026, 9, 1)
DEEMED = ("MXE5BY1", "MXE5BY2", "MXE5BY3")
FAULTS = {"error_rate": 0.3, "drop_after_accept_rate": 0.3, "seed": 18}


def outbox(tmp_path: Path, marketplace: str) -> OutboxSettings:
    root = tmp_path / "shop"
    root.mkdir(exist_ok=True)
    box: dict[str, Any] = {
        "name": "shop",
        "root": str(root),
        "marketplace": marketplace,
        "inbox": {"enabled": True, "since": SINCE.isoformat()},
    }
    if marketplace == "kaufland":
        box["kaufland"] = {"base_url": "sandbox", "client_key": "k", "secret_key": "kaufland-secret"}
    else:
        box["octopia"] = {"base_url": "sandbox", "seller_id": "98979", "client_id": "c", "client_secret": "s"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "outboxes": [box]}))
    config = load_config(path)
    config.state_dir.mkdir(exist_ok=True)
    return config.outboxes[0]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox.start(SandboxOptions(deemed_supplier_orders=frozenset(DEEMED))) as running:
        yield running


def one_pass(box: OutboxSettings, sandbox: Sandbox, **kwargs: Any) -> PassResult:
    result = run_once(box, box.root.parent / "state", sandbox, structlog.get_logger("test"), **kwargs)
    assert result is not None
    return result


def inbox_files(box: OutboxSettings) -> dict[str, str]:
    """PDF name -> SHA-256 of what is in inbox/ (and nothing half-written beside them)."""
    folder = box.root / "inbox"
    names = sorted(path.name for path in folder.iterdir())
    assert [name for name in names if name.startswith(".")] == []
    pdfs = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in names
        if name.endswith(".pdf")
    }
    assert sorted(names) == sorted([*pdfs, *(f"{name}.json" for name in pdfs)])
    return pdfs


def octopia_expected(sandbox: Sandbox) -> dict[str, str]:
    return {
        f"octopia-{invoice['invoiceId']}.pdf": invoice["sha256"]
        for invoice in sandbox.issued()
        if invoice["issuedAt"] >= SINCE.isoformat()
    }


def kaufland_expected(sandbox: Sandbox) -> dict[str, str]:
    return {
        f"{order}-{invoice['id_invoice']}.pdf": invoice["sha256"]
        for order, invoices in sandbox.kaufland_orders().items()
        for invoice in invoices
        if invoice["is_marketplace_deemed_supplier"]
    }


def test_octopia_first_pass_fetches_all_since_a_second_none_a_new_cycle_only_its_own(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    box = outbox(tmp_path, "octopia")
    expected = octopia_expected(sandbox)
    assert len(expected) >= 18  # three cycles a month since September, two invoices each
    first = one_pass(box, sandbox)
    assert first.complete and first.error is None
    assert (first.counts.found, first.counts.new, first.counts.fetched) == (len(expected),) * 3
    assert inbox_files(box) == expected
    sidecar = json.loads((box.root / "inbox" / next(iter(expected))).with_suffix(".pdf.json").read_text())
    assert sidecar["invoice_id"] and sidecar["marketplace"] == "octopia"
    assert [op["invoiceId"] for op in sidecar["marketplace_said"]["operations"]] == [
        sidecar["invoice_id"]
    ] * 2

    second = one_pass(box, sandbox)
    assert second.complete and (second.counts.new, second.counts.fetched) == (0, 0)

    new_ids = sandbox.issue_cycle()
    third = one_pass(box, sandbox)
    assert third.complete and (third.counts.new, third.counts.fetched) == (2, 2)
    assert set(inbox_files(box)) - set(expected) == {f"octopia-{invoice_id}.pdf" for invoice_id in new_ids}


def test_kaufland_fetches_only_its_own_deemed_supplier_invoices_and_never_shows_the_token(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    box = outbox(tmp_path, "kaufland")
    with capture_logs() as logs:
        first = one_pass(box, sandbox)
        sandbox.kaufland_issue("MXE5BY4")  # Kaufland invoices one more order: the next pass fetches it alone
        second = one_pass(box, sandbox)
    expected = kaufland_expected(sandbox)
    assert first.complete and first.counts.fetched == len(DEEMED)
    assert second.complete and (second.counts.new, second.counts.fetched) == (1, 1)
    assert inbox_files(box) == expected and len(expected) == len(DEEMED) + 1
    tokens = [
        invoice["url"].split("access_token=")[1]
        for invoices in sandbox.kaufland_orders().values()
        for invoice in invoices
    ]
    written = [path.read_bytes() for path in (box.root / "inbox").iterdir()]
    written += [path.read_bytes() for path in (tmp_path / "state").iterdir() if path.is_file()]
    shown = json.dumps(logs, default=str)
    for token in tokens:
        assert token not in shown and all(token.encode() not in data for data in written)


@pytest.mark.parametrize("marketplace", ["octopia", "kaufland"])
def test_faults_and_cut_downloads_still_give_each_invoice_exactly_once(
    tmp_path: Path, sandbox: Sandbox, marketplace: str
) -> None:
    sandbox.set_options(SandboxOptions(deemed_supplier_orders=frozenset(DEEMED), **FAULTS))
    box = outbox(tmp_path, marketplace)
    results = []
    for _ in range(20):  # a pass repeats what failed; each is bounded by the test mode's three attempts
        results.append(one_pass(box, sandbox))
        if results[-1].complete:
            break
    assert results[-1].complete, results
    stats = sandbox.stats()
    assert stats["faults"].get("download_cut", 0) > 0 and sum(stats["faults"].values()) > 5
    expected = octopia_expected(sandbox) if marketplace == "octopia" else kaufland_expected(sandbox)
    assert inbox_files(box) == expected
    assert sum(result.counts.fetched for result in results) == len(expected)  # none fetched twice
    assert sum(result.counts.retries for result in results) > 0


def test_a_file_moved_away_is_not_fetched_again_unless_asked(tmp_path: Path, sandbox: Sandbox) -> None:
    box = outbox(tmp_path, "octopia")
    assert one_pass(box, sandbox).complete
    taken = sorted((box.root / "inbox").glob("*.pdf"))[0]
    elsewhere = tmp_path / "accounting"
    elsewhere.mkdir()
    taken.rename(elsewhere / taken.name)
    taken.with_suffix(".pdf.json").rename(elsewhere / f"{taken.name}.json")
    again = one_pass(box, sandbox, since=SINCE)
    assert again.complete and again.counts.fetched == 0 and not taken.exists()
    invoice_id = taken.stem.removeprefix("octopia-")
    refetched = one_pass(box, sandbox, refetch=invoice_id)
    assert refetched.complete and refetched.counts.fetched == 1 and taken.exists()


def test_a_crash_after_the_rename_is_adopted_not_fetched_twice(tmp_path: Path, sandbox: Sandbox) -> None:
    """The journal never heard of a file that is in place (a crash between the rename and the commit): the
    next pass finds it by its sidecar and records it, without downloading it again."""
    box = outbox(tmp_path, "octopia")
    assert one_pass(box, sandbox).complete
    with sqlite3.connect(tmp_path / "state" / "inbox.sqlite3") as db:
        db.execute("UPDATE invoices SET state = 'found' WHERE invoice_id LIKE 'COM%'")
        db.execute("UPDATE passes SET complete = 0")
    before = sandbox.stats()["requests"].get("GET /invoices/{invoiceId}/documents", 0)
    with capture_logs() as logs:
        result = one_pass(box, sandbox)
    assert result.complete and result.counts.fetched > 0
    assert sandbox.stats()["requests"].get("GET /invoices/{invoiceId}/documents", 0) == before
    assert {entry["event"] for entry in logs} >= {"inbox_invoice_adopted"}


def test_an_answer_of_another_shape_is_a_loud_error_not_an_empty_inbox() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={"financialReport": {"lines": []}})

    market = OctopiaMarketplace(
        base_url="https://api.example.test/seller/v2",
        token_url="https://auth.example.test/token",
        seller_id="98979",
        client_id="c",
        read_secret=lambda: "s",
        transport=httpx.MockTransport(answer),
    )
    inbox = market.inbox()
    with pytest.raises(ShapeChanged, match="holds no list of operations") as raised:
        inbox.issued(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert b"financialReport" in raised.value.raw


def test_an_inbox_that_is_a_link_is_not_written_through(tmp_path: Path, sandbox: Sandbox) -> None:
    box = outbox(tmp_path, "octopia")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (box.root / "inbox").symlink_to(elsewhere)
    result = one_pass(box, sandbox)
    assert not result.complete and result.error is not None and "symbolic link" in result.error
    assert list(elsewhere.iterdir()) == []
