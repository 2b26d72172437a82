"""The end of a holding process's work, when it failed and left maintenance on: when,
and how (its exit status). Its lease ends then, so that a release, or its retry, need not
wait for the lease to run out.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("maintenance_state") as table:
        table.add_column(sa.Column("holder_ended_at", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("holder_outcome", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("maintenance_state") as table:
        table.drop_column("holder_outcome")
        table.drop_column("holder_ended_at")
