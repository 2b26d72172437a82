"""The command that ``bascule run`` holds maintenance for: found before anything changes,
run in a process group of its own, signals passed on to the whole group, and a watcher
that ends the group should ``bascule run`` itself be killed outright. No click here:
the command line turns CannotRun into its error."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

# Seconds the command of a `bascule run` killed outright gets between SIGTERM and SIGKILL
# (at most a third of the lease).
ORPHAN_GRACE = 5.0


class CannotRun(Exception):
    """The command cannot be run (nothing was changed): the message says why."""


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
        self.outcome = how  # what the state says of its holder: its run "exited with status 3"


def runnable(command: list[str]) -> str:
    """The program ``command`` runs, found as the shell would; refuse one that cannot
    run before anything changes."""
    program = command[0]
    found = shutil.which(program) if os.sep not in program else program
    if found is None or not os.path.isfile(found):
        raise CannotRun(f"cannot run {program!r}: no such command; nothing changed")
    if not os.access(found, os.X_OK):
        raise CannotRun(f"cannot run {program!r}: not executable; nothing changed")
    return found


def run_child(command: list[str], grace: float) -> int:
    """Run ``command`` in a process group of its own; its exit status, or 128 + n when it
    died of signal n (as a shell says). SIGTERM, SIGINT and SIGHUP sent to bascule are
    passed on to the whole group, which bascule waits for; should bascule be killed
    outright, a watcher ends the group (SIGKILL after ``grace`` seconds)."""
    try:
        # A group of its own: a signal reaches every process the command started, and
        # a Ctrl-C at the terminal reaches it once, through bascule.
        child = subprocess.Popen(command, process_group=0)  # noqa: S603 - the user's command
    except OSError as exc:
        raise CannotRun(f"cannot run {command[0]!r}: {exc.strerror}") from None

    def pass_on(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    passed = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, pass_on) for signum in passed}
    dismiss: Callable[[], None] | None = None
    try:
        dismiss = watch(child.pid, grace)
        returncode = child.wait()
    except OSError:  # no watcher could be started: the command does not run unwatched
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise CannotRun("cannot start the watcher of the command") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if dismiss is not None:
            dismiss()
    return 128 - returncode if returncode < 0 else returncode


def watch(pgid: int, grace: float) -> Callable[[], None]:
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
