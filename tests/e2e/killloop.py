"""The SIGKILL loop, shared by the crash-safety test and the soak script (bench/soak.py).

A sandbox runs as its own process (it must outlive the daemon). Files are dropped in waves while
`invoicesync run` is killed with SIGKILL at moments picked from what its log shows (a file just
claimed, a batch just uploaded, a file just finished, …) and restarted each time; a last run
finishes the work. Then every dropped file is looked for, by content hash, in `sent/` and
`failed/`, and the sandbox is asked how often it received each order's bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.badfiles import sample_pdf, sample_ubl
from tests.conftest import wait_for

# Log event -> how many of them to let pass before the kill (picked at random up to this).
KILL_MOMENTS = {
    "file_claimed": 40,
    "file_ready": 40,
    "batch_uploaded": 2,
    "import_finished": 2,
    "file_finished": 40,
}


@dataclass
class Outcome:
    dropped: int
    sent: int
    failed: int
    kills: int
    lost: int
    duplicated: int
    bad_sidecars: int
    leftovers: list[str]
    received_twice: list[str]
    seconds: float
    moments: Counter[str] = field(default_factory=Counter)


class SandboxProcess:
    def __init__(self, workdir: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "invoicesync", "sandbox", "--port", "0", *args],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        self.base_url, self.token_url = fields["base_url"], fields["token_url"]
        self.kaufland_url = fields["kaufland_url"]

    def received(self) -> list[dict[str, Any]]:
        """Every file the marketplaces hold: each Octopia upload, each Kaufland invoice still on its order."""
        url = self.base_url.replace("/seller/v2", "/_sandbox/received")
        files: list[dict[str, Any]] = httpx.get(url, timeout=30).json()["files"]
        kaufland = self.kaufland_url.replace("/kaufland/v2", "/kaufland/_sandbox/orders")
        for order, invoices in httpx.get(kaufland, timeout=30).json()["orders"].items():
            files += [{"orderId": order, "sha256": invoice["sha256"]} for invoice in invoices]
        return files

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def write_config(
    workdir: Path,
    sandbox: SandboxProcess,
    *,
    watch: dict[str, Any] | None = None,
    batch: dict[str, Any] | None = None,
    poll: dict[str, Any] | None = None,
    marketplace: str = "octopia",
    checkers: int | None = None,
) -> Path:
    """One outbox `shop` under workdir talking to a sandbox process; fast timings unless overridden;
    `checkers` checker processes (None: `auto`)."""
    root = workdir / "shop"
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    box: dict[str, Any] = {
        "name": "shop",
        "root": str(root),
        "marketplace": marketplace,
        "watch": watch or {"mode": "events", "settle_seconds": 0.2, "poll_seconds": 0.1, "rescan_seconds": 2},
    }
    if marketplace == "kaufland":
        box["kaufland"] = {
            "base_url": sandbox.kaufland_url,
            "client_key": "soak",
            "secret_key": "soak-secret",
        }
    else:
        box["octopia"] = {
            "base_url": sandbox.base_url,
            "token_url": sandbox.token_url,
            "seller_id": "98979",
            "client_id": "soak",
            "client_secret": "soak-secret",
        }
        box["batch"] = batch or {"max_files": 50, "max_wait_seconds": 0.2}
        box["poll"] = poll or {"first_seconds": 0.1, "max_seconds": 0.5, "give_up_after": "1h"}
    config = {
        "state_dir": str(workdir / "state"),
        "log": {"format": "json", "level": "info"},
        "outboxes": [box],
    }
    if checkers is not None:
        config["checkers"] = checkers
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_files(count: int, seed: int) -> list[tuple[str, bytes]]:
    """Distinct bytes per file; one in 25 has a bad name (validation failure, never uploaded)."""
    rng = random.Random(seed)
    files = []
    for n in range(count):
        order = f"KILL{seed:03d}{n:06d}"
        if n % 25 == 7:
            files.append((f"scan {n}.pdf", sample_pdf(order)))
        elif rng.random() < 0.5:
            files.append((f"{order}.pdf", sample_pdf(order)))
        else:
            files.append((f"{order}.xml", sample_ubl(order)))
    return files


def _drop(outbox: Path, name: str, data: bytes) -> None:
    temp = outbox / f".{name}.part"
    temp.write_bytes(data)
    temp.rename(outbox / name)


def run_kill_loop(
    workdir: Path,
    *,
    files: int,
    kills: int,
    seed: int = 1,
    finish_timeout_seconds: float = 300,
    progress: Callable[[str], None] = lambda line: None,
    marketplace: str = "octopia",
    checkers: int | None = None,
) -> Outcome:
    """`marketplace: kaufland`: a Kaufland outbox (its XML files fail locally as UnsupportedType);
    `checkers: 2` or more: checkers forked from a template process."""
    started = time.monotonic()
    rng = random.Random(seed)
    sandbox = SandboxProcess(workdir, "--processing-seconds", "0.3")
    try:
        config = write_config(workdir, sandbox, marketplace=marketplace, checkers=checkers)
        root = workdir / "shop"
        outbox = root / "outbox"
        outbox.mkdir(parents=True, exist_ok=True)
        dropped = make_files(files, seed)
        waves = [dropped[i::kills] for i in range(kills)]
        moments: Counter[str] = Counter()
        for number, wave in enumerate(waves):
            for name, data in wave:
                _drop(outbox, name, data)
            log = workdir / f"run-{number}.log"
            with open(log, "w") as out:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "invoicesync", "run", "-c", str(config)],
                    cwd=workdir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                moment = rng.choice(sorted(KILL_MOMENTS))
                wanted = rng.randint(1, KILL_MOMENTS[moment])
                try:
                    wait_for(
                        _seen(log, moment, wanted, daemon), timeout_seconds=20, what=f"{wanted} x {moment}"
                    )
                except AssertionError:
                    moment = "timeout"
                finally:  # also when the test itself is interrupted: no daemon outlives it
                    daemon.send_signal(signal.SIGKILL)
                    daemon.wait(timeout=10)
            moments[moment] += 1
            progress(f"kill {number + 1}/{kills} after {moment}")
        log = workdir / "run-final.log"
        with open(log, "w") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "invoicesync", "run", "-c", str(config)],
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(
                    lambda: _done(root, len(dropped)),
                    timeout_seconds=finish_timeout_seconds,
                    what="all finished",
                )
            finally:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)
        return _judge(root, dropped, sandbox.received(), kills, moments, time.monotonic() - started)
    finally:
        sandbox.stop()


def _seen(log: Path, moment: str, wanted: int, daemon: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """True once the log shows `wanted` events named `moment`, or the daemon has died."""
    return lambda: log.read_text().count(f'"{moment}"') >= wanted or daemon.poll() is not None


def _data_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return [p for p in folder.iterdir() if not p.name.endswith(".json") and not p.name.startswith(".")]


def _done(root: Path, count: int) -> bool:
    finished = len(_data_files(root / "sent")) + len(_data_files(root / "failed"))
    return finished >= count and not _leftovers(root)


def _leftovers(root: Path) -> list[str]:
    left = [p.name for p in (root / "outbox").iterdir()]
    processing = root / ".processing"
    if processing.exists():
        left += [str(p) for p in processing.rglob("*") if p.is_file()]
    return left


def _judge(
    root: Path,
    dropped: list[tuple[str, bytes]],
    received: list[dict[str, Any]],
    kills: int,
    moments: Counter[str],
    seconds: float,
) -> Outcome:
    placed: Counter[str] = Counter()
    bad_sidecars = 0
    for folder, suffix in (("sent", ".receipt.json"), ("failed", ".error.json")):
        for path in _data_files(root / folder):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            placed[digest] += 1
            try:
                report = json.loads((path.parent / f"{path.name}{suffix}").read_text(encoding="utf-8"))
                if report["outcome"] != folder or report["sha256"] not in (digest, None):
                    bad_sidecars += 1
            except (OSError, ValueError, KeyError):
                bad_sidecars += 1
    wanted = {hashlib.sha256(data).hexdigest() for _, data in dropped}
    lost = len(wanted - set(placed))
    duplicated = sum(count - 1 for count in placed.values() if count > 1)
    per_upload = Counter((entry.get("orderId"), entry.get("sha256")) for entry in received)
    received_twice = [f"{order} {sha}" for (order, sha), n in per_upload.items() if n > 1]
    return Outcome(
        dropped=len(dropped),
        sent=len(_data_files(root / "sent")),
        failed=len(_data_files(root / "failed")),
        kills=kills,
        lost=lost,
        duplicated=duplicated + len(received_twice),
        bad_sidecars=bad_sidecars,
        leftovers=_leftovers(root),
        received_twice=received_twice,
        seconds=seconds,
        moments=moments,
    )


if __name__ == "__main__":  # pragma: no cover - use bench/soak.py
    print("run bench/soak.py", file=sys.stderr)
    os._exit(2)
