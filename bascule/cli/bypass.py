"""bascule bypass: a way in for the team while maintenance is on."""

from __future__ import annotations

import click

from bascule.cli.base import actor, database_option, opened
from bascule.cli.text import shown, utc_text
from bascule.model import (
    utc,
)

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().lower()
    unit = DURATION_UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise click.BadParameter(f"give seconds, or a number and s, m, h or d, not {value!r}")
    return int(number) * (unit or 1)


@click.group()
def bypass() -> None:
    """Bypass tokens: a way in for the team while maintenance is on."""


@bypass.command("add")
@click.argument("name")
@click.option(
    "--expires",
    callback=_duration,
    metavar="DURATION",
    help="How long it lets its bearer through: 90s, 30m, 2h, 7d [default: 1d].",
)
@click.option("--user", metavar="NAME", help="Who to record as its creator [default: you].")
@database_option
def bypass_add(name: str, expires: int | None, user: str | None, database_url: str | None) -> None:
    """Create the token NAME and print its value (shown this once)."""
    from bascule.bypass import BypassTokens

    with opened(database_url) as store:
        token, record = BypassTokens(store).create(actor(None, user), name, expires)
    click.echo(
        f"Created the bypass token {name!r}, valid until {utc(record.expires_at):%Y-%m-%d %H:%M}"
        " UTC.",
        err=True,
    )
    click.echo(
        "Send it as the header X-Bascule-Bypass, or once as ?bascule-bypass=TOKEN:", err=True
    )
    click.echo(token)


@bypass.command("list")
@database_option
def bypass_list(database_url: str | None) -> None:
    """List the tokens: name, creator, expiry, uses (never their values)."""
    from bascule.bypass import BypassTokens, bypass_json

    with opened(database_url) as store:
        records = BypassTokens(store).list(actor(None, None))
        now = store.now()
    for record in records:
        listed = bypass_json(record, now)
        state = "expired" if listed["expired"] else f"until {utc_text(record.expires_at)}"
        by = shown(record.created_by)
        click.echo(f"{record.name}\tby {by}\t{state}\t{record.uses} uses")


@bypass.command("revoke")
@click.argument("name")
@database_option
def bypass_revoke(name: str, database_url: str | None) -> None:
    """End the token NAME, on every instance within a second."""
    from bascule.bypass import BypassTokens

    with opened(database_url) as store:
        BypassTokens(store).revoke(actor(None, None), name)
    click.echo(f"Revoked the bypass token {name!r}")
