"""bench.throughput: `invoicesync once` on a folder of small invoices, against a bare bulk script (same
files, same sandbox, same minute) and against one request per file (the cron + curl way).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    FIRST_POLL_SECONDS,
    PYTHON,
    REPO,
    Row,
    SandboxProcess,
    data_files,
    disk_words,
    drop_copies,
    invoicesync_command,
    measured_run,
    small_invoices,
    start_sandbox,
    verdict,
    wait_for_quiet_disk,
    write_config,
    write_files,
)

THROUGHPUT_TARGET = 1.5  # invoicesync's time at most this many times the bare bulk script's
PER_FILE_TARGET = 20.0  # invoicesync at least this many times faster per file than one request per file
SETTLE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Throughput:
    files: int
    invoicesync_seconds: float
    bulk_seconds: float
    rows: list[Row]


def run_once(workdir: Path, sandbox: SandboxProcess, sources: list[Path]) -> float:
    """Seconds for `invoicesync once` to put every file in sent/ (checked), from process start to exit."""
    config = write_config(workdir, sandbox, watch={"settle_seconds": SETTLE_SECONDS})
    root = workdir / "bench"
    drop_copies(sources, root / "outbox")
    finished = measured_run(invoicesync_command("once", "-c", str(config)), cwd=workdir)
    sent = data_files(root / "sent")
    if sent != len(sources):
        raise RuntimeError(f"invoicesync once sent {sent} of {len(sources)}: {finished.stdout[-400:]}")
    return finished.seconds


def run_baseline(workdir: Path, sandbox: SandboxProcess, folder: Path, mode: str, limit: int) -> float:
    command = [
        PYTHON, str(REPO / "bench" / "baseline.py"), mode, str(folder),
        "--token-url", sandbox.token_url, "--base-url", sandbox.base_url,
        "--first-poll-seconds", str(FIRST_POLL_SECONDS), "--limit", str(limit),
    ]
    return measured_run(command, cwd=workdir).seconds


def measure(*, files: int, per_file_files: int, rounds: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as temp:
        workdir = Path(temp)
        sandbox = start_sandbox(workdir)
        try:
            sources = write_files(workdir / "source", small_invoices(files, prefix="TPUT"))
            ours, bulk, disk = [], [], []
            for number in range(rounds):  # alternate, so both see the same machine weather
                bulk.append(run_baseline(workdir, sandbox, workdir / "source", "bulk", files))
                disk.append(wait_for_quiet_disk(workdir))
                ours.append(run_once(workdir / f"round-{number}", sandbox, sources))
            per_file = run_baseline(workdir, sandbox, workdir / "source", "per-file", per_file_files)
        finally:
            sandbox.stop()
    best, best_bulk = min(ours), min(bulk)
    ratio = best / best_bulk
    ours_per_file = best / files
    curl_per_file = per_file / per_file_files
    speedup = curl_per_file / ours_per_file
    return [
        Row(
            "throughput",
            f"{files:,} small PDF/XML, `once` until all in sent/ (settle {SETTLE_SECONDS:g} s); "
            f"{disk_words(disk)}",
            f"{best:.2f} s",
            f"{best_bulk:.2f} s bulk script",
            f"{ratio:.2f}x",
            f"<= {THROUGHPUT_TARGET:g}x",
            verdict(ratio <= THROUGHPUT_TARGET),
        ),
        Row(
            "throughput, no settle",
            f"the same run minus `settle_seconds` ({SETTLE_SECONDS:g} s), a wait the bare script skips",
            f"{best - SETTLE_SECONDS:.2f} s",
            f"{best_bulk:.2f} s bulk script",
            f"{(best - SETTLE_SECONDS) / best_bulk:.2f}x",
        ),
        Row(
            "per-file cost",
            f"same run vs one curl request per file ({per_file_files:,} files)",
            f"{ours_per_file * 1000:.2f} ms/file",
            f"{curl_per_file * 1000:.2f} ms/file",
            f"{speedup:.1f}x faster",
            f">= {PER_FILE_TARGET:g}x faster",
            verdict(speedup >= PER_FILE_TARGET),
        ),
    ]
