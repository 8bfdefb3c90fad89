"""API, portal and CLI are thin adapters over the service: none of them reaches the store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import appgw

PACKAGE = Path(appgw.__file__).parent
ADAPTERS = ("api", "portal", "cli")


def adapter_modules() -> list[Path]:
    return sorted(path for name in ADAPTERS for path in (PACKAGE / name).rglob("*.py"))


def store_uses(path: Path) -> list[str]:
    """Imports of appgw.store (at any depth, also inside functions) and `<anything>.store`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            if isinstance(node, ast.Attribute) and node.attr == "store":
                found.append(f"line {node.lineno}: .store")
            continue
        found += [
            f"line {node.lineno}: import {module}"
            for module in modules
            if module == "appgw.store" or module.startswith("appgw.store.")
        ]
    return found


def test_the_adapters_are_all_checked() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in adapter_modules()}
    assert {"api/common.py", "portal/app.py", "cli/main.py"} <= names


@pytest.mark.parametrize(
    "path", adapter_modules(), ids=lambda path: path.relative_to(PACKAGE).as_posix()
)
def test_adapters_never_touch_the_store(path: Path) -> None:
    assert store_uses(path) == [], "call a GatewayService method instead"
