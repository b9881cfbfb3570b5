"""The house rules, read from the source with ``ast``: no import cycles (function-level imports count,
``if TYPE_CHECKING:`` blocks do not), modules readable in one sitting, an engine without GUI or front-end imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "napari_bioimg"
#: A soft budget, not a cut line (issue 22): modules are cut by concept; past this a reader loses the thread.
MAX_LINES = 500
#: Modules allowed to be longer: path -> (at most this many lines, why). Each entry is a debt.
LONG_MODULES: dict[str, tuple[int, str]] = {}
GUI = {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy", "superqt"}


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


class _Imports(ast.NodeVisitor):
    """Every module an import statement names, at any depth, outside ``if TYPE_CHECKING:``."""

    def __init__(self, module: str, is_package: bool):
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
                (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        self.found.add(module)
        self.found.update(f"{module}.{alias.name}" for alias in node.names)  # submodules among the names


def imported(module: str) -> set[str]:
    path = MODULES[module]
    visitor = _Imports(module, path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(), str(path)))
    return visitor.found


GRAPH = {m: {i for i in imported(m) if i in MODULES and i != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_reader_sees_function_level_and_relative_imports():
    assert "napari_bioimg.core.tasks" in GRAPH["napari_bioimg.core.config"]  # inside suggest()
    assert "napari_bioimg.core.formats.checkpoint" in GRAPH["napari_bioimg.core.training.setup"]
    assert "napari_bioimg.core.config" not in GRAPH["napari_bioimg.core.tasks.base"]  # TYPE_CHECKING only
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    detail = ["; ".join(f"{a} -> {b}" for a in c for b in sorted(GRAPH[a]) if b in c) for c in cycles]
    assert not cycles, "import cycles (function-level imports count):\n" + "\n".join(detail)


def test_modules_are_readable_in_one_sitting():
    too_long = {}
    for path in MODULES.values():
        rel = path.relative_to(SRC).as_posix()
        lines = len(path.read_text().splitlines())
        limit = LONG_MODULES.get(rel, (MAX_LINES, ""))[0]
        if lines > limit:
            too_long[rel] = lines
    assert not too_long, f"modules over {MAX_LINES} lines (split them by concern): {too_long}"


def test_the_engine_imports_no_gui_and_no_front_end():
    offenders = []
    for module in MODULES:
        if not module.startswith(f"{PACKAGE}.core"):
            continue
        for name in imported(module):
            if name.split(".")[0] in GUI or name.startswith((f"{PACKAGE}._qt", f"{PACKAGE}.cli")):
                offenders.append(f"{module}: {name}")
    assert not offenders, offenders


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith(f"{PACKAGE}.cli")])
def test_the_command_line_reaches_the_gui_only_for_the_demo_screenshot(module):
    gui = [n for n in imported(module) if n.split(".")[0] in GUI or n.startswith(f"{PACKAGE}._qt")]
    assert not gui or module == f"{PACKAGE}.cli.demo", gui
