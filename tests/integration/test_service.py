"""The whole pipeline in-process: real folders in tmp_path, the sandbox on loopback, `once` mode."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from invoicesync.service import Service
from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for
from tests.harness import drop, files_in, leftovers, load, report

KNOWN = [f"ORDER{n:04d}" for n in range(60)]


def run_once(config: object) -> dict[str, int]:
    return Service(config, once=True).run()  # type: ignore[arg-type]  # a loaded Config


def test_fifty_mixed_files_land_where_they_belong(tmp_path: Path) -> None:
    config = load(tmp_path, orders=KNOWN)
    root = tmp_path / "shop"
    expected: dict[str, tuple[str, str | None]] = {}
    for n in range(20):
        drop(root, f"{KNOWN[n]}.pdf", sample_pdf(KNOWN[n]))
        expected[f"{KNOWN[n]}.pdf"] = ("sent", None)
    for n in range(20, 35):
        drop(root, f"{KNOWN[n]}.xml", sample_ubl(KNOWN[n]))
        expected[f"{KNOWN[n]}.xml"] = ("sent", None)
    for n in range(5):
        drop(root, f"invoice {n}.pdf", sample_pdf("ORDER0000"))
        expected[f"invoice {n}.pdf"] = ("failed", "InvalidFileName")
    for n in range(5):
        name = f"UNKNOWN{n:04d}.pdf"
        drop(root, name, sample_pdf(f"UNKNOWN{n:04d}"))
        expected[name] = ("failed", "ImportFailed")
    for n in range(40, 45):
        drop(root, f"{KNOWN[n]}.pdf", b"this is not a pdf at all\n" * 10)
        expected[f"{KNOWN[n]}.pdf"] = ("failed", "InvalidPdf")

    tally = run_once(config)

    assert tally == {"sent": 35, "failed": 15, "in_flight": 0, "waiting": 0}
    assert leftovers(root) == []
    for name, (folder, code) in expected.items():
        document = report(root, folder, name)
        assert document["schema"] == "invoicesync.report/1"
        assert document["outcome"] == folder
        assert document["file"] == name
        assert (document["error"] or {}).get("code") == code, name
        assert document["hint"]
        assert code is None or document["error"]["message"]
        if folder == "sent":
            assert document["import_id"] and document["stage"] == "import"
    unknown = report(root, "failed", "UNKNOWN0000.pdf")
    assert unknown["error"]["marketplace_code"] == "OrderNotFound"
    assert "—" in unknown["error"]["detail"]  # the sandbox's words, verbatim


def test_partial_success_fails_only_the_refused_files(tmp_path: Path) -> None:
    config = load(tmp_path, orders=["GOOD0001"])
    root = tmp_path / "shop"
    drop(root, "GOOD0001.pdf", sample_pdf("GOOD0001"))
    drop(root, "BAD00001.pdf", sample_pdf("BAD00001"))
    run_once(config)
    good, bad = report(root, "sent", "GOOD0001.pdf"), report(root, "failed", "BAD00001.pdf")
    assert good["import_id"] == bad["import_id"]  # one bulk import, PartialSuccess
    assert files_in(root, "sent") == ["GOOD0001.pdf"] and files_in(root, "failed") == ["BAD00001.pdf"]


def test_two_outboxes_work_side_by_side(tmp_path: Path) -> None:
    config = load(tmp_path, outboxes=("cdiscount", "second"))
    drop(tmp_path / "cdiscount", "AAAA0001.pdf", sample_pdf("AAAA0001"))
    drop(tmp_path / "second", "BBBB0001.xml", sample_ubl("BBBB0001"))
    tally = run_once(config)
    assert tally["sent"] == 2
    assert report(tmp_path / "cdiscount", "sent", "AAAA0001.pdf")["outbox"] == "cdiscount"
    assert report(tmp_path / "second", "sent", "BBBB0001.xml")["outbox"] == "second"


def test_file_with_an_old_mtime_is_still_handled(tmp_path: Path) -> None:
    config = load(tmp_path)
    path = drop(tmp_path / "shop", "OLDF0001.pdf", sample_pdf("OLDF0001"))
    os.utime(path, (0, 0))  # copied in from an archive: 1970
    run_once(config)
    assert files_in(tmp_path / "shop", "sent") == ["OLDF0001.pdf"]


def test_taken_names_get_a_numbered_suffix_and_keep_their_order(tmp_path: Path) -> None:
    config = load(tmp_path, orders=["KEEP0001"])
    root = tmp_path / "shop"
    drop(root, "KEEP0001.pdf", sample_pdf("KEEP0001"))
    run_once(config)
    drop(root, "KEEP0001.pdf", sample_pdf("KEEP0001", text="corrected"))
    run_once(config)
    assert files_in(root, "sent") == ["KEEP0001 (2).pdf", "KEEP0001.pdf"]
    second = report(root, "sent", "KEEP0001 (2).pdf")
    assert second["file"] == "KEEP0001.pdf" and second["order_id"] == "KEEP0001"


def test_events_are_stable_names_with_flat_keys(tmp_path: Path) -> None:
    config = load(tmp_path)
    drop(tmp_path / "shop", "EVNT0001.pdf", sample_pdf("EVNT0001"))
    with capture_logs() as events:
        run_once(config)
    names = [e["event"] for e in events]
    for expected in ("file_claimed", "file_ready", "batch_uploaded", "import_finished", "file_finished"):
        assert expected in names
    uploaded = next(e for e in events if e["event"] == "batch_uploaded")
    assert uploaded["files"] == 1 and uploaded["import_id"]
    assert "s3cret-value-for-tests" not in json.dumps(events, default=str)


def test_sandbox_attached_what_was_sent(tmp_path: Path) -> None:
    """The receipt's import is the one the sandbox attached to the order."""
    from invoicesync.sandbox import Sandbox, SandboxOptions

    with Sandbox.start(
        SandboxOptions(
            processing_seconds=0.1,
            client_id="test-client",
            client_secret="s3cret-value-for-tests",
            seller_id="98979",
        )
    ) as sandbox:
        config = load(
            tmp_path,
            outbox_overrides={"octopia": {"base_url": sandbox.base_url, "token_url": sandbox.token_url}},
        )
        drop(tmp_path / "shop", "ATTA0001.pdf", sample_pdf("ATTA0001"))
        run_once(config)
        receipt = report(tmp_path / "shop", "sent", "ATTA0001.pdf")
        documents = httpx.get(sandbox.base_url.replace("/seller/v2", "/_sandbox/orders/ATTA0001")).json()
    assert [d["sha256"] for d in documents["documents"]] == [receipt["sha256"]]
    assert documents["documents"][0]["importId"] == receipt["import_id"]


def test_slowly_written_file_is_not_claimed_before_it_is_complete(tmp_path: Path) -> None:
    """Driven tick by tick with the worker's own clock: a file that grows keeps waiting."""
    config = load(tmp_path, outbox_overrides={"watch": {"settle_seconds": 5}})
    service = Service(config, once=True)
    clock = [1000.0]
    root = tmp_path / "shop"
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    service._sandbox = None
    from invoicesync.sandbox import Sandbox
    from invoicesync.wiring import sandbox_options

    with Sandbox.start(sandbox_options(config)) as sandbox:
        service._sandbox = sandbox
        loop = service._build(config.outboxes[0])
        try:
            worker = loop.worker
            worker.monotonic = worker.intake.monotonic = lambda: clock[0]
            data = sample_pdf("SLOW0001")
            target = root / "outbox" / "SLOW0001.pdf"
            for chunk_start in range(0, len(data), 200):
                with open(target, "ab") as stream:
                    stream.write(data[chunk_start : chunk_start + 200])
                worker.tick(woken=True)
                clock[0] += 3.0  # less than settle_seconds between two writes
                assert (root / "outbox" / "SLOW0001.pdf").exists(), "claimed while still growing"
            worker.tick(woken=True)
            clock[0] += 5.0
            worker.tick(woken=True, flush=True)
            assert not target.exists()

            def delivered() -> bool:
                worker.tick(flush=True)
                return files_in(root, "sent") == ["SLOW0001.pdf"]

            wait_for(delivered, timeout_seconds=20, what="SLOW0001.pdf delivered")
        finally:
            loop.watcher.stop()
            loop.marketplace.close()
            loop.journal.close()


@pytest.mark.parametrize("count", [200])
def test_once_on_two_hundred_files_finishes_every_one(tmp_path: Path, count: int) -> None:
    orders = [f"BULK{n:04d}" for n in range(count)]
    config = load(tmp_path, orders=orders[: count - 10])
    root = tmp_path / "shop"
    for n, order in enumerate(orders):
        drop(root, f"{order}.{'pdf' if n % 2 else 'xml'}", sample_pdf(order) if n % 2 else sample_ubl(order))
    tally = run_once(config)
    assert tally == {"sent": count - 10, "failed": 10, "in_flight": 0, "waiting": 0}
    assert len(files_in(root, "sent")) + len(files_in(root, "failed")) == count
    assert leftovers(root) == []
