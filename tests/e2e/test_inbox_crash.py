"""Issue 18: `invoicesync inbox` killed with SIGKILL in the middle of its passes, again and again, against a
sandbox process with slowed answers and faults; once a last pass completes, inbox/ holds every invoice
issued since `since` exactly once, whole (the sandbox's own SHA-256), each beside its sidecar, and no
half-written file anywhere. For both marketplaces."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import wait_for
from tests.e2e.killloop import SandboxProcess

SINCE = "2026-08-01"
KILLS = 5
DEEMED = [f"MKILL{number:03d}" for number in range(24)]  # Kaufland invoices these orders itself
FAULTS = ("--slow-rate", "0.2", "--slow-seconds", "0.2", "--error-rate", "0.1", "--seed", "18")


def write_config(path: Path, root: Path, state: Path, box_extra: dict[str, Any], **top: Any) -> Path:
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    box = {"name": "shop", "root": str(root), "inbox": {"enabled": True, "since": SINCE}, **box_extra}
    path.write_text(yaml.safe_dump({"state_dir": str(state), "outboxes": [box], **top}, sort_keys=False))
    return path


def start_sandbox(tmp_path: Path, marketplace: str) -> SandboxProcess:
    if marketplace == "octopia":
        return SandboxProcess(tmp_path, *FAULTS)
    kaufland = {"base_url": "sandbox", "client_key": "k", "secret_key": "kill-secret"}
    source = write_config(
        tmp_path / "sandbox.yaml",
        tmp_path / "unused",
        tmp_path / "unused-state",
        {"marketplace": "kaufland", "kaufland": kaufland},
        sandbox={"kaufland": {"deemed_supplier_orders": DEEMED}},
    )
    return SandboxProcess(tmp_path, "-c", str(source), *FAULTS)


def expected(sandbox: SandboxProcess, marketplace: str) -> dict[str, str]:
    if marketplace == "octopia":
        issued = httpx.get(sandbox.base_url.replace("/seller/v2", "/_sandbox/issued"), timeout=30).json()
        return {
            f"octopia-{invoice['invoiceId']}.pdf": invoice["sha256"]
            for invoice in issued["invoices"]
            if invoice["issuedAt"] >= SINCE
        }
    orders = httpx.get(sandbox.kaufland_url.replace("/v2", "/_sandbox/orders"), timeout=30).json()["orders"]
    return {
        f"{order}-{invoice['id_invoice']}.pdf": invoice["sha256"]
        for order, invoices in orders.items()
        for invoice in invoices
        if invoice["is_marketplace_deemed_supplier"]
    }


def pdfs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf")) if folder.exists() else []


@pytest.mark.parametrize("marketplace", ["octopia", "kaufland"])
def test_sigkill_during_passes_then_a_last_pass_gives_each_invoice_once(
    tmp_path: Path, marketplace: str
) -> None:
    sandbox = start_sandbox(tmp_path, marketplace)
    try:
        if marketplace == "octopia":
            settings = {
                "base_url": sandbox.base_url,
                "token_url": sandbox.token_url,
                "seller_id": "98979",
                "client_id": "kill",
                "client_secret": "kill-secret",
            }
            extra: dict[str, Any] = {"octopia": settings}
        else:
            settings = {"base_url": sandbox.kaufland_url, "client_key": "k", "secret_key": "kill-secret"}
            extra = {"marketplace": "kaufland", "kaufland": settings}
        root = tmp_path / "shop"
        config = write_config(
            tmp_path / "config.yaml", root, tmp_path / "state", extra, log={"format": "json"}
        )
        inbox = root / "inbox"
        command = [sys.executable, "-m", "invoicesync", "inbox", "-c", str(config)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        rng = random.Random(18)
        cut_short = 0  # kills that found the pass still running
        for _ in range(KILLS):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target = len(pdfs(inbox)) + rng.randint(1, 4)
            wait_for(
                lambda target=target, process=process: (
                    len(pdfs(inbox)) >= target or process.poll() is not None
                ),
                timeout_seconds=60,
                what=f"{target} invoices in inbox/",
            )
            cut_short += process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        assert cut_short >= 3
        for _ in range(5):  # as the daemon does: a pass that left invoices behind is run again
            last = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
            if last.returncode == 0:
                break
        assert last.returncode == 0, last.stdout + last.stderr[-3000:]
        assert " complete" in last.stdout
        names = sorted(path.name for path in inbox.iterdir())
        assert [name for name in names if name.startswith(".")] == []  # no half-written file left
        held = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in pdfs(inbox)}
        assert held == expected(sandbox, marketplace) and len(held) >= 20
        assert names == sorted([*held, *(f"{name}.json" for name in held)])
    finally:
        sandbox.stop()
