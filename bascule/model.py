"""The domain's types: the state and its windows, the actors, the statuses and modes, the
time helpers, the rules on values, and the domain's errors. Nothing here reads a
database or speaks HTTP: the store, the domain and the gate all build on it.
"""

from __future__ import annotations

import datetime
import re
import socket
import time
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

STATE_ID = "mms_id"
ADMIN = "ADMIN"
STARTED_MESSAGE = "Maintenance operation started."
PLANNED_END_MESSAGE = "The planned end came: maintenance ended by itself."
# The modes of a maintenance: everything refused, or only what changes something.
FULL = "full"
READ_ONLY = "read-only"
# What the log says of a change of mode (the page, which says the mode itself, shows the
# operator's latest message instead).
MODE_MESSAGES = {
    FULL: "Mode: full maintenance; every request is refused.",
    READ_ONLY: "Mode: read-only; GET, HEAD and OPTIONS requests go through again.",
}
MODE_CHANGES = frozenset(MODE_MESSAGES.values())
MODES = (FULL, READ_ONLY)
# What the gate decides on a request, in the order of its tally (``Gate.decisions``).
DECISIONS = ("allowed", "read_only", "bypassed", "refused")
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
    # The holding process ended its work, failing, and left maintenance on: when, and how
    # ("exited with status 3"). Its lease ended with it.
    holder_ended_at: int | None = None
    holder_outcome: str | None = None

    @classmethod
    def current(
        cls,
        window: Window,
        *,
        progress_percent: int | None,
        lease_ttl: int | None,
        lease_renewed_at: int | None,
        log: tuple[LogEntry, ...],
        holder_ended_at: int | None = None,
        holder_outcome: str | None = None,
    ) -> MaintenanceState:
        """The state of the current window: held by who started it, or by the ADMIN who
        released it from a process (as if they had switched it on themselves)."""
        released = window.released_by is not None
        assert window.started_at is not None  # a current window started
        return cls(
            user=window.released_by if window.released_by is not None else window.user,
            user_triggered=window.user_triggered or released,
            progress_percent=progress_percent,
            started_at=window.started_at,
            log=log,
            log_size=window.log_size,
            mode=window.mode,
            window_id=window.id,
            planned_end=window.planned_end,
            lease_ttl=lease_ttl,
            lease_renewed_at=lease_renewed_at,
            released_from=window.user if released else None,
            auto_end=window.auto_end,
            holder_ended_at=holder_ended_at,
            holder_outcome=holder_outcome,
        )

    @property
    def read_only(self) -> bool:
        """Whether requests that change nothing still go through."""
        return self.mode == READ_ONLY

    def latest_message(self) -> str | None:
        """The operator's latest message, as visitors are told it: the latest of the log
        but for a change of mode (told apart, as the mode itself)."""
        changes = MODE_CHANGES
        return next((e.message for e in reversed(self.log) if e.message not in changes), None)

    def holder_alive(self, now: int) -> bool | None:
        """Whether the process holding it renewed its lease in time and has not ended its
        work (None: no lease)."""
        if self.lease_ttl is None or self.lease_renewed_at is None:
            return None
        if self.holder_ended_at is not None:
            return False
        return now < self.lease_renewed_at + self.lease_ttl * 1000

    @property
    def progress_posted(self) -> bool:
        """Whether someone posted a progress (the wire shows Alien4Cloud's 1 until then)."""
        return self.progress_percent is not None

    def as_json(self, now: int) -> dict[str, Any]:
        """The wire form (Alien4Cloud's MaintenanceModeState, plus what Bascule adds)."""
        lease = None
        if self.lease_ttl is not None and self.lease_renewed_at is not None:
            lease = {
                "ttl": self.lease_ttl,
                "renewedAt": self.lease_renewed_at,
                "alive": bool(self.holder_alive(now)),
                "endedAt": self.holder_ended_at,
                "outcome": self.holder_outcome,
            }
        return {
            "id": STATE_ID,
            "user": self.user,
            "userTriggered": self.user_triggered,
            # Alien4Cloud's value until someone posts one (progressSet says whether).
            "progressPercent": 1 if self.progress_percent is None else self.progress_percent,
            "progressSet": self.progress_posted,
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


def plural(count: int, noun: str) -> str:
    """``count`` ``noun``s, in English: "1 message", "2 messages"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
    # Where they act from, as the audit trail says it: a client's address, or a host.
    origin: str | None = None

    @classmethod
    def process(cls, name: str) -> Actor:
        """An internal process (a migration, a deploy script), named as a user is."""
        return cls(_named(name, "process"), ActorKind.PROCESS, origin=local_origin())

    @classmethod
    def operator(cls, name: str) -> Actor:
        """Someone with access to the server's command line and database."""
        return cls(_named(name, "user"), ActorKind.OPERATOR, origin=local_origin())

    @property
    def may_change(self) -> bool:
        """Whether this actor may change the state at all."""
        return self.kind is not ActorKind.API_USER or ADMIN in self.roles


def local_origin() -> str:
    """Where a command or a process of this host acts from."""
    return f"host {socket.gethostname()}"


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


def require_rights(actor: Actor) -> None:
    """Raise Forbidden unless ``actor`` may change anything (an API user needs ADMIN)."""
    if not actor.may_change:
        raise Forbidden()


def check_update(message: str | None, progress: int | None) -> None:
    """Raise InvalidUpdate unless ``message`` and ``progress`` are valid (None is)."""
    if progress is not None and not 0 <= progress <= 100:
        raise InvalidUpdate("progressPercentage must be between 0 and 100.")
    if message is not None:
        check_message(message, "message")


def check_message(message: str, what: str) -> None:
    """Raise InvalidUpdate unless ``message`` may be written to the log."""
    if (
        len(message) > MESSAGE_MAX_LENGTH
        or "\x00" in message
        or not any(map(visible, message))
        or not is_unicode(message)
    ):
        raise InvalidUpdate(
            f"{what} must hold 1 to {MESSAGE_MAX_LENGTH} characters, at least one of "
            "them visible, no NUL character and no unpaired surrogate."
        )


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InvalidUpdate(f"mode is {' or '.join(MODES)}, not {mode!r}")


def is_unicode(text: str) -> bool:
    """Whether ``text`` is real Unicode text (JSON can smuggle in unpaired surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` made into a valid log message."""
    cleaned = "".join(c if c.isprintable() or c in "\t\n" else " " for c in text)
    return cleaned[:MESSAGE_MAX_LENGTH]
