"""Test harness: a real configuration file in tmp_path, folder helpers, report readers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from invoicesync.config import Config, load_config


def write_config(
    tmp_path: Path,
    outboxes: Iterable[str] = ("shop",),
    *,
    orders: list[str] | str = "all",
    processing_seconds: float = 0.2,
    faults: dict[str, Any] | None = None,
    outbox_overrides: dict[str, Any] | None = None,
    sandbox_extra: dict[str, Any] | None = None,
) -> Path:
    """A config with fast timings, one outbox per name under tmp_path/<name>, using the sandbox."""
    boxes = []
    for name in outboxes:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        box: dict[str, Any] = {
            "name": name,
            "root": str(root),
            "octopia": {
                "base_url": "sandbox",
                "seller_id": "98979",
                "client_id": "test-client",
                "client_secret": "s3cret-value-for-tests",
            },
            "watch": {"mode": "poll", "settle_seconds": 0.2, "poll_seconds": 0.1, "rescan_seconds": 5},
            "batch": {"max_files": 200, "max_bytes": "50MB", "max_wait_seconds": 0.2},
            "poll": {"first_seconds": 0.1, "max_seconds": 0.5, "give_up_after": "1h"},
        }
        for key, value in (outbox_overrides or {}).items():
            box[key] = {**box.get(key, {}), **value} if isinstance(value, dict) else value
        boxes.append(box)
    document = {
        "state_dir": str(tmp_path / "state"),
        "log": {"format": "json", "level": "info"},
        "outboxes": boxes,
        "sandbox": {
            "orders": orders,
            "processing_seconds": processing_seconds,
            "client_id": "test-client",
            "client_secret": "s3cret-value-for-tests",
            "seller_id": "98979",
            "faults": faults or {},
            **(sandbox_extra or {}),
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def load(tmp_path: Path, **kwargs: Any) -> Config:
    return load_config(write_config(tmp_path, **kwargs))


def drop(root: Path, name: str, data: bytes) -> Path:
    """Write under a temporary name, then rename: what a well-behaved ERP does."""
    outbox = root / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    temp = outbox / f".{name}.part"
    temp.write_bytes(data)
    target = outbox / name
    temp.rename(target)
    return target


def report(root: Path, folder: str, name: str) -> dict[str, Any]:
    suffix = ".receipt.json" if folder == "sent" else ".error.json"
    data: dict[str, Any] = json.loads((root / folder / f"{name}{suffix}").read_text(encoding="utf-8"))
    return data


def files_in(root: Path, folder: str) -> list[str]:
    """Data files (not sidecars) in a folder."""
    path = root / folder
    if not path.exists():
        return []
    return sorted(
        p.name for p in path.iterdir() if not p.name.endswith(".json") and not p.name.startswith(".")
    )


def leftovers(root: Path) -> list[str]:
    """Anything still in outbox/ or .processing/: must be empty once work is done."""
    found = [p.name for p in (root / "outbox").iterdir()] if (root / "outbox").exists() else []
    processing = root / ".processing"
    if processing.exists():
        found += [
            str(p.relative_to(processing)) for p in processing.rglob("*") if p.is_file() or p.is_symlink()
        ]
    return found
