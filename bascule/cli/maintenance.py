"""bascule maintenance: read and switch the state, directly in the database."""

from __future__ import annotations

import json

import click

from bascule.cli.base import actor, actor_options, database_option, opened, progress_option
from bascule.cli.text import describe, shown, utc_text, window_line
from bascule.maintenance import Maintenance
from bascule.model import (
    FULL,
    MODES,
    READ_ONLY,
)


@click.group("maintenance", short_help="Read and switch the maintenance state.")
def maintenance_group() -> None:
    """Read and switch the maintenance state, directly in the database."""


@maintenance_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the state as the REST API does.")
@database_option
def maintenance_status(as_json: bool, database_url: str | None) -> None:
    """Print the state."""
    with opened(database_url) as store:
        state, now = Maintenance(store).state(), store.now()
    if as_json:
        click.echo(json.dumps(state.as_json(now) if state else None))
    else:
        click.echo(describe(state, now))


@maintenance_group.command("on")
@click.option("--message", help="A first message for the log.")
@click.option(
    "--read-only",
    is_flag=True,
    help="Let GET, HEAD and OPTIONS requests through; refuse every other one.",
)
@progress_option
@actor_options
@database_option
def maintenance_on(
    message: str | None,
    read_only: bool,
    progress: int | None,
    process: str | None,
    user: str | None,
    database_url: str | None,
) -> None:
    """Switch maintenance on."""
    who = actor(process, user)
    with opened(database_url) as store:
        mode = READ_ONLY if read_only else FULL
        Maintenance(store).enable(who, message=message, progress=progress, mode=mode)
    kinds = [kind for kind, yes in (("read-only", read_only), ("automatic", process)) if yes]
    click.echo("Maintenance is on" + (f" ({', '.join(kinds)})" if kinds else ""))


@maintenance_group.command("update")
@click.option("--message", help="A message for the log.")
@progress_option
@actor_options
@database_option
def maintenance_update(
    message: str | None,
    progress: int | None,
    process: str | None,
    user: str | None,
    database_url: str | None,
) -> None:
    """Post a message and/or set the progress."""
    if message is None and progress is None:
        raise click.UsageError("give --message, --progress, or both")
    with opened(database_url) as store:
        Maintenance(store).update(actor(process, user), message=message, progress=progress)
    click.echo("Maintenance updated")


@maintenance_group.command("mode")
@click.argument("mode", type=click.Choice(MODES), metavar="full|read-only")
@actor_options
@database_option
def maintenance_mode(
    mode: str, process: str | None, user: str | None, database_url: str | None
) -> None:
    """Change the mode of the maintenance on, in one step: full (every request refused)
    or read-only (GET, HEAD and OPTIONS go through). The site never opens between."""
    with opened(database_url) as store:
        Maintenance(store).set_mode(actor(process, user), mode)
    click.echo(f"Maintenance is on ({mode})")


@maintenance_group.command("off")
@actor_options
@database_option
def maintenance_off(process: str | None, user: str | None, database_url: str | None) -> None:
    """Switch maintenance off."""
    with opened(database_url) as store:
        Maintenance(store).disable(actor(process, user))
    click.echo("Maintenance is off.")


@maintenance_group.command("release")
@click.option("--reason", required=True, help="Why, for the log.")
@click.option("--user", metavar="NAME", help="Who to record [default: your login name].")
@database_option
def maintenance_release(reason: str, user: str | None, database_url: str | None) -> None:
    """Take over the maintenance of a process whose run failed or that stopped answering
    (its lease ran out): it stays on, held by you, and `bascule maintenance off` then
    ends it."""
    with opened(database_url) as store:
        state = Maintenance(store).release(actor(None, user), reason)
    click.echo(
        shown(
            f"Released from the process {state.released_from}: maintenance is on, yours;"
            " `bascule maintenance off` ends it."
        )
    )


@maintenance_group.command("history")
@click.option("--window", "window_id", type=click.IntRange(1), help="One window, with its log.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as the REST API does.")
@database_option
def maintenance_history(
    window_id: int | None, limit: int, as_json: bool, database_url: str | None
) -> None:
    """List the maintenance windows, newest first (or one, with its log)."""
    with opened(database_url) as store:
        maintenance = Maintenance(store)
        if window_id is not None:
            window, entries = maintenance.window(window_id, 0, limit)
            if as_json:
                log = [entry.as_json() for entry in entries]
                click.echo(json.dumps({"window": window.as_json(), "log": log}))
                return
            click.echo(window_line(window))
            for entry in entries:
                click.echo(shown(f"  {utc_text(entry.date)}  {entry.user}: {entry.message}"))
            return
        total, windows = maintenance.history(0, limit)
    if as_json:
        click.echo(json.dumps({"total": total, "windows": [w.as_json() for w in windows]}))
        return
    if not windows:
        click.echo("No maintenance yet.")
    for window in windows:
        click.echo(window_line(window))
    if total > len(windows):
        click.echo(f"({total - len(windows)} older; --limit shows more)")
