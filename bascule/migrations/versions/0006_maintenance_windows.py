"""Every maintenance is a window, kept once it ends; windows can be planned; a process
holds its maintenance with a lease.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    windows = op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("user_triggered", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_by", sa.String(length=255), nullable=True),
        sa.Column("released_by", sa.String(length=255), nullable=True),
        sa.Column("log_size", sa.Integer(), nullable=False),
        sa.Column("planned_start", sa.BigInteger(), nullable=True),
        sa.Column("planned_end", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("auto_end", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    op.create_index(
        "ix_maintenance_windows_status_planned_start",
        "maintenance_windows",
        ["status", "planned_start"],
    )
    bind = op.get_bind()
    # A maintenance on while upgrading becomes the current window, with its whole log.
    current = bind.execute(
        sa.text(
            "SELECT user_name, user_triggered, started_at, log_size, mode FROM maintenance_state"
        )
    ).first()
    window_id = None
    if current is not None:
        window_id = bind.execute(
            sa.insert(windows)
            .values(
                status="on",
                user_name=current.user_name,
                user_triggered=current.user_triggered,
                mode=current.mode,
                created_at=current.started_at,
                started_at=current.started_at,
                log_size=current.log_size,
                auto_end=False,
            )
            .returning(windows.c.id)
        ).scalar_one()
    with op.batch_alter_table("maintenance_log") as table:
        table.add_column(sa.Column("window_id", sa.Integer(), nullable=True))
    if window_id is None:
        bind.execute(sa.text("DELETE FROM maintenance_log"))  # a log with no maintenance
    else:
        bind.execute(sa.text("UPDATE maintenance_log SET window_id = :w"), {"w": window_id})
    with op.batch_alter_table("maintenance_log") as table:
        table.alter_column("window_id", existing_type=sa.Integer(), nullable=False)
        table.create_foreign_key(
            op.f("fk_maintenance_log_window_id_maintenance_windows"),
            "maintenance_windows",
            ["window_id"],
            ["id"],
            ondelete="CASCADE",
        )
        table.create_index(op.f("ix_maintenance_log_window_id"), ["window_id"])
    with op.batch_alter_table("maintenance_state") as table:
        table.add_column(sa.Column("window_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("lease_ttl", sa.Integer(), nullable=True))
        table.add_column(sa.Column("lease_renewed_at", sa.BigInteger(), nullable=True))
    if window_id is not None:
        bind.execute(sa.text("UPDATE maintenance_state SET window_id = :w"), {"w": window_id})
    with op.batch_alter_table("maintenance_state") as table:
        for column in ("user_name", "user_triggered", "started_at", "log_size", "mode"):
            table.drop_column(column)
        table.alter_column("window_id", existing_type=sa.Integer(), nullable=False)
        table.create_foreign_key(
            op.f("fk_maintenance_state_window_id_maintenance_windows"),
            "maintenance_windows",
            ["window_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    # Back to one state row: the current window's, and its log; the history is lost.
    bind = op.get_bind()
    with op.batch_alter_table("maintenance_state") as table:
        table.add_column(sa.Column("user_name", sa.String(length=255), nullable=True))
        table.add_column(sa.Column("user_triggered", sa.Boolean(), nullable=True))
        table.add_column(sa.Column("started_at", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("log_size", sa.Integer(), nullable=True))
        table.add_column(
            sa.Column("mode", sa.String(length=16), nullable=False, server_default="full")
        )
    bind.execute(
        sa.text(
            "UPDATE maintenance_state SET "
            "user_name = (SELECT coalesce(w.released_by, w.user_name) FROM maintenance_windows w"
            " WHERE w.id = maintenance_state.window_id), "
            "user_triggered = (SELECT w.user_triggered OR w.released_by IS NOT NULL"
            " FROM maintenance_windows w WHERE w.id = maintenance_state.window_id), "
            "started_at = (SELECT w.started_at FROM maintenance_windows w"
            " WHERE w.id = maintenance_state.window_id), "
            "log_size = (SELECT w.log_size FROM maintenance_windows w"
            " WHERE w.id = maintenance_state.window_id), "
            "mode = (SELECT w.mode FROM maintenance_windows w"
            " WHERE w.id = maintenance_state.window_id)"
        )
    )
    bind.execute(
        sa.text(
            "DELETE FROM maintenance_log WHERE window_id NOT IN "
            "(SELECT window_id FROM maintenance_state)"
        )
    )
    with op.batch_alter_table("maintenance_state") as table:
        table.drop_constraint(
            op.f("fk_maintenance_state_window_id_maintenance_windows"), type_="foreignkey"
        )
        for column in ("window_id", "lease_ttl", "lease_renewed_at"):
            table.drop_column(column)
        for column, kind in (
            ("user_name", sa.String(length=255)),
            ("user_triggered", sa.Boolean()),
            ("started_at", sa.BigInteger()),
            ("log_size", sa.Integer()),
        ):
            table.alter_column(column, existing_type=kind, nullable=False)
    with op.batch_alter_table("maintenance_log") as table:
        table.drop_index(op.f("ix_maintenance_log_window_id"))
        table.drop_constraint(
            op.f("fk_maintenance_log_window_id_maintenance_windows"), type_="foreignkey"
        )
        table.drop_column("window_id")
    op.drop_index("ix_maintenance_windows_status_planned_start", "maintenance_windows")
    op.drop_table("maintenance_windows")
