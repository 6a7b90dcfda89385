"""bench: `invoicesync once` on 500 files against an `invoicesync sandbox` process that faults ~30% of calls.

    /work/venv/bin/python bench/faults.py [--files 500] [--error-rate 0.15] [--rate-limit-rate 0.1]
                                          [--slow-rate 0.05] [--slow-seconds 1]
                                          [--drop-after-accept-rate 0.03] [--seed 1]

The sandbox runs alone (`invoicesync sandbox --port 0 --error-rate … --rate-limit-rate … --slow-rate …`),
so invoicesync treats it as the real marketplace: 10 s of grace before an unanswered upload absent from
the import list is sent again, stamina's real backoff, real Retry-After waits. Prints the `once` summary
line and exit code, how long it took, the retries seen in its logs, the faults the sandbox injected, and
per-order upload counts from `GET /_sandbox/received` (none may be above 1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.badfiles import sample_pdf, sample_ubl  # after the sys.path line above
from tests.e2e.killloop import SandboxProcess, write_config

RETRY_EVENTS = {
    "request_retried": "retried within the call (stamina: 5xx, 429 with Retry-After, network; debug)",
    "batch_step_deferred": "deferred to the loop's timer (retries ran out, or a long Retry-After)",
    "upload_answer_lost": "upload answers lost (5xx or dropped after sending): looked up first",
    "lost_upload_found": "  ... found in the import list (not sent again)",
    "lost_upload_absent": "  ... surely absent after the grace (sent again)",
}


def drop_files(outbox: Path, count: int) -> None:
    for n in range(count):
        order = f"FAULTS{n:06d}"
        name, data = (f"{order}.pdf", sample_pdf(order)) if n % 2 else (f"{order}.xml", sample_ubl(order))
        temp = outbox / f".{name}.part"
        temp.write_bytes(data)
        temp.rename(outbox / name)


def get_json(sandbox: SandboxProcess, path: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(sandbox.base_url.replace("/seller/v2", path), timeout=30).json()
    return data


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--error-rate", type=float, default=0.15, help="500/503 (default 0.15)")
    parser.add_argument("--rate-limit-rate", type=float, default=0.1, help="429 + Retry-After (default 0.1)")
    parser.add_argument("--slow-rate", type=float, default=0.05, help="answers slowed (default 0.05)")
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument(
        "--drop-after-accept-rate", type=float, default=0.03, help="uploads accepted, answer lost (0.03)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    flags = [
        "--error-rate", str(args.error_rate),
        "--rate-limit-rate", str(args.rate_limit_rate),
        "--slow-rate", str(args.slow_rate),
        "--slow-seconds", str(args.slow_seconds),
        "--drop-after-accept-rate", str(args.drop_after_accept_rate),
        "--processing-seconds", "2",
        "--seed", str(args.seed),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="invoicesync-faults-") as folder:
        workdir = Path(folder)
        sandbox = SandboxProcess(workdir, *flags)
        try:
            config = write_config(
                workdir,
                sandbox,
                watch={"mode": "poll", "settle_seconds": 0.5, "poll_seconds": 0.2},
                batch={"max_files": 25, "max_wait_seconds": 1},
                poll={"first_seconds": 1, "max_seconds": 10},
            )
            document = yaml.safe_load(config.read_text())
            document["log"]["level"] = "debug"  # request_retried is a debug event
            config.write_text(yaml.safe_dump(document, sort_keys=False))
            drop_files(workdir / "shop" / "outbox", args.files)
            print(f"sandbox: invoicesync sandbox --port 0 {' '.join(flags)}")
            started = time.monotonic()
            once = subprocess.run(
                [sys.executable, "-m", "invoicesync", "once", "-c", str(config)],
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            elapsed = time.monotonic() - started
            received = get_json(sandbox, "/_sandbox/received")["files"]
            stats = get_json(sandbox, "/_sandbox/stats")
        finally:
            sandbox.stop()
        lines = once.stdout.strip().splitlines()  # the summary; the logs are on stderr
        events = Counter()
        for line in once.stderr.splitlines():
            if line.startswith("{"):
                events[json.loads(line).get("event", "?")] += 1
        sent = sorted(p.name for p in (workdir / "shop" / "sent").iterdir() if not p.name.endswith(".json"))
        failed = [p.name for p in (workdir / "shop" / "failed").iterdir()]

    calls = sum(stats["requests"].values())
    faults = stats["faults"]
    per_order = Counter(row["orderId"] for row in received)
    spread = Counter(per_order.values())
    print(f"files: {args.files}; once exit code {once.returncode}; took {elapsed:.1f} s")
    print(f"summary line: {lines[-1] if lines else '(none)'}")
    print(f"in sent/: {len(sent)}, in failed/: {len(failed)}")
    faulted = sum(faults.values())
    print(f"sandbox: {calls} calls, {faulted} faulted ({faulted / max(calls, 1):.0%}):")
    for kind, count in sorted(faults.items()):
        print(f"  {kind}: {count}")
    print("retries seen in the logs:")
    for event, meaning in RETRY_EVENTS.items():
        print(f"  {events[event]:4d}  {event}: {meaning}")
    print(f"  {stats['token_requests']:4d}  token requests")
    print(f"uploads per order (GET /_sandbox/received): {len(per_order)} orders, ", end="")
    print(", ".join(f"{count} received {times}x" for times, count in sorted(spread.items())))
    print(f"most uploads of one order: {max(per_order.values(), default=0)}")
    if once.returncode != 0:
        print(once.stderr[-4000:], file=sys.stderr)
    ok = once.returncode == 0 and len(sent) == args.files and not failed and max(spread, default=0) <= 1
    print("OK" if ok else "NOT OK: a file was lost, failed or sent twice")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
