"""The maintenance state machine: the state, who may change it, and the domain errors.

Nothing here knows about HTTP. The store serialises writers, so every transition
reads the state and changes it in one transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from bascule.accounts import AlreadyExists
from bascule.model import (
    FULL,
    HISTORY,
    STARTED_MESSAGE,
    Actor,
    ActorKind,
    AlreadyEnabled,
    HolderAlive,
    LeaseLost,
    LogEntry,
    MaintenanceError,
    MaintenanceState,
    NoSuchWindow,
    NotEnabled,
    NothingToRelease,
    NotYours,
    StateListener,
    Window,
    check_message,
    check_mode,
    check_update,
    printable,
    require_rights,
    rfc3339,
)

if TYPE_CHECKING:
    from bascule.store import Store

log = logging.getLogger(__name__)


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
        with self.store.read() as tx:
            return tx.load_state()

    def log_page(self, offset: int, limit: int) -> tuple[int, list[LogEntry]]:
        """The total size of the current log and one page of it, oldest first."""
        with self.store.read() as tx:
            state = tx.load_state(with_log=False)
            if state is None:
                raise NotEnabled()
            return state.log_size, list(tx.log_page(state.window_id, offset, limit))

    def history(self, offset: int, limit: int) -> tuple[int, list[Window]]:
        """How many windows happened (or were skipped), and one page of them, newest first."""
        with self.store.read() as tx:
            return tx.history(offset, limit)

    def window(self, window_id: int, offset: int, limit: int) -> tuple[Window, list[LogEntry]]:
        """One window of the history, and one page of its log, oldest first."""
        with self.store.read() as tx:
            window = tx.get_window(window_id)
            if window is None or window.status not in HISTORY:
                raise NoSuchWindow(window_id)
            return window, list(tx.log_page(window_id, offset, limit))

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
        check_update(message, progress)
        check_mode(mode)
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
        with self.store.write("state") as tx:
            if tx.load_state(with_log=False) is not None:
                raise AlreadyEnabled()
            try:
                window_id = tx.insert_state(state)
            except AlreadyExists:  # another writer, between the read and the insert
                raise AlreadyEnabled() from None
        self._changed()
        return dataclasses.replace(state, window_id=window_id)

    def update(self, actor: Actor, message: str | None = None, progress: int | None = None) -> None:
        """Post a message to the log and/or set the progress (None changes nothing)."""
        require_rights(actor)
        check_update(message, progress)
        if message is None and progress is None:
            with self.store.read() as tx:
                _require_owner(actor, tx.load_state(with_log=False), "update")
            return
        with self.store.write("state") as tx:
            state = tx.load_state(with_log=False)
            _require_owner(actor, state, "update")
            assert state is not None
            if progress is not None:
                tx.set_progress(progress)
            if message is not None:
                entry = LogEntry(self.clock(), actor.name, message)
                tx.append_log(state.window_id, entry)
        self._changed()

    def disable(self, actor: Actor) -> None:
        """Switch maintenance off: its window ends, and is kept in the history."""
        require_rights(actor)
        with self.store.write("state") as tx:
            state = tx.load_state(with_log=False)
            _require_owner(actor, state, "disable")
            assert state is not None
            tx.end_window(state.window_id, actor.name, self.clock())
        self._changed()

    def renew(self, actor: Actor, window_id: int) -> bool:
        """Renew the lease of the process ``actor`` on the window ``window_id``; False
        when it holds it no longer (ended, or released)."""
        with self.store.write("state") as tx:
            renewed = tx.renew_lease(window_id, actor.name, self.clock())
        self._changed()
        return renewed

    def lost_lease(self, actor: Actor, window_id: int) -> str:
        """What the process ``actor`` says on learning that it no longer holds the window
        ``window_id``: written to that window's log when it is still on (held by whoever
        released it), and returned."""
        with self.store.write("state") as tx:
            window = tx.get_window(window_id)
            state = tx.load_state(with_log=False)
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
                tx.append_log(window_id, LogEntry(self.clock(), actor.name, message))
        self._changed()
        return message

    def release(self, actor: Actor, reason: str) -> MaintenanceState:
        """Take over the maintenance of a process whose lease ran out: it stays on, held
        by ``actor`` as if they had switched it on (so they may end it), and the log
        says who released it, from whom, and why."""
        require_rights(actor)
        check_message(reason, "reason")
        now = self.clock()
        with self.store.write("state") as tx:
            state = tx.load_state(with_log=False)
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
            tx.release(state.window_id, actor.name)
            tx.append_log(state.window_id, LogEntry(now, actor.name, message))
            released = tx.load_state()
        self._changed()
        assert released is not None
        return released

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.refresh()


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
                maintenance.update(actor, message=printable(f"Failed: {reason}"))
                if always_off:
                    maintenance.disable(actor)
            raise
    if lease is not None and lease.lost is not None:
        raise LeaseLost(lease.lost)
    with suppress(NotEnabled, NotYours):  # ended by an operator meanwhile
        maintenance.disable(actor)
