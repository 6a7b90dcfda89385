"""bench.common: what every figure shares: the sandbox process, configurations, files, and measuring a
process (wall time, peak RSS, CPU time) from outside it.

Everything talks to 127.0.0.1 only. Each figure works in its own temporary folder and leaves nothing behind.
"""

from __future__ import annotations

import compileall
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* importable from anywhere

from tests.badfiles import sample_pdf, sample_ubl  # after the sys.path line above
from tests.e2e.killloop import SandboxProcess

REPO = Path(__file__).resolve().parents[1]


def compile_bytecode() -> None:
    """Compile the package's (and bench's) bytecode once, as `pip install` does. Where
    PYTHONDONTWRITEBYTECODE is set (this workplace sets it) a checkout's modules are otherwise compiled from
    source at every start of every process — the daemon, each of its checkers, the scripts — about 0.1 s
    a start of the daemon that no installed daemon pays. Existing bytecode is read whatever that variable
    says; stale bytecode is made again."""
    for package in ("invoicesync", "bench", "tests"):
        compileall.compile_dir(REPO / package, quiet=1)


# A file created on this VM's disk (ext4 without a journal) costs ~20 µs of CPU, but for a minute or more
# after many files were deleted near it, up to 0.7 ms: the kernel then steps over each recently deleted
# inode number, one at a time, before it hands out a free one (fs/ext4/ialloc.c, recently_deleted(); a
# journaled ext4 skips that step). A figure's own clean-up, or the scan figure's 50,000 files, leaves such a
# trail: measured here, 10,000 files deleted made each new file cost 700 µs for 60-90 s. The daemon creates
# a report per invoice and the bare scripts create nothing, so the trail would count against the daemon
# alone: figures that compare the two wait for the disk to be quiet first and print what they found.
QUIET_CREATE_RATIO = 2.0  # a create costs at most this many renames (a rename allocates no inode) ...
QUIET_CREATE_US = 100.0  # ... or at most this: the trail's creates cost 300-700 µs
QUIET_WAIT_SECONDS = 600
QUIET_PROBE_FILES = 300


def create_cost(folder: Path) -> tuple[float, float]:
    """CPU microseconds to create one empty file in a new subfolder of `folder`, and to rename one there."""
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=folder))
    started = time.process_time()
    for number in range(QUIET_PROBE_FILES):
        os.close(os.open(probe / f"{number}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    created = time.process_time()
    for number in range(QUIET_PROBE_FILES):
        os.rename(probe / f"{number}", probe / f"{number}.renamed")
    renamed = time.process_time()
    # left in place: deleting them would lay the very trail this measures
    return 1e6 * (created - started) / QUIET_PROBE_FILES, 1e6 * (renamed - created) / QUIET_PROBE_FILES


@dataclass(frozen=True, slots=True)
class Disk:
    """What `wait_for_quiet_disk` found."""

    create_us: float
    rename_us: float
    waited_seconds: float
    quiet: bool


_slow_disks: set[int] = set()  # devices found slow to create files for a whole QUIET_WAIT_SECONDS


def wait_for_quiet_disk(folder: Path) -> Disk:
    """Wait (at most QUIET_WAIT_SECONDS) until creating a file in `folder` costs what it costs on a quiet
    disk. A disk still slow after that is slow by nature, not by a trail: later calls only measure it."""
    device = folder.stat().st_dev
    started = time.monotonic()
    while True:
        create, rename = create_cost(folder)
        quiet = create <= max(QUIET_CREATE_RATIO * rename, QUIET_CREATE_US)
        waited = time.monotonic() - started
        if quiet or device in _slow_disks or waited >= QUIET_WAIT_SECONDS:
            if not quiet:
                _slow_disks.add(device)
            return Disk(create, rename, waited, quiet)
        time.sleep(5)  # the trail fades as the kernel writes the deleted inodes back


def disk_words(states: Sequence[Disk]) -> str:
    """The disk before the runs, for a table's workload column."""
    worst = max(states, key=lambda state: state.create_us)
    waited = sum(state.waited_seconds for state in states)
    loud = sum(1 for state in states if not state.quiet)
    found = f"disk NOT quiet before {loud} of {len(states)} runs" if loud else "disk quiet before each run"
    return (
        f"{found} (a file created in at most {worst.create_us:.0f} µs, renamed in {worst.rename_us:.0f} µs; "
        f"{waited:.0f} s waited for it)"
    )


CLIENT_ID, CLIENT_SECRET, SELLER_ID = "bench-client", "bench-secret", "98979"
PROCESSING_SECONDS = 0.2  # how long the sandbox keeps an import Running
FIRST_POLL_SECONDS = 0.3  # both invoicesync and the baselines first look at an import after this
POLL_MAX_SECONDS = 2.0  # invoicesync's later looks: twice as far apart each time, at most this
PYTHON = sys.executable

__all__ = ["SandboxProcess", "sample_pdf", "sample_ubl"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    figure: str
    workload: str
    measured: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    verdict: str = "report"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def start_sandbox(workdir: Path) -> SandboxProcess:
    """`invoicesync sandbox` as a subprocess on a free loopback port, every order known."""
    return SandboxProcess(workdir, "--processing-seconds", str(PROCESSING_SECONDS))


def write_config(
    workdir: Path,
    sandbox: SandboxProcess,
    *,
    watch: dict[str, Any] | None = None,
    batch: dict[str, Any] | None = None,
    files: dict[str, Any] | None = None,
    checkers: int | None = None,
) -> Path:
    """One outbox `bench` under workdir/bench talking to the sandbox process; JSON logs on stderr;
    `checkers` content checker processes (None: `auto`)."""
    root = workdir / "bench"
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    box: dict[str, Any] = {
        "name": "bench",
        "root": str(root),
        "octopia": {
            "base_url": sandbox.base_url,
            "token_url": sandbox.token_url,
            "seller_id": SELLER_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        "watch": {"mode": "poll", "settle_seconds": 0.5, "poll_seconds": 0.25, **(watch or {})},
        "batch": batch or {},
        "files": files or {},
        "poll": {"first_seconds": FIRST_POLL_SECONDS, "max_seconds": POLL_MAX_SECONDS},
    }
    document = {"state_dir": str(workdir / "state"), "log": {"format": "json", "level": "info"},
                "outboxes": [box]}
    if checkers is not None:
        document["checkers"] = checkers
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def small_invoices(count: int, *, prefix: str) -> list[tuple[str, bytes]]:
    """`count` small invoices, PDF and UBL XML alternating, each for its own order."""
    files = []
    for number in range(count):
        order = f"{prefix}{number:06d}"
        if number % 2:
            files.append((f"{order}.xml", sample_ubl(order)))
        else:
            files.append((f"{order}.pdf", sample_pdf(order)))
    return files


def write_files(folder: Path, files: Sequence[tuple[str, bytes]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files:
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def drop_copies(sources: Sequence[Path], outbox: Path) -> None:
    """Put copies of the files in outbox/ (before the clock starts). Not hard links: a file with a second
    name is refused (NotARegularFile), since its other name could change the bytes after the check."""
    outbox.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, outbox / source.name)


def data_files(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(1 for path in folder.iterdir() if not path.name.endswith(".json") and path.name[0] != ".")


def get_token(sandbox: SandboxProcess, client: httpx.Client) -> str:
    response = client.post(
        sandbox.token_url,
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


@dataclass(frozen=True, slots=True)
class Finished:
    seconds: float
    max_rss_bytes: int
    stdout: str  # the summary, then the measurement line
    stderr: str  # the logs (JSON lines)


MEASURE = """\
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
sys.stderr.write(done.stderr)
sys.stdout.write(done.stdout)
print(f"@measured seconds={seconds} maxrss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}"
      f" rc={done.returncode}")
"""


def measured_run(command: Sequence[str], *, cwd: Path, timeout: float = 1800) -> Finished:
    """Run `command` under a small parent whose only child it is, so RUSAGE_CHILDREN's ru_maxrss is
    exactly that command's peak RSS (Linux reports it in KiB)."""
    done = subprocess.run(
        [PYTHON, "-c", MEASURE, *command], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    match = re.search(r"@measured seconds=(\S+) maxrss_kb=(\d+) rc=(-?\d+)", done.stdout)
    if match is None or match.group(3) != "0":
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return Finished(float(match.group(1)), int(match.group(2)) * 1024, done.stdout, done.stderr)


def invoicesync_command(*args: str) -> list[str]:
    return [PYTHON, "-m", "invoicesync", *args]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_seconds(pid: int) -> float:
    """Time on a CPU of every thread of a running process, to the nanosecond (/proc/<pid>/task/*/schedstat):
    utime + stime count 10 ms clock ticks, too coarse for an idle daemon's fraction of a second."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total / 1e9


def events(lines: str) -> Iterator[dict[str, Any]]:
    for line in lines.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def wait_until(condition: Callable[[], bool], *, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"still false after {timeout_seconds:g} s: {what}")
        time.sleep(0.01)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def import_floor(workdir: Path) -> Finished:
    """Peak RSS and time of a bare `python -c "import invoicesync.service"`: what any run costs."""
    return measured_run([PYTHON, "-c", "import invoicesync.service"], cwd=workdir)


def own_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
