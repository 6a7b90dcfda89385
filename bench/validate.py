"""bench: what content validation costs per file, next to reading and hashing the same bytes.

    /work/venv/bin/python bench/validate.py [--repeat N]

Generates a 50 KB PDF, a 2 MB PDF, a 2,000-line UBL invoice and a 100-entry ZIP into a temporary folder,
then times, per file, `open + validate.judge` against `open + hashlib.file_digest(sha256)` (the daemon
does both). The UBL XSDs are compiled once per process: that first compile is timed and printed apart,
before the per-file figures. Medians of N runs.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from invoicesync.archive import unpack  # after the sys.path line above
from invoicesync.checks.content import Rules, judge, self_test
from tests.badfiles import sample_pdf, sample_ubl, zip_of

ORDER = "A1B2C3"
RULES = Rules()


def generate(folder: Path) -> dict[str, Path]:
    pdfs = [sample_pdf(f"{ORDER}{n}") for n in range(50)]
    ubls = [sample_ubl(f"{ORDER}{n}", lines=3) for n in range(50)]
    files = {
        "PDF 50 KB": (f"{ORDER}.pdf", sample_pdf(ORDER, pages=2, padding_bytes=48_000, random_padding=True)),
        "PDF 2 MB": (
            f"{ORDER}.pdf",
            sample_pdf(ORDER, pages=40, padding_bytes=2_000_000, random_padding=True),
        ),
        "UBL 2,000 lines": (f"{ORDER}.xml", sample_ubl(ORDER, lines=2000)),
        "ZIP 100 entries": (
            f"{ORDER}.zip",
            zip_of(
                [(f"{ORDER}{n}.pdf", pdf) for n, pdf in enumerate(pdfs)]
                + [(f"{ORDER}{n}.xml", ubl) for n, ubl in enumerate(ubls)]
            ),
        ),
    }
    paths: dict[str, Path] = {}
    for label, (name, data) in files.items():
        sub = folder / label.replace(" ", "_").replace(",", "")
        sub.mkdir()
        paths[label] = sub / name
        paths[label].write_bytes(data)
    return paths


def median_ms(action: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def judge_file(path: Path) -> None:
    with path.open("rb") as stream:
        verdict = judge(path.name, ORDER, stream, path.stat().st_size, RULES)
    if not verdict.ok:
        raise SystemExit(f"bench file {path.name} was refused: {verdict.error}")


def hash_file(path: Path) -> None:
    with path.open("rb") as stream:
        hashlib.file_digest(stream, "sha256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat

    start = time.perf_counter()
    self_test()
    print(
        f"UBL 2.1 XSD compile, once per process (Invoice + CreditNote): "
        f"{(time.perf_counter() - start) * 1000:.0f} ms"
    )

    with tempfile.TemporaryDirectory() as folder:
        paths = generate(Path(folder))
        for path in paths.values():  # warm caches: first pypdf import paths, page cache
            judge_file(path)
            hash_file(path)
        print(f"\n{'file':<18}{'size':>11}{'judge ms':>11}{'read+sha256 ms':>16}{'ratio':>9}")
        for label, path in paths.items():
            judged = median_ms(functools.partial(judge_file, path), repeat)
            hashed = median_ms(functools.partial(hash_file, path), repeat)
            size = path.stat().st_size
            print(f"{label:<18}{size / 1000:>9,.0f}KB{judged:>11.2f}{hashed:>16.3f}{judged / hashed:>8.0f}x")

        zip_path = paths["ZIP 100 entries"]
        count = 0

        def unpack_once() -> None:
            nonlocal count
            count += 1
            result = unpack(zip_path, Path(folder) / f"unpacked-{count}", RULES)
            if not hasattr(result, "entries"):
                raise SystemExit(f"bench ZIP was refused: {result}")

        print(
            f"\narchive.unpack of the 100-entry ZIP (shell, writes 100 files): "
            f"{median_ms(unpack_once, max(3, repeat // 3)):.1f} ms"
        )


if __name__ == "__main__":
    main()
