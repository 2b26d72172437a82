"""Webhooks: receivers of events, signed as the Standard Webhooks specification says, and
delivered from the outbox (events.py writes one delivery per webhook with each event).

Every instance's Dispatcher, on its monitor's turns, claims the deliveries that are due
(one instance per delivery: the claim is a compare-and-set in the database) and sends
each from a small pool of threads, one at a time per receiver, so that a slow or dead
receiver holds one thread and delays nothing else: not the API, not the gate, not the
other receivers. A failure is tried again with backoff, under the same webhook-id,
for about a day. Addresses are checked at every delivery, not only when the webhook is
added: a name that resolves elsewhere later is refused then.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from standardwebhooks import Webhook

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

if TYPE_CHECKING:
    from bascule.store import Store

log = logging.getLogger(__name__)

# Seconds from each failed try to the next: the first within 10 s, the last about 16
# hours after the event; then the delivery has failed.
RETRIES = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
TIMEOUT = 10.0  # seconds a receiver has to answer
CLAIM_MS = 60_000  # how long a claim keeps other instances off a delivery being sent
AT_ONCE = 8  # deliveries in flight per instance (one per receiver)
LOOK_INTERVAL = 1.0  # seconds between looks for due deliveries
MAX_WEBHOOKS = 100
MAX_URL = 2048
RECENT = 10  # deliveries listed per webhook
USER_AGENT = "Bascule-Webhooks/1"
# Addresses of cloud providers' metadata services outside the link-local ranges.
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)


class NoSuchWebhook(MaintenanceError):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"No webhook {webhook_id}.")


class InvalidWebhook(MaintenanceError):
    """A URL or a list of event types out of the rules (the message says which)."""


class TooManyWebhooks(MaintenanceError):
    def __init__(self) -> None:
        super().__init__(f"There are {MAX_WEBHOOKS} webhooks already: remove one first.")


class Refused(Exception):
    """A receiver's address that webhooks may not reach."""


# -- where a webhook may go ------------------------------------------------------------------


def refusal(address: str, allow_link_local: bool) -> str | None:
    """Why webhooks may not reach the IP ``address``, or None when they may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "not the address of a receiver"
    if not allow_link_local and (ip.is_link_local or ip in METADATA):
        return (
            "a link-local or cloud-metadata address (BASCULE_WEBHOOK_ALLOW_LINK_LOCAL allows them)"
        )
    return None


def vetted_address(host: str, port: int, allow_link_local: bool) -> str:
    """The address to send to: ``host`` resolved, every address it has checked (a name
    with one forbidden address is refused whole). Refused says why not."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"{host} does not resolve") from None
    addresses = [str(info[4][0]) for info in found]
    for address in addresses:
        why = refusal(address, allow_link_local)
        if why is not None:
            said = host.strip("[]")
            raise Refused(f"{said} is {why}" if said == address else f"{said} is {address}, {why}")
    return addresses[0]


def check_url(url: str, allow_link_local: bool) -> str:
    """``url`` if webhooks may deliver to it; InvalidWebhook says why not."""
    if not 0 < len(url) <= MAX_URL or any(c.isspace() or not c.isprintable() for c in url):
        raise InvalidWebhook(
            f"url must be an http or https URL of at most {MAX_URL} characters, without"
            " spaces or control characters."
        )
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise InvalidWebhook("url has an invalid port.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook("url must be an http or https URL, with a host.")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook(
            "url must not hold credentials: receivers check the signature instead."
        )
    if parts.fragment:
        raise InvalidWebhook("url must not have a fragment.")
    try:
        vetted_address(parts.hostname, port or _default_port(parts.scheme), allow_link_local)
    except Refused as exc:
        raise InvalidWebhook(f"url refused: {exc}.") from None
    return url


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


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
            where = _where(url)
            text = f"{actor.name} added the webhook {webhook_id} to {where}."
            events.audit(
                tx,
                events.WEBHOOK_ADDED,
                actor,
                now,
                text,
                webhookId=webhook_id,
                receiver=where,
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
            where = _where(hook.url)
            text = f"{actor.name} removed the webhook {webhook_id} to {where}."
            events.audit(
                tx,
                events.WEBHOOK_REMOVED,
                actor,
                self.store.now(),
                text,
                webhookId=webhook_id,
                receiver=where,
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


def _where(url: str) -> str:
    """The receiver of a URL, as the audit trail and the logs say it: its scheme, host and
    port, never its path or query (a chat server's URL is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


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


def signed(claimed: Claimed, at: float) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery sent at ``at`` (epoch seconds)."""
    event = claimed.event
    body = json.dumps(events.payload(event), separators=(",", ":"), ensure_ascii=False)
    moment = datetime.datetime.fromtimestamp(int(at), datetime.UTC)
    headers = {
        "webhook-id": event.uid,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(claimed.webhook.secret).sign(event.uid, moment, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    return body.encode(), headers


def send(url: str, body: bytes, headers: dict[str, str], allow_link_local: bool) -> str:
    """POST ``body`` to ``url``; what the receiver answered ("HTTP 204"). Refused when its
    address may not be reached, OSError when it cannot be."""
    parts = urlsplit(url)
    assert parts.hostname is not None  # checked when added
    port = parts.port or _default_port(parts.scheme)
    address = vetted_address(parts.hostname, port, allow_link_local)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=TIMEOUT, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=TIMEOUT)

    def to_vetted(_where: Any, timeout: Any = TIMEOUT, source: Any = None) -> socket.socket:
        # The address checked above, not a second lookup that could answer another.
        return socket.create_connection((address, port), timeout, source)

    connection._create_connection = to_vetted  # type: ignore[attr-defined]
    try:
        path = parts.path or "/"
        connection.request("POST", f"{path}?{parts.query}" if parts.query else path, body, headers)
        answer = connection.getresponse()
        answer.read(65536)
        return f"HTTP {answer.status}"
    finally:
        connection.close()


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
        # Held by every use of the database, and by stop(): none starts once stopped.
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
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._flying: dict[int, Future[Any]] = {}  # by webhook
        self._pool = ThreadPoolExecutor(AT_ONCE, thread_name_prefix="bascule-webhook")
        self._thread = threading.Thread(target=self._run, name="bascule-webhooks", daemon=True)
        self._thread.start()

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
                if self._stopped.is_set():
                    return
                now = self.store.now()
                with self.store.read() as tx:
                    due = tx.first_due(now)
                if due is None or due > now:
                    return
                until = now + CLAIM_MS
                with self.store.write(None) as tx:
                    claimed = tx.claim_deliveries(now, until, room, busy)
        except SQLAlchemyError as exc:  # looked at again on the next turn
            self._database_error(exc)
            return
        self._error = None
        for each in claimed:
            future: Future[Any] = self._pool.submit(self._deliver, each, until)
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
            claimed = tx.claim_deliveries(now, until, MAX_WEBHOOKS, (), event)
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
            result, ok = _failure(exc), False
        attempts = claimed.delivery.attempts + 1
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
                _where(claimed.webhook.url),
                claimed.event.type,
                claimed.event.uid,
                attempts,
                result,
                when,
            )
        try:
            with self._using_database:
                if self._stopped.is_set():  # its claim runs out: sent again, same webhook-id
                    return result
                with self.store.write(None) as tx:
                    tx.finish_delivery(claimed.delivery.id, until, status, next_at, now, result)
        except SQLAlchemyError as exc:  # its claim runs out: sent again, same webhook-id
            self._database_error(exc)
        if ok:  # the next one for this receiver, if any, at once
            self.wake()
        return result

    def stop(self) -> None:
        """Send nothing more (deliveries in flight end on their own; those cut short are
        sent again once their claim runs out)."""
        with self._using_database:
            self._stopped.set()
        if self._thread is not None and self._pid == os.getpid():
            self._wake.set()
            self._pool.shutdown(wait=False, cancel_futures=True)


def _log_bug(future: Future[Any]) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None:  # its claim runs out, and it is tried again
        log.error("a webhook delivery failed unexpectedly", exc_info=exc)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (
        f"{type(exc).__name__}: {exc.strerror or exc}"
        if isinstance(exc, OSError)
        else type(exc).__name__
    )
