"""Migrations: the schema made on an empty database, refused when outdated, upgraded under
automatic maintenance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import bascule
from bascule import schema
from bascule.cli import main
from bascule.schema import SchemaError, prepare, status
from bascule.store import Store

# A later migration, as a future version of Bascule would ship it. Its upgrade checks
# that serving instances are held in automatic maintenance while it runs.
NEXT_STEP = '''"""Add a probe table.

Revision ID: {revision}
Revises: {down_revision}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    state = bind.execute(
        sa.text(
            "SELECT user_name, user_triggered FROM maintenance_windows w "
            "JOIN maintenance_state s ON s.window_id = w.id"
        )
    ).one()
    assert tuple(state) == ("schema-migration", False), state
    messages = bind.execute(sa.text("SELECT message FROM maintenance_log ORDER BY id")).scalars()
    assert any(m.startswith("Applying {revision}: Add a probe table.") for m in messages)
    op.create_table("probe", sa.Column("id", sa.Integer(), primary_key=True))
'''
HEAD = schema.HEAD
NEXT = f"{int(HEAD) + 1:04d}"


def test_the_head_bascule_knows_is_its_newest_migration():
    assert schema._script().get_current_head() == schema.HEAD


@pytest.fixture
def upgrade_bascule(tmp_path, monkeypatch):
    """Call to turn Bascule into its next version, which has one more migration."""
    scripts = tmp_path / "migrations"
    shutil.copytree(Path(bascule.__file__).parent / "migrations", scripts)
    step = NEXT_STEP.format(revision=NEXT, down_revision=HEAD)
    (scripts / "versions" / f"{NEXT}_probe.py").write_text(step)

    def upgrade() -> None:
        monkeypatch.setattr(schema, "SCRIPT_LOCATION", str(scripts))
        monkeypatch.setattr(schema, "HEAD", NEXT)

    return upgrade


def at_first_revision(database_url: str) -> None:
    store = Store(database_url)
    try:
        prepare(store)
    finally:
        store.close()


def test_an_empty_database_gets_the_schema(database_url):
    store = Store(database_url)
    try:
        assert status(store).empty
        prepare(store)
        assert status(store).up_to_date
        prepare(store)  # and again: nothing to do
    finally:
        store.close()


def test_serve_refuses_an_outdated_schema_and_db_upgrade_fixes_it(database_url, upgrade_bascule):
    at_first_revision(database_url)
    upgrade_bascule()
    runner = CliRunner()
    env = {"BASCULE_DATABASE_URL": database_url, "BASCULE_ADMIN_PASSWORD": "admin-secret-1"}
    refused = runner.invoke(main, ["serve"], env=env)
    assert refused.exit_code == 1
    assert "run `bascule db upgrade` first" in refused.output
    assert HEAD in runner.invoke(main, ["db", "status"], env=env).output
    upgraded = runner.invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"Upgraded the schema to {NEXT}" in upgraded.output
    store = Store(database_url)
    try:
        assert status(store).up_to_date
        with store.read() as tx:
            assert tx.conn.execute(text("SELECT count(*) FROM probe")).scalar_one() == 0
            # maintenance went off again once the migration succeeded
            assert tx.load_state() is None
    finally:
        store.close()


def test_a_schema_from_a_newer_bascule_is_refused(database_url):
    at_first_revision(database_url)
    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaError, match="does not know"):
            prepare(store)
    finally:
        store.close()


def test_a_foreign_database_is_refused(database_url):
    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("CREATE TABLE their_table (id INTEGER PRIMARY KEY)"))
        with pytest.raises(SchemaError, match="database of its own"):
            prepare(store)
    finally:
        store.close()


def test_a_database_at_the_first_schema_is_upgraded_keeping_all_it_holds(database_url):
    from alembic import command
    from argon2 import PasswordHasher

    from bascule.auth import Auth
    from bascule.maintenance import Maintenance

    store = Store(database_url)
    try:
        # What a Bascule of the first schema wrote: maintenance on, a log, a user, counters.
        with store.engine.begin() as conn:
            command.upgrade(schema._config(conn), "0001")
            conn.execute(text("UPDATE bascule_versions SET state_version = 5, users_version = 2"))
            conn.execute(
                text(
                    "INSERT INTO maintenance_state VALUES ('mms_id', 'ops', :triggered, 40, 7, 2)"
                ),
                {"triggered": True},
            )
            conn.execute(
                text(
                    "INSERT INTO maintenance_log (date, user_name, message) "
                    "VALUES (7, 'ops', 'Maintenance operation started.'), (8, 'ops', 'kept')"
                )
            )
            password = PasswordHasher().hash("a long enough password")
            conn.execute(text("INSERT INTO users VALUES ('carol', :h, 7)"), {"h": password})
            conn.execute(text("INSERT INTO user_roles VALUES ('carol', 'ADMIN')"))
        assert schema.pending_steps("0001")[-1] == HEAD
        schema.upgrade(store)
        assert status(store).up_to_date
        state = Maintenance(store).state()
        assert state is not None and (state.user, state.progress_percent) == ("ops", 40)
        assert [entry.message for entry in state.log][1:] == ["kept"]
        # the change counters carried over, so running instances see no false change
        assert store.versions() == {
            "state": 5,
            "users": 2,
            "sessions": 0,
            "bypass": 0,
            "schedule": 0,
        }
        # the maintenance on is the current window of the history, with its whole log
        total, windows = Maintenance(store).history(0, 10)
        assert total == 1 and (windows[0].user, windows[0].status) == ("ops", "on")
        assert windows[0].log_size == 2 and windows[0].started_at == 7
        assert Auth(store).check_credentials("carol", "a long enough password") is not None
    finally:
        store.close()


@pytest.mark.parametrize("first", ["0001", "0003", "0005", "0006"])
def test_an_upgrade_from_any_earlier_schema_holds_maintenance_for_every_step(
    database_url, monkeypatch, first
):
    from alembic import command

    from bascule.maintenance import Maintenance

    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            command.upgrade(schema._config(conn), first)
        held: list[tuple[str, int]] = []
        real_upgrade = command.upgrade

        def step(config, revision):  # what each step finds, as an instance of then reads it
            rows = config.attributes["connection"].execute(
                text("SELECT count(*) FROM maintenance_state")
            )
            held.append((revision, rows.scalar()))
            return real_upgrade(config, revision)

        monkeypatch.setattr(command, "upgrade", step)
        env = {"BASCULE_DATABASE_URL": database_url}
        upgraded = CliRunner().invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
        assert upgraded.exit_code == 0, upgraded.output
        assert [revision for revision, _ in held] == schema.pending_steps(first)
        assert all(count == 1 for _, count in held), held  # on, before every step
        assert Maintenance(store).state() is None  # and off at the end
        total, windows = Maintenance(store).history(0, 10)
        assert total == 1 and windows[0].user == "schema-migration"
        assert windows[0].ended_by == "schema-migration"
    finally:
        store.close()


def test_the_migrations_make_exactly_the_tables_declared(store):
    # The tables the store queries (tables.py) and those the migrations made: no column,
    # index or constraint apart.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bascule.tables import metadata

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
