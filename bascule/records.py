"""What is stored of the accounts and the tokens: users, sessions, bypass tokens, and
the hash under which any token is stored and looked up; and of Alertmanager's silence."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class UserRecord:
    """A user as stored: name, Argon2 hash and roles."""

    name: str
    password_hash: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class SessionRecord:
    """A login session as stored (the token itself is never stored, only its hash)."""

    user: UserRecord
    expires_at: int


@dataclass(frozen=True)
class BypassRecord:
    """A bypass token as stored: its name, who made it, when, until when, its use."""

    name: str
    token_hash: str
    created_by: str
    created_at: int
    expires_at: int
    uses: int = 0
    last_used_at: int | None = None


@dataclass(frozen=True)
class SilenceRecord:
    """The silence kept in Alertmanager, as stored (all None while there is none): its id
    there, the window it is for, its start and end, the digest of what was sent; who
    calls Alertmanager for it until when (or when the next try may be); the last failure."""

    silence_id: str | None = None
    window_id: int | None = None
    starts_at: int | None = None
    ends_at: int | None = None
    digest: str | None = None
    claimed_by: str | None = None
    claimed_until: int | None = None
    error: str | None = None


def token_hash(token: str | bytes) -> str:
    """What is stored of a token (a session's, a bypass token's, a device's), and looked
    up: its SHA-256."""
    raw = token if isinstance(token, bytes) else token.encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()
