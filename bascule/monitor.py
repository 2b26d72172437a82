"""This process's copy of the maintenance state, kept fresh in the background.

The gate and the read operations use the copy, so they never query the database.
A daemon thread reloads what changed: on PostgreSQL, woken at once by a notification;
on SQLite, when ``PRAGMA data_version``, looked at every ``poll_interval``, says that
another connection committed; on both, every SAFETY_INTERVAL besides.

The copy is only as good as its last confirmation: ``state_age()`` says how long ago
the database last confirmed it, and health reports that (and whether the database can
be written, tried every WRITE_CHECK_INTERVAL) rather than guessing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from bascule.bypass import BypassTokens, TokenSet
from bascule.db import describe_error
from bascule.model import MaintenanceState, Window
from bascule.store import NOTIFY_CHANNEL, Store
from bascule.tables import KINDS, Kind

log = logging.getLogger(__name__)

# Notifications (PostgreSQL) and the commit counter (SQLite) tell the monitor when to
# look; it also re-reads the versions this often, in case a notification was lost with
# a connection or the database went away without a word.
SAFETY_INTERVAL = 1.0
# How often the monitor checks that the database takes a write (every second while it
# does not, to see it recover).
WRITE_CHECK_INTERVAL = 5.0
# How often the uses of bypass tokens seen here are added to the database's counts.
USES_FLUSH_INTERVAL = 1.0


@dataclass(frozen=True)
class Health:
    """What this process can do with the database, as its monitor last saw it."""

    can_read: bool  # the state was confirmed within the bound
    can_write: bool
    state_age: float | None  # seconds since the state was last confirmed
    maintenance: bool  # as this process enforces it

    @property
    def up(self) -> bool:
        return self.can_read and self.can_write


class Monitor:
    """Holds the current maintenance state, the valid bypass tokens and the planned
    windows, and has others told when users or sessions change (``follow``)."""

    def __init__(self, store: Store, *, poll_interval: float = 0.25) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.state: MaintenanceState | None = None
        self.bypass = TokenSet()  # the valid bypass tokens
        self.planned: tuple[Window, ...] = ()  # the planned windows, soonest first
        # Called on every turn of the background thread (at least every poll_interval).
        self.on_tick: list[Callable[[], None]] = []
        # Uses of bypass tokens seen here and not yet counted in the database.
        self._uses: dict[str, tuple[int, int]] = {}
        self._uses_lock = threading.Lock()
        self._next_flush = 0.0
        self.error: str | None = None  # why the database cannot be read, while it cannot
        self.write_error: str | None = None  # why it cannot be written, while it cannot
        # When (time.monotonic()) the database last confirmed ``state``: None until then.
        self.confirmed_at: float | None = None
        self._next_write_check = 0.0
        # What is done when a kind of shared data changed in any process: this copy reloads
        # the state, the tokens and the planned windows; others drop cached users, sessions.
        self.reloads: dict[Kind, list[Callable[[], None]]] = {kind: [] for kind in KINDS}
        self.follow("state", self._load_state)
        self.follow("bypass", self._load_bypass)
        self.follow("schedule", self._load_planned)
        self._versions: dict[Kind, int] | None = None
        # The version of the state and the planned windows in the database (every
        # instance sees the same), as loaded with them; and the callers waiting for it to
        # change (``changed_from``).
        self.watch_version = 0
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._waiting_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fork_hook = False

    def follow(self, kind: Kind, reload: Callable[[], None]) -> None:
        """Call ``reload`` whenever the data of ``kind`` changed, in any process (and at the
        first look): the one way every kind of shared data is followed."""
        self.reloads[kind].append(reload)

    def _load_state(self) -> None:
        with self.store.read() as tx:
            self.state = tx.load_state()

    def _load_bypass(self) -> None:
        self.bypass = BypassTokens(self.store).valid()

    def _load_planned(self) -> None:
        with self.store.read() as tx:
            self.planned = tuple(tx.planned_windows())

    def refresh(self) -> bool:
        """Reload what changed since the last look; True when something did."""
        with self._lock:
            started = time.monotonic()
            try:
                current = self.store.versions()
                previous = self._versions or {}
                changed = [kind for kind in KINDS if current[kind] != previous.get(kind)]
                for kind in changed:
                    for reload in self.reloads[kind]:
                        reload()
                if "state" in changed or "schedule" in changed:
                    self.watch_version = current["state"] + current["schedule"]
                    self._wake_waiting()
            except SQLAlchemyError as exc:
                reason = describe_error(exc)
                if self.error != reason:
                    log.warning("the database cannot be read, the state is kept: %s", reason)
                self.error = reason
                return False
            if self.error is not None:
                log.warning("the database can be read again")
                self.error = None
            self.confirmed_at = started
            self._versions = current
        return bool(changed)

    async def changed_from(self, version: int, wait: float) -> None:
        """Return once the state's version is not ``version``: at once, when it changes,
        or after ``wait`` seconds, whichever comes first (a blocking query's wait, on
        the caller's event loop; nothing is polled)."""
        if self.watch_version != version or wait <= 0:
            return
        waiting = (asyncio.get_running_loop(), asyncio.Event())
        with self._waiting_lock:
            self._waiting.add(waiting)
        try:
            if self.watch_version == version:  # not changed while it was being added
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiting[1].wait(), wait)
        finally:
            with self._waiting_lock:
                self._waiting.discard(waiting)

    @property
    def watching(self) -> int:
        """How many callers wait on ``changed_from`` now."""
        return len(self._waiting)

    def _wake_waiting(self) -> None:
        with self._waiting_lock:
            waiting = list(self._waiting)
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def state_age(self) -> float | None:
        """Seconds since the database last confirmed the state (None: it never did)."""
        confirmed = self.confirmed_at
        return None if confirmed is None else time.monotonic() - confirmed

    def health(self) -> Health:
        """Whether the state enforced here is confirmed, and writes are taken.

        Confirmed means read from the database within the store's timeout plus one
        SAFETY_INTERVAL: a database gone silent makes health fail within that bound,
        although no call has failed yet.
        """
        age = self.state_age()
        fresh = age is not None and age <= self.store.timeout + SAFETY_INTERVAL
        return Health(
            can_read=self.error is None and fresh,
            can_write=self.write_error is None,
            state_age=age,
            maintenance=self.state is not None,
        )

    def now(self) -> int:
        """The database's time, in epoch milliseconds (see Store.now)."""
        return self.store.now()

    def note_bypass(self, name: str) -> None:
        """Count one use of the bypass token ``name`` (added to the database's count
        within USES_FLUSH_INTERVAL, from the background thread)."""
        with self._uses_lock:  # against flush_uses's swap, from the background thread
            seen = self._uses.get(name)
            self._uses[name] = (seen[0] + 1 if seen else 1, self.store.now())

    def flush_uses(self) -> None:
        """Add the uses seen here since the last flush to the database's counts."""
        self._next_flush = time.monotonic() + USES_FLUSH_INTERVAL
        if not self._uses:
            return
        with self._uses_lock:
            pending, self._uses = self._uses, {}
        try:
            with self.store.write(None) as tx:
                tx.record_bypass_uses(pending)
        except SQLAlchemyError as exc:  # the counts are a report: lost, not retried
            log.warning("the uses of bypass tokens could not be counted: %s", describe_error(exc))

    def tick(self) -> None:
        """What the background thread does on every turn besides following changes."""
        if time.monotonic() >= self._next_flush:
            self.flush_uses()
        for call in self.on_tick:
            call()

    def check_writes(self) -> None:
        """Try a write, and record whether the database takes it."""
        try:
            self.store.check_writable()
        except SQLAlchemyError as exc:
            reason = describe_error(exc)
            if self.write_error != reason:
                log.warning("the database cannot be written: %s", reason)
            self.write_error = reason
            self._next_write_check = time.monotonic() + SAFETY_INTERVAL
            return
        if self.write_error is not None:
            log.warning("the database can be written again")
            self.write_error = None
        self._next_write_check = time.monotonic() + WRITE_CHECK_INTERVAL

    def start(self) -> None:
        """Start following changes in the background (once; later calls do nothing).

        A process forked from this one (a pre-loading server's workers) follows
        them too, with a thread and connections of its own.
        """
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="bascule-monitor", daemon=True
                )
                self._thread.start()
                if not self._fork_hook:
                    self._fork_hook = True
                    this = weakref.ref(self)
                    os.register_at_fork(after_in_child=lambda: _restart_in_child(this))

    def _restart_in_child(self) -> None:
        # The parent's thread does not exist here, the locks it may have held stay held,
        # and its connections belong to the parent.
        running = self._thread is not None and not self._stop.is_set()
        self._lock, self._stop, self._thread = threading.Lock(), threading.Event(), None
        self._uses_lock = threading.Lock()
        self.store.engine.dispose(close=False)
        if running:
            self.start()

    def stop(self) -> None:
        """Stop the background thread and wait for it."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)
            if thread.is_alive():
                log.warning("the monitor did not stop within 5 seconds; closing anyway")

    def _run(self) -> None:
        listen = self._listen if self.store.is_postgres else self._poll
        while not self._stop.is_set():
            try:
                listen()
            except Exception:  # keep following changes whatever happens
                log.exception("could not follow the maintenance state")
                self._stop.wait(self.poll_interval)

    def _poll(self) -> None:
        try:
            with self.store.commit_counter() as probe:
                seen = probe()

                def committed() -> bool | None:
                    nonlocal seen
                    if self._stop.wait(self.poll_interval):
                        return False
                    asked = time.monotonic()
                    now, before = probe(), seen
                    seen = now
                    if now is None:
                        return None
                    if now == before and self.error is None:
                        self.confirmed_at = asked  # nothing committed since the last look
                    return now != before

                self._follow(committed)
        except SQLAlchemyError:  # the probe's own connection could not be opened
            self.refresh()  # records that the database is unreachable
            self._stop.wait(self.poll_interval)

    def _listen(self) -> None:
        import psycopg

        try:
            with self.store.listening(NOTIFY_CHANNEL) as conn:

                def notified() -> bool | None:
                    try:
                        return any(True for _ in conn.notifies(timeout=self.poll_interval))
                    except psycopg.OperationalError:
                        return None

                self._follow(notified)
        except psycopg.OperationalError:
            self.refresh()  # records that the database is unreachable
            self._stop.wait(self.poll_interval)

    def _follow(self, signalled: Callable[[], bool | None]) -> None:
        """Reload at once, then whenever ``signalled()`` (which waits up to poll_interval)
        says something changed, and at the first signal after each SAFETY_INTERVAL in
        any case (a lost notification, a database gone quietly); try a write every
        WRITE_CHECK_INTERVAL. Return when ``signalled()`` can no longer tell (None) or
        the database cannot be read: the caller starts over with a new connection (an
        old one may be silent for ever)."""
        self.refresh()  # what changed while nobody looked
        last = time.monotonic()
        while self.error is None:
            woken = signalled()
            if self._stop.is_set():
                return
            if woken is None or woken or time.monotonic() - last >= SAFETY_INTERVAL:
                self.refresh()
                last = time.monotonic()
            if woken is None:
                return
            if self.error is None and time.monotonic() >= self._next_write_check:
                self.check_writes()
            self.tick()
        self.tick()  # the database cannot be read: what else is due still happens
        self._stop.wait(self.poll_interval)


def _restart_in_child(monitor: weakref.ref[Monitor]) -> None:
    """After a fork: the child's own copy of a running monitor starts following again."""
    live = monitor()
    if live is not None:
        live._restart_in_child()
