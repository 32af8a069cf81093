"""Package boundaries: master and slave never import each other; protocol and pyti import neither.

The guest runner imports nothing of ours (it runs in the guest, stdlib only).

The imports are read from the source (every ``import`` statement anywhere in a
module, including function bodies and ``TYPE_CHECKING`` blocks), so a forbidden
import fails here even if no test happens to execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> top-level packages it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "master": frozenset({"slave"}),
    "slave": frozenset({"master"}),
    "protocol": frozenset({"master", "slave"}),
    # protocol imports pyti.tasks: pyti importing protocol back would be a cycle.
    "pyti": frozenset({"master", "slave", "protocol"}),
    # Runs inside the guest from a zipapp: the standard library only.
    "guest_runner": frozenset({"master", "slave", "protocol", "pyti"}),
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Plain, from-, nested and TYPE_CHECKING imports are all found; relative ones are not."""
    module = tmp_path / "m.py"
    module.write_text(
        "import slave.vm\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from master.config import MasterConfig\n"
        "def f() -> None:\n    import protocol.messages\n"
        "from . import sibling\n"
    )
    assert sorted(p for _, p in imported_packages(module)) == [
        "master",
        "protocol",
        "slave",
        "typing",
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_crosses_a_boundary(package: str) -> None:
    """No module of the package imports a package it must stay apart from."""
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"{package}/ has no modules"
    crossings = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules
        for line, name in imported_packages(path)
        if name in FORBIDDEN[package]
    ]
    assert crossings == []
