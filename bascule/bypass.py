"""Bypass tokens: a way in for the team doing the work while maintenance is on.

An ADMIN makes a named token; its value is shown once and stored only as a hash. A
request that carries a valid one passes the gate. Every token expires.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from starlette.types import Message, Send

from bascule.exchange import without_cookie
from bascule.model import (
    Actor,
    MaintenanceError,
    StateListener,
    now_ms,
    require_rights,
    rfc3339,
)
from bascule.records import BypassRecord, token_hash

if TYPE_CHECKING:
    from bascule.store import Store

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_LIFETIME = 24 * 3600  # seconds
MAX_LIFETIME = 365 * 24 * 3600
MIN_LIFETIME = 60
# A token is 43 characters of URL-safe base64 (32 random bytes); anything much longer
# or shorter is not one, and is refused before it is hashed.
TOKEN_LENGTHS = range(20, 129)


class TokenExists(MaintenanceError):
    """A token of that name exists already."""

    def __init__(self) -> None:
        super().__init__("A bypass token of that name exists already.")


class NoSuchToken(MaintenanceError):
    """No token of that name."""

    def __init__(self) -> None:
        super().__init__("No bypass token of that name.")


class InvalidToken(MaintenanceError):
    """A name or a lifetime out of the rules."""


@dataclass(frozen=True)
class Valid:
    """A token known to be valid: its name, until when."""

    name: str
    expires_at: int


class TokenSet:
    """The valid tokens, in memory, for the gate: looked up without any I/O."""

    def __init__(
        self, records: Iterable[BypassRecord] = (), clock: Callable[[], int] = now_ms
    ) -> None:
        self.by_hash = {r.token_hash: Valid(r.name, r.expires_at) for r in records}
        self.clock = clock  # the database's, as the store knows it

    def find(self, token: bytes) -> Valid | None:
        """The valid token ``token`` is, or None (unknown, expired, or not a token).

        The lookup is by the token's SHA-256, never by the token: how long it takes says
        nothing of how close a guess came to a real token.
        """
        if len(token) not in TOKEN_LENGTHS:
            return None
        found = self.by_hash.get(token_hash(token))
        if found is None:
            return None
        if found.expires_at <= self.clock():
            return None
        return found


def bypass_json(record: BypassRecord, now: int) -> dict[str, Any]:
    """The wire form of a token as listed (never its value: it is not stored), ``now``
    (the database's time) telling whether it expired."""
    return {
        "name": record.name,
        "createdBy": record.created_by,
        "createdAt": record.created_at,
        "expiresAt": record.expires_at,
        "expired": record.expires_at <= now,
        "uses": record.uses,
        "lastUsedAt": record.last_used_at,
    }


class BypassTokens:
    """Makes, lists and ends bypass tokens on behalf of actors."""

    def __init__(self, store: Store, listener: StateListener | None = None) -> None:
        self.store = store
        self.listener = listener  # told after each change: this process enforces it at once

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener.refresh()

    def create(
        self, actor: Actor, name: str, lifetime: int | None = None
    ) -> tuple[str, BypassRecord]:
        """A new token named ``name``, valid ``lifetime`` seconds (DEFAULT_LIFETIME when
        None): its value, shown once, and what is stored of it."""
        require_rights(actor)
        if not NAME.fullmatch(name):
            raise InvalidToken(
                "A token's name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                "letter or a digit."
            )
        lifetime = DEFAULT_LIFETIME if lifetime is None else lifetime
        if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
            raise InvalidToken(
                f"A token lives from {MIN_LIFETIME} seconds to {MAX_LIFETIME} seconds (a year)."
            )
        from bascule import events  # the standalone gate loads this module, not the store

        token = secrets.token_urlsafe(32)
        now = self.store.now()
        record = BypassRecord(name, token_hash(token), actor.name, now, now + lifetime * 1000)
        with self.store.write("bypass") as tx:
            if not tx.insert_bypass(record):
                raise TokenExists()
            until = rfc3339(record.expires_at)
            text = f"{actor.name} created the bypass token {name}, valid until {until}."
            events.audit(tx, events.TOKEN_CREATED, actor, now, text, name=name, expiresAt=until)
        self._changed()
        return token, record

    def list(self, actor: Actor) -> list[BypassRecord]:
        """Every token, expired ones included, by name."""
        require_rights(actor)
        with self.store.read() as tx:
            return tx.list_bypass()

    def revoke(self, actor: Actor, name: str) -> None:
        """End the token named ``name``: refused everywhere within a second."""
        from bascule import events

        require_rights(actor)
        with self.store.write("bypass") as tx:
            if not tx.delete_bypass(name):
                raise NoSuchToken()
            text = f"{actor.name} revoked the bypass token {name}."
            events.audit(tx, events.TOKEN_REVOKED, actor, self.store.now(), text, name=name)
        self._changed()

    def valid(self) -> TokenSet:
        """The tokens that have not expired, for the gate."""
        now = self.store.now()
        with self.store.read() as tx:
            records = [r for r in tx.list_bypass() if r.expires_at > now]
        return TokenSet(records, self.store.now)


# -- in requests: where a token is carried, and how it is taken out ---------------------

BYPASSED = b"x-bascule-bypassed"
BYPASS_HEADER = b"x-bascule-bypass"
BYPASS_COOKIE = b"bascule-bypass"
BYPASS_PARAM = b"bascule-bypass"


def header_bypass(headers: list[tuple[bytes, bytes]], tokens: TokenSet) -> Valid | None:
    """The valid bypass token a request carries in the X-Bascule-Bypass header or the
    bascule-bypass cookie, if any."""
    for name, value in headers:
        found = None
        if name == BYPASS_HEADER:
            found = tokens.find(value.strip())
        elif name == b"cookie" and value.find(BYPASS_COOKIE) != -1:
            for pair in value.split(b";"):
                key, _, token = pair.strip().partition(b"=")
                if key == BYPASS_COOKIE:
                    found = tokens.find(token)
                    break
        if found is not None:
            return found
    return None


def url_bypass(query: bytes, tokens: TokenSet) -> tuple[Valid | None, bytes, bytes]:
    """The valid bypass token of a query's bascule-bypass parameter, if any; with the
    token as it was written there, and the query without it."""
    pairs = query.split(b"&")
    for index, pair in enumerate(pairs):
        key, _, token = pair.partition(b"=")
        if key == BYPASS_PARAM:
            found = tokens.find(unquote_to_bytes(token))
            if found is not None:
                return found, token, b"&".join(pairs[:index] + pairs[index + 1 :])
    return None, b"", query


def bypass_redirect(
    location: bytes, token: bytes, found: Valid, secure: bool, now: int
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The answer to a token in a URL: back to the URL without it, with a cookie that
    lets the browser walk the whole application until the token expires."""
    location = b"/" + location.lstrip(b"/")  # "//evil.example/x" is another site
    max_age = max(0, (found.expires_at - now) // 1000)
    cookie = b"%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax" % (
        BYPASS_COOKIE,
        unquote_to_bytes(token),
        max_age,
    )
    headers = [
        (b"location", location),
        (b"set-cookie", cookie + (b"; Secure" if secure else b"")),
        (b"cache-control", b"no-store"),
        (b"referrer-policy", b"no-referrer"),  # the URL held the token
        (BYPASSED, found.name.encode()),
        (b"content-length", b"0"),
    ]
    return 303, headers, b""


def without_bypass(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers without its bypass token (and without a visitor's own
    X-Bascule-Bypassed): the application has no use for the token and must not be able
    to log or replay it."""
    return without_cookie(headers, BYPASS_COOKIE, (BYPASS_HEADER, BYPASSED))


def marked(send: Send, name: str) -> Send:
    """A ``send`` that says, in the answer's headers, which bypass token let it through."""
    header = (BYPASSED, name.encode())

    async def send_marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return send_marked
