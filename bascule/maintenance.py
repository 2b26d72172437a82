"""The maintenance state machine: the state, who may change it, and the domain errors.

Nothing here knows about HTTP. The store serialises writers, so every transition
reads the state and changes it in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bascule.store import Store

log = logging.getLogger(__name__)

STATE_ID = "mms_id"
ADMIN = "ADMIN"
STARTED_MESSAGE = "Maintenance operation started."
PLANNED_END_MESSAGE = "The planned end came: maintenance ended by itself."
# The modes of a maintenance: everything refused, or only what changes something.
FULL = "full"
READ_ONLY = "read-only"
MODES = (FULL, READ_ONLY)
# What a read-only maintenance lets through: the methods that change nothing.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How many of the latest log entries a state read carries (the contract's log maxItems).
LOG_TAIL = 100
# The rules of a message (the contract's MaintenanceUpdateDTO.message says the same).
MESSAGE_MAX_LENGTH = 2000
# Unicode's default-ignorable code points of the Basic Multilingual Plane (zero-width
# spaces and joiners, direction marks, the byte-order mark, variation selectors, Hangul
# fillers...: DerivedCoreProperties.txt), which show nothing, and the braille blank.
_BLANKS = frozenset(
    map(
        chr,
        [
            0x00AD,
            0x034F,
            0x061C,
            0x115F,
            0x1160,
            0x17B4,
            0x17B5,
            *range(0x180B, 0x1810),
            *range(0x200B, 0x2010),
            *range(0x202A, 0x202F),
            *range(0x2060, 0x2070),
            0x2800,
            0x3164,
            *range(0xFE00, 0xFE10),
            0xFEFF,
            0xFFA0,
            *range(0xFFF0, 0xFFF9),
        ],
    )
)


def visible(char: str) -> bool:
    """Whether a character shows something: not a space, a control character or a blank."""
    return not (char.isspace() or unicodedata.category(char) == "Cc" or char in _BLANKS)


@dataclass(frozen=True)
class LogEntry:
    """One message of the maintenance log."""

    date: int  # epoch milliseconds
    user: str
    message: str
    id: int = 0

    def as_json(self) -> dict[str, Any]:
        """The wire form (Alien4Cloud's MaintenanceLog)."""
        return {"date": self.date, "user": self.user, "message": self.message}


@dataclass(frozen=True)
class MaintenanceState:
    """Maintenance as it is while it is on; ``log`` holds the latest entries only.

    ``user`` and ``user_triggered`` say who holds it now: who started it, or the ADMIN
    who released it from a process that stopped answering (``released_from``).
    """

    user: str
    user_triggered: bool
    progress_percent: int | None
    started_at: int
    log: tuple[LogEntry, ...] = ()
    log_size: int = 0
    mode: str = FULL
    window_id: int = 0
    planned_end: int | None = None  # epoch ms, for a planned window with an end
    lease_ttl: int | None = None  # seconds: the holding process renews its lease
    lease_renewed_at: int | None = None  # epoch ms
    released_from: str | None = None
    auto_end: bool = False  # a planned window that ends by itself at planned_end

    @property
    def read_only(self) -> bool:
        """Whether requests that change nothing still go through."""
        return self.mode == READ_ONLY

    def holder_alive(self, now: int) -> bool | None:
        """Whether the process holding it renewed its lease in time (None: no lease)."""
        if self.lease_ttl is None or self.lease_renewed_at is None:
            return None
        return now < self.lease_renewed_at + self.lease_ttl * 1000

    def as_json(self, now: int) -> dict[str, Any]:
        """The wire form (Alien4Cloud's MaintenanceModeState, plus what Bascule adds)."""
        lease = None
        if self.lease_ttl is not None and self.lease_renewed_at is not None:
            lease = {
                "ttl": self.lease_ttl,
                "renewedAt": self.lease_renewed_at,
                "alive": bool(self.holder_alive(now)),
            }
        return {
            "id": STATE_ID,
            "user": self.user,
            "userTriggered": self.user_triggered,
            "progressPercent": self.progress_percent,
            "log": [entry.as_json() for entry in self.log],
            "logSize": self.log_size,
            "mode": self.mode,
            "windowId": self.window_id,
            "startedAt": self.started_at,
            "plannedEnd": self.planned_end,
            "lease": lease,
            "releasedFrom": self.released_from,
            "autoEnd": self.auto_end,
        }


# The states of a window.
PLANNED, ON, ENDED, SKIPPED, CANCELLED = "planned", "on", "ended", "skipped", "cancelled"
# The windows of the history: those that happened, or were due and could not.
HISTORY = (ON, ENDED, SKIPPED)
# Who ends a planned window with autoEnd at its end.
SCHEDULE_ACTOR = "schedule"
# The most windows that may be planned at once (the list, and the calendar feed, hold
# them all).
MAX_PLANNED = 100


@dataclass(frozen=True)
class Window:
    """One maintenance, planned, current or past."""

    id: int
    status: str
    user: str  # who started it (for a planned window, who planned it)
    user_triggered: bool
    mode: str
    created_at: int
    started_at: int | None = None
    ended_at: int | None = None
    ended_by: str | None = None
    released_by: str | None = None
    log_size: int = 0
    planned_start: int | None = None
    planned_end: int | None = None
    message: str | None = None
    auto_end: bool = False
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The wire form of a window of the history."""
        return {
            "id": self.id,
            "status": self.status,
            "user": self.user,
            "userTriggered": self.user_triggered,
            "mode": self.mode,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "endedBy": self.ended_by,
            "releasedBy": self.released_by,
            "logSize": self.log_size,
            "plannedStart": self.planned_start,
            "plannedEnd": self.planned_end,
            "autoEnd": self.auto_end,
            "reason": self.reason,
        }

    def as_planned_json(self) -> dict[str, Any]:
        """The wire form of a planned window."""
        return {
            "id": self.id,
            "status": self.status,
            "start": rfc3339(self.planned_start),
            "end": rfc3339(self.planned_end),
            "message": self.message,
            "mode": self.mode,
            "autoEnd": self.auto_end,
            "createdBy": self.user,
            "createdAt": self.created_at,
        }


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# The last millisecond every answer can show (9999-12-31T23:59:59.999Z).
LATEST_MS = 253_402_300_799_999


def utc(ms: int) -> datetime.datetime:
    """A time in epoch milliseconds, as a moment in UTC (exactly: no float between)."""
    return EPOCH + datetime.timedelta(milliseconds=ms)


def rfc3339(ms: int | None) -> str | None:
    """A time in epoch milliseconds as RFC 3339, in UTC (None stays None)."""
    if ms is None:
        return None
    moment = utc(ms)
    precision = "milliseconds" if ms % 1000 else "seconds"
    return moment.isoformat(timespec=precision).replace("+00:00", "Z")


class ActorKind(Enum):
    """Who asks for a transition."""

    API_USER = "api user"  # through the REST API: needs the ADMIN role to change anything
    OPERATOR = "operator"  # on the server's own command line: trusted, user-triggered
    PROCESS = "process"  # an internal process: automatic maintenance


@dataclass(frozen=True)
class Actor:
    """A user or a process acting on the maintenance state."""

    name: str
    kind: ActorKind = ActorKind.API_USER
    roles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def process(cls, name: str) -> Actor:
        """An internal process (a migration, a deploy script), named as a user is."""
        return cls(_named(name, "process"), ActorKind.PROCESS)

    @classmethod
    def operator(cls, name: str) -> Actor:
        """Someone with access to the server's command line and database."""
        return cls(_named(name, "user"), ActorKind.OPERATOR)

    @property
    def may_change(self) -> bool:
        """Whether this actor may change the state at all."""
        return self.kind is not ActorKind.API_USER or ADMIN in self.roles


# A user's name, and a process's: nothing a terminal or a log line could act on.
NAME_PATTERN = re.compile(r"\w[\w.@\-]{0,254}")


def _named(name: str, what: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"a {what} name is 1 to 255 letters, digits or . _ @ -, starting with a letter,"
            f" a digit or _, not {name.encode('unicode_escape').decode()!r}"
        )
    return name


class MaintenanceError(Exception):
    """A transition that the current state or the actor's rights do not allow."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(MaintenanceError):
    """The actor may read the state but not change it."""

    def __init__(self) -> None:
        super().__init__("Current user has no sufficient rights.")


class AlreadyEnabled(MaintenanceError):
    """Maintenance is on already."""

    def __init__(self) -> None:
        super().__init__("The posted object already exist.")


class NotEnabled(MaintenanceError):
    """Maintenance is off."""

    def __init__(self) -> None:
        super().__init__("Maintenance mode is not enabled.")


class NotYours(MaintenanceError):
    """Maintenance was switched on by someone the actor may not override."""


class InvalidName(MaintenanceError):
    """A process's (or an operator's) name that is not a name."""


class InvalidUpdate(MaintenanceError):
    """An update that carries nothing, or something out of range."""


class NothingToRelease(MaintenanceError):
    """Release asked of a maintenance no process holds with a lease."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"Maintenance is held by '{holder}', not by a process with a lease: "
            "there is nothing to release."
        )


class HolderAlive(MaintenanceError):
    """Release asked while the holding process still renews its lease."""

    def __init__(self, state: MaintenanceState) -> None:
        super().__init__(
            f"The process '{state.user}' holding maintenance renewed its lease at "
            f"{rfc3339(state.lease_renewed_at)}: it is alive, and keeps it."
        )


class LeaseLost(MaintenanceError):
    """The process holding maintenance learned that it holds it no longer (an ADMIN
    released it, or it was ended): it must not end it, and says so."""


class TooManyWindows(MaintenanceError):
    """As many windows are planned as may be."""

    def __init__(self) -> None:
        super().__init__(
            f"{MAX_PLANNED} windows are planned already, the most there may be: cancel one first."
        )


class WindowsOverlap(MaintenanceError):
    """A window planned over another."""

    def __init__(self, other: Window) -> None:
        until = f" to {rfc3339(other.planned_end)}" if other.planned_end else ""
        super().__init__(
            f"It overlaps the planned window {other.id} ({rfc3339(other.planned_start)}"
            f"{until}): change or cancel that one first."
        )


class NoSuchWindow(MaintenanceError):
    """No window of that id (or, to cancel, no planned one)."""

    def __init__(self, window_id: int, what: str = "maintenance window") -> None:
        super().__init__(f"No {what} {window_id}.")


class WindowNotPlanned(MaintenanceError):
    """A window that started (or ended) already cannot be cancelled."""

    def __init__(self, window: Window) -> None:
        super().__init__(
            f"The window {window.id} is {window.status}, not planned: it cannot be cancelled."
        )


class StateListener(Protocol):
    """Told after every committed change, so that cached copies refresh at once."""

    def refresh(self) -> object: ...


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


class Maintenance:
    """Reads and changes the maintenance state on behalf of actors."""

    def __init__(
        self,
        store: Store,
        listener: StateListener | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.listener = listener
        # The database's clock, unless told another (tests).
        self.clock = clock or store.now

    def state(self) -> MaintenanceState | None:
        """The state as stored now, or None when maintenance is off."""
        with self.store.read() as conn:
            return self.store.load_state(conn)

    def log_page(self, offset: int, limit: int) -> tuple[int, list[LogEntry]]:
        """The total size of the current log and one page of it, oldest first."""
        with self.store.read() as conn:
            state = self.store.load_state(conn, with_log=False)
            if state is None:
                raise NotEnabled()
            return state.log_size, list(self.store.log_page(conn, state.window_id, offset, limit))

    def history(self, offset: int, limit: int) -> tuple[int, list[Window]]:
        """How many windows happened (or were skipped), and one page of them, newest first."""
        with self.store.read() as conn:
            return self.store.history(conn, offset, limit)

    def window(self, window_id: int, offset: int, limit: int) -> tuple[Window, list[LogEntry]]:
        """One window of the history, and one page of its log, oldest first."""
        with self.store.read() as conn:
            window = self.store.get_window(conn, window_id)
            if window is None or window.status not in HISTORY:
                raise NoSuchWindow(window_id)
            return window, list(self.store.log_page(conn, window_id, offset, limit))

    def enable(
        self,
        actor: Actor,
        message: str | None = None,
        progress: int | None = None,
        mode: str = FULL,
        lease_ttl: int | None = None,
    ) -> MaintenanceState:
        """Switch maintenance on, in ``mode`` (full, or read-only); automatic when the
        actor is a process, which then holds it with a lease of ``lease_ttl`` seconds
        when given (renewed with :meth:`renew`).

        A first ``message`` and ``progress`` are checked before anything changes and
        recorded in the same transaction: maintenance never goes on without them.
        """
        require_rights(actor)
        _check_update(message, progress)
        _check_mode(mode)
        now = self.clock()
        log = [LogEntry(now, actor.name, STARTED_MESSAGE)]
        if message is not None:
            log.append(LogEntry(now, actor.name, message))
        process = actor.kind is ActorKind.PROCESS
        state = MaintenanceState(
            user=actor.name,
            user_triggered=not process,
            progress_percent=1 if progress is None else progress,
            started_at=now,
            log=tuple(log),
            log_size=len(log),
            mode=mode,
            lease_ttl=lease_ttl if process else None,
            lease_renewed_at=now if process and lease_ttl else None,
        )
        with self.store.write("state") as conn:
            if self.store.load_state(conn, with_log=False) is not None:
                raise AlreadyEnabled()
            window_id = self.store.insert_state(conn, state)
            if window_id is None:
                raise AlreadyEnabled()
        self._changed()
        return dataclasses.replace(state, window_id=window_id)

    def update(self, actor: Actor, message: str | None = None, progress: int | None = None) -> None:
        """Post a message to the log and/or set the progress (None changes nothing)."""
        require_rights(actor)
        _check_update(message, progress)
        if message is None and progress is None:
            with self.store.read() as conn:
                _require_owner(actor, self.store.load_state(conn, with_log=False), "update")
            return
        with self.store.write("state") as conn:
            state = self.store.load_state(conn, with_log=False)
            _require_owner(actor, state, "update")
            assert state is not None
            if progress is not None:
                self.store.set_progress(conn, progress)
            if message is not None:
                entry = LogEntry(self.clock(), actor.name, message)
                self.store.append_log(conn, state.window_id, entry)
        self._changed()

    def disable(self, actor: Actor) -> None:
        """Switch maintenance off: its window ends, and is kept in the history."""
        require_rights(actor)
        with self.store.write("state") as conn:
            state = self.store.load_state(conn, with_log=False)
            _require_owner(actor, state, "disable")
            assert state is not None
            self.store.end_window(conn, state.window_id, actor.name, self.clock())
        self._changed()

    def renew(self, actor: Actor, window_id: int) -> bool:
        """Renew the lease of the process ``actor`` on the window ``window_id``; False
        when it holds it no longer (ended, or released)."""
        with self.store.write("state") as conn:
            renewed = self.store.renew_lease(conn, window_id, actor.name, self.clock())
        self._changed()
        return renewed

    def lost_lease(self, actor: Actor, window_id: int) -> str:
        """What the process ``actor`` says on learning that it no longer holds the window
        ``window_id``: written to that window's log when it is still on (held by whoever
        released it), and returned."""
        with self.store.write("state") as conn:
            window = self.store.get_window(conn, window_id)
            state = self.store.load_state(conn, with_log=False)
            if window is not None and window.released_by is not None:
                why = f"it was released by {window.released_by}"
            elif window is not None and window.ended_by is not None:
                why = f"it was ended by {window.ended_by}"
            else:
                why = "it is no longer there"
            message = (
                f"The process '{actor.name}' lost its lease on this maintenance ({why}): it"
                " goes on with its work, and leaves the maintenance to whoever holds it."
            )
            if state is not None and state.window_id == window_id:
                self.store.append_log(conn, window_id, LogEntry(self.clock(), actor.name, message))
        self._changed()
        return message

    def release(self, actor: Actor, reason: str) -> MaintenanceState:
        """Take over the maintenance of a process whose lease ran out: it stays on, held
        by ``actor`` as if they had switched it on (so they may end it), and the log
        says who released it, from whom, and why."""
        require_rights(actor)
        _check_message(reason, "reason")
        now = self.clock()
        with self.store.write("state") as conn:
            state = self.store.load_state(conn, with_log=False)
            if state is None:
                raise NotEnabled()
            alive = state.holder_alive(now)
            if alive is None:
                raise NothingToRelease(state.user)
            if alive:
                raise HolderAlive(state)
            silent = rfc3339(state.lease_renewed_at)
            message = (
                f"Released by {actor.name} from the process '{state.user}', "
                f"silent since {silent}: {reason}"
            )
            self.store.release(conn, state.window_id, actor.name)
            self.store.append_log(conn, state.window_id, LogEntry(now, actor.name, message))
            released = self.store.load_state(conn)
        self._changed()
        assert released is not None
        return released

    # -- planned windows ---------------------------------------------------------------

    def plan(
        self,
        actor: Actor,
        start: int,
        end: int | None,
        message: str,
        mode: str = FULL,
        auto_end: bool = False,
    ) -> Window:
        """Plan a window from ``start`` to ``end`` (epoch ms; no end: until switched off)."""
        require_rights(actor)
        _check_message(message, "message")
        _check_mode(mode)
        now = self.clock()
        if start <= now:
            raise InvalidUpdate("start must be in the future.")
        if end is not None and end <= start:
            raise InvalidUpdate("end must come after start.")
        if auto_end and end is None:
            raise InvalidUpdate("autoEnd needs an end.")
        if (end or start) > LATEST_MS:
            raise InvalidUpdate("start and end must come before the year 10000 in UTC.")
        window = Window(
            id=0,
            status=PLANNED,
            user=actor.name,
            user_triggered=actor.kind is not ActorKind.PROCESS,
            mode=mode,
            created_at=now,
            planned_start=start,
            planned_end=end,
            message=message,
            auto_end=auto_end,
        )
        with self.store.write("schedule") as conn:
            planned = self.store.planned_windows(conn)
            if len(planned) >= MAX_PLANNED:
                raise TooManyWindows()
            for other in planned:
                if overlap(other, start, end):
                    raise WindowsOverlap(other)
            window_id = self.store.insert_window(conn, window)
        self._changed()
        return dataclasses.replace(window, id=window_id)

    def planned(self, offset: int = 0, limit: int = MAX_PLANNED) -> list[Window]:
        """The windows to come, soonest first (``limit`` of them from ``offset``)."""
        with self.store.read() as conn:
            return self.store.planned_windows(conn)[offset : offset + limit]

    def cancel(self, actor: Actor, window_id: int) -> None:
        """Cancel a planned window."""
        require_rights(actor)
        # The state's lock first, as run_schedule takes it: a window starts or is cancelled.
        with self.store.write("state", "schedule") as conn:
            window = self.store.get_window(conn, window_id)
            if window is None:
                raise NoSuchWindow(window_id, "planned window")
            if window.status != PLANNED:
                raise WindowNotPlanned(window)
            self.store.close_window(conn, window_id, CANCELLED, actor.name, self.clock())
        self._changed()

    def run_schedule(self) -> bool:
        """Start the planned windows whose time came, and end the one due to end by
        itself; True when something changed. Whoever calls it first commits each
        change, exactly once: the write lock orders the callers, and each re-reads."""
        now = self.clock()
        with self.store.read() as conn:
            state = self.store.load_state(conn, with_log=False)
            if not (ends_now(state, now) or self.store.planned_windows(conn, due_by=now)):
                return False
        with self.store.write("state", "schedule") as conn:
            state = self.store.load_state(conn, with_log=False)
            if state is not None and ends_now(state, now):
                entry = LogEntry(now, SCHEDULE_ACTOR, PLANNED_END_MESSAGE)
                self.store.append_log(conn, state.window_id, entry)
                self.store.end_window(conn, state.window_id, SCHEDULE_ACTOR, now)
                state = None
            for due in self.store.planned_windows(conn, due_by=now):
                if due.planned_end is not None and due.planned_end <= now:
                    reason: str | None = "Its end came before it could start."
                elif state is not None:
                    reason = (
                        f"Maintenance was already on, held by '{state.user}' since "
                        f"{rfc3339(state.started_at)}."
                    )
                else:
                    reason = None
                if reason is not None:
                    self.store.close_window(conn, due.id, SKIPPED, SCHEDULE_ACTOR, now, reason)
                else:
                    self.store.start_planned(conn, due, now)
                    state = self.store.load_state(conn, with_log=False)
        self._changed()
        return True

    def prune(self, keep_days: int) -> int:
        """Forget the windows that ended more than ``keep_days`` days ago; how many."""
        before = self.clock() - keep_days * 86_400_000
        with self.store.write(None) as conn:
            return self.store.prune_windows(conn, before)

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.refresh()


def overlap(window: Window, start: int, end: int | None) -> bool:
    """Whether ``window`` (planned) and the span from ``start`` to ``end`` share a moment:
    a window without an end counts for its start only (it lasts until someone ends it,
    and a window due meanwhile is skipped, said in the history)."""
    assert window.planned_start is not None
    other_end = window.planned_end or window.planned_start + 1
    return window.planned_start < (end or start + 1) and start < other_end


def ends_now(state: MaintenanceState | None, now: int) -> bool:
    """Whether ``state`` is a planned window due to end by itself by ``now``."""
    return (
        state is not None
        and state.auto_end
        and state.planned_end is not None
        and state.planned_end <= now
    )


def require_rights(actor: Actor) -> None:
    """Raise Forbidden unless ``actor`` may change anything (an API user needs ADMIN)."""
    if not actor.may_change:
        raise Forbidden()


def _check_update(message: str | None, progress: int | None) -> None:
    """Raise InvalidUpdate unless ``message`` and ``progress`` are valid (None is)."""
    if progress is not None and not 0 <= progress <= 100:
        raise InvalidUpdate("progressPercentage must be between 0 and 100.")
    if message is not None:
        _check_message(message, "message")


def _check_message(message: str, what: str) -> None:
    """Raise InvalidUpdate unless ``message`` may be written to the log."""
    if (
        len(message) > MESSAGE_MAX_LENGTH
        or "\x00" in message
        or not any(map(visible, message))
        or not _is_unicode(message)
    ):
        raise InvalidUpdate(
            f"{what} must hold 1 to {MESSAGE_MAX_LENGTH} characters, at least one of "
            "them visible, no NUL character and no unpaired surrogate."
        )


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InvalidUpdate(f"mode is {' or '.join(MODES)}, not {mode!r}")


def _require_owner(actor: Actor, state: MaintenanceState | None, verb: str) -> None:
    """Raise unless ``actor`` may ``verb`` the maintenance ``state``."""
    if state is None:
        raise NotEnabled()
    if state.user_triggered:
        if actor.kind is ActorKind.PROCESS:
            raise NotYours(
                f"Maintenance mode has been enabled by the user '{state.user}', "
                f"the process '{actor.name}' is not allowed to {verb} it."
            )
        return
    if actor.kind is ActorKind.PROCESS and actor.name == state.user:
        return
    if actor.kind is ActorKind.API_USER:
        raise NotYours(f"Automatic maintenance cannot be {verb}d through rest api.")
    raise NotYours(
        f"Maintenance mode has been enabled by the process '{state.user}': "
        f"act as that process (--process {state.user}) to {verb} it."
    )


class AutomaticMaintenance:
    """Handle given to the body of :func:`automatic_maintenance`."""

    def __init__(self, maintenance: Maintenance, actor: Actor) -> None:
        self._maintenance = maintenance
        self._actor = actor

    def update(self, message: str | None = None, progress: int | None = None) -> None:
        """Post a message and/or set the progress of the running maintenance."""
        self._maintenance.update(self._actor, message=message, progress=progress)


class LeaseRenewer:
    """Renews the lease of a process on its maintenance, every third of the lease's
    length, from a thread of its own, until stopped or the maintenance is not its own:
    then ``lost`` says why, in the maintenance's log, in this process's, and to
    ``on_lost`` (the command line's standard error), at once."""

    def __init__(
        self,
        maintenance: Maintenance,
        actor: Actor,
        window_id: int,
        ttl: int,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.maintenance, self.actor, self.window_id = maintenance, actor, window_id
        self.interval = ttl / 3
        self.on_lost = on_lost
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bascule-lease", daemon=True)

    def __enter__(self) -> LeaseRenewer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.maintenance.store.timeout + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.maintenance.renew(self.actor, self.window_id):
                    continue
                self.lost = self.maintenance.lost_lease(self.actor, self.window_id)
            except Exception as exc:  # the database may come back before the lease runs out
                log.warning("the lease could not be renewed: %s", type(exc).__name__)
                continue
            log.error("%s", self.lost)
            if self.on_lost is not None:
                self.on_lost(self.lost)
            return


@contextmanager
def maintenance_window(
    maintenance: Maintenance,
    actor: Actor,
    *,
    message: str | None = None,
    always_off: bool = False,
    lease_ttl: int | None = None,
    on_lost: Callable[[str], None] | None = None,
) -> Iterator[AutomaticMaintenance]:
    """Keep maintenance on, on behalf of ``actor``, while the ``with`` body runs.

    Maintenance goes off when the body succeeds. When it raises, a log entry says
    why and maintenance stays on (so an operator looks before traffic resumes),
    unless ``always_off`` is true. With ``lease_ttl`` (seconds), a process holds it with
    a lease renewed in the background: should the process die, its maintenance stays
    on, and an ADMIN may release it once the lease ran out. Should that happen while the
    process is alive (its host silent a while), it learns it at its next renewal (the
    maintenance's log and ``on_lost`` say so), and at the end raises LeaseLost instead
    of ending a maintenance that is no longer its own.
    """
    state = maintenance.enable(actor, message=message, lease_ttl=lease_ttl)
    handle = AutomaticMaintenance(maintenance, actor)
    lease: LeaseRenewer | None = None
    if lease_ttl and actor.kind is ActorKind.PROCESS:
        lease = LeaseRenewer(maintenance, actor, state.window_id, lease_ttl, on_lost)
    with lease or contextlib.nullcontext():
        try:
            yield handle
        except BaseException as exc:
            # Someone may have ended this maintenance meanwhile: the body's error matters more.
            with suppress(MaintenanceError):
                reason = str(exc) or type(exc).__name__
                maintenance.update(actor, message=_printable(f"Failed: {reason}"))
                if always_off:
                    maintenance.disable(actor)
            raise
    if lease is not None and lease.lost is not None:
        raise LeaseLost(lease.lost)
    with suppress(NotEnabled, NotYours):  # ended by an operator meanwhile
        maintenance.disable(actor)


def _is_unicode(text: str) -> bool:
    """Whether ``text`` is real Unicode text (JSON can smuggle in unpaired surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """``text`` made into a valid log message."""
    cleaned = "".join(c if c.isprintable() or c in "\t\n" else " " for c in text)
    return cleaned[:MESSAGE_MAX_LENGTH]
