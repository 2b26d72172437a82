"""The ``bascule`` command."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from bascule import config
from bascule.auth import Auth, UserError
from bascule.config import Settings
from bascule.db import DatabaseUrlError
from bascule.maintenance import Maintenance, maintenance_window
from bascule.model import (
    FULL,
    READ_ONLY,
    SKIPPED,
    Actor,
    AlreadyEnabled,
    InvalidName,
    LeaseLost,
    MaintenanceError,
    MaintenanceState,
    NotYours,
    Window,
    utc,
)
from bascule.proxies import PROXIES
from bascule.schema import (
    WINDOWS_REVISION,
    SchemaError,
    hold_before_windows,
    pending_steps,
    prepare,
    status,
    upgrade,
)
from bascule.store import Store
from bascule.windows import Windows

F = TypeVar("F", bound=Callable[..., Any])
MIGRATION_PROCESS = "schema-migration"
# Seconds the command of a `bascule run` killed outright gets between SIGTERM and SIGKILL
# (at most a third of the lease).
ORPHAN_GRACE = 5.0


def _settings_option(f: dataclasses.Field[Any]) -> Callable[[F], F]:
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
        flag = name.removesuffix("es") if name.endswith("prefixes") else name
        flag = flag.removesuffix("ies") + "y" if flag.endswith("ies") else flag
        return click.option(flag, f.name, multiple=True, default=None, help=help_text)
    return click.option(name, f.name, type=kind, default=None, help=help_text)


def database_option(command: F) -> F:
    """The --database-url option, shared by every command that opens the database."""
    field = next(f for f in config.fields() if f.name == "database_url")
    return _settings_option(field)(command)


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
    except (AlreadyEnabled, NotYours) as exc:
        raise click.ClickException(_shown(f"{exc.message} {_held(store)}")) from None
    except (SchemaError, UserError, MaintenanceError) as exc:
        raise click.ClickException(_shown(getattr(exc, "message", str(exc)))) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(unreachable(exc)) from None
    finally:
        store.close()


def _held(store: Store) -> str:
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
        who = (
            f"automatic, held by the process {state.user!r}, "
            f"silent since {_utc(state.lease_renewed_at)}"
        )
        ends = (
            "bascule maintenance release --reason '...'` hands it to you, and "
            "`bascule maintenance off"
        )
    else:
        who = f"automatic, held by the process {state.user!r}"
        ends = f"bascule maintenance off --process {shlex.quote(state.user)}"
    return f"Maintenance is on ({who}, since {_utc(state.started_at)}): `{ends}` ends it."


# What a terminal acts on rather than shows: C0 controls (line breaks too, so that a
# message cannot forge a line of its own), DEL, C1 controls, Unicode's line and paragraph
# separators, and bidirectional overrides (which reorder what follows on the line).
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(text: str) -> str:
    """``text`` fit for a terminal: every character it would act on written as an escape
    (``\\x1b``, ``\\n``...). Every line the commands print that holds a name or a message
    of someone else's goes through it."""
    return _UNSHOWN.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _utc(ms: int) -> str:
    """A time in epoch milliseconds, for people to read."""
    return f"{utc(ms):%Y-%m-%d %H:%M:%S} UTC"


def unreachable(exc: SQLAlchemyError) -> str:
    """Why the database could not be used, without its URL (which may hold a password)."""
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()[0]
    return f"cannot use the database: {reason}"


@click.group()
@click.version_option(package_name="bascule")
def main() -> None:
    """Bascule: switch a service into maintenance and back."""


# -- serve --------------------------------------------------------------------------------


def _serve_options(command: F) -> F:
    for f in reversed(config.fields()):
        if f.metadata["flag"]:
            command = _settings_option(f)(command)
    return command


@main.command()
@_serve_options
def serve(**options: Any) -> None:
    """Serve the API, the gate, and the --app behind it."""
    import uvicorn

    from bascule.app import create_app
    from bascule.service import Services, bootstrap

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    # Alembic's notes on every migration context, and connexion's on every refused request
    # (a request without credentials is a warning to it), are not news to an operator.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("connexion").setLevel(logging.ERROR)
    try:
        settings = Settings.from_env(**options)
        from bascule.protocol import bounded_protocol  # reads the environment: checked now

        if settings.workers > 1:
            # Workers import bascule.asgi:route and read the settings from the environment.
            services = Services(settings)
            try:
                bootstrap(services)
            finally:
                services.close()
            os.environ.update(settings.to_env())
            app: Any = "bascule.asgi:route"
            # Imported by each worker, which reads its timeout from the environment.
            protocol: Any = "bascule.protocol:BoundedHttpToolsProtocol"
        else:
            app = create_app(settings).route  # the gate, in front of everything
            protocol = bounded_protocol(settings.header_timeout)
    except (ValueError, SchemaError, UserError, ImportError, AttributeError) as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(unreachable(exc)) from None
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        server_header=False,
        lifespan="on",
        interface="asgi3",  # the gate's route is a plain call that returns the answer
        http=protocol,  # uvicorn's httptools protocol, bounded in header size and time
        # X-Forwarded-For and -Proto believed from the proxies named, and from no one else
        # (uvicorn would believe any process on the loopback).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )


# -- users --------------------------------------------------------------------------------


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask the password on: use --password-stdin")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@main.group()
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
        Auth(store).add_user(name, password, roles)
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
        Auth(store).remove_user(name)
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
        Auth(store).set_password(name, password)
    click.echo(f"Changed the password of {name!r}")


# -- maintenance --------------------------------------------------------------------------


def _actor(process: str | None, user: str | None) -> Actor:
    try:
        if process is not None:
            return Actor.process(process)
        return Actor.operator(user or getpass.getuser())
    except InvalidName as exc:
        raise click.ClickException(_shown(exc.message)) from None


def _actor_options(command: F) -> F:
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


def _progress_option(command: F) -> F:
    return click.option("--progress", type=click.IntRange(0, 100), help="Progress, in percent.")(
        command
    )


def _describe(state: MaintenanceState | None, now: int) -> str:
    if state is None:
        return "Maintenance is off."
    kind = "user-triggered" if state.user_triggered else "automatic"
    if state.read_only:
        kind = f"read-only, {kind}"
    lines = [
        f"Maintenance is on ({kind}, by {state.user}, since {_utc(state.started_at)}),"
        f" {state.progress_percent}% done."
    ]
    if state.planned_end is not None:
        late = " (overrunning)" if state.planned_end <= now else ""
        lines.append(f"Planned to end at {_utc(state.planned_end)}{late}.")
    alive = state.holder_alive(now)
    if alive is False and state.lease_renewed_at is not None:
        lines.append(
            f"The process {state.user} stopped answering at {_utc(state.lease_renewed_at)}:"
            " `bascule maintenance release --reason '...'` takes it over."
        )
    if state.released_from is not None:
        lines.append(f"Released from the process {state.released_from}.")
    lines += [f"  {entry.user}: {entry.message}" for entry in state.log]
    return "\n".join(map(_shown, lines))


@main.group("maintenance", short_help="Read and switch the maintenance state.")
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
        click.echo(_describe(state, now))


@maintenance_group.command("on")
@click.option("--message", help="A first message for the log.")
@click.option(
    "--read-only",
    is_flag=True,
    help="Let GET, HEAD and OPTIONS requests through; refuse every other one.",
)
@_progress_option
@_actor_options
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
    actor = _actor(process, user)
    with opened(database_url) as store:
        mode = READ_ONLY if read_only else FULL
        Maintenance(store).enable(actor, message=message, progress=progress, mode=mode)
    kinds = [kind for kind, yes in (("read-only", read_only), ("automatic", process)) if yes]
    click.echo("Maintenance is on" + (f" ({', '.join(kinds)})" if kinds else ""))


@maintenance_group.command("update")
@click.option("--message", help="A message for the log.")
@_progress_option
@_actor_options
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
        Maintenance(store).update(_actor(process, user), message=message, progress=progress)
    click.echo("Maintenance updated")


@maintenance_group.command("off")
@_actor_options
@database_option
def maintenance_off(process: str | None, user: str | None, database_url: str | None) -> None:
    """Switch maintenance off."""
    with opened(database_url) as store:
        Maintenance(store).disable(_actor(process, user))
    click.echo("Maintenance is off")


@maintenance_group.command("release")
@click.option("--reason", required=True, help="Why, for the log.")
@click.option("--user", metavar="NAME", help="Who to record [default: your login name].")
@database_option
def maintenance_release(reason: str, user: str | None, database_url: str | None) -> None:
    """Take over the maintenance of a process that stopped answering (its lease ran
    out): it stays on, held by you, and `bascule maintenance off` then ends it."""
    with opened(database_url) as store:
        state = Maintenance(store).release(_actor(None, user), reason)
    click.echo(
        _shown(f"Released from the process {state.released_from}: maintenance is on, yours.")
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
            click.echo(_window_line(window))
            for entry in entries:
                click.echo(_shown(f"  {_utc(entry.date)}  {entry.user}: {entry.message}"))
            return
        total, windows = maintenance.history(0, limit)
    if as_json:
        click.echo(json.dumps({"total": total, "windows": [w.as_json() for w in windows]}))
        return
    if not windows:
        click.echo("No maintenance yet.")
    for window in windows:
        click.echo(_window_line(window))
    if total > len(windows):
        click.echo(f"({total - len(windows)} older; --limit shows more)")


def _lasted(seconds: int) -> str:
    """A duration, for people to read."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _window_line(window: Window) -> str:
    """One window of the history, on one line."""
    who = window.user if window.user_triggered else f"process {window.user}"
    mode = ", read-only" if window.mode == READ_ONLY else ""
    if window.status == SKIPPED:
        start = _utc(window.planned_start or window.created_at)
        return _shown(f"#{window.id}  skipped  planned for {start} by {who}: {window.reason}")
    start = _utc(window.started_at or window.created_at)
    if window.ended_at is None:
        span = f"{start}, still on"
    else:
        lasted = _lasted(round((window.ended_at - (window.started_at or window.ended_at)) / 1000))
        span = f"{start}, {lasted}, ended by {window.ended_by}"
    released = f", released by {window.released_by}" if window.released_by else ""
    messages = f"({window.log_size} messages)"
    return _shown(f"#{window.id}  {window.status}  {span}  by {who}{mode}{released}  {messages}")


# -- schedule -----------------------------------------------------------------------------


@main.group()
def schedule() -> None:
    """Planned maintenance windows, started (and ended) on time by any instance."""


@schedule.command("add")
@click.option("--start", required=True, help="When it starts: RFC 3339, e.g. 2026-12-24T02:00Z.")
@click.option("--end", help="When it is planned to end (RFC 3339).")
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
        window = Windows(store).plan(
            _actor(None, user),
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end") if end is not None else None,
            message=message,
            mode=READ_ONLY if read_only else FULL,
            auto_end=auto_end,
        )
    click.echo(f"Planned window {window.id}: {_planned_line(window)}", err=True)
    click.echo(window.id)


def _planned_line(window: Window) -> str:
    assert window.planned_start is not None
    span = _utc(window.planned_start)
    if window.planned_end is not None:
        span += f" to {_utc(window.planned_end)}"
        if window.auto_end:
            span += " (ends by itself)"
    mode = " read-only" if window.mode == READ_ONLY else ""
    return _shown(f"{span},{mode} by {window.user}: {window.message}")


@schedule.command("list")
@database_option
def schedule_list(database_url: str | None) -> None:
    """List the windows to come, soonest first."""
    with opened(database_url) as store:
        windows = Windows(store).planned()
    if not windows:
        click.echo("No window planned.")
    for window in windows:
        click.echo(f"#{window.id}  {_planned_line(window)}")


@schedule.command("cancel")
@click.argument("window_id", metavar="ID", type=click.IntRange(1))
@database_option
def schedule_cancel(window_id: int, database_url: str | None) -> None:
    """Cancel the planned window ID."""
    with opened(database_url) as store:
        Windows(store).cancel(_actor(None, None), window_id)
    click.echo(f"Cancelled the planned window {window_id}")


# -- run ----------------------------------------------------------------------------------


class CommandFailed(Exception):
    """The command run under maintenance failed."""

    def __init__(self, command: list[str], returncode: int) -> None:
        how = (
            f"was killed by {signal.Signals(returncode - 128).name}"
            if returncode > 128 and returncode - 128 in set(signal.Signals)
            else f"exited with status {returncode}"
        )
        super().__init__(f"the command {shlex.join(command)!r} {how}")
        self.returncode = returncode


def _runnable(command: list[str]) -> str:
    """The program ``command`` runs, found as the shell would; refuse one that cannot
    run before anything changes."""
    program = command[0]
    found = shutil.which(program) if os.sep not in program else program
    if found is None or not os.path.isfile(found):
        raise click.ClickException(f"cannot run {program!r}: no such command; nothing changed")
    if not os.access(found, os.X_OK):
        raise click.ClickException(f"cannot run {program!r}: not executable; nothing changed")
    return found


def _run_child(command: list[str], grace: float) -> int:
    """Run ``command`` in a process group of its own; its exit status, or 128 + n when it
    died of signal n (as a shell says). SIGTERM, SIGINT and SIGHUP sent to bascule are
    passed on to the whole group, which bascule waits for; should bascule be killed
    outright, a watcher ends the group (SIGKILL after ``grace`` seconds)."""
    try:
        # A group of its own: a signal reaches every process the command started, and
        # a Ctrl-C at the terminal reaches it once, through bascule.
        child = subprocess.Popen(command, process_group=0)  # noqa: S603 - the user's command
    except OSError as exc:
        raise click.ClickException(f"cannot run {command[0]!r}: {exc.strerror}") from None

    def pass_on(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    passed = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, pass_on) for signum in passed}
    dismiss: Callable[[], None] | None = None
    try:
        dismiss = _watch(child.pid, grace)
        returncode = child.wait()
    except OSError:  # no watcher could be started: the command does not run unwatched
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise click.ClickException("cannot start the watcher of the command") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if dismiss is not None:
            dismiss()
    return 128 - returncode if returncode < 0 else returncode


def _watch(pgid: int, grace: float) -> Callable[[], None]:
    """Start the watcher that ends the group ``pgid`` should bascule be killed outright
    (see bascule.orphans); the call that dismisses it once the command ended."""
    from bascule import orphans

    read_end, write_end = os.pipe()
    try:
        watcher = subprocess.Popen(  # noqa: S603 - this interpreter, this package
            [sys.executable, "-m", "bascule.orphans", str(pgid), str(read_end), str(grace)],
            pass_fds=(read_end,),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the terminal does not reach it
        )
    finally:
        os.close(read_end)

    def dismiss() -> None:
        with contextlib.suppress(OSError):
            os.write(write_end, orphans.DONE)
        os.close(write_end)
        with contextlib.suppress(subprocess.TimeoutExpired):
            watcher.wait(timeout=5)

    return dismiss


@main.command(context_settings={"ignore_unknown_options": True})
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
@_settings_option(next(f for f in config.fields() if f.name == "lease_ttl"))
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
    _runnable(argv)
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
                on_lost=lambda why: click.echo(f"bascule: {_shown(why)}", err=True),
            ):
                # The command ends well within the lease: nothing outlives it.
                returncode = _run_child(argv, grace=min(ORPHAN_GRACE, ttl / 3))
                if returncode != 0:
                    raise CommandFailed(argv, returncode)
        except CommandFailed as exc:
            state = "off" if always_off else "still on"
            click.echo(f"bascule: {exc}; maintenance is {state}", err=True)
            sys.exit(exc.returncode if exc.returncode > 0 else 1)
        except LeaseLost:
            click.echo(
                f"bascule: {shlex.join(argv)} ended, but the maintenance it ran under was no"
                f" longer {process!r}'s: it is left on, to whoever holds it now.",
                err=True,
            )
            sys.exit(1)


# -- bypass -------------------------------------------------------------------------------

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


@main.group()
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
        token, record = BypassTokens(store).create(_actor(None, user), name, expires)
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
        records = BypassTokens(store).list(_actor(None, None))
        now = store.now()
    for record in records:
        shown = bypass_json(record, now)
        state = "expired" if shown["expired"] else f"until {_utc(record.expires_at)}"
        by = _shown(record.created_by)
        click.echo(f"{record.name}\tby {by}\t{state}\t{record.uses} uses")


@bypass.command("revoke")
@click.argument("name")
@database_option
def bypass_revoke(name: str, database_url: str | None) -> None:
    """End the token NAME, on every instance within a second."""
    from bascule.bypass import BypassTokens

    with opened(database_url) as store:
        BypassTokens(store).revoke(_actor(None, None), name)
    click.echo(f"Revoked the bypass token {name!r}")


# -- proxy-config -------------------------------------------------------------------------


def _host_port(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"give HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


@main.command("proxy-config", short_help="Write a reverse proxy's configuration.")
@click.argument("proxy", type=click.Choice(PROXIES))
@click.option(
    "--listen", required=True, callback=_host_port, help="HOST:PORT the proxy listens on."
)
@click.option("--upstream", required=True, help="The application's URL, http://HOST:PORT.")
@click.option("--bascule", "bascule_url", required=True, help="Bascule's URL, http://HOST:PORT.")
@click.option(
    "--timeout",
    type=click.FloatRange(0.05, 30),
    default=1.0,
    show_default=True,
    help="Seconds Bascule has to answer; past them the request goes through (fail open).",
)
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory to write the configuration into.",
)
def proxy_config(
    proxy: str,
    listen: tuple[str, int],
    upstream: str,
    bascule_url: str,
    timeout: float,
    output_dir: Path,
) -> None:
    """Write into --output-dir the whole configuration of PROXY (nginx, caddy, haproxy,
    traefik or envoy) in front of the application at --upstream, asking the Bascule at
    --bascule about every request; print, last, the command that runs it."""
    from bascule.proxies import Recipe, write

    recipe = Recipe(listen[0], listen[1], upstream.rstrip("/"), bascule_url.rstrip("/"), timeout)
    try:
        command = write(proxy, recipe, output_dir)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in sorted(output_dir.iterdir()):
        click.echo(f"wrote {path}")
    click.echo(shlex.join(command))


# -- db -----------------------------------------------------------------------------------


@main.group()
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
        actor = Actor.process(MIGRATION_PROCESS)
        maintenance = Maintenance(store)
        message = (
            f"Schema migration from {current.current} to {current.head}: {len(steps)} step(s)."
        )
        done = 0

        def on_step(revision: str, description: str) -> None:
            nonlocal done
            first_line = description.strip().splitlines()[0] if description.strip() else revision
            with contextlib.suppress(MaintenanceError):  # held by someone else: theirs
                maintenance.update(
                    actor,
                    message=f"Applying {revision}: {first_line}",
                    progress=max(1, done * 100 // len(steps)),
                )
            done += 1

        if current.current is not None and current.current < WINDOWS_REVISION:
            # Held the way the schema of before stores maintenance (its instances see it)
            # until the step that carries it over as the current window; then as usual.
            held = hold_before_windows(store, MIGRATION_PROCESS, message, store.now())
            done = len(upgrade(store, until=WINDOWS_REVISION))
            upgrade(store, on_step)
            if held:
                maintenance.update(actor, message="Schema migration done.", progress=100)
                maintenance.disable(actor)
        else:
            with maintenance_window(maintenance, actor, message=message) as window:
                upgrade(store, on_step)
                window.update(message="Schema migration done.", progress=100)
        click.echo(f"Upgraded the schema to {current.head}")


if __name__ == "__main__":
    main()
