"""Structure figures of a checkout: where defaults are written, the longest functions, branching on task names.

Run from a checkout's root: ``python scripts/structure.py [SRC]`` (default ``src``). It reads the
code as text and syntax trees; nothing is imported. The closing notes of issue 22 compare two
checkouts with it (before / after).

Figures
-------
defaults
    For each engine default (percentiles, validation share, tile overlap, time limit, ...), the
    places outside ``core/settings/`` where its value is written as a literal: in a default
    argument, a keyword argument or a comparison. ``core/settings/`` is where each is declared.
longest functions
    The ten longest functions or methods, in lines.
task branching
    Tests of ``direct_model`` and comparisons of a task's name outside ``core/tasks/``.
keyword lists
    The number of parameters of the public prediction and training entry points.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: name -> (literal values that spell it, keyword / parameter names it travels under)
DEFAULTS = {
    "percentiles (1, 99.8)": ({(1, 99.8), (1.0, 99.8)}, {"percentiles"}),
    "validation share 0.15": ({0.15}, {"val_fraction"}),
    "tile overlap 0.25": ({0.25}, {"overlap"}),
    "time limit 120 s": ({120}, {"time_limit", "seconds"}),
    "batch size": (None, {"batch_size", "batch"}),
    "patch size": (None, {"patch_size", "patch"}),
    "tile size": (None, {"tile", "tile_size"}),
    "label margin": (None, {"label_margin"}),
    "preview interval": (None, {"preview_every", "PREVIEW_EVERY"}),
}
SETTINGS = ("core/settings/",)


def _value(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOTHING


_NOTHING = object()


def _matches(value, values) -> bool:
    if value is _NOTHING or value is None or isinstance(value, bool):
        return False
    if values is None:  # any literal number or tuple of numbers
        return isinstance(value, (int, float)) or (isinstance(value, tuple) and all(
            isinstance(v, (int, float)) for v in value))
    try:
        return value in values
    except TypeError:
        return False


def default_places(tree: ast.AST) -> dict[str, list[int]]:
    """Lines where a default's value is written under one of its names (parameter defaults, keywords, assignments)."""
    found: dict[str, list[int]] = {}

    def note(name: str, value_node: ast.AST, line: int) -> None:
        for label, (values, names) in DEFAULTS.items():
            if name in names and _matches(_value(value_node), values):
                found.setdefault(label, []).append(line)

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                note(arg.arg, default, default.lineno)
            for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                if default is not None:
                    note(arg.arg, default, default.lineno)
        elif isinstance(node, ast.keyword) and node.arg:
            note(node.arg, node.value, node.value.lineno)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
                if name:
                    note(name, node.value, node.value.lineno)
    return found


def functions(tree: ast.AST, rel: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((node.end_lineno - node.lineno + 1, f"{rel}:{node.lineno} {node.name}"))
    return out


def task_branching(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "direct_model":
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare):
            left = node.left
            if isinstance(left, ast.Attribute) and left.attr == "name" and "task" in ast.unparse(left.value).lower():
                lines.append(node.lineno)
    return lines


def main(src: str = "src") -> None:
    root = Path(src)
    places: dict[str, list[str]] = {}
    funcs: list[tuple[int, str]] = []
    branching: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        funcs += functions(tree, rel)
        if not any(s in rel for s in SETTINGS):
            for label, lines in default_places(tree).items():
                places.setdefault(label, []).extend(f"{rel}:{n}" for n in lines)
        if "core/tasks/" not in rel:
            branching += [f"{rel}:{n}" for n in task_branching(tree)]
    print("defaults written outside core/settings/ (places):")
    for label in DEFAULTS:
        where = places.get(label, [])
        print(f"  {label:24s} {len(where):3d}  {' '.join(where[:6])}{' ...' if len(where) > 6 else ''}")
    print(f"  {'total':24s} {sum(len(v) for v in places.values()):3d}")
    print("longest functions (lines):")
    for n, name in sorted(funcs, reverse=True)[:10]:
        print(f"  {n:4d}  {name}")
    print(f"task branching outside core/tasks/: {len(branching)}  {' '.join(branching[:8])}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
