"""How the commands write what they print: times, states and windows, with the names and
messages of others escaped."""

from __future__ import annotations

import re

from bascule.model import (
    READ_ONLY,
    SKIPPED,
    MaintenanceState,
    Window,
    plural,
    utc,
)


def utc_text(ms: int) -> str:
    """A time in epoch milliseconds, for people to read."""
    return f"{utc(ms):%Y-%m-%d %H:%M:%S} UTC"


def shown(text: str) -> str:
    """``text`` fit for a terminal: every character it would act on written as an escape
    (``\\x1b``, ``\\n``...). Every line the commands print that holds a name or a message
    of someone else's goes through it."""
    return UNSHOWN.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


# What a terminal acts on rather than shows: C0 controls (line breaks too, so that a
# message cannot forge a line of its own), DEL, C1 controls, Unicode's line and paragraph
# separators, and bidirectional overrides (which reorder what follows on the line).
UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def describe(state: MaintenanceState | None, now: int) -> str:
    if state is None:
        return "Maintenance is off."
    kind = "user-triggered" if state.user_triggered else "automatic"
    if state.read_only:
        kind = f"read-only, {kind}"
    done = f", {state.progress_percent}% done" if state.progress_posted else ""
    lines = [
        f"Maintenance is on ({kind}, by {state.user}, since {utc_text(state.started_at)}){done}."
    ]
    if state.planned_end is not None:
        late = " (overrunning)" if state.planned_end <= now else ""
        lines.append(f"Planned to end at {utc_text(state.planned_end)}{late}.")
    alive = state.holder_alive(now)
    if alive is False and state.lease_renewed_at is not None:
        lines.append(
            f"The process {state.user} {holder_ended(state)}: run it again"
            f" (`bascule run --process {state.user} -- ...`) and it takes its maintenance"
            " over; `bascule maintenance release --reason '...'` hands it to you."
        )
    if state.released_from is not None:
        lines.append(f"Released from the process {state.released_from}.")
    lines += [f"  {entry.user}: {entry.message}" for entry in state.log]
    return "\n".join(map(shown, lines))


def holder_ended(state: MaintenanceState) -> str:
    """How the run of the process holding ``state`` ended: "exited with status 3 at
    ...", or, a run that said nothing, "stopped answering at ..." (its last renewal)."""
    if state.holder_ended_at is not None:
        return f"{state.holder_outcome} at {utc_text(state.holder_ended_at)}"
    assert state.lease_renewed_at is not None
    return f"stopped answering at {utc_text(state.lease_renewed_at)}"


def lasted(seconds: int) -> str:
    """A duration, for people to read."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def window_line(window: Window) -> str:
    """One window of the history, on one line."""
    who = window.user if window.user_triggered else f"process {window.user}"
    mode = ", read-only" if window.mode == READ_ONLY else ""
    if window.status == SKIPPED:
        start = utc_text(window.planned_start or window.created_at)
        return shown(f"#{window.id}  skipped  planned for {start} by {who}: {window.reason}")
    start = utc_text(window.started_at or window.created_at)
    released = f", released by {window.released_by}" if window.released_by else ""
    if window.ended_at is None:
        span = "still on"
    else:
        took = lasted(round((window.ended_at - (window.started_at or window.ended_at)) / 1000))
        span = f"lasted {took}, ended by {window.ended_by}"
    messages = plural(window.log_size, "message")
    return shown(
        f"#{window.id}  {window.status}  {start} by {who}{mode}{released}, {span}  ({messages})"
    )


def planned_line(window: Window) -> str:
    assert window.planned_start is not None
    span = utc_text(window.planned_start)
    if window.planned_end is not None:
        span += f" to {utc_text(window.planned_end)}"
        if window.auto_end:
            span += " (ends by itself)"
    mode = " read-only" if window.mode == READ_ONLY else ""
    return shown(f"{span},{mode} by {window.user}: {window.message}")
