"""The database schema: Alembic migrations, and the check made before serving."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from bascule.model import STARTED_MESSAGE, STATE_ID
from bascule.store import Store

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

SCRIPT_LOCATION = "bascule:migrations"
# The newest migration, known without importing Alembic (a command that only reads the
# state starts faster): tests/test_schema.py keeps it equal to Alembic's head.
HEAD = "0007"


class SchemaError(RuntimeError):
    """The database cannot be served as it is (the message says what to do)."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: its revision (None when empty) and the code's head."""

    current: str | None
    head: str
    empty: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(conn: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = conn
    return config


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def pending_steps(current: str | None) -> list[str]:
    """The revisions an upgrade from ``current`` would apply, in order."""
    script = _script()
    steps = [rev.revision for rev in script.iterate_revisions("heads", current)]
    return list(reversed(steps))


def status(store: Store) -> SchemaStatus:
    """Read the database's revision (Alembic's table, read as Alembic does)."""
    with store.engine.connect() as conn:
        return _status(conn)


def _status(conn: Connection) -> SchemaStatus:
    tables = inspect(conn).get_table_names()
    current = None
    if "alembic_version" in tables:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return SchemaStatus(current, HEAD, not tables)


@contextmanager
def _migrating(store: Store) -> Iterator[Connection]:
    """A transaction for one step, which no other process's step runs beside: processes
    started together on an empty database each find the steps done by the first."""
    with store.engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")  # SQLite's write lock
        with conn.begin():
            if store.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('bascule-schema'))"))
            yield conn


# From this revision on, maintenance is stored as windows: an upgrade from before it
# applies the steps up to it before it can hold maintenance while the others run.
WINDOWS_REVISION = "0006"


def hold_before_windows(store: Store, process: str, message: str, now: int) -> bool:
    """Switch automatic maintenance on for ``process`` in a database whose schema is
    older than WINDOWS_REVISION, as the Bascule that wrote it stores it (running
    instances of that version see it within a second); True when it did, False when
    maintenance was on already (the upgrade then runs under that one). The step to
    WINDOWS_REVISION carries it over as the current window, the process's still."""
    with _migrating(store) as conn:
        tables = inspect(conn)
        if (
            tables.get_table_names()
            and conn.execute(text("SELECT count(*) FROM maintenance_state")).scalar()
        ):
            return False
        columns = {c["name"] for c in tables.get_columns("maintenance_state")}
        row = {
            "id": STATE_ID,
            "user_name": process,
            "user_triggered": False,
            "progress_percent": 1,
            "started_at": now,
            "log_size": 2,
        }
        if "mode" in columns:  # from 0005
            row["mode"] = "full"
        names = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        conn.execute(text(f"INSERT INTO maintenance_state ({names}) VALUES ({values})"), row)  # noqa: S608 (our own column names)
        for entry in (STARTED_MESSAGE, message):
            conn.execute(
                text("INSERT INTO maintenance_log (date, user_name, message) VALUES (:d, :u, :m)"),
                {"d": now, "u": process, "m": entry},
            )
        # The change counter of that version: a table of counters from 0003, a row before.
        if "change_counters" in tables.get_table_names():
            bumped = conn.execute(
                text("UPDATE change_counters SET counter = counter + 1 WHERE kind = 'state'")
            )
            if bumped.rowcount == 0:  # made by its first write
                conn.execute(text("INSERT INTO change_counters VALUES ('state', 1)"))
        else:
            conn.execute(text("UPDATE bascule_versions SET state_version = state_version + 1"))
    return True


def upgrade(
    store: Store, on_step: Callable[[str, str], None] | None = None, until: str | None = None
) -> list[str]:
    """Apply the pending migrations (up to ``until`` when given) one at a time; the
    revisions applied.

    ``on_step(revision, description)`` is called before each one.
    """
    from alembic import command

    script = _script()
    applied = []
    for revision in pending_steps(status(store).current):
        if until is not None and revision > until:
            break
        if on_step is not None:  # outside the step's transaction: it may write
            doc = script.get_revision(revision)
            on_step(revision, (doc.doc if doc else revision) or revision)
        with _migrating(store) as conn:
            done = _status(conn).current
            if done is not None and done >= revision:  # another process's, meanwhile
                continue
            command.upgrade(_config(conn), revision)
        applied.append(revision)
    return applied


def prepare(store: Store) -> bool:
    """Make the database ready to serve: create the schema in an empty database,
    refuse one whose schema is older or newer than this version of Bascule. True when
    the database was empty (the schema was just created)."""
    current = status(store)
    if current.empty:
        from alembic import command

        # In one step: a process that starts meanwhile waits, then finds it whole.
        with _migrating(store) as conn:
            if not _status(conn).empty:
                return False
            command.upgrade(_config(conn), "heads")
        return True
    if not current.up_to_date:  # another process may be creating it: read it once it is done
        with _migrating(store) as conn:
            current = _status(conn)
    if current.current is None:
        raise SchemaError(
            "the database has tables but no Bascule schema revision: "
            "give Bascule a database of its own"
        )
    if not current.up_to_date:
        known = current.current in {r.revision for r in _script().walk_revisions()}
        if known:
            raise SchemaError(
                f"the database schema is at revision {current.current}, this version of "
                f"Bascule needs {current.head}: run `bascule db upgrade` first"
            )
        raise SchemaError(
            f"the database schema is at revision {current.current}, which this version "
            "of Bascule does not know (a newer version wrote it): upgrade Bascule"
        )
    return False
