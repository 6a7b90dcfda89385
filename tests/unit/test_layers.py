"""The core stays pure: no clock, disk, network or logger imported by a core module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "invoicesync"
CORE = [
    "model",
    "errors",
    "naming",
    "settle",
    "plan",
    "lifecycle",
    "report",
    "messages",
    "validate_xsd",
    "validate",
    "validate_pdf",
    "validate_xml",
    "validate_zip",
]
FORBIDDEN = {"os", "time", "httpx", "structlog", "sqlite3", "socket", "shutil"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", [m for m in CORE if (PACKAGE / f"{m}.py").exists()])
def test_core_module_does_no_io(module: str) -> None:
    assert _imports(PACKAGE / f"{module}.py") & FORBIDDEN == set()


def test_nothing_imports_cli_or_service() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.stem in {"cli", "service", "commands", "__main__"}:
            continue
        imported = {
            node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & {"invoicesync.cli", "invoicesync.service"}, path
