"""Issue 18: `invoicesync inbox` killed with SIGKILL in the middle of its passes, again and again, against a
sandbox process with slowed answers and faults; once a last pass completes, inbox/ holds every invoice
issued since `since` exactly once, whole (the sandbox's own SHA-256), each beside its sidecar, and no
half-written file anywhere."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.conftest import wait_for
from tests.e2e.killloop import SandboxProcess

SINCE = "2026-07-01"
KILLS = 6


def write_config(workdir: Path, sandbox: SandboxProcess) -> Path:
    root = workdir / "shop"
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    box = {
        "name": "shop",
        "root": str(root),
        "octopia": {
            "base_url": sandbox.base_url,
            "token_url": sandbox.token_url,
            "seller_id": "98979",
            "client_id": "kill",
            "client_secret": "kill-secret",
        },
        "inbox": {"enabled": True, "since": SINCE},
    }
    config = {"state_dir": str(workdir / "state"), "log": {"format": "json"}, "outboxes": [box]}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def pdfs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf")) if folder.exists() else []


def test_sigkill_during_passes_then_a_last_pass_gives_each_invoice_once(tmp_path: Path) -> None:
    sandbox = SandboxProcess(
        tmp_path, "--slow-rate", "0.3", "--slow-seconds", "0.2", "--error-rate", "0.2", "--seed", "18"
    )
    try:
        config = write_config(tmp_path, sandbox)
        inbox = tmp_path / "shop" / "inbox"
        command = [sys.executable, "-m", "invoicesync", "inbox", "-c", str(config)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        rng = random.Random(18)
        for _ in range(KILLS):
            before = len(pdfs(inbox))
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target = before + rng.randint(1, 4)
            wait_for(
                lambda target=target, process=process: (
                    len(pdfs(inbox)) >= target or process.poll() is not None
                ),
                timeout_seconds=60,
                what=f"{target} invoices in inbox/",
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        for _ in range(5):  # as the daemon does: a pass that left invoices behind is run again
            last = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
            if last.returncode == 0:
                break
        assert last.returncode == 0, last.stdout + last.stderr[-3000:]
        assert " complete" in last.stdout
        issued = httpx.get(sandbox.base_url.replace("/seller/v2", "/_sandbox/issued"), timeout=30).json()
        expected = {
            f"octopia-{invoice['invoiceId']}.pdf": invoice["sha256"]
            for invoice in issued["invoices"]
            if invoice["issuedAt"] >= SINCE
        }
        names = sorted(path.name for path in inbox.iterdir())
        assert [name for name in names if name.startswith(".")] == []  # no half-written file left
        held = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in pdfs(inbox)}
        assert held == expected
        assert names == sorted([*held, *(f"{name}.json" for name in held)])
    finally:
        sandbox.stop()
