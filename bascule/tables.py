"""The tables, declared once on one MetaData (its naming convention names every
constraint): the store queries them, the migrations create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A counter per kind of shared data, which every committed change of that kind bumps, so
# that every process can tell, with one cheap query, what changed. A new kind of shared
# data is one more name here: its row is made by its first write.
KINDS = ("state", "users", "sessions", "bypass", "schedule")
Kind = str
change_counters = Table(
    "change_counters",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("counter", BigInteger, nullable=False),
)

# Every maintenance is a window, kept once it ends: planned (scheduled, not started yet),
# on (the current one), ended, skipped (its start found maintenance on) or cancelled.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),
    # Who started it (a user, or an internal process when not user_triggered); for a
    # planned window, who planned it.
    Column("user_name", String(255), nullable=False),
    Column("user_triggered", Boolean, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    Column("ended_by", String(255), nullable=True),
    # An ADMIN who took over the maintenance of a process that stopped answering.
    Column("released_by", String(255), nullable=True),
    # Kept with the window so that no read ever counts the log.
    Column("log_size", Integer, nullable=False),
    # A planned window: when it starts and ends, its first message, whether it ends by
    # itself, and (skipped) why it did not start.
    Column("planned_start", BigInteger, nullable=True),
    Column("planned_end", BigInteger, nullable=True),
    Column("message", Text, nullable=True),
    Column("auto_end", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    # Whether the notice of its coming start was given (the window.upcoming event).
    Column("upcoming_told", Boolean, nullable=True),
    Index("ix_maintenance_windows_status_planned_start", "status", "planned_start"),
)

# The current window, while maintenance is on: one row (its key is the contract's
# ``mms_id``, which makes a second one impossible), with what only the current one has.
maintenance_state = Table(
    "maintenance_state",
    metadata,
    Column("id", String(16), primary_key=True),
    Column(
        "window_id",
        Integer,
        ForeignKey("maintenance_windows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("progress_percent", Integer, nullable=True),
    # The lease of the process holding it: its length (seconds) and last renewal.
    Column("lease_ttl", Integer, nullable=True),
    Column("lease_renewed_at", BigInteger, nullable=True),
    # The holding process ended its work, failing: when, and how. Its lease ended then.
    Column("holder_ended_at", BigInteger, nullable=True),
    Column("holder_outcome", String(255), nullable=True),
    # Whether the end of the current lease was told (the lease.expired event).
    Column("expiry_told", Boolean, nullable=True),
)

maintenance_log = Table(
    "maintenance_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "window_id",
        Integer,
        ForeignKey("maintenance_windows.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("date", BigInteger, nullable=False),
    Column("user_name", String(255), nullable=False),
    Column("message", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column(
        "user_name",
        String(255),
        ForeignKey("users.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("role", String(64), primary_key=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_name",
        String(255),
        ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# Failed authentications in the current window of each key (a name, a name at an address,
# a device...: see throttle.Throttle), and when that window ends.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False, index=True),
    Column("window_end", BigInteger, nullable=False, index=True),
)

# Browsers a user signed in with (the hash of the device token in their cookie): trusted
# by the throttle for that user, so that nobody else's failures can lock them out.
trusted_devices = Table(
    "trusted_devices",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_name",
        String(255),
        ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# Named tokens that let their bearer through the gate during maintenance (hashes only).
bypass_tokens = Table(
    "bypass_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("uses", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
)

# What happened, kept: every transition of the maintenance and every administrative
# action (the audit trail), and the outbox that webhooks are delivered from. ``uid``
# names the event to receivers (their webhook-id), the same on every try.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(32), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("at", BigInteger, nullable=False, index=True),
    Column("actor", String(255), nullable=False),
    # Where the actor acted from: a client's address, or the host of a command.
    Column("origin", String(255), nullable=True),
    Column("data", Text, nullable=False),  # JSON
    Column("text", Text, nullable=False),  # one line for people (chat receivers)
)

# Receivers of events: a URL, the secret deliveries are signed with, and the types of
# event it takes (a JSON list; NULL takes every type).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("event_types", Text, nullable=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# One event to one webhook: made with the event, in its transaction, so that none is
# lost; claimed by one instance at a time (claimed_until), tried until delivered or
# out of tries, its latest outcome kept.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "webhook_id",
        Integer,
        ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column(
        "event_id",
        Integer,
        ForeignKey("events.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
    Column("last_attempt_at", BigInteger, nullable=True),
    Column("last_result", String(255), nullable=True),
    Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)

# The silence kept in Alertmanager while maintenance is on (one row, made by its first
# use): Alertmanager's id for it, the window it is for, its start and end as Alertmanager
# holds them, and a digest of its matchers and comment as last sent. One instance at a
# time calls Alertmanager for it, claiming the row until claimed_until (after a failed
# call, nobody tries again before then); the last failure is kept until a call succeeds.
alertmanager_silence = Table(
    "alertmanager_silence",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("silence_id", String(64), nullable=True),
    Column("window_id", Integer, nullable=True),
    Column("starts_at", BigInteger, nullable=True),
    Column("ends_at", BigInteger, nullable=True),
    Column("digest", String(64), nullable=True),
    Column("claimed_by", String(32), nullable=True),
    Column("claimed_until", BigInteger, nullable=True),
    Column("error", String(255), nullable=True),
)
