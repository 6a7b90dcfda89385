"""bench.realworld: real invoices at month-end volume — issue 17's yardstick.

    python bench/realworld.py [--files 2000]

The workload: `--files` copies of the valid PDFs and UBL XMLs of ../shared/realworld (manifest
`expect: sent`), each renamed to an order of its own (RW000001.pdf, …); a document that names another order
ends in failed/, which costs the same. Reported side by side, in one run:

- the check of one real PDF and of one real UBL XML (`judge_bytes`, one core): median and p95;
- `once` on the workload (settle 0.2 s) against a *same-work baseline*: a plain script (this file,
  `--baseline`) that runs the same checks with the same libraries in one process per core, waits the same
  settle, then posts the files that pass in bulk requests of 200 to the same sandbox and polls each import
  to its end on invoicesync's schedule (the same waits); and the no-checking bulk script
  (bench/baseline.py) for reference. Files per second (medians), and the ratio: taken within each round
  (`once` and the script one right after the other), its median over the rounds (`--rounds`, 5);
- the peak PSS of `once`'s whole process tree (runs of its own, sampled every 20 ms), with the default
  checker count and with one per core.

`once` runs with as many checkers as the script has processes (`checkers: <cores>`), so the ratio is the
daemon's own overhead (claims, journal, bundles, sidecars, moves, logs); a run with `checkers: auto` (one
per core beyond the first) is printed beside it. All runs work in a temporary folder (TMPDIR): the
filesystem's cost of creating a file (a sidecar per invoice) is part of what is measured — on a quiet
disk: each run first waits until a file is created about as fast as it is renamed (`wait_for_quiet_disk`; on
this VM's journal-less ext4 a trail of deleted files makes each new one 30 times dearer for a minute or
more, a cost the script, which creates no file, would never pay).

Prints a table; asserts nothing. Says why and stops when ../shared/realworld is absent (a clone elsewhere
finds it through INVOICESYNC_REALWORLD). `bench/run.py` runs it too, as its `realworld` figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baseline import content_type, token  # after the sys.path line above
from bench.common import (
    FIRST_POLL_SECONDS,
    POLL_MAX_SECONDS,
    PYTHON,
    REPO,
    Disk,
    Row,
    compile_bytecode,
    data_files,
    disk_words,
    invoicesync_command,
    measured_run,
    start_sandbox,
    wait_for_quiet_disk,
    write_config,
)
from bench.footprint import tree_pss_peak
from invoicesync.checks.content import judge_bytes
from tests.e2e.killloop import SandboxProcess

# a clone elsewhere than beside ../shared: set INVOICESYNC_REALWORLD
REALWORLD = Path(os.environ.get("INVOICESYNC_REALWORLD", REPO.parent / "shared" / "realworld"))
SETTLE_SECONDS = 0.2  # in `once` and waited by the baseline too: the comparison leaves it out
PER_REQUEST = 200  # files per bulk request of the baseline
CHECK_TARGET_MS = 5.0
RATIO_TARGET = 1.25
PSS_TARGET_MIB = 120


def valid_sources() -> list[Path]:
    manifest = json.loads((REALWORLD / "manifest.json").read_text())
    return [
        REALWORLD / entry["file"]
        for entry in manifest["files"]
        if entry.get("expect") == "sent" and entry["file"].lower().endswith((".pdf", ".xml"))
    ]


def workload(sources: list[Path], folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        source = sources[number % len(sources)]
        shutil.copyfile(source, folder / f"RW{number:06d}{source.suffix.lower()}")


def check_times(sources: list[Path], rounds: int = 5) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"pdf": [], "xml": []}
    for source in sources:
        data = source.read_bytes()
        kind = source.suffix.lower().lstrip(".")
        for _ in range(rounds):
            started = time.perf_counter()
            judge_bytes(f"RW000001.{kind}", "RW000001", data)
            times[kind].append(time.perf_counter() - started)
    return times


def _passes(path: Path) -> bool:
    order = path.stem
    return judge_bytes(path.name, order, path.read_bytes()).ok


def baseline(folder: Path, token_url: str, base_url: str) -> int:
    """The same work, plainly: checks on every core, the same settle, bulk posts of 200, polls to the end."""
    paths = sorted(folder.iterdir())
    with multiprocessing.Pool(os.cpu_count() or 1) as pool:
        verdicts = pool.map(_passes, paths, chunksize=16)
    time.sleep(SETTLE_SECONDS)
    passing = [path for path, ok in zip(paths, verdicts, strict=True) if ok]
    with httpx.Client(timeout=300, headers={"SellerId": "98979"}) as client:
        headers = {"Authorization": f"Bearer {token(client, token_url)}"}
        import_ids = []
        for start in range(0, len(passing), PER_REQUEST):
            parts = [
                ("files", (path.name, path.read_bytes(), content_type(path)))
                for path in passing[start : start + PER_REQUEST]
            ]
            response = client.post(f"{base_url}/order-invoice-imports", files=parts, headers=headers)
            response.raise_for_status()
            import_ids.append(response.json()["importId"])
        # polled as invoicesync polls (the same waits, like the settle): first after FIRST_POLL_SECONDS,
        # then twice as far apart each time, at most POLL_MAX_SECONDS
        wait = FIRST_POLL_SECONDS
        time.sleep(wait)
        for import_id in import_ids:
            while client.get(f"{base_url}/order-invoice-imports/{import_id}", headers=headers).json()[
                "status"
            ] in ("Pending", "Running"):
                wait = min(2 * wait, POLL_MAX_SECONDS)
                time.sleep(wait)
    print(f"checked={len(paths)} passed={len(passing)} requests={len(import_ids)}")
    return 0


@contextlib.contextmanager
def running_sandbox(folder: Path) -> Iterator[SandboxProcess]:
    folder.mkdir(parents=True, exist_ok=True)
    sandbox = start_sandbox(folder)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def absent() -> bool:
    return not (REALWORLD / "manifest.json").exists()


def _once(workdir: Path, run: Path, sandbox: SandboxProcess, checkers: int | None) -> list[str]:
    """`invoicesync once` on a fresh copy of the workload in `run`, talking to `sandbox`."""
    config = write_config(run, sandbox, watch={"settle_seconds": SETTLE_SECONDS}, checkers=checkers)
    shutil.copytree(workdir / "source", run / "bench" / "outbox", dirs_exist_ok=True)
    return invoicesync_command("once", "-c", str(config))


def measure(files: int, rounds: int = 5) -> list[Row]:
    if absent():
        return [Row("realworld", "-", f"skipped: no corpus at {REALWORLD}", verdict="-")]
    sources = valid_sources()
    times = check_times(sources)
    rows = []
    for kind, words in (("pdf", "real PDF"), ("xml", "real UBL XML")):
        values = sorted(times[kind])
        median = statistics.median(values) * 1000
        p95 = values[int(0.95 * (len(values) - 1))] * 1000
        count = sum(1 for source in sources if source.suffix.lower() == f".{kind}")
        rows.append(
            Row(
                f"check, {words}",
                f"{count} files of shared/realworld, `judge_bytes`, one core, 5 rounds",
                f"median {median:.1f} ms, p95 {p95:.1f} ms",
                "-",
                "-",
                f"median <= {CHECK_TARGET_MS:g} ms",
                "ok" if median <= CHECK_TARGET_MS else "MISS",
            )
        )
    compile_bytecode()  # the daemon, its checkers and the script load bytecode, as installed
    cores = os.cpu_count() or 1
    timed: dict[str, list[float]] = {"once": [], "auto": [], "baseline": []}
    disk: list[Disk] = []
    with tempfile.TemporaryDirectory(prefix="bench-realworld-") as temp:
        workdir = Path(temp)
        workload(sources, workdir / "source", files)
        # "once": as many checkers as the script has processes (one per core), so the ratio is the
        # daemon's own overhead; "auto": the default (one per core beyond the first), for reference.
        # Each round runs `once` and the script one right after the other (which goes first alternates),
        # then "auto"; the ratio is taken within each round and its median reported: this VM's speed drifts
        # by ±10 % over tens of seconds, and a round's two runs share its phase. Each run has a folder and
        # a sandbox of its own (a sandbox that kept earlier runs' imports answers more slowly). Nothing is
        # deleted between runs: on some filesystems files deleted a moment ago make every new file dear.
        for round_number in range(rounds):
            pair = ["once", "baseline"] if round_number % 2 == 0 else ["baseline", "once"]
            for name in [*pair, "auto"]:
                run = workdir / f"{name}-{round_number}"
                with running_sandbox(run) as sandbox:
                    disk.append(wait_for_quiet_disk(run))
                    if name == "baseline":
                        command = [PYTHON, str(Path(__file__).resolve()), "--baseline",
                                   str(workdir / "source"),
                                   "--token-url", sandbox.token_url, "--base-url", sandbox.base_url]
                        timed[name].append(measured_run(command, cwd=run).seconds)
                        continue
                    command = _once(workdir, run, sandbox, cores if name == "once" else None)
                    timed[name].append(measured_run(command, cwd=run).seconds)
                    finished = data_files(run / "bench" / "sent") + data_files(run / "bench" / "failed")
                    if finished != files:
                        raise RuntimeError(f"{name} finished {finished} of {files}")
        # the peak PSS on runs of its own (sampling costs time), with each checker count
        pss: dict[str, int] = {}
        for name, checkers in (("auto", None), ("once", cores)):
            run = workdir / f"pss-{name}"
            with running_sandbox(run) as sandbox:
                pss[name] = tree_pss_peak(_once(workdir, run, sandbox, checkers), cwd=run)
        with running_sandbox(workdir / "bare") as sandbox:
            bare = [PYTHON, str(REPO / "bench" / "baseline.py"), "bulk", str(workdir / "source"),
                    "--token-url", sandbox.token_url, "--base-url", sandbox.base_url]
            bare_seconds = measured_run(bare, cwd=workdir).seconds
    seconds = {name: statistics.median(values) for name, values in timed.items()}
    seconds["bare"] = bare_seconds
    ratios = [once / script for once, script in zip(timed["once"], timed["baseline"], strict=True)]
    auto_ratios = [auto / script for auto, script in zip(timed["auto"], timed["baseline"], strict=True)]
    ratio = statistics.median(ratios)
    rows.append(
        Row(
            "throughput, real invoices",
            f"{files:,} copies of {len(sources)} real PDFs/XMLs, `once` (settle {SETTLE_SECONDS:g} s, "
            f"checkers: {cores}, one per core like the script); {rounds} rounds, each `once` beside the "
            f"script; medians; {disk_words(disk)}",
            f"{files / seconds['once']:.0f} files/s ({seconds['once']:.1f} s); "
            f"checkers auto: {files / seconds['auto']:.0f} files/s ({seconds['auto']:.1f} s)",
            f"{files / seconds['baseline']:.0f} files/s same-work script; "
            f"{files / seconds['bare']:.0f} files/s without checks",
            f"{ratio:.2f}x (rounds: {', '.join(f'{each:.2f}' for each in ratios)}; "
            f"auto: {statistics.median(auto_ratios):.2f}x)",
            f"<= {RATIO_TARGET:g}x the same-work script",
            "ok" if ratio <= RATIO_TARGET else "MISS",
        )
    )
    rows.append(
        Row(
            "memory, real invoices",
            "`once` again (checkers: auto, the default): peak summed PSS of its process tree, per 20 ms",
            f"{pss['auto'] / 2**20:.0f} MiB; with checkers: {cores}: {pss['once'] / 2**20:.0f} MiB",
            "-",
            "-",
            f"<= {PSS_TARGET_MIB} MiB",
            "ok" if pss["auto"] / 2**20 <= PSS_TARGET_MIB else "MISS",
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of `once` beside the script")
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--token-url", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline is not None:
        return baseline(args.baseline, args.token_url, args.base_url)
    if absent():
        print(f"skipped: {REALWORLD} is absent (the real-invoice corpus is not on this machine)")
        return 0
    print("| figure | workload | measured | baseline | ratio | target | verdict |")
    print("|---|---|---|---|---|---|---|")
    for row in measure(args.files, args.rounds):
        cells = (row.figure, row.workload, row.measured, row.baseline, row.ratio, row.target, row.verdict)
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
