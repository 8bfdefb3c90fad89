"""Data flows one way: every import between appgw's packages points down the table below, no two
packages import each other (directly or around a cycle), the hot path loads no control-plane
code, and every background task is started by appgw.tasks.

The order (docs: ../shared/design/architecture.md): model <- tls <- compile <- core <- state
<- dataplane / health <- control <- api / portal / cli, with composition roots (serve, demo)
on top. Adapters never import the store.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "appgw"

# Modules at the top of the package that import nothing of appgw beyond each other.
BASICS = {
    "hostnames",
    "http_fetch",
    "json_text",
    "memo",
    "gc_pause",
    "defaults",
    "supervised",
    "tasks",
    "__init__",
}
BASE = {"basics"}

# Package -> the packages it may import (itself always). A package not listed may import none.
ALLOWED: dict[str, set[str]] = {
    "basics": BASE,
    "model": BASE,
    "certificates": BASE,
    "store": BASE,
    "observability": BASE,
    "tls": BASE | {"model", "certificates"},
    "waf": BASE | {"model"},
    "compile": BASE | {"model", "certificates", "tls", "waf"},
    "core": BASE | {"model", "certificates", "tls", "compile", "waf"},
    "state": BASE | {"model", "certificates", "tls", "compile", "store"},
    "dataplane": BASE
    | {"model", "certificates", "tls", "compile", "core", "state", "store", "observability", "waf"},
    "health": BASE | {"model", "certificates", "tls", "compile", "state", "store", "observability"},
    "control": BASE | {"model", "certificates", "tls", "compile", "store", "state", "health"},
    # Adapters: over the service layer, never the store.
    "api": BASE | {"model", "certificates", "control", "observability", "portal", "health", "waf"},
    "portal": BASE | {"model", "certificates", "control", "health"},
    "cli": BASE | {"model", "certificates", "control", "serve"},  # `appgw serve` starts serve
    "__main__": {"cli"},
}
# Composition roots: they put the parts together, so they may import anything.
ROOTS = {"serve", "demo"}


def package_of(module: str) -> str:
    """'appgw.dataplane.worker' -> 'dataplane'; 'appgw.tasks' -> 'basics'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "basics"
    top = parts[1]
    return "basics" if top in BASICS else top


def imports() -> dict[str, set[tuple[str, str]]]:
    """Package -> {(imported package, 'file:line')}, from every import statement, including
    those inside functions and under TYPE_CHECKING (a cycle in types is still a cycle)."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        package = package_of(module)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "appgw":  # `from appgw import x`: a module, or a name of appgw
                    names = [
                        f"appgw.{alias.name}"
                        if (SOURCE / alias.name).is_dir() or (SOURCE / f"{alias.name}.py").exists()
                        else "appgw"
                        for alias in node.names
                    ]
            for name in names:
                if name == "appgw" or name.startswith("appgw."):
                    target = package_of(name)
                    if target != package:
                        found[package].add((target, f"{path.name}:{node.lineno}"))
    return found


def test_every_package_imports_only_below_itself() -> None:
    wrong = []
    for package, targets in sorted(imports().items()):
        if package in ROOTS:
            continue
        allowed = ALLOWED.get(package, set())
        for target, where in sorted(targets):
            if target not in allowed:
                wrong.append(f"{package} -> {target} ({where})")
    assert not wrong, "imports against the direction of data:\n" + "\n".join(wrong)


def test_no_cycle_between_packages() -> None:
    graph = {package: {t for t, _ in targets} for package, targets in imports().items()}
    cycles = []
    for start in graph:
        # Every package reachable from `start`: if `start` is among them, there is a cycle.
        seen, stack = set(), list(graph[start])
        while stack:
            current = stack.pop()
            if current == start:
                cycles.append(start)
                break
            if current not in seen:
                seen.add(current)
                stack.extend(graph.get(current, ()))
    assert not cycles, f"packages on an import cycle: {sorted(cycles)}"


def test_the_table_catches_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: a model module importing the data plane is reported."""
    assert "dataplane" not in ALLOWED["model"]
    assert package_of("appgw.dataplane.worker") == "dataplane"
    assert package_of("appgw.memo") == "basics"


def test_adapters_never_import_the_store() -> None:
    found = imports()
    for adapter in ("api", "portal", "cli"):
        assert "store" not in {target for target, _ in found.get(adapter, ())}, adapter


def test_hot_path_imports_no_control_plane() -> None:
    code = (
        "import sys, appgw.dataplane.downstream, appgw.dataplane.runtime, "
        "appgw.dataplane.upstream;"
        "print(sorted(m for m in sys.modules if m.startswith(('appgw.control', 'appgw.api',"
        " 'appgw.store', 'appgw.health', 'appgw.portal', 'fastapi', 'sqlalchemy', 'pydantic'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_tasks_are_started_only_by_appgw_tasks() -> None:
    """asyncio keeps only weak references to tasks: a bare create_task may be collected
    mid-flight. appgw.tasks.spawn keeps them (ruff bans asyncio.create_task; this catches
    loop.create_task and asyncio.ensure_future too)."""
    bare = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path == SOURCE / "tasks.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        bare += [
            f"{path.relative_to(SOURCE)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"create_task", "ensure_future"}
        ]
    assert not bare, f"start tasks with appgw.tasks.spawn: {bare}"
