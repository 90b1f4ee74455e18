"""Layers: the core imports nothing above it, and each part imports nothing above it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each package and the top-level packages it must not import (layers above it, or siblings' apps).
FORBIDDEN = {
    "expressway": {"routers", "nodes", "tools", "graphs", "app", "bench"},
    "routers": {"nodes", "graphs", "app", "bench"},
    "nodes": {"graphs", "app", "bench"},
    "tools": {"routers", "nodes", "graphs", "app", "bench"},
    "graphs": {"app", "bench"},
    "app": {"bench"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}
