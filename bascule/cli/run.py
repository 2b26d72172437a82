"""bascule run: a command under automatic maintenance."""

from __future__ import annotations

import shlex
import sys

import click

from bascule import config
from bascule.cli.base import database_option, opened, settings_option
from bascule.cli.text import shown
from bascule.config import Settings
from bascule.maintenance import Maintenance, maintenance_window
from bascule.model import (
    Actor,
    LeaseLost,
)
from bascule.supervise import ORPHAN_GRACE, CannotRun, CommandFailed, run_child, runnable


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--process",
    required=True,
    metavar="NAME",
    help="The name of the process, recorded as the author.",
)
@click.option("--message", help="A first message for the log.")
@click.option(
    "--always-off", is_flag=True, help="Switch maintenance off even when the command fails."
)
@settings_option(next(f for f in config.fields() if f.name == "lease_ttl"))
@database_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    process: str,
    message: str | None,
    always_off: bool,
    lease_ttl: int | None,
    database_url: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND under automatic maintenance.

    Maintenance goes on, the command runs, and maintenance goes off when it
    succeeds. When it fails, maintenance stays on with a log entry (unless
    --always-off), and bascule exits with the command's status. bascule holds the
    maintenance with a lease it renews while the command runs: killed outright, it
    leaves maintenance on, its command is ended, and an ADMIN may release the
    maintenance once the lease ran out.
    """
    argv = list(command)
    try:
        runnable(argv)
    except CannotRun as exc:
        raise click.ClickException(str(exc)) from None
    try:
        ttl = Settings.from_env(lease_ttl=lease_ttl).lease_ttl
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with opened(database_url) as store:
        maintenance = Maintenance(store)
        try:
            with maintenance_window(
                maintenance,
                Actor.process(process),
                message=message,
                always_off=always_off,
                lease_ttl=ttl,
                on_lost=lambda why: click.echo(f"bascule: {shown(why)}", err=True),
            ):
                # The command ends well within the lease: nothing outlives it.
                returncode = run_child(argv, grace=min(ORPHAN_GRACE, ttl / 3))
                if returncode != 0:
                    raise CommandFailed(argv, returncode)
        except CannotRun as exc:
            raise click.ClickException(str(exc)) from None
        except CommandFailed as exc:
            if always_off:
                click.echo(f"bascule: {exc}; maintenance is off", err=True)
            else:
                # The same run, with the options it was given (but the database's URL,
                # which may hold a password).
                options = ["--process", process]
                options += ["--message", message] if message is not None else []
                options += ["--lease-ttl", str(lease_ttl)] if lease_ttl is not None else []
                again = shlex.join(["bascule", "run", *options, "--", *argv])
                click.echo(
                    f"bascule: {exc}; maintenance is still on. Next: retry with `{again}`"
                    " (it takes the maintenance over), take it over yourself with"
                    " `bascule maintenance release --reason '...'`, or end it with"
                    f" `bascule maintenance off --process {shlex.quote(process)}`.",
                    err=True,
                )
            sys.exit(exc.returncode if exc.returncode > 0 else 1)
        except LeaseLost:
            click.echo(
                f"bascule: {shlex.join(argv)} ended, but the maintenance it ran under was no"
                f" longer {process!r}'s: it is left on, to whoever holds it now.",
                err=True,
            )
            sys.exit(1)
