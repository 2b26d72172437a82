"""Change counters as rows, one per kind of shared data, instead of a column each.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KINDS = ("state", "users", "sessions")


def upgrade() -> None:
    counters = op.create_table(
        "change_counters",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_change_counters")),
    )
    row = op.get_bind().execute(sa.text("SELECT * FROM bascule_versions")).mappings().one()
    op.bulk_insert(counters, [{"kind": k, "counter": row[f"{k}_version"]} for k in KINDS])
    op.drop_table("bascule_versions")


def downgrade() -> None:
    versions = op.create_table(
        "bascule_versions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(f"{k}_version", sa.BigInteger(), nullable=False) for k in KINDS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bascule_versions")),
    )
    rows = op.get_bind().execute(sa.text("SELECT kind, counter FROM change_counters"))
    counters: dict[str, int] = dict(rows.tuples().all())
    op.bulk_insert(versions, [{"id": 1, **{f"{k}_version": counters.get(k, 0) for k in KINDS}}])
    op.drop_table("change_counters")
