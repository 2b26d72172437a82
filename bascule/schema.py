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
HEAD = "0010"


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


# From this revision on, maintenance is stored as windows.
WINDOWS_REVISION = "0006"


class Holding:
    """Automatic maintenance held by a process while the schema changes under it, written
    as the schema of each moment stores it (any revision since the first: the domain's
    queries read the schema of their own version, which is not there yet), so that the
    instances still running, of the version before, see it and enforce it."""

    def __init__(self, store: Store, process: str) -> None:
        self.store, self.process = store, process

    def hold(self, message: str, now: int) -> bool:
        """Switch maintenance on for the process; True when it did, False when it was on
        already (the upgrade then runs under that one, whoever holds it)."""
        with _migrating(self.store) as conn:
            if conn.execute(text("SELECT count(*) FROM maintenance_state")).scalar():
                return False
            columns = _columns(conn, "maintenance_state")
            if "window_id" in columns:  # from WINDOWS_REVISION: a window, the current one
                window_id = conn.execute(
                    text(
                        "INSERT INTO maintenance_windows (status, user_name, user_triggered,"
                        " mode, created_at, started_at, log_size, auto_end) VALUES ('on',"
                        " :u, :f, 'full', :now, :now, 0, :f) RETURNING id"
                    ),
                    {"u": self.process, "f": False, "now": now},
                ).scalar_one()
                conn.execute(
                    text("INSERT INTO maintenance_state (id, window_id) VALUES (:id, :w)"),
                    {"id": STATE_ID, "w": window_id},
                )
            else:  # before: the state holds who and since when
                row = {"id": STATE_ID, "user_name": self.process, "user_triggered": False}
                row |= {"progress_percent": None, "started_at": now, "log_size": 0}
                if "mode" in columns:  # from 0005
                    row["mode"] = "full"
                names, values = ", ".join(row), ", ".join(f":{name}" for name in row)
                conn.execute(
                    text(f"INSERT INTO maintenance_state ({names}) VALUES ({values})"),  # noqa: S608 (our own column names)
                    row,
                )
            for entry in (STARTED_MESSAGE, message):
                _log(conn, self.process, entry, now)
            _changed(conn)
        return True

    def say(self, message: str, progress: int, now: int) -> None:
        """A message in the maintenance's log, and its progress."""
        with _migrating(self.store) as conn:
            conn.execute(
                text("UPDATE maintenance_state SET progress_percent = :p"), {"p": progress}
            )
            _log(conn, self.process, message, now)
            _changed(conn)


def _columns(conn: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns(table)}


def _log(conn: Connection, user: str, message: str, now: int) -> None:
    """Append to the current maintenance's log, as the schema of now keeps it."""
    entry = {"d": now, "u": user, "m": message}
    if "window_id" in _columns(conn, "maintenance_log"):
        conn.execute(
            text(
                "INSERT INTO maintenance_log (window_id, date, user_name, message)"
                " VALUES ((SELECT window_id FROM maintenance_state), :d, :u, :m)"
            ),
            entry,
        )
        conn.execute(
            text(
                "UPDATE maintenance_windows SET log_size = log_size + 1"
                " WHERE id = (SELECT window_id FROM maintenance_state)"
            )
        )
    else:
        conn.execute(
            text("INSERT INTO maintenance_log (date, user_name, message) VALUES (:d, :u, :m)"),
            entry,
        )
        conn.execute(text("UPDATE maintenance_state SET log_size = log_size + 1"))


def _changed(conn: Connection) -> None:
    """Bump the state's change counter, as the schema of now keeps it (a table of counters
    from 0003, a row before), so that every instance reloads the state."""
    tables = inspect(conn).get_table_names()
    if "change_counters" in tables:
        bumped = conn.execute(
            text("UPDATE change_counters SET counter = counter + 1 WHERE kind = 'state'")
        )
        if bumped.rowcount == 0:  # made by its first write
            conn.execute(text("INSERT INTO change_counters VALUES ('state', 1)"))
    else:
        conn.execute(text("UPDATE bascule_versions SET state_version = state_version + 1"))


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
