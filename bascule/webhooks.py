"""Webhooks: receivers of events, signed as the Standard Webhooks specification says, and
delivered from the outbox (events.py writes one delivery per webhook with each event).

Every instance's Dispatcher, on its monitor's turns, claims the deliveries that are due
(one instance per delivery: the claim is a compare-and-set in the database) and sends
each from a small pool of threads, one at a time per receiver, so that a slow or dead
receiver holds one thread and delays nothing else: not the API, not the gate, not the
other receivers. A failure is tried again with backoff, under the same webhook-id,
for about 16 hours. Addresses are checked at every delivery, not only when the webhook is
added: a name that resolves elsewhere later is refused then.
"""

from __future__ import annotations

import base64
import http.client
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from bascule import events
from bascule.db import describe_error
from bascule.eventqueries import (
    DELIVERED,
    FAILED,
    PENDING,
    Claimed,
    DeliveryRecord,
    WebhookRecord,
)
from bascule.model import Actor, MaintenanceError, require_rights, rfc3339
from bascule.receivers import (
    InvalidWebhook,
    Refused,
    check_url,
    failure,
    send,
    signed,
    where,
)

if TYPE_CHECKING:
    from bascule.store import Store

log = logging.getLogger(__name__)

# Seconds from each failed try to the next: the first within 10 s, the last about 16
# hours after the event; then the delivery has failed. A receiver's other deliveries
# wait as long as the one that failed: a dead receiver is tried once per step, not
# once per event.
RETRIES = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
TRIES = len(RETRIES) + 1
CLAIM_MS = 60_000  # how long a claim keeps other instances off a delivery being sent
AT_ONCE = 16  # deliveries in flight per instance (one per receiver)
STOP_WAIT = 2.0  # seconds a stopping instance lets deliveries in flight record their outcome
LOOK_INTERVAL = 1.0  # seconds between looks for due deliveries
MAX_WEBHOOKS = 100
RECENT = 10  # deliveries listed per webhook


class NoSuchWebhook(MaintenanceError):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"No webhook {webhook_id}.")


class TooManyWebhooks(MaintenanceError):
    def __init__(self) -> None:
        super().__init__(f"There are {MAX_WEBHOOKS} webhooks already: remove one first.")


def new_secret() -> str:
    """A signing secret, as Standard Webhooks writes them: whsec_ and base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# -- managing them -----------------------------------------------------------------------------


class Webhooks:
    """Adds, lists, removes and tests the webhooks on behalf of actors."""

    def __init__(
        self,
        store: Store,
        allow_link_local: bool = False,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.allow_link_local = store, allow_link_local
        self.wake = wake or (lambda: None)  # a dispatcher nearby looks at once

    def add(self, actor: Actor, url: str, event_types: list[str] | None = None) -> WebhookRecord:
        """A new webhook to ``url``, taking ``event_types`` (None: every type); its
        record holds its secret, which nothing shows again."""
        require_rights(actor)
        if event_types is not None:
            event_types = list(dict.fromkeys(event_types))  # once each, in order
            unknown = [t for t in event_types if t not in events.TYPES]
            if unknown or not event_types:
                raise InvalidWebhook(
                    "events must be one or more of "
                    + ", ".join(events.TYPES)
                    + " (leave it out for every type)."
                )
        check_url(url, self.allow_link_local)
        secret = new_secret()
        with self.store.write(None) as tx:
            if len(tx.list_webhooks()) >= MAX_WEBHOOKS:
                raise TooManyWebhooks()
            now = self.store.now()
            webhook_id = tx.insert_webhook(url, secret, event_types, actor.name, now)
            receiver = where(url)
            text = f"{actor.name} added the webhook {webhook_id} to {receiver}."
            events.audit(
                tx,
                events.WEBHOOK_ADDED,
                actor,
                now,
                text,
                webhookId=webhook_id,
                receiver=receiver,
                events=event_types,
            )
            record = tx.get_webhook(webhook_id)
        assert record is not None
        self.wake()
        return record

    def list(
        self, actor: Actor
    ) -> list[tuple[WebhookRecord, dict[str, int], list[DeliveryRecord]]]:
        """Every webhook, with its count of deliveries by status and its latest ones."""
        require_rights(actor)
        with self.store.read() as tx:
            return [
                (hook, tx.delivery_counts(hook.id), tx.recent_deliveries(hook.id, RECENT))
                for hook in tx.list_webhooks()
            ]

    def remove(self, actor: Actor, webhook_id: int) -> None:
        """Remove a webhook: nothing more is sent to it, pending deliveries included."""
        require_rights(actor)
        with self.store.write(None) as tx:
            hook = tx.get_webhook(webhook_id)
            if hook is None or not tx.delete_webhook(webhook_id):
                raise NoSuchWebhook(webhook_id)
            receiver = where(hook.url)
            text = f"{actor.name} removed the webhook {webhook_id} to {receiver}."
            events.audit(
                tx,
                events.WEBHOOK_REMOVED,
                actor,
                self.store.now(),
                text,
                webhookId=webhook_id,
                receiver=receiver,
            )

    def test(self, actor: Actor, webhook_id: int) -> str:
        """Send a test event to one webhook; its webhook-id (the list then shows how its
        delivery went)."""
        require_rights(actor)
        with self.store.write(None) as tx:
            hook = tx.get_webhook(webhook_id)
            if hook is None:
                raise NoSuchWebhook(webhook_id)
            now = self.store.now()
            text = f"A test of the webhook {webhook_id}, sent by {actor.name}."
            uid = events.record(
                tx,
                events.WEBHOOK_TEST,
                actor,
                now,
                {"webhookId": webhook_id},
                text,
                only=webhook_id,
            )
        self.wake()
        return uid


def webhook_json(
    hook: WebhookRecord, counts: dict[str, int], recent: list[DeliveryRecord]
) -> dict[str, Any]:
    """The wire form of a listed webhook (never its secret)."""
    return {
        "id": hook.id,
        "url": hook.url,
        "events": None if hook.event_types is None else list(hook.event_types),
        "createdBy": hook.created_by,
        "createdAt": rfc3339(hook.created_at),
        "deliveries": counts,
        "recent": [delivery_json(d) for d in recent],
    }


def delivery_json(delivery: DeliveryRecord) -> dict[str, Any]:
    return {
        "event": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastAttemptAt": rfc3339(delivery.last_attempt_at),
        "lastResult": delivery.last_result,
        "nextAttemptAt": rfc3339(delivery.next_attempt_at) if delivery.status == PENDING else None,
    }


# -- delivering them ---------------------------------------------------------------------------


class Dispatcher:
    """Delivers the due deliveries, from every instance, each by one (see the module),
    from a thread of its own: the monitor's turns only keep that thread running (in
    this process: a forked worker starts its own), and nothing it waits for (the
    database, a receiver) slows the monitor."""

    def __init__(self, store: Store, allow_link_local: bool = False) -> None:
        self.store, self.allow_link_local = store, allow_link_local
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._closed = False  # no use of the database once stopped
        # Held by every use of the database, and by stop(): none starts once closed.
        self._using_database = threading.Lock()
        self._error: str | None = None

    def wake(self) -> None:
        """Look for due deliveries now (something was just recorded)."""
        if self._pid == os.getpid():
            self._wake.set()

    def __call__(self) -> None:
        """On the monitor's turns: start this process's thread, or again if it died."""
        alive = self._thread is not None and self._thread.is_alive()
        if self._stopped.is_set() or (alive and self._pid == os.getpid()):
            return
        # A forked worker's locks are new: its parent may have held them at the fork.
        self._using_database = threading.Lock()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._flying: dict[int, Future[Any]] = {}  # by webhook
        self._pool = ThreadPoolExecutor(AT_ONCE, thread_name_prefix="bascule-webhook")
        self._thread = threading.Thread(target=self._run, name="bascule-webhooks", daemon=True)
        self._thread.start()
        self._pid = os.getpid()  # last: wake() uses what is above

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(LOOK_INTERVAL)
            self._wake.clear()
            if not self._stopped.is_set():
                self._look()

    def _look(self) -> None:
        with self._lock:
            self._flying = {k: f for k, f in self._flying.items() if not f.done()}
            busy = list(self._flying)
        room = AT_ONCE - len(busy)
        if room <= 0:
            return
        try:
            with self._using_database:
                if self._stopped.is_set() or self._closed:
                    return
                now = self.store.now()
                with self.store.read() as tx:
                    due = tx.first_due(now, busy)
                if due is None or due > now:
                    return
                until = now + CLAIM_MS
                with self.store.write(None) as tx:
                    tx.give_up(now, TRIES)
                    claimed = tx.claim_deliveries(now, until, room, busy, TRIES)
        except SQLAlchemyError as exc:  # looked at again on the next turn
            self._database_error(exc)
            return
        self._error = None
        for each in claimed:
            try:
                future: Future[Any] = self._pool.submit(self._deliver, each, until)
            except RuntimeError:  # stopping: its claim runs out, and it is sent later
                return
            future.add_done_callback(_log_bug)
            with self._lock:
                self._flying[each.webhook.id] = future

    def deliver_now(self, event: str) -> list[tuple[int, str]]:
        """Deliver the event ``event`` (its uid) now, from this thread (a command's test):
        to which webhook, with what outcome (tried again later, as any other, if it
        failed)."""
        now = self.store.now()
        until = now + CLAIM_MS
        with self.store.write(None) as tx:
            claimed = tx.claim_deliveries(now, until, MAX_WEBHOOKS, (), TRIES, event)
        return [(each.webhook.id, self._deliver(each, until)) for each in claimed]

    def _database_error(self, exc: SQLAlchemyError) -> None:
        reason = describe_error(exc)
        if reason != self._error:
            log.warning("webhooks cannot be delivered now: %s", reason)
        self._error = reason

    def _deliver(self, claimed: Claimed, until: int) -> str:
        body, headers = signed(claimed, time.time())
        try:
            result = send(claimed.webhook.url, body, headers, self.allow_link_local)
            ok = result.startswith("HTTP 2")
        except Refused as exc:
            result, ok = f"refused: {exc}", False
        except (OSError, http.client.HTTPException) as exc:
            result, ok = failure(exc), False
        except Exception as exc:  # whatever it was, a try that failed, and said so
            log.exception("webhook %d: a delivery failed unexpectedly", claimed.webhook.id)
            result, ok = f"failed: {type(exc).__name__}", False
        attempts = claimed.delivery.attempts  # counted when claimed
        now = self.store.now()
        if ok:
            status, next_at = DELIVERED, None
        elif attempts > len(RETRIES):
            status, next_at = FAILED, None
        else:
            status, next_at = PENDING, now + RETRIES[attempts - 1] * 1000
        if not ok:
            when = "gave up" if next_at is None else f"next try in {RETRIES[attempts - 1]} s"
            log.warning(
                "webhook %d (%s): %s %s failed, try %d: %s; %s",
                claimed.webhook.id,
                where(claimed.webhook.url),
                claimed.event.type,
                claimed.event.uid,
                attempts,
                result,
                when,
            )
        try:
            with self._using_database:
                if self._closed:  # its claim runs out: sent again, same webhook-id
                    return result
                with self.store.write(None) as tx:
                    tx.finish_delivery(claimed.delivery.id, until, status, next_at, now, result)
                    if next_at is not None:  # the receiver's others wait as long
                        tx.hold_deliveries(claimed.webhook.id, next_at)
        except SQLAlchemyError as exc:  # its claim runs out: sent again, same webhook-id
            self._database_error(exc)
        if ok:  # the next one for this receiver, if any, at once
            self.wake()
        return result

    def stop(self) -> None:
        """Claim nothing more; let the deliveries in flight record how they went, for up
        to STOP_WAIT seconds (those cut short are sent again, under the same
        webhook-id, once their claim runs out); then leave the database alone."""
        self._stopped.set()
        if self._thread is not None and self._pid == os.getpid():
            self._wake.set()
            self._thread.join(timeout=self.store.timeout + 1)  # its look, over
            self._pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                flying = list(self._flying.values())
            wait(flying, timeout=STOP_WAIT)
        with self._using_database:
            self._closed = True


def _log_bug(future: Future[Any]) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None:  # its claim runs out, and it is tried again
        log.error("a webhook delivery failed unexpectedly", exc_info=exc)
