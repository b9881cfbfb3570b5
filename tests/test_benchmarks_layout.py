"""The benchmarks' house rules (issue 22): a package grouped by purpose, run as modules, no ``sys.path`` changes,
each folder holding only its kind, dated experiments, and every benchmark path or command the documents name exists."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.common import ROOT, child_env

BENCH = ROOT / "benchmarks"
GROUPS = ("speed", "quality", "references", "experiments")
#: what each folder may hold, besides ``__init__.py``: a name pattern and the few files named on their own
KINDS = {
    "speed": (r"bench_\w+", {"run_all", "table", "plot"}),
    "quality": (r"\w+_quality", {"suite", "quality", "quality_stats", "zoo_curves"}),
    "references": (r"ref_\w+", {"careamics_n2v"}),
    "experiments": (r"\w+", set()),  # any name, but dated and saying what it answered (below)
}
DATED = re.compile(r"Experiment of (\d{4}-\d{2}-\d{2}) \(issue [\d.]+\)\. Answered: ")


def _modules(folder: Path = BENCH) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _path_changes(tree: ast.AST) -> list[int]:
    """Lines that change the import path: ``sys.path.insert/append/extend(...)``, ``sys.path[...] = ...``,
    ``sys.path += ...``, ``sys.path = ...``."""
    def is_sys_path(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                and node.value.id == "sys")

    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value)
                and node.func.attr in ("insert", "append", "extend")):
            lines.append(node.lineno)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            if is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)):
                lines.append(node.lineno)
    return sorted(lines)


def test_the_check_sees_every_way_of_changing_the_path():
    code = ("import sys\nsys.path.insert(0, 'a')\nsys.path.append('b')\nsys.path[:0] = ['c']\nsys.path += ['d']\n"
            "print(sys.path)\n")
    assert _path_changes(ast.parse(code)) == [2, 3, 4, 5]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(BENCH)))
def test_no_benchmark_changes_sys_path(path):
    lines = _path_changes(ast.parse(path.read_text(), str(path)))
    assert not lines, f"{path.relative_to(ROOT)} changes sys.path on line(s) {lines}: import from the package " \
                      "(benchmarks.common, benchmarks.quality.suite, ...) and run it with python -m instead"


def test_the_top_level_holds_the_groups_one_helper_data_and_results():
    entries = {p.name for p in BENCH.iterdir() if p.name != "__pycache__"}
    assert {p for p in entries if p.endswith(".py")} == {"__init__.py", "common.py"}
    assert {p for p in entries if (BENCH / p).is_dir()} == {*GROUPS, "data", "results"}


@pytest.mark.parametrize("group", GROUPS)
def test_each_folder_holds_only_its_kind(group):
    pattern, named = KINDS[group]
    folder = BENCH / group
    assert (folder / "__init__.py").exists()
    stems = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    assert stems, f"{group}/ is empty"
    strays = sorted(s for s in stems if s not in named and not re.fullmatch(pattern, s))
    assert not strays, f"not {group} scripts by name: {strays}"
    assert not [p.name for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"], f"{group}/ has folders"


def test_references_import_nothing_from_napari_bioimg():
    """A fair reference is written out without our code: its imports name no napari_bioimg module."""
    for path in _modules(BENCH / "references"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("napari_bioimg") for n in names), f"{path.name} imports {names}"


def test_each_experiment_is_dated_says_what_it_answered_and_is_listed():
    index = (BENCH / "experiments" / "README.md").read_text()
    for path in _modules(BENCH / "experiments"):
        if path.stem == "__init__":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        m = DATED.search(" ".join(doc.split()))
        assert m, f"{path.name}: its docstring should say 'Experiment of YYYY-MM-DD (issue N). Answered: ...'"
        assert f"| `{path.name}` | {m.group(1)} |" in index, f"{path.name} is not listed with its date in README.md"


def test_every_benchmark_module_imports():
    """Moved files import their neighbours through the package (a module that does not import fails here). In a
    child process: importing a recipe tool locks the quality suite's test split for the whole process."""
    names = [_dotted(p) for p in _modules() if p.parent != BENCH / "data"]
    code = f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=child_env())
    assert res.returncode == 0, res.stderr[-3000:]


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "scripts").glob("*.sh"),
            *(p for p in BENCH.rglob("*.md") if "results" not in p.parts), *(ROOT / "src").rglob("*.py"),
            *_modules(), ROOT / "pyproject.toml"]
    return [p for p in docs if p.is_file()]


def test_every_benchmark_the_documents_name_exists():
    """``python -m benchmarks.X.Y`` and ``benchmarks/X/Y.py`` in the README, docs, scripts and docstrings name files
    that exist (``REV:benchmarks/...``, a file in git's history, is left alone)."""
    missing = []
    for doc in _documents():
        text = doc.read_text()
        for m in re.finditer(r"-m (benchmarks(?:\.\w+)+)", text):
            if not (ROOT / Path(*m.group(1).split("."))).with_suffix(".py").exists():
                missing.append(f"{doc.relative_to(ROOT)}: {m.group(0)}")
        for m in re.finditer(r"(?<![\w:/.])benchmarks/[\w/.-]+\.py\b", text):
            if not (ROOT / m.group(0)).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {m.group(0)}")
    assert not missing, "\n".join(missing)
