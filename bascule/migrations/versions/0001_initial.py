"""The first schema: maintenance state and log, users, roles, sessions, version counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = op.create_table(
        "bascule_versions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state_version", sa.BigInteger(), nullable=False),
        sa.Column("users_version", sa.BigInteger(), nullable=False),
        sa.Column("sessions_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bascule_versions")),
    )
    op.bulk_insert(
        versions, [{"id": 1, "state_version": 0, "users_version": 0, "sessions_version": 0}]
    )
    op.create_table(
        "maintenance_state",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("user_triggered", sa.Boolean(), nullable=False),
        sa.Column("progress_percent", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("log_size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_state")),
    )
    op.create_table(
        "maintenance_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("date", sa.BigInteger(), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_log")),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "user_roles",
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_name"],
            ["users.name"],
            name=op.f("fk_user_roles_user_name_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_name", "role", name=op.f("pk_user_roles")),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_name"],
            ["users.name"],
            name=op.f("fk_sessions_user_name_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_user_name"), "sessions", ["user_name"])
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
