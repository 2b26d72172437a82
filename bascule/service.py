"""Composition: the services of one Bascule application and how request handlers reach
them, and the ready-made pieces built from a database URL (the standalone gate's monitor,
automatic maintenance)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Scope

from bascule.alertmanager import Silencer
from bascule.answers import encoded, envelope
from bascule.auth import Auth, AuthenticationFailed, Principal
from bascule.bypass import BypassTokens
from bascule.config import Settings, parse_matcher
from bascule.db import engine_url
from bascule.events import Events, Notices
from bascule.maintenance import AutomaticMaintenance, Maintenance, maintenance_window
from bascule.metrics import Metrics
from bascule.model import DECISIONS, Actor, MaintenanceState
from bascule.monitor import Monitor
from bascule.records import token_hash
from bascule.schema import SchemaError, prepare
from bascule.store import Store
from bascule.tables import KINDS
from bascule.throttle import Attempt, Throttle
from bascule.webhooks import Dispatcher, Webhooks
from bascule.windows import Scheduler, Windows, announcement

log = logging.getLogger(__name__)

SCOPE_KEY = "bascule"
AUTH_CACHE_SIZE = 4096
ARGON2_AT_ONCE = max(2, os.cpu_count() or 2)
T = TypeVar("T")


class Services:
    """Store, monitor, authentication and maintenance, wired together once per app."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url, settings.database_timeout)
        self.monitor = Monitor(self.store, poll_interval=settings.poll_interval)
        # The monitor clears the caches whenever users or sessions change anywhere.
        self.auth = Auth(self.store, session_ttl=settings.session_ttl, cache_size=AUTH_CACHE_SIZE)
        self.monitor.follow("users", self.auth.forget_users)
        self.monitor.follow("sessions", self.auth.forget_sessions)
        self.throttle = Throttle(
            self.store,
            per_user=settings.failed_auth_per_user,
            per_address=settings.failed_auth_per_address,
            window=settings.failed_auth_window,
        )
        self.maintenance = Maintenance(self.store, self.monitor)
        self.windows = Windows(self.store, self.monitor)
        self.monitor.on_tick.append(
            Scheduler(self.windows, self.monitor, keep_days=settings.history_days)
        )
        # While maintenance is on, a silence in Alertmanager (when one is configured).
        self.silencer: Silencer | None = None
        if settings.alertmanager_url:
            matchers = [parse_matcher(text) for text in settings.alertmanager_matchers]
            self.silencer = Silencer(self.store, self.monitor, settings.alertmanager_url, matchers)
            self.monitor.on_tick.append(self.silencer)
        self.bypass = BypassTokens(self.store, self.monitor)
        # Events: kept, and delivered to the webhooks by every instance's dispatcher,
        # which looks at once whenever anything changed anywhere.
        self.events = Events(self.store)
        allow = settings.webhook_allow_link_local
        self.dispatcher = Dispatcher(self.store, allow)
        self.webhooks = Webhooks(self.store, allow, self.dispatcher.wake)
        self.monitor.on_tick.append(Notices(self.store, self.monitor, settings.upcoming_notice))
        self.monitor.on_tick.append(self.dispatcher)
        for kind in KINDS:
            self.monitor.follow(kind, self.dispatcher.wake)
        self.metrics = Metrics(self.monitor, DECISIONS)
        self._argon2: anyio.CapacityLimiter | None = None
        self._state_document: tuple[MaintenanceState | None, bool | None, bytes] | None = None

    def state_document(self) -> bytes:
        """The JSON answer to a state read, serialised once per state (and again when
        its holder's lease runs out)."""
        state = self.monitor.state
        alive, now = None, 0
        if state is not None and state.lease_ttl is not None:  # only a lease changes alone
            now = self.store.now()
            alive = state.holder_alive(now)
        cached = self._state_document
        if cached is None or cached[0] is not state or cached[1] != alive:
            document = envelope(state.as_json(now) if state else None)
            cached = self._state_document = (state, alive, encoded(document))
        return cached[2]

    def announcement(self) -> dict[str, Any]:
        """The public announcement of planned work, from this process's copy of the state
        and of the planned windows (no query but the database's clock)."""
        monitor, notice = self.monitor, self.settings.announce_before * 1000
        return announcement(monitor.state, monitor.planned, self.store.now(), notice)

    async def hashing(self, call: Callable[..., T], *args: Any) -> T:
        """Run a call that may check a password with Argon2, in a worker thread.

        Argon2 takes tens of megabytes and milliseconds per check: at most a few run
        at once, and callers wait for a turn without holding a thread, so a flood of
        wrong passwords cannot starve the other requests.
        """
        if self._argon2 is None:
            self._argon2 = anyio.CapacityLimiter(ARGON2_AT_ONCE)
        return await anyio.to_thread.run_sync(call, *args, limiter=self._argon2)

    async def authenticate(
        self, name: str, password: str, address: str | None, device: str | None = None
    ) -> Principal:
        """The principal these credentials are; AuthenticationFailed when they are wrong,
        Throttled when they failed too often to be tried now (see throttle.Throttle), from
        this address or on this device (the device token of a browser that signed in
        before: ``device``).

        Credentials verified before are answered from memory, throttled or not; others
        are checked against the throttle first, so that guesses past it cost no Argon2.
        """
        principal = self.auth.cached_credentials(name, password)
        if principal is not None:
            return principal
        # What this process knows past a limit is refused with no thread and no I/O, so
        # that a flood costs little: the name's limits here, or the device's it brings.
        digest = token_hash(device) if device else None
        self.throttle.refuse_known(Attempt(name, address, known=True, device=digest))
        known, trusted = await anyio.to_thread.run_sync(self.auth.known, name, device)
        attempt = Attempt(name, address, known, trusted)
        self.throttle.refuse_known(attempt)
        if not await anyio.to_thread.run_sync(self.throttle.attempt, attempt):
            raise AuthenticationFailed()
        principal = await self.hashing(self.auth.check_credentials, name, password)
        if principal is None:
            raise AuthenticationFailed()  # counted already, by attempt()
        await anyio.to_thread.run_sync(self.throttle.succeeded, attempt)
        return principal

    def attach(self, scope: Scope) -> None:
        """Make these services reachable from the request's handlers."""
        scope.setdefault("state", {})[SCOPE_KEY] = self

    def close(self) -> None:
        """Stop the monitor, the deliveries and the silencer, and close the database
        connections."""
        self.monitor.stop()
        self.dispatcher.stop()
        if self.silencer is not None:
            self.silencer.stop()
        self.store.close()


def client_address(scope: Scope) -> str | None:
    """The client's address, as the server saw it (or a trusted proxy said)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def from_scope(scope: Scope) -> Services:
    """The services of the application serving this request."""
    services: Services = scope["state"][SCOPE_KEY]
    return services


def current() -> Services:
    """The services of the application serving the current operation."""
    from connexion import context

    scope: Any = context.scope
    return from_scope(scope)


def follow(database_url: str | None, poll_interval: float) -> Monitor:
    """A started monitor of a Bascule database, for a gate built from its URL.

    An empty database (or a missing SQLite file) is given the schema, with maintenance
    off, and a warning names it, in case the URL was mistyped; an outdated or unreadable
    one is refused: a gate that cannot tell whether maintenance is on must not start.
    """
    from sqlalchemy.engine import make_url

    if not database_url:
        raise ValueError("give the URL of Bascule's database")
    store = Store(database_url)
    try:
        empty = prepare(store)
    except SchemaError as exc:
        store.close()
        raise ValueError(str(exc)) from None
    except SQLAlchemyError as exc:
        store.close()
        raise ValueError(f"cannot read Bascule's database: {type(exc).__name__}") from None
    if empty:
        where = make_url(engine_url(database_url)).render_as_string(hide_password=True)
        log.warning("no Bascule database at %s yet: created one, maintenance off", where)
    monitor = Monitor(store, poll_interval=poll_interval)
    monitor.on_tick.append(Scheduler(Windows(store, monitor), monitor))
    monitor.refresh()
    monitor.start()
    return monitor


def bootstrap(services: Services) -> None:
    """Ready the database: create the schema if it is empty (refuse an outdated one),
    and the first user if there is none, printing a generated password once."""
    prepare(services.store)
    generated = services.auth.ensure_admin(services.settings.admin_password)
    if generated:
        print(
            f"Created the user 'admin' with the password {generated} "
            "(shown once: change it with `bascule users passwd admin`)",
            file=sys.stderr,
            flush=True,
        )


@contextmanager
def automatic_maintenance(
    database_url: str,
    process: str,
    *,
    message: str | None = None,
    always_off: bool = False,
    lease_ttl: int | None = None,
) -> Iterator[AutomaticMaintenance]:
    """Keep automatic maintenance on while the ``with`` body runs (see maintenance_window).

    ``process`` names the internal process; the REST API cannot switch its
    maintenance off. It holds it with a lease of ``lease_ttl`` seconds (by default
    BASCULE_LEASE_TTL's, 30), renewed in the background: should the process die, an
    ADMIN may release it once the lease ran out. Example::

        with automatic_maintenance("sqlite:///bascule.db", "deploy") as m:
            m.update(message="Copying files", progress=30)
    """
    ttl = Settings.from_env(lease_ttl=lease_ttl).lease_ttl  # checked: ValueError
    store = Store(database_url)
    try:
        prepare(store)
        window = maintenance_window(
            Maintenance(store),
            Actor.process(process),
            message=message,
            always_off=always_off,
            lease_ttl=ttl,
        )
        with window as handle:
            yield handle
    finally:
        store.close()
