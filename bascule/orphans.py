"""Ends the process group of a command whose ``bascule run`` died without ending it.

``bascule run`` starts this watcher beside the command, holding the write end of a
pipe whose read end the watcher waits on. Should ``bascule run`` be killed outright
(SIGKILL: no handler runs), the pipe closes unannounced and the watcher ends the
command's whole group: SIGTERM, then SIGKILL after a grace period. When ``bascule run``
ends normally it says so first, and the watcher leaves.

Run as ``python -m bascule.orphans PGID FD GRACE``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

DONE = b"."  # written by bascule run before it lets go of the pipe


def alive(pgid: int) -> bool:
    """Whether a process of the group ``pgid`` is still running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, under another user: not ours to end
        return False
    return True


def end_group(pgid: int, grace: float) -> None:
    """SIGTERM to the group, then SIGKILL to what is left of it after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pgid):
            return
        time.sleep(0.05)
    if alive(pgid):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    pgid, fd, grace = int(argv[0]), int(argv[1]), float(argv[2])
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # only the pipe tells this watcher to act
    while True:
        try:
            said = os.read(fd, 1)
            break
        except InterruptedError:
            continue
    if said != DONE:
        end_group(pgid, grace)  # first: the terminal or pipe of stderr may be gone too
        with contextlib.suppress(OSError):
            print(
                f"bascule: `bascule run` died; ended its command (process group {pgid})",
                file=sys.stderr,
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
