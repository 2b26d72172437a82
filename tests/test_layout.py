"""The layout docs/architecture.md describes: no import cycle, and a domain that knows
neither HTTP nor the contract."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bascule"
# The domain: the state machine, users and sessions, and the SQL behind them.
DOMAIN = ("maintenance", "auth", "store", "schema")
HTTP = ("connexion", "starlette", "uvicorn", "a2wsgi", "werkzeug", "bascule.spec")


def imports_at_load(module: Path) -> set[str]:
    """What a module imports when it is loaded: module-level imports, ``TYPE_CHECKING``
    blocks left out (those never run)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                if node.module == "bascule":
                    found.update(f"bascule.{alias.name}" for alias in node.names)

    visit(ast.parse(module.read_text()).body)
    return found


def bascule_graph() -> dict[str, set[str]]:
    modules = {f"bascule.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: imports_at_load(path) & set(modules) for name, path in modules.items()}


def test_no_module_of_bascule_imports_itself_back():
    graph = bascule_graph()
    done: set[str] = set()

    def walk(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            pytest.fail("import cycle: " + " -> ".join((*path[path.index(name) :], name)))
        if name in done:
            return
        for imported in sorted(graph[name]):
            walk(imported, (*path, name))
        done.add(name)

    for name in sorted(graph):
        walk(name, ())


@pytest.mark.parametrize("module", DOMAIN)
def test_the_domain_knows_neither_http_nor_the_contract(module):
    imported = imports_at_load(PACKAGE / f"{module}.py")
    assert not {i for i in imported if i.startswith(HTTP)}, imported


def test_the_state_machine_imports_nothing_of_bascule():
    imported = imports_at_load(PACKAGE / "maintenance.py")
    assert not {i for i in imported if i.startswith("bascule")}, imported


def test_the_check_sees_an_import_and_skips_type_checking_only_ones(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport a\nif TYPE_CHECKING:\n    import b\n"
        "from bascule import gate\ndef f():\n    import c\n"
    )
    assert imports_at_load(module) == {"typing", "a", "bascule", "bascule.gate"}
