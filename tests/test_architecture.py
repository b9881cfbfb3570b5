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


def imported_for_types(module: str) -> set[str]:
    """What ``module`` imports, its ``if TYPE_CHECKING:`` blocks included (a type checker follows those too)."""
    path = MODULES[module]
    visitor = _Imports(module, path.name == "__init__.py")
    visitor.visit_If = visitor.generic_visit  # enter every if-block
    visitor.visit(ast.parse(path.read_text(), str(path)))
    return visitor.found


TYPED_GRAPH = {m: {i for i in imported_for_types(m) if i in MODULES and i != m} for m in MODULES}


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


def test_no_import_cycles_counting_type_only_imports():
    """Type-only imports (``if TYPE_CHECKING:``) count too: a room that names another's type depends on it."""
    assert "napari_bioimg.core.data.imageset" in TYPED_GRAPH["napari_bioimg.core.data.holdout"]  # type-only
    assert "napari_bioimg.core.data.imageset" not in GRAPH["napari_bioimg.core.data.holdout"]
    cycles = _cycles(TYPED_GRAPH)
    detail = ["; ".join(f"{a} -> {b}" for a in c for b in sorted(TYPED_GRAPH[a]) if b in c) for c in cycles]
    assert not cycles, "import cycles (type-only imports count):\n" + "\n".join(detail)


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


#: Behaviour is asked of the task (a capability or a method of its class: :class:`~core.tasks.dense.DenseTask`,
#: :class:`~core.tasks.items.ItemTask`), never switched on its name or on a kind flag, outside the task classes.
TASKS_HOME = f"{PACKAGE}/core/tasks/"
#: Where a task *name* (a string field ``.task``) is still compared with a literal: path -> why. Each is a debt.
NAME_SWITCHES: dict[str, str] = {
}


def _names_a_task(node: ast.AST) -> bool:
    """``task``, ``t``, ``loaded.task``, ``self.s.task``, ``form.task_info``, ``some_task``: a Task object."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name in ("t", "task", "task_info") or name.endswith("_task")


def task_switches(source: str, task_names: set[str]) -> list[str]:
    """Lines that branch on what a task is called: ``direct_model``, ``task.name ==/!=/in``, or a task-name
    field compared with a registered name (``config.task != "semantic"``)."""
    found = [f"{i}: direct_model" for i, line in enumerate(source.splitlines(), 1) if "direct_model" in line]
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare) or not any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                        for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        literals = {c.value for o in operands for c in ([o] if isinstance(o, ast.Constant) else
                                                         getattr(o, "elts", [])) if isinstance(c, ast.Constant)}
        for o in operands:
            by_name = isinstance(o, ast.Attribute) and o.attr == "name" and _names_a_task(o.value)
            name_field = isinstance(o, ast.Attribute) and o.attr == "task" and literals & task_names
            if by_name or name_field:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_task_switch_reader_sees_names_and_flags():
    names = {"semantic", "classify"}
    assert task_switches("if loaded.task.name != 'classify': pass", names)
    assert task_switches("x = task.name in ('denoise', 'reconstruct')", names)
    assert task_switches("ok = self.form.task_info.direct_model", names)
    assert task_switches("if config.task == 'semantic': pass", names)
    assert task_switches("if run.task in ('semantic', 'x'): pass", names)
    assert not task_switches("if task.wants_scribbles and layer.name == 'a': pass", names)
    assert not task_switches("if form.task.value != card.task: pass", names)  # which task, not what it does


def test_no_branching_on_task_names_outside_the_task_classes():
    from napari_bioimg.core.tasks import list_tasks

    names = set(list_tasks()) | {"bioimageio"}
    offenders, debts = {}, set()
    for path in MODULES.values():
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(TASKS_HOME):
            continue
        found = task_switches(path.read_text(), names)
        if rel in NAME_SWITCHES and found:
            debts.add(rel)
            found = [f for f in found if "direct_model" in f or ".name" in f]
        if found:
            offenders[rel] = found
    assert debts == set(NAME_SWITCHES), f"paid debts, remove them from NAME_SWITCHES: {set(NAME_SWITCHES) - debts}"
    assert not offenders, ("ask the task (a capability such as predicts_items, wants_scribbles, supports_live, "
                           f"or a method) instead of its name: {offenders}")
