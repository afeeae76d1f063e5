"""The dependency direction of ARCHITECTURE.md, read from the source with `ast`.

`cli, api -> scorer -> models, recommend, forecast -> store -> config, clock, errors`;
`analytics -> models, recommend, forecast`; `simulator -> store`;
nothing in the core imports `cli` or `api`;
`models` never imports `scorer`. No import cycles between modules, no `_private` name used across modules,
and the core never imports typer, rich or FastAPI. Imports inside functions count as much as top-level ones:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "custscore"

_BASE = {"custscore", "errors", "redact", "config", "clock"}
_STORE = _BASE | {"store"}
_MIDDLE = _STORE | {"models", "recommend", "forecast"}
_CORE = _MIDDLE | {"scorer", "analytics", "simulator", "ingest", "status"}
# What each top-level part of the package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "custscore": set(),  # custscore/__init__.py: the version only
    "errors": {"custscore"},
    "redact": {"custscore"},  # secrets out of every message and log line; below everything that shows text
    "clock": {"custscore", "errors"},
    "config": {"custscore", "errors", "redact", "clock"},  # Settings carries the pinned as-of date
    "store": _BASE,
    "simulator": _STORE,
    "ingest": _STORE,
    "status": _STORE,
    "models": _MIDDLE,
    "recommend": _MIDDLE,
    "forecast": _MIDDLE,
    "analytics": _MIDDLE,
    "scorer": _MIDDLE,
    "demo": _CORE,  # the core of the demo sits just below cli
    "api": _CORE | {"demo"},
    "cli": _CORE | {"demo", "api"},  # the top: parses, calls one core function, renders
    "__main__": {"cli"},
}
UI_LIBRARIES = {"typer", "rich", "fastapi", "uvicorn", "starlette"}
UI_PARTS = {"cli", "api", "__main__"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _part(module: str) -> str:
    """The top-level part of the package a module belongs to (`custscore.models.zoo` -> `models`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "custscore"


class _Module:
    def __init__(self, path: pathlib.Path):
        self.path = path
        self.name = _module_name(path)
        self.package = self.name if path.name == "__init__.py" else self.name.rsplit(".", 1)[0]
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))


MODULES = {m.name: m for m in map(_Module, sorted(PACKAGE.rglob("*.py")))}


def _imports(module: _Module):
    """Yield (imported custscore module, names taken from it, line) for every import statement, lazy ones too."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in {"custscore"}:
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = module.absolute(node)
            if target.split(".")[0] != "custscore":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, [], node.lineno
                else:
                    yield target, [alias.name], node.lineno


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module in MODULES.values():
        for target, _names, _line in _imports(module):
            if target in MODULES and target != module.name:
                edges[module.name].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_package_is_found():
    assert "custscore.store" in MODULES and "custscore.models.train" in MODULES


def test_every_part_has_a_place_in_the_layers():
    unknown = sorted({_part(name) for name in MODULES} - set(ALLOWED))
    assert not unknown, (
        f"new top-level part(s) {unknown}: give them a place in ALLOWED here and in ARCHITECTURE.md's dependency direction"
    )


def test_imports_follow_the_dependency_direction():
    wrong = []
    for module in MODULES.values():
        part = _part(module.name)
        allowed = ALLOWED.get(part, set()) | {part}
        for target, _names, line in _imports(module):
            if _part(target) not in allowed:
                wrong.append(f"{module.path.relative_to(PACKAGE.parent)}:{line} {part} -> {_part(target)} ({target})")
    assert not wrong, "imports against the dependency direction:\n" + "\n".join(sorted(wrong))


def test_models_never_imports_scorer():
    wrong = [
        f"{module.name} -> {target}"
        for module in MODULES.values()
        if _part(module.name) == "models"
        for target, _names, _line in _imports(module)
        if _part(target) == "scorer"
    ]
    assert wrong == []


def test_no_import_cycles_between_modules():
    assert _cycles(_edges()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"custscore.errors": {"custscore.config"}, "custscore.config": {"custscore.errors"}}) == [
        ["custscore.config", "custscore.errors"]
    ]


def _module_aliases(module: _Module) -> dict[str, str]:
    """Local names bound to custscore modules (`import custscore.x as y`, `from custscore import x`)."""
    aliases = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("custscore.") and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            target = module.absolute(node)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
    return aliases


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_is_used_across_modules():
    wrong = []
    for module in MODULES.values():
        where = module.path.relative_to(PACKAGE.parent)
        for target, names, line in _imports(module):
            if target != module.name:
                wrong += [f"{where}:{line} imports {target}.{n}" for n in names if _private(n)]
            if _private(target.rsplit(".", 1)[-1]) and _part(target) != _part(module.name):
                wrong.append(f"{where}:{line} imports the private module {target}")
        aliases = _module_aliases(module)
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != module.name
                and _private(node.attr)
            ):
                wrong.append(f"{where}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "private names used across modules:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize("library", sorted(UI_LIBRARIES))
def test_the_core_never_imports_user_interface_libraries(library):
    wrong = []
    for module in MODULES.values():
        if _part(module.name) in UI_PARTS:
            continue
        for node in ast.walk(module.tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n.split(".")[0] == library for n in names):
                wrong.append(f"{module.name}:{node.lineno}")
    assert wrong == []


def test_the_core_does_not_print():
    wrong = []
    for module in MODULES.values():
        if _part(module.name) in UI_PARTS:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                wrong.append(f"{module.name}:{node.lineno}")
    assert wrong == []


def test_modules_are_imported_under_readable_names():
    """`from custscore.models import calibration`, not `... as CAL`: an alias is a lower-case word, if any."""
    wrong = []
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            target = module.absolute(node) if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                name = f"{target}.{alias.name}" if target else alias.name
                if name in MODULES and alias.asname and not (alias.asname.islower() and len(alias.asname) > 3):
                    wrong.append(f"{module.path.relative_to(PACKAGE.parent)}:{node.lineno} {name} as {alias.asname}")
    assert wrong == []
