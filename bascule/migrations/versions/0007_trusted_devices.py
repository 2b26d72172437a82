"""Trusted devices: the browsers a user signed in with, which the throttle trusts; and
the end of each window of failures, which differ in length.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Counts of before are of other keys: their rows end at once (0) and are swept.
    with op.batch_alter_table("auth_failures") as table:
        table.add_column(
            sa.Column("window_end", sa.BigInteger(), nullable=False, server_default="0")
        )
        table.create_index(op.f("ix_auth_failures_window_end"), ["window_end"])
    op.create_table(
        "trusted_devices",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_name"],
            ["users.name"],
            name=op.f("fk_trusted_devices_user_name_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_trusted_devices")),
    )
    op.create_index(op.f("ix_trusted_devices_user_name"), "trusted_devices", ["user_name"])
    op.create_index(op.f("ix_trusted_devices_expires_at"), "trusted_devices", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_trusted_devices_expires_at"), table_name="trusted_devices")
    op.drop_index(op.f("ix_trusted_devices_user_name"), table_name="trusted_devices")
    op.drop_table("trusted_devices")
    with op.batch_alter_table("auth_failures") as table:
        table.drop_index(op.f("ix_auth_failures_window_end"))
        table.drop_column("window_end")
