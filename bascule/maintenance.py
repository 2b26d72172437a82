"""The maintenance state machine: the state, who may change it, and the domain errors.

Nothing here knows about HTTP. The store serialises writers, so every transition
reads the state and changes it in one transaction.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bascule.store import Store

STATE_ID = "mms_id"
ADMIN = "ADMIN"
STARTED_MESSAGE = "Maintenance operation started."
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
    """Maintenance as it is while it is on; ``log`` holds the latest entries only."""

    user: str
    user_triggered: bool
    progress_percent: int | None
    started_at: int
    log: tuple[LogEntry, ...] = ()
    log_size: int = 0
    mode: str = FULL

    @property
    def read_only(self) -> bool:
        """Whether requests that change nothing still go through."""
        return self.mode == READ_ONLY

    def as_json(self) -> dict[str, Any]:
        """The wire form (Alien4Cloud's MaintenanceModeState, plus ``logSize``, ``mode``)."""
        return {
            "id": STATE_ID,
            "user": self.user,
            "userTriggered": self.user_triggered,
            "progressPercent": self.progress_percent,
            "log": [entry.as_json() for entry in self.log],
            "logSize": self.log_size,
            "mode": self.mode,
        }


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
        """An internal process (a migration, a deploy script)."""
        return cls(name, ActorKind.PROCESS)

    @classmethod
    def operator(cls, name: str) -> Actor:
        """Someone with access to the server's command line and database."""
        return cls(name, ActorKind.OPERATOR)

    @property
    def may_change(self) -> bool:
        """Whether this actor may change the state at all."""
        return self.kind is not ActorKind.API_USER or ADMIN in self.roles


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


class InvalidUpdate(MaintenanceError):
    """An update that carries nothing, or something out of range."""


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
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.listener = listener
        self.clock = clock

    def state(self) -> MaintenanceState | None:
        """The state as stored now, or None when maintenance is off."""
        with self.store.read() as conn:
            return self.store.load_state(conn)

    def log_page(self, offset: int, limit: int) -> tuple[int, list[LogEntry]]:
        """The total size of the log and one page of it, oldest first."""
        with self.store.read() as conn:
            state = self.store.load_state(conn, with_log=False)
            if state is None:
                raise NotEnabled()
            return state.log_size, list(self.store.log_page(conn, offset, limit))

    def enable(
        self,
        actor: Actor,
        message: str | None = None,
        progress: int | None = None,
        mode: str = FULL,
    ) -> MaintenanceState:
        """Switch maintenance on, in ``mode`` (full, or read-only); automatic when the
        actor is a process.

        A first ``message`` and ``progress`` are checked before anything changes and
        recorded in the same transaction: maintenance never goes on without them.
        """
        require_rights(actor)
        _check_update(message, progress)
        if mode not in MODES:
            raise InvalidUpdate(f"mode is {' or '.join(MODES)}, not {mode!r}")
        now = self.clock()
        log = [LogEntry(now, actor.name, STARTED_MESSAGE)]
        if message is not None:
            log.append(LogEntry(now, actor.name, message))
        state = MaintenanceState(
            user=actor.name,
            user_triggered=actor.kind is not ActorKind.PROCESS,
            progress_percent=1 if progress is None else progress,
            started_at=now,
            log=tuple(log),
            log_size=len(log),
            mode=mode,
        )
        with self.store.write("state") as conn:
            if self.store.load_state(conn, with_log=False) is not None:
                raise AlreadyEnabled()
            if not self.store.insert_state(conn, state):
                raise AlreadyEnabled()
        self._changed()
        return state

    def update(self, actor: Actor, message: str | None = None, progress: int | None = None) -> None:
        """Post a message to the log and/or set the progress (None changes nothing)."""
        require_rights(actor)
        _check_update(message, progress)
        if message is None and progress is None:
            with self.store.read() as conn:
                _require_owner(actor, self.store.load_state(conn, with_log=False), "update")
            return
        with self.store.write("state") as conn:
            _require_owner(actor, self.store.load_state(conn, with_log=False), "update")
            if progress is not None:
                self.store.set_progress(conn, progress)
            if message is not None:
                self.store.append_log(conn, LogEntry(self.clock(), actor.name, message))
        self._changed()

    def disable(self, actor: Actor) -> None:
        """Switch maintenance off."""
        require_rights(actor)
        with self.store.write("state") as conn:
            _require_owner(actor, self.store.load_state(conn, with_log=False), "disable")
            self.store.delete_state(conn)
        self._changed()

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.refresh()


def require_rights(actor: Actor) -> None:
    """Raise Forbidden unless ``actor`` may change anything (an API user needs ADMIN)."""
    if not actor.may_change:
        raise Forbidden()


def _check_update(message: str | None, progress: int | None) -> None:
    """Raise InvalidUpdate unless ``message`` and ``progress`` are valid (None is)."""
    if progress is not None and not 0 <= progress <= 100:
        raise InvalidUpdate("progressPercentage must be between 0 and 100.")
    if message is not None and (
        len(message) > MESSAGE_MAX_LENGTH
        or "\x00" in message
        or not any(map(visible, message))
        or not _is_unicode(message)
    ):
        raise InvalidUpdate(
            f"message must hold 1 to {MESSAGE_MAX_LENGTH} characters, at least one of "
            "them visible, no NUL character and no unpaired surrogate."
        )


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


@contextmanager
def maintenance_window(
    maintenance: Maintenance,
    actor: Actor,
    *,
    message: str | None = None,
    always_off: bool = False,
) -> Iterator[AutomaticMaintenance]:
    """Keep maintenance on, on behalf of ``actor``, while the ``with`` body runs.

    Maintenance goes off when the body succeeds. When it raises, a log entry says
    why and maintenance stays on (so an operator looks before traffic resumes),
    unless ``always_off`` is true.
    """
    maintenance.enable(actor, message=message)
    handle = AutomaticMaintenance(maintenance, actor)
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
