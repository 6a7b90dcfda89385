"""bench: invoicesync's cost measured against the bare minimum, in the same run (see bench/README.md).

    /work/venv/bin/python bench/run.py [--quick] [--only FIGURE ...]

Starts `invoicesync sandbox` subprocesses on loopback (short processing delay) and prints one table:
figure, workload, measured, baseline (same run), ratio, target, verdict. Nothing here asserts: the
machine is shared and noisy, so read the ratios, not the absolute times. `--quick` runs the same figures
on smaller workloads and shorter windows (a few minutes); the full run takes longer.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench import footprint, realworld, responsiveness, throughput  # after the sys.path line above
from bench.common import PYTHON, REPO, Row, compile_bytecode

COLUMNS = ("figure", "workload", "measured", "baseline (same run)", "ratio", "target", "verdict")


def validation(*, repeat: int) -> list[Row]:
    """bench/validate.py (the deep validation issue's), its per-file ratio to read + SHA-256."""
    done = subprocess.run(
        [PYTHON, str(REPO / "bench" / "validate.py"), "--repeat", str(repeat)],
        capture_output=True, text=True, check=True, timeout=600,
    )
    rows = []
    pattern = re.compile(r"^(.+?)\s+([\d,]+KB)\s+([\d.]+)\s+([\d.]+)\s+(\d+)x$")
    for line in done.stdout.splitlines():
        match = pattern.match(line)
        if match:
            label, size, judged, hashed, ratio = match.groups()
            rows.append(
                Row("validation", f"judge one {label.strip()} ({size})", f"{judged} ms",
                    f"{hashed} ms read+sha256", f"{ratio}x", "report the ratio")
            )
    return rows


def figures(quick: bool) -> dict[str, Callable[[], list[Row]]]:
    return {
        "throughput": lambda: throughput.measure(
            files=2000, per_file_files=200 if quick else 2000, rounds=1 if quick else 3
        ),
        "memory": lambda: footprint.memory(large=200_000_000, small_count=20, small=20_000_000),
        "scan": lambda: footprint.scan(files=50_000, repeat=5 if quick else 15),
        "idle": lambda: footprint.idle_cpu(files=10_000, window_seconds=15 if quick else 60),
        "latency": lambda: responsiveness.latency(drops=5 if quick else 20),
        "recovery": lambda: responsiveness.recovery(finished=100_000, in_flight=1_000),
        "validation": lambda: validation(repeat=5 if quick else 15),
        "realworld": lambda: realworld.measure(files=2000, rounds=1 if quick else 5),
    }


def machine() -> str:
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()
    total = memory[1].split()[1] if len(memory) > 1 else "?"
    return (
        f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs (nproc), {total} RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def table(rows: list[Row]) -> str:
    cells = [COLUMNS, *((r.figure, r.workload, r.measured, r.baseline, r.ratio, r.target, r.verdict)
                        for r in rows)]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, shorter windows")
    parser.add_argument("--only", nargs="+", metavar="FIGURE", help="run only these figures")
    args = parser.parse_args()
    chosen = figures(args.quick)
    unknown = set(args.only or ()) - set(chosen)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}; choose from {', '.join(chosen)}")
    compile_bytecode()  # every figure measures the package as installed: see bench.common
    started = time.monotonic()
    rows: list[Row] = []
    for name, measure in chosen.items():
        if args.only and name not in args.only:
            continue
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(measure())
        except Exception as exc:  # one broken figure must not hide the others
            rows.append(Row(name, "-", f"error: {exc}".replace("\n", " ")[:200], verdict="ERROR"))
    mode = "--quick" if args.quick else "full"
    print(f"invoicesync bench ({mode}), {machine()}, {time.monotonic() - started:.0f} s\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
