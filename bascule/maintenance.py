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

from bascule import events
from bascule.accounts import AlreadyExists
from bascule.model import (
    FULL,
    HISTORY,
    MODE_MESSAGES,
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
    from bascule.store import Store, Tx

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

        A process whose own maintenance is on, held by a run of it that ended (failed, or
        silent past its lease), takes it over: the maintenance goes on, never off between
        the tries, and the log says so. A live run of the same process is refused.
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
            progress_percent=progress,
            started_at=now,
            log=tuple(log),
            log_size=len(log),
            mode=mode,
            lease_ttl=lease_ttl if process else None,
            lease_renewed_at=now if process and lease_ttl else None,
        )
        with self.store.write("state") as tx:
            current = tx.load_state(with_log=False)
            if current is not None and retries(actor, current, now):
                taken = self._take_over(tx, actor, current, state, now)
                self._changed()
                return taken
            if current is not None:
                raise AlreadyEnabled()
            try:
                window_id = tx.insert_state(state)
            except AlreadyExists:  # another writer, between the read and the insert
                raise AlreadyEnabled() from None
            events.started(tx, actor, now)
        self._changed()
        return dataclasses.replace(state, window_id=window_id)

    def _take_over(
        self, tx: Tx, actor: Actor, current: MaintenanceState, new: MaintenanceState, now: int
    ) -> MaintenanceState:
        """``actor``'s new run holds its own maintenance again: one transaction, the log
        saying which run ended how, and what the new one said."""
        ended = current.holder_outcome or "stopped renewing its lease"
        tx.hold_again(new.lease_ttl, now)
        if new.mode != current.mode:
            tx.set_mode(current.window_id, new.mode)
        if new.progress_percent is not None:
            tx.set_progress(new.progress_percent)
        took = (
            f"Retried by the process '{actor.name}': its run of {rfc3339(current.started_at)}"
            f" {ended}; maintenance stayed on, and is held by the new run."
        )
        for entry in (LogEntry(now, actor.name, took), *new.log[1:]):
            tx.append_log(current.window_id, entry)
        events.maintenance_event(tx, events.UPDATED, actor, now, took)
        taken = tx.load_state(with_log=False)
        assert taken is not None
        return taken

    def holder_ended(self, actor: Actor, window_id: int, outcome: str, message: str) -> None:
        """The process ``actor`` ended its work on the window ``window_id`` failing
        (``outcome``: "exited with status 3"; ``message`` for the log), leaving maintenance
        on: its lease ends now, so that an ADMIN may release it, or a new run of it take
        it over, at once."""
        now = self.clock()
        with self.store.write("state") as tx:
            state = tx.load_state(with_log=False)
            if state is None or state.window_id != window_id or state.user != actor.name:
                return  # ended or released meanwhile: no longer its own
            tx.end_holder(now, outcome)
            tx.append_log(window_id, LogEntry(now, actor.name, message))
            ended = tx.load_state()
            assert ended is not None
            events.lease_expired(tx, ended, now)
        self._changed()

    def set_mode(self, actor: Actor, mode: str) -> None:
        """Change the mode of the maintenance on (full, read-only) in one step: the site
        never opens between the two."""
        self.update(actor, mode=mode)

    def update(
        self,
        actor: Actor,
        message: str | None = None,
        progress: int | None = None,
        mode: str | None = None,
    ) -> None:
        """Post a message to the log, set the progress and/or change the mode, in one
        transaction (None changes nothing; a new mode is said in the log)."""
        require_rights(actor)
        check_update(message, progress)
        if mode is not None:
            check_mode(mode)
        with self.store.write("state") as tx:
            state = tx.load_state(with_log=False)
            _require_owner(actor, state, "update")
            assert state is not None
            now = self.clock()
            if mode is not None and mode != state.mode:
                tx.set_mode(state.window_id, mode)
                tx.append_log(state.window_id, LogEntry(now, actor.name, MODE_MESSAGES[mode]))
            if progress is not None:
                tx.set_progress(progress)
            if message is not None:
                tx.append_log(state.window_id, LogEntry(now, actor.name, message))
            text = f"Maintenance update by {actor.name}"
            text += f" ({progress}%)" if progress is not None else ""
            said = [message or "", MODE_MESSAGES[mode] if mode not in (None, state.mode) else ""]
            text += ": " + " ".join(w for w in said if w) if any(said) else "."
            changes = {"newMessage": message, "newProgress": progress, "newMode": mode}
            events.maintenance_event(tx, events.UPDATED, actor, now, text, **changes)
        self._changed()

    def disable(self, actor: Actor) -> None:
        """Switch maintenance off: its window ends, and is kept in the history."""
        require_rights(actor)
        with self.store.write("state") as tx:
            state = tx.load_state(with_log=False)
            _require_owner(actor, state, "disable")
            assert state is not None
            now = self.clock()
            tx.end_window(state.window_id, actor.name, now)
            window = tx.get_window(state.window_id)
            assert window is not None
            events.ended(tx, window, actor, now)
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
            if state.holder_ended_at is not None:  # its run ended, and said how
                how = state.holder_outcome or "ended"
                ended = f"which {how} at {rfc3339(state.holder_ended_at)}"
            else:
                ended = f"silent since {rfc3339(state.lease_renewed_at)}"
            message = f"Released by {actor.name} from the process '{state.user}', {ended}: {reason}"
            tx.release(state.window_id, actor.name)
            tx.append_log(state.window_id, LogEntry(now, actor.name, message))
            events.maintenance_event(tx, events.RELEASED, actor, now, message, process=state.user)
            released = tx.load_state()
        self._changed()
        assert released is not None
        return released

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.refresh()


def retries(actor: Actor, state: MaintenanceState, now: int) -> bool:
    """Whether ``actor`` is a new run of the process that holds ``state`` and whose run
    ended (failed, or silent past its lease): it takes its maintenance over."""
    return (
        actor.kind is ActorKind.PROCESS
        and not state.user_triggered
        and state.user == actor.name
        and state.holder_alive(now) is False
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
                failed = printable(f"Failed: {reason}")
                if lease is not None and not always_off:
                    # Its run ended: its lease too, so that a retry or a release need not
                    # wait for the lease to run out.
                    outcome = getattr(exc, "outcome", None) or "failed"
                    maintenance.holder_ended(actor, state.window_id, outcome, failed)
                else:
                    maintenance.update(actor, message=failed)
                if always_off:
                    maintenance.disable(actor)
            raise
    if lease is not None and lease.lost is not None:
        raise LeaseLost(lease.lost)
    with suppress(NotEnabled, NotYours):  # ended by an operator meanwhile
        maintenance.disable(actor)
