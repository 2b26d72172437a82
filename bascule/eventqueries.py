"""The store's queries of events, webhooks and their deliveries (the outbox). SQL only; a
mixin of the store's transaction (Tx)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, or_, select, update

from bascule.tables import (
    events,
    maintenance_state,
    maintenance_windows,
    webhook_deliveries,
    webhooks,
)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class EventRecord:
    """An event as stored."""

    id: int
    uid: str
    type: str
    at: int
    actor: str
    origin: str | None
    data: dict[str, Any]
    text: str


@dataclass(frozen=True)
class WebhookRecord:
    """A webhook as stored; ``event_types`` None takes every type."""

    id: int
    url: str
    secret: str = field(repr=False)
    event_types: tuple[str, ...] | None
    created_by: str
    created_at: int

    def takes(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types


@dataclass(frozen=True)
class DeliveryRecord:
    """One event to one webhook: where it stands."""

    id: int
    webhook_id: int
    event_id: int
    status: str
    attempts: int
    next_attempt_at: int | None
    claimed_until: int | None
    last_attempt_at: int | None
    last_result: str | None
    event_type: str = ""


@dataclass(frozen=True)
class Claimed:
    """A delivery this instance claimed, with what it takes to send it."""

    delivery: DeliveryRecord
    webhook: WebhookRecord
    event: EventRecord


class EventQueries:
    """The events' and webhooks' queries of one transaction."""

    conn: Connection

    # -- events ----------------------------------------------------------------------------

    def insert_event(
        self,
        uid: str,
        event_type: str,
        at: int,
        actor: str,
        origin: str | None,
        data: dict[str, Any],
        text: str,
    ) -> int:
        """Store an event; its id."""
        values = dict(uid=uid, type=event_type, at=at, actor=actor, origin=origin, text=text)
        query = insert(events).values(**values, data=json.dumps(data, separators=(",", ":")))
        return int(self.conn.execute(query.returning(events.c.id)).scalar_one())

    def event_page(
        self, offset: int, limit: int, prefix: str | None = None
    ) -> tuple[int, list[EventRecord]]:
        """How many events (of types starting with ``prefix``), and a page, newest first."""
        where = [] if prefix is None else [events.c.type.startswith(prefix, autoescape=True)]
        total = self.conn.execute(select(func.count()).select_from(events).where(*where))
        rows = self.conn.execute(
            select(events).where(*where).order_by(events.c.id.desc()).offset(offset).limit(limit)
        )
        return int(total.scalar_one()), [_event(row) for row in rows]

    def prune_events(self, before: int) -> int:
        """Forget the events older than ``before`` that no delivery still waits for."""
        waiting = select(webhook_deliveries.c.event_id).where(
            webhook_deliveries.c.status == PENDING
        )
        old = and_(events.c.at < before, events.c.id.not_in(waiting))
        return self.conn.execute(delete(events).where(old)).rowcount

    # -- told once: a window's coming start, a lease's end ---------------------------------

    def tell_upcoming(self, window_id: int, now: int) -> bool:
        """Mark the coming start of a planned window told; False when it was already, or
        when it is no longer to come (started, skipped, cancelled meanwhile)."""
        w = maintenance_windows.c
        told = or_(w.upcoming_told.is_(None), w.upcoming_told.is_(False))
        ahead = and_(w.status == "planned", w.planned_start > now)
        query = update(maintenance_windows).where(w.id == window_id, told, ahead)
        return self.conn.execute(query.values(upcoming_told=True)).rowcount == 1

    def tell_expiry(self, window_id: int) -> bool:
        """Mark the end of the current lease told; False when it was already."""
        s = maintenance_state.c
        told = or_(s.expiry_told.is_(None), s.expiry_told.is_(False))
        query = update(maintenance_state).where(s.window_id == window_id, told)
        return self.conn.execute(query.values(expiry_told=True)).rowcount == 1

    # -- webhooks --------------------------------------------------------------------------

    def insert_webhook(
        self,
        url: str,
        secret: str,
        event_types: Sequence[str] | None,
        created_by: str,
        created_at: int,
    ) -> int:
        types = None if event_types is None else json.dumps(list(event_types))
        query = insert(webhooks).values(
            url=url,
            secret=secret,
            event_types=types,
            created_by=created_by,
            created_at=created_at,
        )
        return int(self.conn.execute(query.returning(webhooks.c.id)).scalar_one())

    def list_webhooks(self, *, lock: bool = False) -> list[WebhookRecord]:
        """Every webhook; with ``lock``, none can be removed until the transaction ends
        (PostgreSQL: FOR SHARE), so that deliveries to them can be written."""
        query = select(webhooks).order_by(webhooks.c.id)
        rows = self.conn.execute(query.with_for_update(read=True) if lock else query)
        return [_webhook(row) for row in rows]

    def get_webhook(self, webhook_id: int) -> WebhookRecord | None:
        row = self.conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
        return None if row is None else _webhook(row)

    def delete_webhook(self, webhook_id: int) -> bool:
        """Remove a webhook with its deliveries; False when there is none of that id."""
        d = webhook_deliveries.c
        self.conn.execute(delete(webhook_deliveries).where(d.webhook_id == webhook_id))
        return self.conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id)).rowcount == 1

    # -- deliveries ------------------------------------------------------------------------

    def insert_delivery(self, webhook_id: int, event_id: int, now: int) -> None:
        """A delivery to make, from ``now``, or once the webhook's failing deliveries
        are tried again, if later: a dead receiver is not tried once more per event."""
        d = webhook_deliveries.c
        held = (
            select(func.max(d.next_attempt_at))
            .where(d.webhook_id == webhook_id, d.status == PENDING, d.attempts > 0)
            .scalar_subquery()
        )
        self.conn.execute(
            insert(webhook_deliveries).values(
                webhook_id=webhook_id,
                event_id=event_id,
                status=PENDING,
                attempts=0,
                next_attempt_at=case((held > now, held), else_=now),
            )
        )

    def recent_deliveries(self, webhook_id: int, limit: int) -> list[DeliveryRecord]:
        """The latest deliveries to a webhook, newest first, with their event's type."""
        d = webhook_deliveries.c
        rows = self.conn.execute(
            select(webhook_deliveries, events.c.type.label("event_type"))
            .join(events, events.c.id == d.event_id)
            .where(d.webhook_id == webhook_id)
            .order_by(d.id.desc())
            .limit(limit)
        )
        return [DeliveryRecord(**row._mapping) for row in rows]

    def delivery_counts(self, webhook_id: int) -> dict[str, int]:
        """How many deliveries to a webhook are pending, delivered, failed."""
        d = webhook_deliveries.c
        rows = self.conn.execute(
            select(d.status, func.count()).where(d.webhook_id == webhook_id).group_by(d.status)
        )
        counts = {PENDING: 0, DELIVERED: 0, FAILED: 0}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def first_due(self, now: int, busy: Sequence[int] = ()) -> int | None:
        """When the soonest delivery that nobody holds is due, but to the ``busy``
        webhooks (None: none is)."""
        d = webhook_deliveries.c
        free = or_(d.claimed_until.is_(None), d.claimed_until <= now)
        others = [d.webhook_id.not_in(busy)] if busy else []
        query = select(func.min(d.next_attempt_at)).where(d.status == PENDING, free, *others)
        due = self.conn.execute(query).scalar_one()
        return None if due is None else int(due)

    def claim_deliveries(
        self,
        now: int,
        until: int,
        limit: int,
        busy: Sequence[int],
        tries: int,
        event: str | None = None,
    ) -> list[Claimed]:
        """Claim, until ``until``, up to ``limit`` deliveries due by ``now`` that nobody
        holds (and to none of the ``busy`` webhooks; of the event ``event`` only, when
        given): each is claimed by one caller only, whatever the number of instances (the
        UPDATE re-checks its row)."""
        d = webhook_deliveries.c
        free = or_(d.claimed_until.is_(None), d.claimed_until <= now)
        due = and_(d.status == PENDING, d.next_attempt_at <= now, free, d.attempts < tries)
        only = (
            []
            if event is None
            else [d.event_id.in_(select(events.c.id).where(events.c.uid == event))]
        )
        candidates = self.conn.execute(
            select(d.id, d.webhook_id)
            .where(due, *only, *([d.webhook_id.not_in(busy)] if busy else []))
            .order_by(d.next_attempt_at, d.id)
            .limit(limit * 4)
        ).all()
        claimed: list[int] = []
        taken = set(busy)
        for delivery_id, webhook_id in candidates:
            if webhook_id in taken or len(claimed) >= limit:
                continue
            query = update(webhook_deliveries).where(d.id == delivery_id, due)
            # A try is counted when it is claimed: one that never says how it went (its
            # process died) counts too, and the delivery fails once out of tries.
            claim = query.values(claimed_until=until, attempts=d.attempts + 1)
            if self.conn.execute(claim).rowcount == 1:
                claimed.append(delivery_id)
                taken.add(webhook_id)
        return [self._claimed(delivery_id) for delivery_id in claimed]

    def give_up(self, now: int, tries: int) -> None:
        """Fail the deliveries out of tries whose last claim ran out without an outcome."""
        d = webhook_deliveries.c
        lost = and_(d.status == PENDING, d.attempts >= tries, d.claimed_until <= now)
        self.conn.execute(
            update(webhook_deliveries)
            .where(lost)
            .values(status=FAILED, next_attempt_at=None, last_result="no outcome recorded")
        )

    def hold_deliveries(self, webhook_id: int, until: int) -> None:
        """Hold the pending deliveries to a webhook until ``until`` at least."""
        d = webhook_deliveries.c
        self.conn.execute(
            update(webhook_deliveries)
            .where(d.webhook_id == webhook_id, d.status == PENDING, d.next_attempt_at < until)
            .values(next_attempt_at=until)
        )

    def _claimed(self, delivery_id: int) -> Claimed:
        d = webhook_deliveries.c
        row = self.conn.execute(select(webhook_deliveries).where(d.id == delivery_id)).one()
        delivery = DeliveryRecord(**row._mapping)
        hook = self.conn.execute(select(webhooks).where(webhooks.c.id == row.webhook_id)).one()
        event = self.conn.execute(select(events).where(events.c.id == row.event_id)).one()
        return Claimed(delivery, _webhook(hook), _event(event))

    def finish_delivery(
        self,
        delivery_id: int,
        claimed_until: int,
        status: str,
        next_attempt_at: int | None,
        now: int,
        result: str,
    ) -> None:
        """Record a try of a delivery claimed until ``claimed_until`` (a claim that ran
        out and was taken by another changes nothing here)."""
        d = webhook_deliveries.c
        self.conn.execute(
            update(webhook_deliveries)
            .where(d.id == delivery_id, d.claimed_until == claimed_until)
            .values(
                status=status,
                next_attempt_at=next_attempt_at,
                claimed_until=None,
                last_attempt_at=now,
                last_result=result[:255],
            )
        )


def _event(row: Any) -> EventRecord:
    values = dict(row._mapping)
    values["data"] = json.loads(values["data"])
    return EventRecord(**values)


def _webhook(row: Any) -> WebhookRecord:
    values = dict(row._mapping)
    types = values.pop("event_types")
    return WebhookRecord(**values, event_types=None if types is None else tuple(json.loads(types)))
