"""bascule schedule: planned maintenance windows."""

from __future__ import annotations

import click

from bascule.cli.base import actor, database_option, opened
from bascule.cli.text import planned_line
from bascule.model import (
    FULL,
    READ_ONLY,
)
from bascule.windows import Windows


@click.group()
def schedule() -> None:
    """Planned maintenance windows, started (and ended) on time by any instance."""


@schedule.command("add")
@click.option(
    "--start",
    required=True,
    help="When it starts: RFC 3339 (2026-12-24T02:00Z) or from now (+1h30m, 'in 30 minutes').",
)
@click.option("--end", help="When it is planned to end, written as --start is.")
@click.option("--message", required=True, help="Its first message, shown on the page.")
@click.option("--read-only", is_flag=True, help="Let GET, HEAD and OPTIONS requests through.")
@click.option("--auto-end", is_flag=True, help="End it by itself at --end.")
@click.option("--user", metavar="NAME", help="Who to record [default: your login name].")
@database_option
def schedule_add(
    start: str,
    end: str | None,
    message: str,
    read_only: bool,
    auto_end: bool,
    user: str | None,
    database_url: str | None,
) -> None:
    """Plan a maintenance window; prints its id."""
    from bascule.windows import parse_time

    with opened(database_url) as store:
        now = store.now()
        window = Windows(store).plan(
            actor(None, user),
            start=parse_time(start, "--start", now),
            end=parse_time(end, "--end", now) if end is not None else None,
            message=message,
            mode=READ_ONLY if read_only else FULL,
            auto_end=auto_end,
        )
    click.echo(f"Planned window {window.id}: {planned_line(window)}", err=True)
    click.echo(window.id)


@schedule.command("list")
@database_option
def schedule_list(database_url: str | None) -> None:
    """List the windows to come, soonest first."""
    with opened(database_url) as store:
        windows = Windows(store).planned()
    if not windows:
        click.echo("No window planned.")
    for window in windows:
        click.echo(f"#{window.id}  {planned_line(window)}")


@schedule.command("cancel")
@click.argument("window_id", metavar="ID", type=click.IntRange(1))
@database_option
def schedule_cancel(window_id: int, database_url: str | None) -> None:
    """Cancel the planned window ID."""
    with opened(database_url) as store:
        Windows(store).cancel(actor(None, None), window_id)
    click.echo(f"Cancelled the planned window {window_id}")
