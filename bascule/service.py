"""The services of one Bascule application, and how request handlers reach them."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from bascule.auth import Auth
from bascule.config import Settings
from bascule.maintenance import Maintenance
from bascule.monitor import Monitor
from bascule.store import Store

SCOPE_KEY = "bascule"
AUTH_CACHE_SIZE = 4096


class Services:
    """Store, monitor, authentication and maintenance, wired together once per app."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.monitor = Monitor(self.store, poll_interval=settings.poll_interval)
        # The monitor clears the caches whenever users or sessions change anywhere.
        self.auth = Auth(self.store, session_ttl=settings.session_ttl, cache_size=AUTH_CACHE_SIZE)
        self.monitor.auth_listeners.append(self.auth.invalidate)
        self.maintenance = Maintenance(self.store, self.monitor)

    def attach(self, scope: Scope) -> None:
        """Make these services reachable from the request's handlers."""
        scope.setdefault("state", {})[SCOPE_KEY] = self

    def close(self) -> None:
        """Stop the monitor and close the database connections."""
        self.monitor.stop()
        self.store.close()


def from_scope(scope: Scope) -> Services:
    """The services of the application serving this request."""
    services: Services = scope["state"][SCOPE_KEY]
    return services


def current() -> Services:
    """The services of the application serving the current operation."""
    from connexion import context

    scope: Any = context.scope
    return from_scope(scope)
