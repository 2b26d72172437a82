"""The layout docs/architecture.md describes: no import cycle, a domain that knows
neither HTTP nor the contract, and a console whose every module main.js imports and
`make lint` checks."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bascule"
CONSOLE = PACKAGE / "console"
# The domain: the state machine, users and sessions, and the SQL behind them.
DOMAIN = ("model", "maintenance", "auth", "store", "schema")
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


def module_files() -> dict[str, Path]:
    """Every module of Bascule's package by its dotted name (a package's own __init__ as
    the package's name)."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts or parts[-1] == "__main__":
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def bascule_graph() -> dict[str, set[str]]:
    modules = {name: path for name, path in module_files().items() if name.count(".") == 1}
    return {name: imports_at_load(path) & set(modules) for name, path in modules.items()}


# docs/architecture.md's layers, from the server inwards: a module imports only modules
# below its own (a package, here, stands for every module in it).
LAYERS = [
    "asgi",
    "cli",
    "standalone",
    "app",
    "protocol",
    "gate",
    "decision",
    "page",
    "middleware",
    "errors",
    "validation",
    "spec",
    "service",
    "metrics",
    "proxies",
    "migrate",
    "supervise",
    "orphans",
    "webhooks",
    "receivers",
    "alertmanager",
    "monitor",
    "windows",
    "maintenance",
    "auth",
    "throttle",
    "bypass",
    "events",
    "schema",
    "store",
    "eventqueries",
    "accounts",
    "silences",
    "tables",
    "db",
    "exchange",
    "answers",
    "config",
    "model",
    "records",
]


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_module_of_bascule_has_its_layer():
    assert {layer(name) for name in module_files()} - {""} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(module_files()))
def test_a_module_imports_only_the_layers_below_its_own(module):
    if module == "bascule":
        return  # the package: lazily, what it offers (MaintenanceGate, automatic_maintenance)
    here = LAYERS.index(layer(module))
    imported = {i for i in imports_at_load(module_files()[module]) if i.startswith("bascule.")}
    above = {i for i in imported if layer(i) != layer(module) and LAYERS.index(layer(i)) < here}
    assert not above, f"{module} imports {above}, above it"


def test_the_standalone_gate_loads_nothing_behind_it():
    # What a gate in front of an application needs: no database, no connexion, no Argon2.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, bascule.gate; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = ("sqlalchemy", "connexion", "argon2", "psycopg", "alembic", "yaml", "bascule.store")
    assert not [m for m in loaded if m.startswith(heavy)]


def test_no_file_of_bascule_is_over_about_500_lines():
    long = {
        p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 520
    }
    assert not long, long


def fail_on_cycle(graph: dict[str, set[str]]) -> None:
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


def test_no_module_of_bascule_imports_itself_back():
    fail_on_cycle(bascule_graph())


@pytest.mark.parametrize("module", DOMAIN)
def test_the_domain_knows_neither_http_nor_the_contract(module):
    imported = imports_at_load(PACKAGE / f"{module}.py")
    assert not {i for i in imported if i.startswith(HTTP)}, imported


def test_the_domains_types_import_nothing_of_bascule():
    imported = imports_at_load(PACKAGE / "model.py")
    assert not {i for i in imported if i.startswith("bascule")}, imported


def test_the_check_sees_an_import_and_skips_type_checking_only_ones(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport a\nif TYPE_CHECKING:\n    import b\n"
        "from bascule import gate\ndef f():\n    import c\n"
    )
    assert imports_at_load(module) == {"typing", "a", "bascule", "bascule.gate"}


# The console's modules import each other by relative URL, `from "./name.js"`; a type
# named in JSDoc, `import("./name.js")`, is no import at run time.
CONSOLE_IMPORT = re.compile(r'(?:\bfrom|^import)\s+"\./([^"/]+)";', re.MULTILINE)


def console_graph() -> dict[str, set[str]]:
    """Each module of the console reached from main.js, and what it imports."""
    graph: dict[str, set[str]] = {}
    todo = ["main.js"]
    while todo:
        name = todo.pop()
        if name not in graph:
            module = CONSOLE / name
            assert module.is_file(), f"a console module imports {name}, which is missing"
            graph[name] = set(CONSOLE_IMPORT.findall(module.read_text()))
            todo.extend(graph[name])
    return graph


def console_modules() -> set[str]:
    return {f.name for f in CONSOLE.glob("*.js")}


def test_main_js_imports_every_module_of_the_console_and_none_back():
    graph = console_graph()
    assert set(graph) == console_modules(), "a module of the console that main.js never loads"
    fail_on_cycle(graph)


@pytest.mark.parametrize("module", sorted(console_modules()))
def test_no_module_of_the_console_holds_state_of_its_own(module):
    """What outlives an event is handed to the functions that need it (main.js's
    Console object), never kept in a variable a module's functions share."""
    shared = re.findall(r"^(?:export )?(?:let|var) \w+", (CONSOLE / module).read_text(), re.M)
    assert shared == []


def test_the_console_page_loads_main_js_as_a_module():
    scripts = re.findall(r"<script\b[^>]*>", (CONSOLE / "index.html").read_text())
    assert scripts == ['<script type="module" src="maintenance/main.js">'], scripts


def test_make_lint_checks_every_module_of_the_console():
    makefile = (ROOT / "Makefile").read_text()
    pattern = re.search(r"^CONSOLE_JS := (\S+)$", makefile, re.MULTILINE)
    assert pattern is not None
    assert {f.name for f in ROOT.glob(pattern.group(1))} == console_modules()
    lint = makefile.partition("\nlint:")[2].partition("\n\n")[0]
    assert "prettier --check $(CONSOLE_JS)" in lint and "tsc --project jsconfig.json" in lint
    config = json.loads((ROOT / "jsconfig.json").read_text())
    assert config["compilerOptions"]["checkJs"] is True
    checked = {
        f.name
        for f in CONSOLE.glob("*.js")
        if any(fnmatch.fnmatch(str(f.relative_to(ROOT)), p) for p in config["include"])
    }
    assert checked == console_modules()
