"""The mode of a maintenance: full, or read-only.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A maintenance on while upgrading stays what it was: full.
    with op.batch_alter_table("maintenance_state") as table:
        table.add_column(
            sa.Column("mode", sa.String(length=16), nullable=False, server_default="full")
        )


def downgrade() -> None:
    with op.batch_alter_table("maintenance_state") as table:
        table.drop_column("mode")
