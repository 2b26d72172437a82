"""The README stays true: its Quick start, its commands, options and settings."""

from __future__ import annotations

import re
from pathlib import Path

import click

from bascule import config, spec
from bascule.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def test_what_it_is_comes_first_then_the_quick_start():
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[0] == "Quick start"
    assert README.index("maintenance") < README.index("## Quick start")


def test_quick_start_is_exactly_two_commands_the_makefile_runs():
    blocks = re.findall(r"```sh\n(.*?)```", section("Quick start"), re.S)
    commands = [line for block in blocks[:2] for line in block.splitlines() if line.strip()]
    assert commands == ["make serve", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^serve:.*\n\t\$\(BIN\)/bascule serve$", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def commands(group: click.Group, prefix: str = "bascule"):
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from commands(command, path)
        else:
            yield path, command


def test_every_command_and_option_is_documented():
    documented = section("The command line")
    for path, command in commands(main):
        assert path in documented, f"{path} is not in the README"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                names = param.opts + param.secondary_opts
                assert any(name in documented for name in names), f"{path} {names[0]}"


def test_every_setting_is_documented():
    documented = section("Settings")
    for field in config.fields():
        assert f"`{field.metadata['env']}`" in documented, field.metadata["env"]


def test_every_operation_is_documented():
    documented = section("The API")
    for path, method, _operation in spec.operations():
        assert re.search(rf"`{method.upper()} (/rest/v1)?{re.escape(path)}[` ?]", documented), (
            method,
            path,
        )


def test_every_make_command_in_the_readme_is_a_target():
    makefile = (ROOT / "Makefile").read_text()
    used = set(re.findall(r"^make ([a-z-]+)", README, re.M))
    assert {"serve", "test", "lint", "bench"} <= used
    for target in used:
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_the_reliability_figures_are_the_scripts_last_run():
    section_text = section("Reliability")
    figures = section_text.split("<!-- reliability:start -->", 1)[1].split(
        "<!-- reliability:end -->"
    )[0]
    for row in ("bypass attempts", "malformed requests", "races run", "outage:", "wrong passwords"):
        assert f"| {row}" in figures, row
    assert "From `bench/reliability.py` on " in figures
