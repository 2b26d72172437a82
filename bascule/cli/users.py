"""bascule users: who may sign in."""

from __future__ import annotations

import sys

import click

from bascule.auth import Auth
from bascule.cli.base import actor, database_option, opened


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask the password on: use --password-stdin")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@click.group()
def users() -> None:
    """Manage the users who may log in."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    help="A role to grant (repeat for several); ADMIN may change the state.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input.",
)
@database_option
def users_add(
    name: str, roles: tuple[str, ...], password_stdin: bool, database_url: str | None
) -> None:
    """Create the user NAME."""
    password = _read_password(password_stdin)
    with opened(database_url) as store:
        Auth(store).add_user(name, password, roles, by=actor(None, None))
    click.echo(f"Created the user {name!r}" + (f" with roles {', '.join(roles)}" if roles else ""))


@users.command("list")
@database_option
def users_list(database_url: str | None) -> None:
    """List the users and their roles."""
    with opened(database_url) as store:
        for user in Auth(store).users():
            click.echo(f"{user.name}\t{','.join(user.roles)}")


@users.command("remove")
@click.argument("name")
@database_option
def users_remove(name: str, database_url: str | None) -> None:
    """Delete the user NAME and end their sessions."""
    with opened(database_url) as store:
        Auth(store).remove_user(name, by=actor(None, None))
    click.echo(f"Removed the user {name!r}")


@users.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input.",
)
@database_option
def users_passwd(name: str, password_stdin: bool, database_url: str | None) -> None:
    """Change the password of NAME and end their sessions."""
    password = _read_password(password_stdin)
    with opened(database_url) as store:
        Auth(store).set_password(name, password, by=actor(None, None))
    click.echo(f"Changed the password of {name!r}")
