"""What invoicesync publishes for the people around it: `invoicesync example` prints the shipped reference
files (the example configuration and the unit are the top-level files themselves, so a `pipx` user has
them), and every report the daemon writes (sent, failed, duplicate, a dropped ZIP) is valid against the
published JSON Schema `invoicesync.report/1` that ERP integrators code against."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from invoicesync.messages import TEXTS
from tests.badfiles import sample_pdf, zip_of
from tests.e2e.conftest import invoicesync
from tests.harness import drop, write_config

PROJECT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((PROJECT / "invoicesync" / "data" / "report.schema.json").read_text())


@pytest.mark.parametrize(
    ("what", "source"),
    [
        ("config", PROJECT / "config.example.yaml"),
        ("unit", PROJECT / "systemd" / "invoicesync.service"),
        ("report-schema", PROJECT / "invoicesync" / "data" / "report.schema.json"),
    ],
)
def test_example_prints_the_shipped_file(tmp_path: Path, what: str, source: Path) -> None:
    result = invoicesync("example", what, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == source.read_text()


def test_the_schema_is_valid_and_names_every_error_code() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    code = SCHEMA["properties"]["error"]["oneOf"][1]["properties"]["code"]
    assert code["examples"] == sorted(TEXTS)


def test_every_report_the_daemon_writes_is_valid_against_the_published_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path, orders=["SCHEMA0001", "SCHEMA0002", "SCHEMA0003"])
    root = tmp_path / "shop"
    pdf = sample_pdf("SCHEMA0001")
    drop(root, "SCHEMA0001.pdf", pdf)  # sent
    drop(root, "not-an-order.pdf", sample_pdf("SCHEMA0001"))  # failed: InvalidFileName
    drop(root, "SCHEMA0009.pdf", sample_pdf("SCHEMA0009"))  # failed at the marketplace: unknown order
    drop(root, "bundle.zip", zip_of([("SCHEMA0002.pdf", sample_pdf("SCHEMA0002")), ("x.txt", b"x")]))
    first = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=90)
    assert first.returncode == 0, first.stderr[-2000:]
    (root / "sent" / "SCHEMA0001.pdf").rename(root / "outbox" / "SCHEMA0001.pdf")  # again: a duplicate
    (root / "sent" / "SCHEMA0001.pdf.receipt.json").unlink()
    second = invoicesync("once", "-c", str(config), cwd=tmp_path, timeout=90)
    assert second.returncode == 0, second.stderr[-2000:]

    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    reports = sorted((root / "sent").glob("*.json")) + sorted((root / "failed").glob("*.json"))
    seen = {"sent": 0, "failed": 0, "duplicate": 0, "entries": 0}
    for path in reports:
        report = json.loads(path.read_text())
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(report)]
        assert errors == [], (path.name, errors)
        seen[report["outcome"]] += 1
        seen["duplicate"] += "duplicate_of" in report
        seen["entries"] += "entries" in report
    assert seen["sent"] >= 3 and seen["failed"] >= 3 and seen["duplicate"] == 1 and seen["entries"] == 1, seen
