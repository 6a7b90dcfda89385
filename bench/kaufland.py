"""bench.kaufland: a Kaufland outbox at month-end volume, and its memory with a 20 MB PDF.

    python bench/kaufland.py [--files 1000]

- throughput: `invoicesync once` over PDFs for distinct orders, through the sandbox's Kaufland simulator,
  which enforces 111 requests per second like Kaufland (more: 429, nothing done). Kaufland's own limit is
  the floor: (requests the simulator counted) / 111 s. Also counted: the 429s met.
- memory: one 20 MB PDF, whose upload is a ~27 MB JSON body (base64): the daemon's peak RSS, beside the
  same file through an Octopia outbox (the body is streamed from disk in both).

Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # after the sys.path line above
    Row,
    SandboxProcess,
    data_files,
    drop_copies,
    invoicesync_command,
    measured_run,
    sample_pdf,
    start_sandbox,
    verdict,
    write_config,
    write_files,
)
from bench.footprint import MB, peaks

KAUFLAND_LIMIT = 111  # requests per second, all endpoints together, as the simulator enforces by default
TARGET = 1.3  # wall time at most this many times the floor


def kaufland_config(workdir: Path, sandbox: SandboxProcess, *, max_bytes: int = 20 * MB) -> Path:
    root = workdir / "bench"
    (root / "outbox").mkdir(parents=True, exist_ok=True)
    box: dict[str, Any] = {
        "name": "bench",
        "root": str(root),
        "marketplace": "kaufland",
        "kaufland": {"base_url": sandbox.kaufland_url, "client_key": "bench", "secret_key": "bench-secret"},
        "watch": {"mode": "poll", "settle_seconds": 0.5, "poll_seconds": 0.25},
        "files": {"max_bytes": max_bytes},
    }
    document = {
        "state_dir": str(workdir / "state"),
        "log": {"format": "json", "level": "info"},
        "outboxes": [box],
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _stats(sandbox: SandboxProcess) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(
        sandbox.base_url.replace("/seller/v2", "/_sandbox/stats"), timeout=30
    ).json()
    return stats


def throughput(files: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-kaufland-") as temp:
        workdir = Path(temp)
        sandbox = start_sandbox(workdir)
        try:
            sources = write_files(
                workdir / "source", [(f"MK{n:06d}.pdf", sample_pdf(f"MK{n:06d}")) for n in range(files)]
            )
            config = kaufland_config(workdir, sandbox)
            drop_copies(sources, workdir / "bench" / "outbox")
            before = _stats(sandbox)
            finished = measured_run(invoicesync_command("once", "-c", str(config)), cwd=workdir)
            after = _stats(sandbox)
            sent = data_files(workdir / "bench" / "sent")
        finally:
            sandbox.stop()
    if sent != files:
        raise RuntimeError(f"kaufland: {sent} of {files} sent: {finished.stdout[-400:]}")
    requests = sum(n for route, n in after["requests"].items() if route.startswith("kaufland")) - sum(
        n for route, n in before["requests"].items() if route.startswith("kaufland")
    )
    refused = after["faults"].get("rate_limited", 0) - before["faults"].get("rate_limited", 0)
    floor = requests / KAUFLAND_LIMIT
    ratio = finished.seconds / floor
    return [
        Row(
            "kaufland throughput",
            f"{files:,} PDFs, `once` (start-up, settle 0.5 s, checks included), "
            f"simulator at {KAUFLAND_LIMIT} req/s",
            f"{finished.seconds:.2f} s, {requests:,} requests, {refused} x 429",
            f"{floor:.2f} s = requests / {KAUFLAND_LIMIT}",
            f"{ratio:.2f}x",
            f"<= {TARGET:g}x",
            verdict(ratio <= TARGET),
        )
    ]


def memory(size: int) -> list[Row]:
    """Peak RSS of `once` delivering one PDF of `size` bytes, through Kaufland and through Octopia."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-kaufland-memory-") as temp:
        workdir = Path(temp)
        sandbox = start_sandbox(workdir)
        try:
            for marketplace in ("kaufland", "octopia"):
                folder = workdir / marketplace
                folder.mkdir()
                if marketplace == "kaufland":
                    config = kaufland_config(folder, sandbox, max_bytes=size + MB)
                else:
                    config = write_config(
                        folder, sandbox, files={"max_bytes": size + MB}, batch={"max_bytes": size + MB}
                    )
                order = f"MMEM{marketplace[0].upper()}01"
                data = sample_pdf(order, padding_bytes=size, random_padding=True)
                (folder / "bench" / "outbox" / f"{order}.pdf").write_bytes(data)
                finished = measured_run(invoicesync_command("once", "-c", str(config)), cwd=folder)
                if data_files(folder / "bench" / "sent") != 1:
                    raise RuntimeError(f"memory ({marketplace}): not sent: {finished.stderr[-600:]}")
                results[marketplace] = peaks(finished.stderr)[0] * 1024
        finally:
            sandbox.stop()
    mib = 1024 * 1024
    ratio = results["kaufland"] / results["octopia"]
    return [
        Row(
            "kaufland memory",
            f"1 x {size // MB} MB PDF (a ~{size * 4 // 3 // MB} MB base64 JSON body), `once`: "
            "the daemon's peak RSS",
            f"{results['kaufland'] / mib:.0f} MiB",
            f"{results['octopia'] / mib:.0f} MiB the same file to Octopia",
            f"{ratio:.2f}x",
            "within the Octopia figure",
            verdict(ratio <= 1.1),
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=20)
    args = parser.parse_args()
    rows = throughput(args.files) + memory(args.megabytes * MB)
    print("| figure | workload | measured | baseline | ratio | target | verdict |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        cells = (row.figure, row.workload, row.measured, row.baseline, row.ratio, row.target, row.verdict)
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
