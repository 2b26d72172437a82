"""The store's queries of accounts: users and their roles, sessions, trusted devices, bypass
tokens and failed authentications. SQL only; a mixin of the store's transaction (Tx)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bascule.db import upsert
from bascule.records import BypassRecord, SessionRecord, UserRecord
from bascule.tables import (
    auth_failures,
    bypass_tokens,
    sessions,
    trusted_devices,
    user_roles,
    users,
)


class AlreadyExists(Exception):
    """A row with that key exists already."""


class AccountQueries:
    """The accounts' queries of one transaction."""

    conn: Connection
    is_postgres: bool

    # -- users and sessions ----------------------------------------------------------------

    def get_user(self, name: str) -> UserRecord | None:
        """A user by name, with roles."""
        row = self.conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            return None
        roles = self.conn.execute(
            select(user_roles.c.role).where(user_roles.c.user_name == name).order_by("role")
        ).scalars()
        return UserRecord(row.name, row.password_hash, tuple(roles))

    def list_users(self) -> list[UserRecord]:
        """Every user, by name."""
        names = self.conn.execute(select(users.c.name).order_by(users.c.name)).scalars().all()
        found = (self.get_user(name) for name in names)
        return [user for user in found if user is not None]

    def count_users(self) -> int:
        """How many users exist."""
        return int(self.conn.execute(select(func.count()).select_from(users)).scalar_one())

    def insert_user(self, name: str, password_hash: str, roles: Sequence[str], now: int) -> None:
        """Create a user; raise AlreadyExists if the name is taken."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(users).values(name=name, password_hash=password_hash, created_at=now)
                )
        except IntegrityError:
            raise AlreadyExists(name) from None
        for role in sorted(set(roles)):
            self.conn.execute(insert(user_roles).values(user_name=name, role=role))

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        """Replace a user's password hash; False if there is no such user."""
        result = self.conn.execute(
            update(users).where(users.c.name == name).values(password_hash=password_hash)
        )
        return result.rowcount == 1

    def delete_user(self, name: str) -> bool:
        """Remove a user with their roles and sessions; False if there is no such user."""
        self.conn.execute(delete(sessions).where(sessions.c.user_name == name))
        self.conn.execute(delete(trusted_devices).where(trusted_devices.c.user_name == name))
        self.conn.execute(delete(user_roles).where(user_roles.c.user_name == name))
        return self.conn.execute(delete(users).where(users.c.name == name)).rowcount == 1

    def insert_session(self, token_hash: str, user: str, now: int, expires_at: int) -> None:
        """Record a new session; expired sessions are swept on the way."""
        self.conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
        self.conn.execute(
            insert(sessions).values(
                token_hash=token_hash, user_name=user, created_at=now, expires_at=expires_at
            )
        )

    def get_session(self, token_hash: str) -> SessionRecord | None:
        """A session by token hash, with its user."""
        row = self.conn.execute(
            select(sessions.c.user_name, sessions.c.expires_at).where(
                sessions.c.token_hash == token_hash
            )
        ).first()
        if row is None:
            return None
        user = self.get_user(row.user_name)
        return None if user is None else SessionRecord(user, int(row.expires_at))

    def delete_session(self, token_hash: str) -> bool:
        """Revoke a session; False if there was none."""
        result = self.conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
        return result.rowcount == 1

    def delete_sessions_of(self, user: str) -> int:
        """Revoke every session of a user; the number revoked."""
        return self.conn.execute(delete(sessions).where(sessions.c.user_name == user)).rowcount

    # -- trusted devices -------------------------------------------------------------------

    def device_user(self, token_hash: str, now: int) -> str | None:
        """The user a device token trusted until after ``now`` belongs to, if any."""
        devices = trusted_devices.c
        found = self.conn.execute(
            select(devices.user_name).where(
                devices.token_hash == token_hash, devices.expires_at > now
            )
        ).scalar_one_or_none()
        return None if found is None else str(found)

    def trust_device(self, token_hash: str, user: str, now: int, until: int) -> None:
        """Trust a device token for ``user`` until ``until`` (again, if it was); devices
        no longer trusted are swept on the way."""
        devices = trusted_devices.c
        self.conn.execute(delete(trusted_devices).where(devices.expires_at <= now))
        updated = self.conn.execute(
            update(trusted_devices)
            .where(devices.token_hash == token_hash, devices.user_name == user)
            .values(expires_at=until)
        )
        if updated.rowcount == 0:
            self.conn.execute(
                insert(trusted_devices).values(
                    token_hash=token_hash, user_name=user, created_at=now, expires_at=until
                )
            )

    def forget_devices_of(self, user: str) -> None:
        """Trust none of the devices ``user`` signed in with."""
        self.conn.execute(delete(trusted_devices).where(trusted_devices.c.user_name == user))

    # -- bypass tokens ---------------------------------------------------------------------

    def insert_bypass(self, record: BypassRecord) -> bool:
        """Store a new token; False, storing nothing, if its name is taken."""
        values = {c.name: getattr(record, c.name) for c in bypass_tokens.columns}
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(bypass_tokens).values(values))
        except IntegrityError:
            return False
        return True

    def list_bypass(self) -> list[BypassRecord]:
        """Every token, by name."""
        rows = self.conn.execute(select(bypass_tokens).order_by(bypass_tokens.c.name))
        return [BypassRecord(**row._mapping) for row in rows]

    def delete_bypass(self, name: str) -> bool:
        """End a token; False if there is none of that name."""
        result = self.conn.execute(delete(bypass_tokens).where(bypass_tokens.c.name == name))
        return result.rowcount == 1

    def record_bypass_uses(self, uses: dict[str, tuple[int, int]]) -> None:
        """Add to each token's count of uses, and set when it was last used
        (``uses``: by name, how many more times and the last time)."""
        column = bypass_tokens.c
        for name, (count, last) in uses.items():
            later = case((column.last_used_at > last, column.last_used_at), else_=last)
            self.conn.execute(
                update(bypass_tokens)
                .where(column.name == name)
                .values(uses=column.uses + count, last_used_at=later)
            )

    # -- failed authentications ------------------------------------------------------------

    def add_failure(self, key: str, now: int, window: int) -> tuple[int, int]:
        """Count one failure for ``key``, in its window of ``window`` ms that starts now
        unless one is running (windows over are swept on the way); the count and the
        window's start, as this write left them (atomically: concurrent writers each see
        theirs)."""
        failures = auth_failures.c
        self.conn.execute(delete(auth_failures).where(failures.window_end <= now))
        insert_or_count = upsert(auth_failures, self.is_postgres)
        row = self.conn.execute(
            insert_or_count.values(key=key, failures=1, window_start=now, window_end=now + window)
            .on_conflict_do_update(
                index_elements=[failures.key],
                set_={"failures": failures.failures + 1},
            )
            .returning(failures.failures, failures.window_start)
        ).one()
        return int(row.failures), int(row.window_start)

    def forgive_failure(self, key: str) -> None:
        """Take back one failure counted for ``key``."""
        self.conn.execute(
            update(auth_failures)
            .where(auth_failures.c.key == key, auth_failures.c.failures > 0)
            .values(failures=auth_failures.c.failures - 1)
        )

    def clear_failures(self, key: str) -> None:
        """Forget the failures of ``key``."""
        self.conn.execute(delete(auth_failures).where(auth_failures.c.key == key))
