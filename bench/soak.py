"""Soak: the SIGKILL loop at scale (default 5,000 files, 50 kills), outside the test run.

    python bench/soak.py [--files 5000] [--kills 50] [--seed 1] [--marketplace octopia|kaufland]

Prints the counts and `lost=0 duplicated=0` when nothing was lost or sent twice; exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.killloop import run_kill_loop  # after the path set-up above


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--marketplace", choices=("octopia", "kaufland"), default="octopia")
    parser.add_argument("--checkers", type=int, default=None, help="checker processes (default: auto)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="invoicesync-soak-") as workdir:
        outcome = run_kill_loop(
            Path(workdir),
            files=args.files,
            kills=args.kills,
            seed=args.seed,
            finish_timeout_seconds=1800,
            progress=lambda line: print(line, flush=True),
            marketplace=args.marketplace,
            checkers=args.checkers,
        )
    print(
        f"files={outcome.dropped} kills={outcome.kills} sent={outcome.sent} failed={outcome.failed} "
        f"bad_sidecars={outcome.bad_sidecars} leftovers={len(outcome.leftovers)}"
    )
    print("kill moments: " + " ".join(f"{k}={v}" for k, v in sorted(outcome.moments.items())))
    print(f"lost={outcome.lost} duplicated={outcome.duplicated} seconds={time.monotonic() - started:.1f}")
    print(f"received twice by the marketplace (order, bytes): {len(outcome.received_twice)}")
    ok = (
        outcome.lost == 0
        and outcome.duplicated == 0
        and outcome.bad_sidecars == 0
        and not outcome.leftovers
        and not outcome.received_twice
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
