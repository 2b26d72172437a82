"""Users, Argon2 passwords, login sessions, and the caches that keep Argon2 off the hot path."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from bascule import events
from bascule.accounts import AlreadyExists
from bascule.model import ADMIN, NAME_PATTERN, Actor, ActorKind
from bascule.records import UserRecord, token_hash
from bascule.store import Store

# argon2-cffi's default profile (RFC 9106, low memory: 3 passes over 64 MiB).
HASH_PARAMETERS: Parameters = profiles.RFC_9106_LOW_MEMORY
ADMIN_USER = "admin"
MIN_PASSWORD_LENGTH = 8
ROLE_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Principal:
    """An authenticated user: a name and roles."""

    name: str
    roles: frozenset[str]

    def actor(self, origin: str | None = None) -> Actor:
        """This user acting through the REST API (from the address ``origin``)."""
        return Actor(self.name, ActorKind.API_USER, self.roles, origin)

    @classmethod
    def of(cls, user: UserRecord) -> Principal:
        """The principal of a stored user."""
        return cls(user.name, frozenset(user.roles))


@dataclass(frozen=True)
class Session:
    """A new login session: the token goes to the client, only its hash is stored."""

    token: str
    principal: Principal
    expires_at: int  # epoch milliseconds


class AuthenticationFailed(Exception):
    """Wrong user name or password."""

    message = "Authentication failed, check username and password."


class SessionEnded(Exception):
    """A session cookie that is no longer valid: unknown, revoked or expired."""


class UserError(ValueError):
    """A user-management request that cannot be carried out (the message says why)."""


class UserExists(UserError):
    """The user name is taken."""


class _Cache(Generic[K, V]):
    """A bounded LRU map that refuses values computed before the last ``clear()``.

    ``generation()`` is read before looking something up in the database, and
    ``put`` is ignored if a change happened meanwhile, so a stale answer can
    never be cached.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()

    def generation(self) -> int:
        return self._generation

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._data.clear()


def validate_name(name: str) -> str:
    """Check a user name; return it."""
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(
            "a user name is 1 to 255 letters, digits or . _ @ -, starting with a letter, digit or _"
        )
    return name


def validate_roles(roles: Sequence[str]) -> list[str]:
    """Check role names; return them."""
    for role in roles:
        if not ROLE_PATTERN.fullmatch(role):
            raise UserError(f"a role is upper-case letters, digits and _, like ADMIN: {role!r}")
    return list(roles)


def validate_password(password: str) -> str:
    """Check a new password; return it."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


# How long a browser that signed in stays trusted by the throttle for its user (its
# cookie's lifetime, renewed at each sign-in).
DEVICE_TTL = 90 * 86_400
DEVICE_COOKIE = "bascule-device"


class Auth:
    """Checks credentials and sessions; manages users."""

    def __init__(
        self,
        store: Store,
        *,
        session_ttl: int = 43200,
        clock: Callable[[], int] | None = None,
        cache_size: int = 0,
    ) -> None:
        """``cache_size`` > 0 caches verified credentials and sessions: only do that when
        something calls ``forget_users()`` and ``forget_sessions()`` on every change
        made by other processes."""
        self.store = store
        self.session_ttl = session_ttl
        self.clock = clock or store.now  # the database's, unless told another
        self.hasher = PasswordHasher.from_parameters(HASH_PARAMETERS)
        self._cache_key = secrets.token_bytes(32)
        self._credentials: _Cache[bytes, Principal] = _Cache(cache_size)
        self._sessions: _Cache[str, tuple[Principal, int]] = _Cache(cache_size)
        self._dummy_hash: str | None = None

    # -- checking credentials --------------------------------------------------------------

    def _credential_key(self, name: str, password: str) -> bytes:
        # Keyed with a per-process secret, so the cache holds nothing that could be
        # brute-forced faster than Argon2 if the process memory leaked.
        material = f"{len(name)}:{name}:{password}".encode("utf-8", "surrogateescape")
        return hmac.new(self._cache_key, material, hashlib.sha256).digest()

    def cached_credentials(self, name: str, password: str) -> Principal | None:
        """The principal for credentials verified before and unchanged since; no I/O."""
        return self._credentials.get(self._credential_key(name, password))

    def check_credentials(self, name: str, password: str) -> Principal | None:
        """Verify a user name and password (Argon2 on a cache miss); None when wrong."""
        key = self._credential_key(name, password)
        principal = self._credentials.get(key)
        if principal is not None:
            return principal
        generation = self._credentials.generation()
        user = None
        if NAME_PATTERN.fullmatch(name):  # no other name is a user's; PostgreSQL refuses NUL
            with self.store.read() as tx:
                user = tx.get_user(name)
        if not self._verify_hash(user.password_hash if user else None, password):
            return None
        assert user is not None
        if self.hasher.check_needs_rehash(user.password_hash):
            # Stronger parameters since this hash was made: upgrade it, sessions untouched.
            with self.store.write("users") as tx:
                tx.set_password_hash(user.name, self.hasher.hash(password))
            self.forget_users()
            generation = self._credentials.generation()
        principal = Principal.of(user)
        self._credentials.put(key, principal, generation)
        return principal

    def _verify_hash(self, password_hash: str | None, password: str) -> bool:
        known = password_hash is not None
        if password_hash is None:
            # Spend the same time as for a real user, so that timing tells nothing.
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
            password_hash = self._dummy_hash
        try:
            self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError, UnicodeEncodeError):  # (lone surrogates)
            return False
        return known

    # -- sessions --------------------------------------------------------------------------

    def login(self, name: str, password: str) -> Session:
        """Check credentials and open a session; raise AuthenticationFailed when wrong."""
        principal = self.check_credentials(name, password)
        if principal is None:
            raise AuthenticationFailed()
        return self.open_session(principal)

    def open_session(self, principal: Principal) -> Session:
        """A new session for an authenticated principal."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + self.session_ttl * 1000
        with self.store.write(None) as tx:
            tx.insert_session(token_hash(token), principal.name, now, expires_at)
        return Session(token, principal, expires_at)

    def cached_session(self, token: str) -> Principal | None:
        """The principal of a live session seen before; no I/O."""
        entry = self._sessions.get(token_hash(token))
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def check_session(self, token: str) -> Principal | None:
        """The principal of a live session, or None when unknown, revoked or expired."""
        digest = token_hash(token)
        entry = self._sessions.get(digest)
        if entry is None:
            generation = self._sessions.generation()
            with self.store.read() as tx:
                record = tx.get_session(digest)
            if record is None:
                return None
            entry = (Principal.of(record.user), record.expires_at)
            self._sessions.put(digest, entry, generation)
        principal, expires_at = entry
        return principal if expires_at > self.clock() else None

    def logout(self, digest: str, origin: str | None = None) -> None:
        """Revoke the session with this token hash, in every process (the audit trail
        says whose, and from where: ``origin``).

        A hash that names no session changes nothing: no write, no cache dropped
        anywhere (anyone may send any cookie to /logout).
        """
        with self.store.read() as tx:
            if tx.get_session(digest) is None:
                return
        with self.store.write("sessions") as tx:
            session = tx.get_session(digest)
            if tx.delete_session(digest) and session is not None:
                by = Actor(session.user.name, origin=origin)
                text = f"{by.name} signed out: their session is revoked."
                events.audit(tx, events.SESSION_REVOKED, by, self.clock(), text, user=by.name)
        self.forget_sessions()

    # -- trusted devices -------------------------------------------------------------------

    def known(self, name: str, device_token: str | None) -> tuple[bool, str | None]:
        """Whether ``name`` is a user's, and the hash of ``device_token`` when that device
        signed in as this user before and is still trusted (else None)."""
        if not NAME_PATTERN.fullmatch(name):  # no other name is a user's; PostgreSQL refuses NUL
            return False, None
        digest = token_hash(device_token) if device_token else None
        with self.store.read() as tx:
            if tx.get_user(name) is None:
                return False, None
            if digest is None or tx.device_user(digest, self.clock()) != name:
                return True, None
        return True, digest

    def trust_device(self, name: str, device_token: str | None) -> str:
        """The device token of a browser that just signed in as ``name``: the one it
        brought, trusted again for DEVICE_TTL, or a new one."""
        if not device_token or self.known(name, device_token)[1] is None:
            device_token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.store.write(None) as tx:
            tx.trust_device(token_hash(device_token), name, now, now + DEVICE_TTL * 1000)
        return device_token

    def forget_users(self) -> None:
        """Forget every cached credential and session: some user changed."""
        self._credentials.clear()
        self._sessions.clear()

    def forget_sessions(self) -> None:
        """Forget every cached session: some session was revoked."""
        self._sessions.clear()

    # -- users -----------------------------------------------------------------------------

    def add_user(
        self, name: str, password: str, roles: Sequence[str] = (), by: Actor | None = None
    ) -> None:
        """Create a user (``by``: who, for the audit trail; None, Bascule itself)."""
        validate_name(name)
        roles = validate_roles(roles)
        password_hash = self.hasher.hash(validate_password(password))
        try:
            with self.store.write("users") as tx:
                now = self.clock()
                tx.insert_user(name, password_hash, roles, now)
                with_roles = f" with the roles {', '.join(roles)}" if roles else ""
                text = f"{_who(by)} added the user {name}{with_roles}."
                events.audit(
                    tx,
                    events.USER_ADDED,
                    by or events.SYSTEM,
                    now,
                    text,
                    user=name,
                    roles=list(roles),
                )
        except AlreadyExists:
            raise UserExists(f"the user {name!r} exists already") from None
        self.forget_users()

    def set_password(self, name: str, password: str, by: Actor | None = None) -> None:
        """Change a user's password; their sessions are revoked."""
        password_hash = self.hasher.hash(validate_password(password))
        with self.store.write("users") as tx:
            if not tx.set_password_hash(name, password_hash):
                raise UserError(f"there is no user {name!r}")
            revoked = tx.delete_sessions_of(name)
            tx.forget_devices_of(name)  # trusted for a password now changed
            text = f"{_who(by)} changed the password of {name}: {revoked} sessions revoked."
            events.audit(
                tx,
                events.PASSWORD_CHANGED,
                by or events.SYSTEM,
                self.clock(),
                text,
                user=name,
                sessionsRevoked=revoked,
            )
        self.forget_users()

    def remove_user(self, name: str, by: Actor | None = None) -> None:
        """Delete a user with their sessions."""
        with self.store.write("users") as tx:
            if not tx.delete_user(name):
                raise UserError(f"there is no user {name!r}")
            text = f"{_who(by)} removed the user {name}."
            events.audit(
                tx, events.USER_REMOVED, by or events.SYSTEM, self.clock(), text, user=name
            )
        self.forget_users()

    def users(self) -> list[UserRecord]:
        """Every user, by name."""
        with self.store.read() as tx:
            return tx.list_users()

    def ensure_admin(self, password: str | None) -> str | None:
        """Create the ``admin`` user when there is no user at all.

        Returns the generated password when none was given (the caller prints it
        once), None when no user was created or the password was given.
        """
        with self.store.read() as tx:
            if tx.count_users():
                return None
        generated = None
        if password is None:
            password = generated = secrets.token_urlsafe(18)
        try:
            self.add_user(ADMIN_USER, password, [ADMIN])
        except UserExists:  # another process created it first
            return None
        except UserError as exc:
            raise UserError(f"BASCULE_ADMIN_PASSWORD: {exc}") from None
        return generated


def _who(actor: Actor | None) -> str:
    return "Bascule" if actor is None else actor.name
