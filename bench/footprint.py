"""bench.footprint: what invoicesync holds and burns while it waits: peak memory on large files, the cost
of one rescan of a crowded outbox against a bare `os.scandir`, and CPU while idle beside waiting files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import (
    Row,
    cpu_seconds,
    data_files,
    events,
    import_floor,
    invoicesync_command,
    measured_run,
    median,
    run_seconds,
    sample_pdf,
    start_sandbox,
    verdict,
    wait_until,
    write_config,
)
from invoicesync.outbox import Folders
from invoicesync.settle import NOTHING_SEEN, settle

MEMORY_TARGET_BYTES = 80 * 1024 * 1024
SCAN_TARGET = 3.0
IDLE_TARGET_PERCENT = 0.2
MB = 1_000_000


def memory(*, large: int, small_count: int, small: int) -> list[Row]:
    """Peak RSS of `invoicesync once` delivering `small_count` files of `small` bytes and one of `large`."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as temp:
        workdir = Path(temp)
        floor = import_floor(workdir)
        sandbox = start_sandbox(workdir)
        try:
            config = write_config(
                workdir,
                sandbox,
                watch={"settle_seconds": 0.5},
                files={"max_bytes": large + MB},
                batch={"max_bytes": large + MB},
            )
            outbox = workdir / "bench" / "outbox"
            sizes = [small] * small_count + [large]

            def deliver(prefix: str) -> None:
                for number, size in enumerate(sizes):
                    order = f"{prefix}{number:05d}"
                    data = sample_pdf(order, padding_bytes=size, random_padding=True)
                    (outbox / f"{order}.pdf").write_bytes(data)

            deliver("MEMA")
            finished = measured_run(invoicesync_command("once", "-c", str(config)), cwd=workdir)
            deliver("MEMB")  # again, with the whole process tree's memory sampled meanwhile
            pss_peak = tree_pss_peak(invoicesync_command("once", "-c", str(config)), cwd=workdir)
            sent = data_files(workdir / "bench" / "sent")
            if sent != 2 * len(sizes):
                raise RuntimeError(f"memory: {sent} of {2 * len(sizes)} files sent: {finished.stdout[-600:]}")
        finally:
            sandbox.stop()
    main_kib, checker_kib = peaks(finished.stderr)
    mib = 1024 * 1024
    main, checkers = main_kib * 1024, sum(checker_kib) * 1024
    total = main + checkers
    workload = f"{small_count} x {small // MB} MB + 1 x {large // MB} MB PDF, `once`"
    return [
        Row(
            "memory",
            f"{workload}: peak RSS of the daemon's process (streams disk to socket)",
            f"{main / mib:.0f} MiB",
            f"{floor.max_rss_bytes / mib:.0f} MiB import floor",
            f"{main / floor.max_rss_bytes:.2f}x",
            f"<= {MEMORY_TARGET_BYTES // mib} MiB",
            verdict(main <= MEMORY_TARGET_BYTES),
        ),
        Row(
            "memory, all",
            f"{workload}: the daemon + its {len(checker_kib)} checker processes, each at its peak RSS",
            f"{total / mib:.0f} MiB",
            " + ".join(f"{kib / 1024:.0f}" for kib in checker_kib) + " MiB checkers",
            "-",
            f"<= {MEMORY_TARGET_BYTES // mib} MiB",
            verdict(total <= MEMORY_TARGET_BYTES),
        ),
        Row(
            "memory, all (PSS)",
            f"{workload} again: peak summed PSS of its process tree (a shared page counted once), per 20 ms",
            f"{pss_peak / mib:.0f} MiB",
            "-",
            "-",
            f"<= {MEMORY_TARGET_BYTES // mib} MiB",
            verdict(pss_peak <= MEMORY_TARGET_BYTES),
        ),
    ]


def tree_pss_peak(command: list[str], *, cwd: Path) -> int:
    """Run `command`; the highest sum of PSS (bytes) over it and its descendants, sampled every 20 ms.
    PSS shares each page among the processes mapping it: the memory the tree costs the machine."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(_pss(pid) for pid in _tree(process.pid)))
        time.sleep(0.02)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    return peak


def _tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*"):
            try:
                pids.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
        index += 1
    return pids


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass  # ended meanwhile
    return 0


def peaks(logs: str) -> tuple[int, list[int]]:
    """Peak RSS in KiB of the daemon's own process (`service_stopped`) and of each checker it ran
    (`checker_stopped`), from its JSON log: a sum of peaks, an upper bound of what they held at once."""
    main, checkers = 0, []
    for event in events(logs):
        if event.get("event") == "service_stopped":
            main = int(event["max_rss_kib"])
        elif event.get("event") == "checker_stopped" and event.get("max_rss_kib"):
            checkers.append(int(event["max_rss_kib"]))
    return main, checkers


def _scandir_stat(folder: Path) -> int:
    count = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
            count += 1
    return count


def scan(*, files: int, repeat: int) -> list[Row]:
    """One rescan (`Folders.scan` + `settle`, every file already known and not yet settled) against
    `os.scandir` + `stat` of the same folder, medians of `repeat`, page cache warm for both."""
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as temp:
        folders = Folders(Path(temp), "bench-host")
        folders.prepare()
        for number in range(files):
            (folders.outbox / f"SCAN{number:07d}.pdf").write_bytes(b"%PDF-")
        listing, _ = folders.scan()
        seen = settle(NOTHING_SEEN, listing, now=0.0, settle_seconds=3600, empty_after_seconds=3600).seen
        ours, bare = [], []
        for number in range(repeat):
            start = time.perf_counter()
            _scandir_stat(folders.outbox)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            listing, _ = folders.scan()
            settled = settle(seen, listing, now=1.0 + number, settle_seconds=3600, empty_after_seconds=3600)
            ours.append(time.perf_counter() - start)
            if settled.ready or len(settled.seen) != files:
                raise RuntimeError("scan: files settled or went missing during the benchmark")
    ratio = median(ours) / median(bare)
    return [
        Row(
            "scan",
            f"one rescan of {files:,} files not yet settled (Folders.scan + settle)",
            f"{median(ours) * 1000:.0f} ms",
            f"{median(bare) * 1000:.0f} ms scandir+stat",
            f"{ratio:.2f}x",
            f"<= {SCAN_TARGET:g}x",
            verdict(ratio <= SCAN_TARGET),
        )
    ]


def idle_cpu(*, files: int, window_seconds: float) -> list[Row]:
    """CPU share of an idle `run` daemon (events mode) beside `files` empty files waiting for content."""
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as temp:
        workdir = Path(temp)
        sandbox = start_sandbox(workdir)
        try:
            watch = {"mode": "events", "settle_seconds": 1, "poll_seconds": 2, "rescan_seconds": 60}
            config = write_config(workdir, sandbox, watch=watch)
            outbox = workdir / "bench" / "outbox"
            for number in range(files):
                (outbox / f"IDLE{number:07d}.pdf").touch()  # empty: waits for content up to empty_after
            log_path = workdir / "daemon.log"
            with open(log_path, "w") as log:
                daemon = subprocess.Popen(
                    invoicesync_command("run", "-c", str(config)),
                    cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                )
            try:
                wait_until(lambda: "service_ready" in log_path.read_text(), timeout_seconds=60,
                           what="the daemon said service_ready")
                time.sleep(3)  # first scans done, the files known
                before, exact_before = cpu_seconds(daemon.pid), run_seconds(daemon.pid)
                start = time.monotonic()
                time.sleep(window_seconds)
                used, elapsed = cpu_seconds(daemon.pid) - before, time.monotonic() - start
                exact = run_seconds(daemon.pid) - exact_before
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=30)
        finally:
            sandbox.stop()
    percent, exact_percent = used / elapsed * 100, exact / elapsed * 100
    return [
        Row(
            "idle CPU",
            f"`run` (events) beside {files:,} waiting files, {window_seconds:g} s window",
            f"{percent:.3f} % ({used:.2f} s utime+stime; schedstat {exact_percent:.3f} %)",
            "-",
            "-",
            f"<= {IDLE_TARGET_PERCENT:g} %",
            verdict(percent <= IDLE_TARGET_PERCENT),
        )
    ]


__all__ = ["idle_cpu", "memory", "scan"]
