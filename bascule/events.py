"""Events: what happened, kept. Every transition of the maintenance and of the planned
windows, and every administrative action (the audit trail), is written in the same
transaction as the change it tells of, with who did it and from where; and, in that
transaction too, one delivery per webhook that takes it (the outbox: none is lost to a
restart). The notices that time gives (a planned start coming, a lease run out) are
given once, by whichever instance sees them first.

Nothing here knows about HTTP; webhooks.py delivers.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from bascule.db import describe_error
from bascule.eventqueries import EventRecord
from bascule.model import (
    SCHEDULE_ACTOR,
    Actor,
    MaintenanceState,
    Window,
    require_rights,
    rfc3339,
)

if TYPE_CHECKING:
    from bascule.monitor import Monitor
    from bascule.store import Store, Tx

log = logging.getLogger(__name__)

STARTED = "maintenance.started"
UPDATED = "maintenance.updated"
ENDED = "maintenance.ended"
RELEASED = "maintenance.released"
PLANNED = "window.planned"
CANCELLED = "window.cancelled"
UPCOMING = "window.upcoming"
SKIPPED = "window.skipped"
LEASE_EXPIRED = "lease.expired"
USER_ADDED = "user.added"
USER_REMOVED = "user.removed"
PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an event type)
SESSION_REVOKED = "session.revoked"
TOKEN_CREATED = "token.created"  # noqa: S105
TOKEN_REVOKED = "token.revoked"  # noqa: S105
WEBHOOK_ADDED = "webhook.added"
WEBHOOK_REMOVED = "webhook.removed"
WEBHOOK_TEST = "webhook.test"
# Every type a webhook may ask for (a test goes to the webhook tested, whatever it takes).
TYPES = (
    STARTED,
    UPDATED,
    ENDED,
    RELEASED,
    PLANNED,
    CANCELLED,
    UPCOMING,
    SKIPPED,
    LEASE_EXPIRED,
    USER_ADDED,
    USER_REMOVED,
    PASSWORD_CHANGED,
    SESSION_REVOKED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    WEBHOOK_ADDED,
    WEBHOOK_REMOVED,
)
# The events of a command run by the system itself, not a person.
SYSTEM = "bascule"


def record(
    tx: Tx,
    event_type: str,
    actor: Actor | str,
    now: int,
    data: dict[str, Any],
    text: str,
    *,
    only: int | None = None,
) -> str:
    """Keep an event, and make its deliveries to the webhooks that take it (only to the
    webhook ``only``, when given); its uid (the webhook-id). In the caller's transaction:
    the event and its deliveries are written with the change they tell of, or not at all."""
    name, origin = (actor, None) if isinstance(actor, str) else (actor.name, actor.origin)
    origin = None if origin is None else origin[:255]  # an address a proxy said
    uid = "msg_" + secrets.token_hex(12)
    event_id = tx.insert_event(uid, event_type, now, name, origin, data, text)
    for hook in tx.list_webhooks(lock=True):
        if hook.id == only or (only is None and hook.takes(event_type)):
            tx.insert_delivery(hook.id, event_id, now)
    return uid


def event_json(event: EventRecord) -> dict[str, Any]:
    """The wire form of an event, as the API lists it."""
    return {
        "id": event.uid,
        "type": event.type,
        "timestamp": rfc3339(event.at),
        "actor": event.actor,
        "origin": event.origin,
        "text": event.text,
        "data": event.data,
    }


def payload(event: EventRecord) -> dict[str, Any]:
    """What a webhook receives: Standard Webhooks' type, timestamp and data, and a
    ``text`` that chat servers (Slack's incoming webhooks, Mattermost...) show as is."""
    return {
        "type": event.type,
        "timestamp": rfc3339(event.at),
        "data": {**event.data, "actor": event.actor, "origin": event.origin},
        "text": chat_text(event.text),
    }


def chat_text(text: str) -> str:
    """``text`` as chat servers take it: &, < and > escaped, so that a message cannot
    mention everyone (<!channel>) or hide a link (<https://...|here>)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- what each event says ------------------------------------------------------------------


def state_data(state: MaintenanceState) -> dict[str, Any]:
    """The data of a maintenance event: the maintenance as it is after the change."""
    return {
        "windowId": state.window_id,
        "mode": state.mode,
        "user": state.user,
        "userTriggered": state.user_triggered,
        "message": state.latest_message(),
        "progress": state.progress_percent,
        "startedAt": rfc3339(state.started_at),
        "plannedEnd": rfc3339(state.planned_end),
    }


def maintenance_event(
    tx: Tx, event_type: str, actor: Actor | str, now: int, text: str, **also: Any
) -> None:
    """Record a maintenance event with the state as the transaction now sees it."""
    state = tx.load_state()
    if state is None:  # ended: the window as it closed
        return
    record(tx, event_type, actor, now, {**state_data(state), **also}, text)


def started(tx: Tx, actor: Actor | str, now: int) -> None:
    state = tx.load_state()
    assert state is not None
    kind = "Read-only maintenance" if state.mode == "read-only" else "Maintenance"
    said = f": {state.latest_message()}" if state.latest_message() else "."
    if actor == SCHEDULE_ACTOR:  # a planned window, at its start
        text = f"Planned {kind.lower()} started (planned by {state.user}){said}"
    else:
        text = f"{kind} started by {state.user}{said}"
    record(tx, STARTED, actor, now, state_data(state), text)


def ended(tx: Tx, window: Window, actor: Actor | str, now: int) -> None:
    started_at = window.started_at or now
    lasted = _duration((now - started_at) // 1000)
    data = {
        "windowId": window.id,
        "mode": window.mode,
        "startedAt": rfc3339(started_at),
        "endedAt": rfc3339(now),
        "durationSeconds": (now - started_at) // 1000,
    }
    by = actor if isinstance(actor, str) else actor.name
    text = f"Maintenance ended by {by}, after {lasted}."
    record(tx, ENDED, actor, now, data, text)


def window_data(window: Window) -> dict[str, Any]:
    """The data of a planned window's event."""
    return {
        "windowId": window.id,
        "start": rfc3339(window.planned_start),
        "end": rfc3339(window.planned_end),
        "mode": window.mode,
        "message": window.message,
        "autoEnd": window.auto_end,
        "plannedBy": window.user,
    }


def window_event(tx: Tx, event_type: str, window: Window, actor: Actor | str, now: int) -> None:
    """Record an event of a planned window (planned, cancelled, upcoming, skipped)."""
    start, end = rfc3339(window.planned_start), rfc3339(window.planned_end)
    span = f"from {start} to {end}" if end else f"from {start}"
    by = actor if isinstance(actor, str) else actor.name
    texts = {
        PLANNED: f"Maintenance planned by {window.user} {span}: {window.message}",
        CANCELLED: f"The maintenance planned {span} was cancelled by {by}.",
        UPCOMING: f"Maintenance is planned {span}: {window.message}",
        SKIPPED: f"The maintenance planned {span} was skipped: {window.reason}",
    }
    data = window_data(window)
    if event_type == SKIPPED:
        data["reason"] = window.reason
    record(tx, event_type, actor, now, data, texts[event_type])


def lease_expired(tx: Tx, state: MaintenanceState, now: int) -> None:
    """Tell, once, that the process holding ``state`` ended its run failing or stopped
    renewing its lease: an ADMIN may release its maintenance (or a new run take it)."""
    if not tx.tell_expiry(state.window_id):
        return
    how = state.holder_outcome or "stopped renewing its lease"
    data = {
        **state_data(state),
        "process": state.user,
        "outcome": state.holder_outcome,
        "renewedAt": rfc3339(state.lease_renewed_at),
        "endedAt": rfc3339(state.holder_ended_at),
    }
    text = (
        f"The process '{state.user}' holding maintenance {how}: maintenance stays on, and "
        "an ADMIN may release it."
    )
    record(tx, LEASE_EXPIRED, SYSTEM, now, data, text)


def audit(tx: Tx, event_type: str, actor: Actor | str, now: int, text: str, **data: Any) -> None:
    """Record an administrative action."""
    record(tx, event_type, actor, now, data, text)


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


# -- reading them ----------------------------------------------------------------------------


class Events:
    """The kept events, readable by those who may change the state."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def page(
        self, actor: Actor, offset: int, limit: int, prefix: str | None = None
    ) -> tuple[int, list[EventRecord]]:
        """How many events (of the types starting with ``prefix``), and one page of them,
        newest first."""
        require_rights(actor)
        with self.store.read() as tx:
            return tx.event_page(offset, limit, prefix)


class Notices:
    """Gives, on every turn of the monitor's thread, the notices that time brings: a
    planned window starting within ``notice`` seconds (window.upcoming), and a lease
    that ran out (lease.expired). From this process's copy of the state and the planned
    windows: a write only when one is due, told exactly once across every instance (the
    write marks it told, and whoever comes second finds it marked)."""

    def __init__(self, store: Store, monitor: Monitor, notice: int) -> None:
        self.store, self.monitor, self.notice = store, monitor, notice * 1000
        self._told: set[tuple[str, int, int | None]] = set()  # known told here
        self._error: str | None = None

    def __call__(self) -> None:
        now = self.store.now()
        due: list[tuple[str, int, int | None]] = []
        state = self.monitor.state
        if state is not None and state.holder_alive(now) is False:
            due.append((LEASE_EXPIRED, state.window_id, state.lease_renewed_at))
        if self.notice:
            for window in self.monitor.planned:
                if window.planned_start is None or window.planned_start > now + self.notice:
                    break  # soonest first
                due.append((UPCOMING, window.id, None))
        due = [d for d in due if d not in self._told]
        if not due:
            return
        try:
            self._give(due, now)
        except SQLAlchemyError as exc:  # tried again on the next turn
            reason = describe_error(exc)
            if reason != self._error:
                log.warning("a notice could not be given: %s", reason)
            self._error = reason
            return
        self._error = None

    def _give(self, due: list[tuple[str, int, int | None]], now: int) -> None:
        with self.store.write(None) as tx:
            for kind, window_id, _ in due:
                if kind == LEASE_EXPIRED:
                    state = tx.load_state()
                    still = state is not None and state.window_id == window_id
                    if still and state is not None and state.holder_alive(now) is False:
                        lease_expired(tx, state, now)
                    continue
                window = tx.get_window(window_id)
                if window is not None and tx.tell_upcoming(window_id, now):
                    window_event(tx, UPCOMING, window, SYSTEM, now)
        self._told.update(due)
        if len(self._told) > 1000:
            self._told = set(due)
