"""bascule db: the schema, and its upgrade under maintenance."""

from __future__ import annotations

import click

from bascule.cli.base import database_option, opened
from bascule.migrate import upgrade_under_maintenance
from bascule.schema import (
    pending_steps,
    status,
    upgrade,
)


@click.group()
def db() -> None:
    """The database schema."""


@db.command("status")
@database_option
def db_status(database_url: str | None) -> None:
    """Print the schema revision and whether an upgrade is needed."""
    with opened(database_url, ready=False) as store:
        current = status(store)
    if current.empty:
        click.echo(f"The database is empty; `bascule db upgrade` creates schema {current.head}.")
    elif current.up_to_date:
        click.echo(f"The schema is at {current.current}, up to date.")
    else:
        click.echo(
            f"The schema is at {current.current}; `bascule db upgrade` brings it to {current.head}."
        )


@db.command("upgrade", short_help="Apply pending migrations, under automatic maintenance.")
@database_option
def db_upgrade(database_url: str | None) -> None:
    """Apply pending migrations, under automatic maintenance (process schema-migration)."""
    with opened(database_url, ready=False) as store:
        current = status(store)
        if current.empty:
            applied = upgrade(store)
            click.echo(f"Created the schema ({', '.join(applied)})")
            return
        steps = pending_steps(current.current)
        if not steps:
            click.echo(f"The schema is up to date ({current.current})")
            return
        upgrade_under_maintenance(store, current.current, steps)
        click.echo(f"Upgraded the schema to {current.head}")
