"""The standalone gate: ``bascule.MaintenanceGate``, around any ASGI application, following
a Bascule database from a thread of its own."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from bascule.gate import Gate
from bascule.monitor import Monitor
from bascule.service import follow


class MaintenanceGate(Gate):
    """The gate around any ASGI application, following a Bascule database::

        app = MaintenanceGate(app, "sqlite:///bascule.db", allow=["/healthz"])

    It follows that database from a thread of its own (``poll_interval`` on SQLite),
    whoever changes it; given a ``monitor`` instead, whoever made the monitor starts and
    stops it. The other options are the gate's (see gate.Gate).
    """

    def __init__(
        self,
        app: ASGIApp,
        database_url: str | None = None,
        *,
        monitor: Monitor | None = None,
        poll_interval: float = 0.25,
        **options: Any,
    ) -> None:
        if monitor is None:
            monitor = follow(database_url, poll_interval)
        super().__init__(app, monitor=monitor, **options)

    def close(self) -> None:
        """Stop following the database (for a gate built from a URL)."""
        self.monitor.stop()
        self.monitor.store.close()
