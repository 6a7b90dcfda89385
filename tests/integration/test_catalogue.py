"""The whole bad-input catalogue through `invoicesync once`, a real subprocess, against a sandbox we hold.

Every case of `tests.badfiles.catalogue` is dropped into one outbox under its own order ID, so no two
cases share a file name, a duplicate check or an order in flight. Each must end in `failed/` with its
code (or in `sent/` when it has none), beside its sidecar, and nothing the daemon refused (least of all
anything inside an unsafe ZIP) may reach the sandbox.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from invoicesync.checks.content import kind_of
from tests.badfiles import Case, catalogue
from tests.harness import drop, files_in, leftovers, report
from tests.oncerun import run_once, sandbox_config, start_sandbox


def order_for(index: int) -> str:
    """One order per case, with letters, so the case that swaps the name's case makes another name."""
    return f"CAT{index:03d}ord"


def one_order_per_case() -> list[tuple[str, Case]]:
    """(order, case) for every catalogue case, each case generated for its own order."""
    count = len(catalogue(order_for(0)))
    return [(order_for(index), catalogue(order_for(index))[index]) for index in range(count)]


def test_every_catalogue_case_ends_where_its_code_says(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    dropped = one_order_per_case()
    for _, case in dropped:
        drop(root, case.file_name, case.data)

    with start_sandbox() as sandbox:
        result = run_once(sandbox_config(tmp_path, sandbox), cwd=tmp_path)
        received = sandbox.received()

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert leftovers(root) == []
    received_orders = {str(row["orderId"]).casefold() for row in received}
    received_hashes = {row["sha256"] for row in received}
    per_code: Counter[str] = Counter()
    expected: dict[str, list[str]] = {"sent": [], "failed": []}
    containers_sent = 0
    for order, case in dropped:
        per_code[case.code or "(passes)"] += 1
        folder = "sent" if case.code is None else "failed"
        expected[folder].append(case.file_name)
        document = report(root, folder, case.file_name)
        assert (document["error"] or {}).get("code") == case.code, (case.name, document["error"])
        assert document["file"] == case.file_name and document["origin"] is None, case.name
        assert document["hint"], case.name
        if case.code is not None:
            assert document["stage"] == "validation", case.name
            assert document["error"]["message"].endswith("."), case.name
            # refused here: nothing of it, nor of anything inside it, reached the marketplace
            assert order.casefold() not in received_orders, case.name
            assert hashlib.sha256(case.data).hexdigest() not in received_hashes, case.name
        elif kind_of(case.file_name) == "zip":
            containers_sent += 1
            assert document["entries"], case.name
            for entry in document["entries"]:
                assert entry["outcome"] == "sent", (case.name, entry)
                expected["sent"].append(entry["file"])
                inner = report(root, "sent", entry["file"])
                assert inner["origin"] == case.file_name and inner["import_id"], case.name
                assert inner["sha256"] in received_hashes, case.name
        else:
            assert document["stage"] == "import" and document["import_id"], case.name
            assert hashlib.sha256(case.data).hexdigest() in received_hashes, case.name
    for folder, suffix in (("sent", ".receipt.json"), ("failed", ".error.json")):
        assert files_in(root, folder) == sorted(expected[folder])
        assert all((root / folder / f"{name}{suffix}").is_file() for name in files_in(root, folder))
    sent, failed = len(expected["sent"]) - containers_sent, len(expected["failed"])
    summary = f"sent={sent} failed={failed} in_flight=0 waiting=0"
    assert result.stdout.strip().splitlines()[-1] == summary
    print("\ncatalogue cases per code:", dict(sorted(per_code.items())))
