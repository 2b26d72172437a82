"""What is stored of the accounts and the tokens: users, sessions, bypass tokens, and
the hash under which any token is stored and looked up."""

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


def token_hash(token: str | bytes) -> str:
    """What is stored of a token (a session's, a bypass token's, a device's), and looked
    up: its SHA-256."""
    raw = token if isinstance(token, bytes) else token.encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()
