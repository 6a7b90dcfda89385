"""A Kaufland outbox end to end: the real daemon (`once`, `run`) against a Kaufland simulator the test holds
on 127.0.0.1, so the test can ask which invoices each order holds."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from invoicesync.sandbox import Sandbox
from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for
from tests.e2e.conftest import Daemon, invoicesync
from tests.harness import drop, files_in, leftovers, report
from tests.integration.test_kaufland_contract import CLIENT_KEY, SECRET_KEY, kaufland_sandbox


def kaufland_config(tmp_path: Path, sandbox: Sandbox, **kaufland: Any) -> Path:
    """One Kaufland outbox, `shop` under tmp_path, talking to `sandbox`; fast settle and poll."""
    root = tmp_path / "shop"
    root.mkdir(exist_ok=True)
    settings = {
        "base_url": sandbox.kaufland_url,
        "client_key": CLIENT_KEY,
        "secret_key": SECRET_KEY,
        **kaufland,
    }
    if "secret_key_file" in kaufland:
        del settings["secret_key"]
    document = {
        "state_dir": str(tmp_path / "state"),
        "log": {"format": "json", "level": "info"},
        "outboxes": [
            {
                "name": "shop",
                "root": str(root),
                "marketplace": "kaufland",
                "kaufland": settings,
                "watch": {"mode": "poll", "settle_seconds": 0.2, "poll_seconds": 0.1},
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _ours(sandbox: Sandbox, order: str) -> list[dict[str, Any]]:
    return sandbox.kaufland_invoices(order)


@pytest.mark.timeout(300)
def test_faults_and_lost_answers_leave_each_order_with_exactly_one_invoice(tmp_path: Path) -> None:
    orders = [f"MFAULT{n:03d}" for n in range(40)]
    with kaufland_sandbox(
        orders=frozenset(orders),
        deemed_supplier_orders=frozenset({"MDEEMED1"}),
        error_rate=0.3,
        drop_after_accept_rate=0.3,
        retry_after_seconds=0,
        seed=11,
    ) as sandbox:
        config = kaufland_config(tmp_path, sandbox)
        root = tmp_path / "shop"
        for order in orders:
            drop(root, f"{order}.pdf", sample_pdf(order))
        drop(root, "MNOPE001.pdf", sample_pdf("MNOPE001"))  # an order Kaufland does not know
        drop(root, "MDEEMED1.pdf", sample_pdf("MDEEMED1"))  # Kaufland invoices the buyer itself
        drop(root, "MXML0001.xml", sample_ubl("MXML0001"))  # Kaufland takes PDF only
        result = invoicesync("once", "--wait", "240", "-c", str(config), cwd=tmp_path, timeout=280)
        assert result.returncode == 0, result.stderr[-3000:]
        held = {order: _ours(sandbox, order) for order in orders}
        faults = sandbox.stats()["faults"]
    assert faults.get("drop_after_accept", 0) >= 3 and faults.get("server_error", 0) >= 3, faults
    assert {order: len(invoices) for order, invoices in held.items() if len(invoices) != 1} == {}
    assert files_in(root, "sent") == sorted(f"{o}.pdf" for o in orders)
    codes = {
        name: report(root, "failed", name)["error"]["code"]
        for name in ("MNOPE001.pdf", "MDEEMED1.pdf", "MXML0001.xml")
    }
    assert codes == {
        "MNOPE001.pdf": "Rejected",
        "MDEEMED1.pdf": "DeemedSupplier",
        "MXML0001.xml": "UnsupportedType",
    }
    receipt = report(root, "sent", f"{orders[0]}.pdf")
    assert receipt["marketplace"] == "kaufland"
    assert receipt["import_id"] == str(held[orders[0]][0]["id_invoice"])
    assert receipt["marketplace_result"]["invoice_id"] == receipt["import_id"]
    assert "access_token" not in json.dumps(receipt) and "lost_upload_found" in result.stderr
    assert leftovers(root) == []


@pytest.mark.parametrize("corrections", ["replace", "keep"])
def test_a_file_and_its_correction_dropped_together(tmp_path: Path, corrections: str) -> None:
    first, second = sample_pdf("MCORR01", text="Invoice v1"), sample_pdf("MCORR01", text="Invoice v2")
    with kaufland_sandbox() as sandbox:
        config = kaufland_config(tmp_path, sandbox, corrections=corrections)
        root = tmp_path / "shop"
        daemon = Daemon(config, tmp_path)
        try:
            drop(root, "MCORR01.pdf", first)
            wait_for(lambda: "file_claimed" in daemon.output(), timeout_seconds=30, what="v1 claimed")
            drop(root, "MCORR01.pdf", second)
            wait_for(lambda: len(files_in(root, "sent")) == 2, timeout_seconds=30, what="both finished")
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        held = [invoice["sha256"] for invoice in _ours(sandbox, "MCORR01")]
    v1, v2 = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()
    if corrections == "replace":
        assert held == [v2]
        receipts = [json.loads(p.read_text()) for p in (root / "sent").glob("*.receipt.json")]
        replaced = [r["marketplace_result"]["replaced"] for r in receipts]
        assert sorted(map(len, replaced)) == [0, 1]  # the correction names the invoice it replaced
    else:
        assert held == [v1, v2]


def test_a_wrong_secret_pauses_the_outbox_and_a_fixed_one_resumes_it(tmp_path: Path) -> None:
    secret_file = tmp_path / "kaufland-secret"
    secret_file.write_text("not-the-secret-key\n")
    with kaufland_sandbox() as sandbox:
        config = kaufland_config(tmp_path, sandbox, secret_key_file=str(secret_file))
        root = tmp_path / "shop"
        daemon = Daemon(config, tmp_path)
        try:
            drop(root, "MPAUSE01.pdf", sample_pdf("MPAUSE01"))
            wait_for(lambda: "outbox_paused" in daemon.output(), timeout_seconds=30, what="paused")
            status = invoicesync("status", "--json", "-c", str(config), cwd=tmp_path)
            assert "clock" in status.stdout and "paused" in status.stdout, status.stdout
            assert files_in(root, "failed") == []  # a refused key is not the file's fault
            secret_file.write_text(SECRET_KEY + "\n")  # read again at the next try: no restart, no SIGHUP
            wait_for(lambda: len(files_in(root, "sent")) == 1, timeout_seconds=40, what="sent after the fix")
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        assert len(_ours(sandbox, "MPAUSE01")) == 1
    output = daemon.log_path.read_text()
    assert "outbox_resumed" in output
    assert "not-the-secret-key" not in output and SECRET_KEY not in output


def test_check_online_validate_and_status_cover_a_kaufland_outbox(tmp_path: Path) -> None:
    with kaufland_sandbox() as sandbox:
        config = kaufland_config(tmp_path, sandbox)
        checked = invoicesync("check", "--online", "-c", str(config), cwd=tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert "signed read answered by" in checked.stdout
        refused = kaufland_config(tmp_path, sandbox, secret_key="not-the-secret-key")
        wrong = invoicesync("check", "--online", "-c", str(refused), cwd=tmp_path)
        assert wrong.returncode == 1 and "clock" in wrong.stderr and "not-the-secret-key" not in wrong.stderr
        config = kaufland_config(tmp_path, sandbox)
        root = tmp_path / "shop"
        drop(root, "MSTAT001.pdf", sample_pdf("MSTAT001"))
        assert invoicesync("once", "-c", str(config), cwd=tmp_path).returncode == 0
        status = invoicesync("status", "--json", "-c", str(config), cwd=tmp_path)
        assert status.returncode == 0 and json.loads(status.stdout)["outboxes"][0]["sent_today"] == 1, (
            status.stdout
        )
    (tmp_path / "MVAL0001.xml").write_bytes(sample_ubl("MVAL0001"))
    (tmp_path / "MVAL0001.pdf").write_bytes(sample_pdf("MVAL0001"))
    verdicts = invoicesync(
        "validate",
        "--json",
        "-c",
        str(config),
        str(tmp_path / "MVAL0001.xml"),
        str(tmp_path / "MVAL0001.pdf"),
        cwd=tmp_path,
    )
    lines = [json.loads(line) for line in verdicts.stdout.splitlines()]
    assert [line.get("code") for line in lines] == ["UnsupportedType", None], lines
    assert verdicts.returncode == 1


def test_the_examples_commented_kaufland_outbox_runs_on_the_built_in_simulator(tmp_path: Path) -> None:
    """config.example.yaml's Kaufland outbox, uncommented as the README says, delivers samples/MB7UWLD.pdf."""
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "config.example.yaml").read_text()
    start = text.index("  # A Kaufland outbox")
    end = text.index("\nsandbox:", start)
    uncommented = [
        "  " + line[4:] if line.startswith(("  # - ", "  #   ")) and not line.startswith("  #   # ") else line
        for line in text[start:end].splitlines()
    ]
    (tmp_path / "config.yaml").write_text(text[:start] + "\n".join(uncommented) + text[end:])
    outbox = tmp_path / "invoices" / "kaufland" / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "MB7UWLD.pdf").write_bytes((repo / "samples" / "MB7UWLD.pdf").read_bytes())
    result = invoicesync("once", "-c", str(tmp_path / "config.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "sent=1 failed=0 in_flight=0 waiting=0"
    receipt = report(tmp_path / "invoices" / "kaufland", "sent", "MB7UWLD.pdf")
    assert receipt["marketplace"] == "kaufland" and receipt["import_id"]


def test_a_reload_while_uploads_are_in_flight_sends_none_twice(tmp_path: Path) -> None:
    """Uploads run beside the loop; a reload waits for them and journals their answers, so the next loop
    never looks up (and re-sends) an upload still on its way."""
    orders = [f"MRELOAD{n}" for n in range(8)]
    with kaufland_sandbox(slow_rate=1.0, slow_seconds=1.5) as sandbox:
        config = kaufland_config(tmp_path, sandbox)
        root = tmp_path / "shop"
        daemon = Daemon(config, tmp_path)
        try:
            for order in orders:
                drop(root, f"{order}.pdf", sample_pdf(order))
            wait_for(
                lambda: daemon.output().count('"file_ready"') == len(orders), timeout_seconds=30, what="ready"
            )
            for _ in range(2):  # while the (slowed) order reads and uploads are on their way
                daemon.process.send_signal(signal.SIGHUP)
                wait_for(lambda: '"service_reloaded"' in daemon.output(), timeout_seconds=30, what="reloaded")
            wait_for(lambda: len(files_in(root, "sent")) == len(orders), timeout_seconds=60, what="all sent")
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        held = {order: len(sandbox.kaufland_invoices(order)) for order in orders}
    assert held == dict.fromkeys(orders, 1)
