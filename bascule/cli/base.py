"""What every command of ``bascule`` shares: its options, the store it opens, who acts."""

from __future__ import annotations

import dataclasses
import getpass
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from bascule import config
from bascule.auth import UserError
from bascule.cli.text import holder_ended, shown, utc_text
from bascule.config import Settings
from bascule.db import DatabaseUrlError
from bascule.maintenance import Maintenance
from bascule.model import (
    Actor,
    AlreadyEnabled,
    InvalidName,
    MaintenanceError,
    NotYours,
)
from bascule.schema import (
    SchemaError,
    prepare,
)
from bascule.store import Store
from bascule.windows import Windows

F = TypeVar("F", bound=Callable[..., Any])


def settings_option(f: dataclasses.Field[Any]) -> Callable[[F], F]:
    """The click option of a settings field. Its BASCULE_* variable is read by
    Settings.from_env, the one reader of the environment; a flag given wins over it."""
    name = "--" + f.name.replace("_", "-")
    kind = config.field_type(f)
    shown = str(f.default).lower() if isinstance(f.default, bool) else f.default
    default = "" if f.default in (None, ()) else f"; default: {shown}"
    help_text = f"{f.metadata['help']} [env: {f.metadata['env']}{default}]"
    if kind is bool:
        return click.option(f"{name}/--no-{name[2:]}", f.name, default=None, help=help_text)
    if kind is tuple:  # --allow-prefix, singular, names one: repeat it for several
        return click.option(singular(name), f.name, multiple=True, default=None, help=help_text)
    return click.option(name, f.name, type=kind, default=None, help=help_text)


def singular(name: str) -> str:
    """The singular of a plural name: --trusted-proxies, --allow-prefixes, --...-matchers
    are each --trusted-proxy, --allow-prefix, --...-matcher."""
    for plural, one in (("ies", "y"), ("xes", "x"), ("s", "")):
        if name.endswith(plural):
            return name.removesuffix(plural) + one
    return name


def database_option(command: F) -> F:
    """The --database-url option, shared by every command that opens the database."""
    field = next(f for f in config.fields() if f.name == "database_url")
    return settings_option(field)(command)


@contextmanager
def opened(database_url: str | None, *, ready: bool = True) -> Iterator[Store]:
    """Open the store (creating the schema of an empty database unless ``ready`` is False)."""
    settings = Settings.from_env(database_url=database_url)
    try:
        store = Store(settings.database_url)
    except DatabaseUrlError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        # A new database: a mistyped URL, or another directory's bascule.db: say so.
        if ready and prepare(store):
            where = store.engine.url.render_as_string(hide_password=True)
            click.echo(f"bascule: created a new, empty database at {where}", err=True)
        if ready:  # a planned window whose time came starts (or ends) before anything else
            Windows(store).run_schedule()
        yield store
    except AlreadyEnabled:
        # (The API's message is Alien4Cloud's, for its clients: not a sentence to show.)
        now = held(store).replace("Maintenance is on", "Maintenance is already on", 1)
        raise click.ClickException(shown(now)) from None
    except NotYours as exc:
        raise click.ClickException(shown(f"{exc.message} {held(store)}")) from None
    except (SchemaError, UserError, MaintenanceError) as exc:
        raise click.ClickException(shown(getattr(exc, "message", str(exc)))) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(unreachable(exc)) from None
    finally:
        store.close()


def held(store: Store) -> str:
    """What is on, who holds it, since when, and the command that ends it."""
    try:
        state = Maintenance(store).state()
    except SQLAlchemyError:
        return ""
    if state is None:
        return "Maintenance is off now."
    if state.user_triggered:
        who, ends = f"switched on by {state.user!r}", "bascule maintenance off"
    elif state.holder_alive(store.now()) is False:
        assert state.lease_renewed_at is not None
        who = f"automatic, held by the process {state.user!r}, {holder_ended(state)}"
        ends = (
            "bascule maintenance release --reason '...'` hands it to you, and "
            "`bascule maintenance off"
        )
    else:
        who = f"automatic, held by the process {state.user!r}"
        ends = f"bascule maintenance off --process {shlex.quote(state.user)}"
    return f"Maintenance is on ({who}, since {utc_text(state.started_at)}): `{ends}` ends it."


def unreachable(exc: SQLAlchemyError) -> str:
    """Why the database could not be used, without its URL (which may hold a password)."""
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()[0]
    return f"cannot use the database: {reason}"


def actor(process: str | None, user: str | None) -> Actor:
    try:
        if process is not None:
            return Actor.process(process)
        return Actor.operator(user or getpass.getuser())
    except InvalidName as exc:
        raise click.ClickException(shown(exc.message)) from None


def actor_options(command: F) -> F:
    command = click.option(
        "--process",
        metavar="NAME",
        help=(
            "Act as the internal process NAME: automatic maintenance, "
            "which the REST API cannot switch off."
        ),
    )(command)
    return click.option(
        "--user", metavar="NAME", help="Who to record as the author [default: your login name]."
    )(command)


def progress_option(command: F) -> F:
    return click.option("--progress", type=click.IntRange(0, 100), help="Progress, in percent.")(
        command
    )
