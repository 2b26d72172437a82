"""This process's copy of the maintenance state, kept fresh in the background.

The gate and the read operations use the copy, so they never query the database.
A daemon thread compares the store's version counters at a bounded rate (and, on
PostgreSQL, wakes up at once on a notification) and reloads what changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from bascule.maintenance import MaintenanceState
from bascule.store import Store

log = logging.getLogger(__name__)


class Monitor:
    """Holds the current maintenance state and tells listeners when users or sessions change."""

    def __init__(self, store: Store, *, poll_interval: float = 0.25) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.state: MaintenanceState | None = None
        self.error: str | None = None  # why the database cannot be read, while it cannot
        self.auth_listeners: list[Callable[[], None]] = []
        self._versions: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Reload what changed since the last look; True when something did."""
        with self._lock:
            try:
                current = self.store.versions()
                changed = current != self._versions
                if changed and (self._versions is None or current[0] != self._versions[0]):
                    with self.store.read() as conn:
                        self.state = self.store.load_state(conn)
            except SQLAlchemyError as exc:
                if self.error is None:
                    log.warning("database unreachable, keeping the last known state: %s", exc)
                self.error = "database unreachable"
                return False
            if self.error is not None:
                log.warning("database reachable again")
                self.error = None
            auth_changed = self._versions is not None and current[1] != self._versions[1]
            self._versions = current
        if auth_changed:
            for listener in self.auth_listeners:
                listener()
        return changed

    def start(self) -> None:
        """Start following changes in the background (once; later calls do nothing)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="bascule-monitor", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and wait for it."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # keep following changes whatever happens
                log.exception("could not refresh the maintenance state")
