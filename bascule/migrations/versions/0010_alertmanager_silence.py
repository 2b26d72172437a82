"""The silence kept in Alertmanager while maintenance is on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alertmanager_silence",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("silence_id", sa.String(length=64), nullable=True),
        sa.Column("window_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.BigInteger(), nullable=True),
        sa.Column("ends_at", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alertmanager_silence")),
    )


def downgrade() -> None:
    op.drop_table("alertmanager_silence")
