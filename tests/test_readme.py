"""The README and docs/ stay true: the README's shape and Quick start, every link,
the generated references up to date, every operation, command and setting named."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml

from bascule import config
from bascule.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
GENERATED = ["docs/cli.md", "docs/deployment.md"]
MAX_LINES = 160

# The README's sections, in this order; the first one follows a few lines on what
# Bascule is.
HEADINGS = [
    "Prerequisites",
    "Quick start",
    "Five ways to use it",
    "Documentation",
    "Development",
]
WAYS = [
    "The REST API",
    "The command line",
    "In front of your application",
    "Behind your reverse proxy",
    "In your own code",
]
# What the Documentation section points to: the pages that hold the depth.
DOCUMENTED = [
    "docs/api.md",
    "docs/gate.md",
    "docs/deployment.md",
    "docs/proxies.md",
    "docs/cli.md",
    "docs/contract.md",
    "bench/RESULTS.md",
]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)=["']([^"']+)["']""", re.I)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(markdown: str, title: str, level: int = 2) -> str:
    """The body of the heading ``title`` (at ``level``), up to the next heading as high."""
    marks = "#" * level
    match = re.search(
        rf"^{marks} {re.escape(title)}[^\n]*\n(.*?)(?=^#{{1,{level}}} |\Z)",
        markdown,
        re.S | re.M,
    )
    assert match, f"no section {title!r}"
    return match.group(1)


def headings(markdown: str, level: int) -> list[str]:
    """The headings of one level, outside code blocks."""
    return re.findall(rf"^{'#' * level} (.+?)\s*$", FENCE.sub("", markdown), re.M)


def test_the_readme_is_short():
    lines = text(README).splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines, more than {MAX_LINES}"


def test_the_readme_keeps_its_sections_in_order():
    readme = text(README)
    assert headings(readme, 1) == ["Bascule"]
    assert headings(readme, 2) == HEADINGS
    ways = headings(section(readme, "Five ways to use it"), 3)
    assert len(ways) == len(WAYS), ways
    for way, expected in zip(ways, WAYS, strict=True):
        assert way.startswith(expected), (way, expected)


def test_the_readme_says_what_bascule_is_before_anything_else():
    readme = text(README)
    intro = readme[readme.index("\n") : readme.index("\n## ")]
    for words in ("maintenance", "Alien4Cloud", "/rest/v1/maintenance", "503", "automatic"):
        assert words in intro, f"the introduction does not say {words!r}"


def test_quick_start_is_exactly_the_two_commands_the_makefile_runs():
    quick_start = section(text(README), "Quick start")
    blocks = [block.group(0) for block in FENCE.finditer(quick_start)]
    assert len(blocks) == 1, f"Quick start has {len(blocks)} code blocks, not one"
    commands = [line.strip() for line in blocks[0].splitlines()[1:-1] if line.strip()]
    assert commands == ["make serve", "make test"]
    makefile = text(ROOT / "Makefile")
    assert re.search(r"^serve:.*\n\t\$\(BIN\)/bascule serve$", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    assert re.search(r"^make test$", text(ROOT / ".ci" / "run"), re.M)


def test_every_make_command_in_the_readme_is_a_makefile_target():
    makefile = text(ROOT / "Makefile")
    used = set(re.findall(r"\bmake ([a-z][a-z-]*)", text(README)))
    assert {"serve", "test", "check", "lint", "docs", "bench"} <= used, used
    missing = sorted(t for t in used if not re.search(rf"^{t}:", makefile, re.M))
    assert not missing, f"the README names make targets the Makefile lacks: {missing}"


def test_the_readme_points_to_every_page_of_the_documentation():
    documentation = section(text(README), "Documentation")
    linked = {target for target, _ in links(documentation)}
    for page in DOCUMENTED:
        assert page in linked, f"the README's Documentation does not link {page}"
        assert (ROOT / page).is_file(), page


def links(markdown: str) -> Iterator[tuple[str, str]]:
    """Every link target of ``markdown`` outside code, split into (path, anchor)."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    for pattern in (LINK, REFERENCE_LINK, HTML_LINK):
        for match in pattern.finditer(prose):
            path, _, anchor = match.group(1).partition("#")
            yield path, anchor


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    return re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*\s*$", FENCE.sub("", markdown), re.M):
        base = slug(heading)
        name, n = base, 0
        while name in found:  # GitHub numbers repeated headings
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for path, anchor in links(text(page)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", path, re.I):  # http:, https:, mailto:...
            continue
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{path}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(text(target)):
            broken.append(f"{path}#{anchor}: no such heading")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_generated_references_are_up_to_date():
    result = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "-I", ".", *GENERATED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        "docs are stale: run `make docs` (cog -r -I . docs/cli.md docs/deployment.md)\n"
        + result.stdout
        + result.stderr
    )


def operation_ids() -> list[str]:
    document = yaml.safe_load(text(ROOT / "openapi.yaml"))
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in methods
    ]


def test_every_operation_is_in_the_api_page():
    api = text(DOCS / "api.md")
    ids = operation_ids()
    assert ids, "openapi.yaml has no operation"
    missing = [op for op in ids if f"`{op}`" not in api]
    assert not missing, f"docs/api.md does not name {missing}"


def cli_commands(
    command: click.Command = main, name: str = "bascule", parent: click.Context | None = None
) -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(command, info_name=name, parent=parent)
    yield ctx.command_path, command
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                yield from cli_commands(sub, sub_name, ctx)


def test_every_command_and_option_is_in_the_cli_page():
    cli = text(DOCS / "cli.md")
    titles = set(headings(cli, 3) + headings(cli, 4))
    found = list(cli_commands())
    assert len(found) > 1, "the CLI has no command"
    for path, command in found:
        assert path in titles, f"docs/cli.md has no heading for `{path}`"
        options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
        body = section(cli, path, level=4 if path.count(" ") > 1 else 3)
        for option in options:
            for opt in option.opts + option.secondary_opts:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", body), (
                    f"docs/cli.md does not show {opt} of `{path}`"
                )


def test_every_setting_is_in_the_deployment_page():
    deployment = text(DOCS / "deployment.md")
    settings = section(deployment, "Settings")
    rows = [line for line in settings.splitlines() if line.startswith("| `")]
    fields = config.fields()
    assert fields, "no settings"
    for field in fields:
        variable = field.metadata["env"]
        row = [r for r in rows if f"| `{variable}` |" in r]
        assert row, f"the settings table of docs/deployment.md has no row for {variable}"
        assert f"`{field.name}`" in row[0], (variable, field.name)


def test_every_bascule_variable_the_code_reads_is_in_the_deployment_page():
    settings = section(text(DOCS / "deployment.md"), "Settings")
    sources = [*(ROOT / "bascule").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]
    named = {v for f in sources for v in re.findall(r"\bBASCULE_[A-Z][A-Z0-9_]*[A-Z0-9]", text(f))}
    named |= {f.metadata["env"] for f in config.fields()}
    missing = sorted(v for v in named if f"`{v}`" not in settings)
    assert not missing, f"docs/deployment.md's settings do not name {missing}"


FIGURE = re.compile(r"\b\d+(?:\.\d+)?x\b|\breq(?:uests)?/s\b|\bp(?:50|90|99)\b", re.I)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_benchmark_figure_is_copied_out_of_bench(page: Path):
    prose = FENCE.sub("", text(page))
    copied = [line for line in prose.splitlines() if FIGURE.search(line)]
    assert not copied, f"{page.relative_to(ROOT)} quotes figures of bench/RESULTS.md: {copied}"
