"""The layers hold: the core stays pure (no clock, disk, network, logger, thread or process imported by a
core module, and no shell module either), every module names its layer, and nothing imports the top of
the shell (`cli`, `service`) however the import is spelled."""

from __future__ import annotations

import ast
import re
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
    "pause",
    "step",
    "inbox.plan",
    "checks.content",
    "checks.pdf",
    "checks.pdfbytes",
    "checks.ubl",
    "checks.zipsafety",
]
# Edge: I/O done once at a boundary, whose result is a value the core may use. `checks.schemas` reads
# the UBL 2.1 XSDs from package data once and compiles them; `config` reads the configuration file once.
EDGE = ["checks.schemas", "config"]
FORBIDDEN = {
    "os",
    "time",
    "httpx",
    "structlog",
    "sqlite3",
    "socket",
    "shutil",
    "logging",
    "threading",
    "pathlib",
    "subprocess",
    "signal",
    "tempfile",
    "asyncio",
    "concurrent",
    "multiprocessing",
}
TOP = {"cli", "service", "commands", "__main__"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _package_imports(path: Path) -> set[str]:
    """Modules of the package imported by `path` (dotted, below `invoicesync`), however spelled:
    `import invoicesync.x.y`, `from invoicesync.x import y`, `from invoicesync import x`; a relative
    import fails the test (write it in full)."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(
                alias.name.removeprefix("invoicesync.")
                for alias in node.names
                if alias.name.startswith("invoicesync.")
            )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; write `from invoicesync... import`")
            if node.module == "invoicesync":
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("invoicesync."):
                found.add(node.module.removeprefix("invoicesync."))
    return found


def _path(module: str) -> Path:
    return PACKAGE.joinpath(*module.split(".")).with_suffix(".py")


def _name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_listed_core_and_edge_module_exists() -> None:
    """A core module renamed or moved must not drop out of the checks below unnoticed."""
    missing = [name for name in CORE + EDGE if not _path(name).exists()]
    assert missing == []


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_no_io(module: str) -> None:
    assert _imports(_path(module)) & FORBIDDEN == set()


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_only_core_and_edge(module: str) -> None:
    assert _package_imports(_path(module)) - set(CORE) - set(EDGE) == set()


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_module_names_its_layer(path: Path) -> None:
    if path.name in {"__init__.py", "__main__.py"} and path.parent == PACKAGE:
        return  # the package's face: one line each
    docstring = ast.get_docstring(_tree(path)) or ""
    said = re.search(r"\((core|edge|shell)\)", docstring.splitlines()[0] if docstring else "")
    assert said is not None, f"{path}: its docstring's first line names no layer"
    name = _name(path).removesuffix(".__init__")
    expected = "core" if name in CORE else "edge" if name in EDGE else "shell"
    assert said.group(1) == expected, f"{path}: says {said.group(1)}, listed as {expected}"


def test_nothing_imports_the_top_of_the_shell() -> None:
    for path in _modules():
        if _name(path) in TOP:
            continue
        assert _package_imports(path) & {"cli", "service", "commands"} == set(), path


def test_there_is_no_import_cycle() -> None:
    """No module imports, directly or through others, one that imports it back (lazy and TYPE_CHECKING
    imports count too): each can be read, tested and changed from the bottom up."""
    modules = {_name(path).removesuffix(".__init__"): path for path in _modules()}
    graph = {
        name: {imported for imported in _package_imports(path) if imported in modules and imported != name}
        for name, path in modules.items()
    }
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                cycles.append(
                    [*path[path.index(imported) :], imported] if imported in path else [name, imported]
                )
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
