"""The generated parts of the documentation, rendered from the code for cog.

docs/cli.md holds every command's ``--help``, as click renders it from
``bascule.cli:main``; docs/deployment.md holds the table of settings, read from
``bascule.config.Settings`` (each field's environment variable and help text, its
default) and from the options of ``bascule serve``. Regenerate both with::

    .venv/bin/cog -r -I . docs/cli.md docs/deployment.md

and check that they are up to date with ``cog --check`` (same arguments).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import click

from bascule import config
from bascule.cli import main

# Help text is wrapped as on a terminal this wide, wherever cog runs.
WIDTH = 80
PROGRAM = "bascule"


def commands(
    command: click.Command = main,
    name: str = PROGRAM,
    parent: click.Context | None = None,
) -> Iterator[click.Context]:
    """The context of every command and subcommand, the group first, then what it
    lists, in the order its own --help lists them (hidden commands left out)."""
    if parent is None:
        ctx = click.Context(command, info_name=name, terminal_width=WIDTH, max_content_width=WIDTH)
    else:
        ctx = click.Context(command, info_name=name, parent=parent)
    yield ctx
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                yield from commands(sub, sub_name, ctx)


def cli_reference() -> str:
    """Markdown: a heading per command (level 3, level 4 for a group's commands), its
    --help in a text block."""
    parts = []
    for ctx in commands():
        depth = ctx.command_path.count(" ")
        heading = "#" * (3 + max(depth - 1, 0))
        help_text = ctx.command.get_help(ctx).rstrip()
        parts.append(f"{heading} {ctx.command_path}\n\n```text\n{help_text}\n```\n")
    return "\n".join(parts)


def _cell(text: str) -> str:
    """``text`` as one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(f: dataclasses.Field[Any]) -> str:
    """The default as its environment variable would spell it, or "unset"."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = None
    if value is None:
        return "unset"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _serve_options() -> dict[str, list[str]]:
    """The options of ``bascule serve``, by the settings field each one sets."""
    serve = main.get_command(click.Context(main, info_name=PROGRAM), "serve")
    options: dict[str, list[str]] = {}
    for param in serve.params if serve is not None else ():
        if isinstance(param, click.Option) and param.name:
            options[param.name] = [*param.opts, *param.secondary_opts]
    return options


def settings_table() -> str:
    """Markdown: every setting, its environment variable, its ``bascule serve``
    option (if any), its default and its help text."""
    options = _serve_options()
    lines = [
        "| setting | environment variable | `bascule serve` option | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for f in config.fields():
        env = f.metadata.get("env", "")
        flags = ", ".join(f"`{opt}`" for opt in options.get(f.name, ())) or "none"
        cells = [
            f"`{f.name}`",
            f"`{env}`" if env else "",
            flags,
            _default(f),
            _cell(f.metadata.get("help", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
