"""The package layout's rules, read from the source: every import points down.

- no import cycle between the project's modules (module-level and function-level imports alike);
- a trainer package (``agents``, ``gans``, ``vae``) and the built-in ``suite.synthetic`` trainer
  import of the run machinery only what a trainer needs: ``suite.run.context`` (RunContext,
  Diverged), ``suite.run.device`` and ``suite.run.stacking``, never the worker, the process pool,
  the executors, the CLI, experiment loading, the judge or the reports;
- nothing in ``suite/`` imports a trainer package: trainers are reached through the trainer
  table (suite/trainers.py), by module name;
- modules are imported by name (``importlib.import_module``, ``__import__``) or looked up in
  ``sys.modules`` only by the hand-written tables (``DYNAMIC_IMPORTERS``), so the checks above
  see every import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("suite", "agents", "gans", "vae")
TRAINER_PACKAGES = ("agents", "gans", "vae")
# What a trainer may import of suite/ (module names, prefixes match submodules).
TRAINER_MAY_IMPORT = (
    "suite.errors",
    "suite.schema",
    "suite.result",
    "suite.store",  # write_atomic for caches (gans/scores.py)
    "suite.optimizers",
    "suite.paths",  # PROJECT_ROOT, for data paths relative to the repository
    "suite.run.context",
    "suite.run.device",
    "suite.run.graphs",  # CapturedStep: a trainer's whole step as a CUDA graph
    "suite.run.stacking",
)

# The tables that import modules by name: trainers, optimizers (and custom classes), executors.
DYNAMIC_IMPORTERS = ("suite.trainers", "suite.optimizers", "suite.run")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from suite.run import stacking` imports the submodule suite.run.stacking.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports(path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_trainers_import_only_the_run_context_of_the_run_machinery():
    upward = []
    for name, targets in graph().items():
        if name.split(".")[0] not in TRAINER_PACKAGES and name != "suite.synthetic":
            continue
        for target in targets:
            if target.startswith("suite") and not target.startswith(TRAINER_MAY_IMPORT):
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_suite_reaches_trainers_only_through_the_trainer_table():
    upward = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        if name.startswith("suite")
        for target in targets
        if target.split(".")[0] in TRAINER_PACKAGES
    ]
    assert upward == []


def dynamic_imports(path: Path) -> list[str]:
    """Where ``path`` imports a module by name or reads ``sys.modules`` (line: what)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in ("import_module", "__import__"):
                found.append(f"{node.lineno}: {name}")
        elif _is_sys_modules(node):
            found.append(f"{node.lineno}: sys.modules")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def _is_sys_modules(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "modules"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def test_dynamic_import_finder_finds_each_way(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "import importlib, sys\n"
        "from importlib import import_module\n"
        "a = importlib.import_module('gans.data')\n"
        "b = import_module('gans.data')\n"
        "c = __import__('gans.data')\n"
        "d = sys.modules.get('gans.data')\n"
        "e = importlib.util.find_spec('gans')\n"
    )
    assert dynamic_imports(path) == [
        "3: import_module",
        "4: import_module",
        "5: __import__",
        "6: sys.modules",
    ]


def test_only_the_tables_import_modules_by_name():
    hidden = [
        f"{name}:{where}"
        for name, path in project_modules().items()
        if name not in DYNAMIC_IMPORTERS
        for where in dynamic_imports(path)
    ]
    assert hidden == []
