"""bench.responsiveness: how soon an idle daemon starts uploading a dropped file, and how soon a daemon with
a long history is ready after a restart.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    Row,
    SandboxProcess,
    events,
    import_floor,
    invoicesync_command,
    median,
    sample_pdf,
    start_sandbox,
    verdict,
    wait_until,
    write_config,
)
from invoicesync.journal import Journal
from invoicesync.statedir import JOURNAL_NAME

LATENCY_MARGIN_SECONDS = 0.5
RECOVERY_TARGET_SECONDS = 2.0
SETTLE_SECONDS = 1.0


# named, so that columns added by later journal schemas (root, lost_at, destination ...) keep their defaults
ITEM_COLUMNS = (
    "item_id, seq, outbox, host, file_name, claim_name, origin_id, order_id, ext, size, sha256, ready_at,"
    " state, batch_id, stage, error, result, import_id, outcome, dest_name, received_at, finished_at"
)
BATCH_COLUMNS = (
    "batch_id, outbox, bundle_name, endpoint, order_id, state, import_id, sent_at, submitted_at,"
    " next_attempt_at, poll_attempt, raw, created_at"
)


@contextmanager
def daemon(workdir: Path, config: Path, *, env: dict[str, str] | None = None) -> Iterator[Path]:
    """`invoicesync run` with its JSON log in workdir/daemon.log; SIGTERM on the way out."""
    log_path = workdir / "daemon.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            invoicesync_command("run", "-c", str(config)),
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
    try:
        yield log_path
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _count(log_path: Path, event: str) -> list[dict[str, object]]:
    return [line for line in events(log_path.read_text()) if line.get("event") == event]


def _finished_more_than(log_path: Path, count: int) -> bool:
    return len(_count(log_path, "file_finished")) > count


def latency(*, drops: int) -> list[Row]:
    """Drop one file at a time into an idle `run` daemon (events mode); seconds from the rename into
    outbox/ to the `batch_uploaded` event's timestamp, minus settle_seconds. Median of `drops`."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as temp:
        workdir = Path(temp)
        sandbox = start_sandbox(workdir)
        try:
            config = write_config(
                workdir,
                sandbox,
                watch={"mode": "events", "settle_seconds": SETTLE_SECONDS, "poll_seconds": 2,
                       "rescan_seconds": 60},
                batch={"max_wait_seconds": SETTLE_SECONDS},
            )
            outbox = workdir / "bench" / "outbox"
            with daemon(workdir, config) as log_path:
                wait_until(lambda: bool(_count(log_path, "service_ready")), timeout_seconds=60,
                           what="service_ready")
                time.sleep(1.0)
                for number in range(drops):
                    order = f"LATE{number:05d}"
                    temp_path = outbox / f".{order}.pdf.part"
                    temp_path.write_bytes(sample_pdf(order))
                    temp_path.rename(outbox / f"{order}.pdf")
                    dropped_at = time.time()
                    wait_until(functools.partial(_finished_more_than, log_path, number),
                               timeout_seconds=60, what=f"drop {number} finished")
                    uploaded = _count(log_path, "batch_uploaded")[number]
                    at = datetime.fromisoformat(str(uploaded["timestamp"]).replace("Z", "+00:00"))
                    samples.append(at.timestamp() - dropped_at - SETTLE_SECONDS)
                    time.sleep(0.3)  # idle again before the next drop
        finally:
            sandbox.stop()
    extra = median(samples)
    return [
        Row(
            "latency",
            f"1 file into an idle `run` (events, settle {SETTLE_SECONDS:g} s, max_wait "
            f"{SETTLE_SECONDS:g} s), median of {drops}",
            f"settle + {extra:.3f} s",
            f"settle_seconds = {SETTLE_SECONDS:g} s",
            f"{(extra + SETTLE_SECONDS) / SETTLE_SECONDS:.2f}x",
            f"<= settle + {LATENCY_MARGIN_SECONDS:g} s",
            verdict(extra <= LATENCY_MARGIN_SECONDS),
        )
    ]


def build_history(state_dir: Path, processing: Path, *, finished: int, in_flight: int, host: str) -> None:
    """A journal of `finished` finished items and `in_flight` open ones (a quarter each claimed, ready,
    batched in submitted batches of 50, decided), with the open items' files in .processing/<host>/."""
    state_dir.mkdir(parents=True, exist_ok=True)
    processing.mkdir(parents=True, exist_ok=True)
    Journal(state_dir / JOURNAL_NAME).close()  # the schema, as the daemon makes it
    now = time.time()
    iso = datetime.fromtimestamp(now, UTC).isoformat()
    rows: list[tuple[object, ...]] = []
    for number in range(finished):
        item_id = f"f{number:015d}"
        order = f"HIST{number:07d}"
        rows.append((item_id, number + 1, "bench", host, f"{order}.pdf", f"{item_id}__{order}.pdf", None,
                     order, "pdf", 1000, f"{number:064x}", now, "finished", None, "upload", None, None,
                     "import-old", "sent", f"{order}.pdf", iso, iso))
    batches: list[tuple[object, ...]] = []
    states = ("claimed", "ready", "batched", "decided")
    for number in range(in_flight):
        item_id = f"o{number:015d}"
        order = f"OPEN{number:07d}"
        state = states[number * len(states) // in_flight]
        claim_name = f"{item_id}__{order}.pdf"
        pdf = sample_pdf(order)
        (processing / claim_name).write_bytes(pdf)
        batch_id = f"b{number // 50:015d}" if state == "batched" else None
        if batch_id is not None and (not batches or batches[-1][0] != batch_id):
            batches.append((batch_id, "bench", f"bench-{batch_id}", "bulk", None, "submitted",
                            f"import-{batch_id}", now, now, now + 3600, 0, None, now))
        decided = state == "decided"
        rows.append((item_id, finished + number + 1, "bench", host, f"{order}.pdf", claim_name, None,
                     order, "pdf", len(pdf), None, now if state != "claimed" else None, state, batch_id,
                     "validation" if decided else None, None, None, None, "sent" if decided else None,
                     None, iso, None))
    with sqlite3.connect(state_dir / JOURNAL_NAME) as db:
        db.executemany(f"INSERT INTO items ({ITEM_COLUMNS}) VALUES ({', '.join('?' * 22)})", rows)
        db.executemany(f"INSERT INTO batches ({BATCH_COLUMNS}) VALUES ({', '.join('?' * 13)})", batches)


def _ready_seconds(workdir: Path, config: Path) -> float:
    """Seconds from starting `run` to READY=1 on a notify socket we bind (as systemd would)."""
    address = str(workdir / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)
        start = time.perf_counter()
        with daemon(workdir, config, env={"NOTIFY_SOCKET": address}):
            while b"READY=1" not in sock.recv(4096):
                pass
            return time.perf_counter() - start


def recovery(*, finished: int, in_flight: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as temp:
        workdir = Path(temp)
        floor = import_floor(workdir)
        sandbox: SandboxProcess = start_sandbox(workdir)
        try:
            config = write_config(workdir, sandbox)
            host = socket.gethostname() or "localhost"
            build_history(workdir / "state", workdir / "bench" / ".processing" / host,
                          finished=finished, in_flight=in_flight, host=host)
            seconds = _ready_seconds(workdir, config)
        finally:
            sandbox.stop()
    return [
        Row(
            "recovery",
            f"`run` start-up, journal of {finished:,} finished + {in_flight:,} in-flight, to READY=1",
            f"{seconds:.2f} s",
            f"{floor.seconds:.2f} s bare import",
            f"{seconds / floor.seconds:.2f}x",
            f"<= {RECOVERY_TARGET_SECONDS:g} s",
            verdict(seconds <= RECOVERY_TARGET_SECONDS),
        )
    ]
