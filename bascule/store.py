"""The store: every SQL statement Bascule runs, through a transaction (Tx) that the domain
opens with ``read()`` or ``write(kind)``; the change counters, and the database's clock."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bascule.accounts import AccountQueries, AlreadyExists
from bascule.db import DATABASE_TIMEOUT, Watchdog, make_engine, postgres_connect_args, upsert
from bascule.eventqueries import EventQueries
from bascule.model import (
    CANCELLED,
    ENDED,
    HISTORY,
    LOG_TAIL,
    ON,
    PLANNED,
    SKIPPED,
    STATE_ID,
    LogEntry,
    MaintenanceState,
    Window,
)
from bascule.silences import SilenceQueries
from bascule.tables import (
    KINDS,
    Kind,
    change_counters,
    maintenance_log,
    maintenance_state,
    maintenance_windows,
)

log = logging.getLogger(__name__)


class Store:
    """Reads and writes Bascule's tables; every write bumps a version counter.

    No call waits longer than ``timeout`` seconds for the database: beyond, it fails
    with one of SQLAlchemy's errors (OperationalError, TimeoutError), as when the
    database is down.
    """

    def __init__(self, url: str, timeout: float = DATABASE_TIMEOUT) -> None:
        self.timeout = timeout
        self.engine = make_engine(url, timeout)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.watchdog = Watchdog(timeout) if self.is_postgres else None
        # PostgreSQL's row lock serialises writers; SQLite's busy handler waits by sleeping,
        # so the writers of one process queue here first.
        self._writers = None if self.is_postgres else threading.Lock()
        # The database's clock less this host's, in ms, as last read (PostgreSQL: None
        # until read; SQLite's instances share one host, whose clock is the database's).
        self._offset: int | None = None if self.is_postgres else 0

    def now(self) -> int:
        """The database's time, in epoch milliseconds: the one clock every instance and
        command judges leases, planned windows and expiries by, whatever its own host's
        says (PostgreSQL's clock, as last read: at every write and every look for
        changes; SQLite's: the host's)."""
        if self._offset is None:
            with self.read() as tx:
                self._read_clock(tx.conn)
        return int(time.time() * 1000) + (self._offset or 0)

    def _read_clock(self, conn: Connection) -> None:
        """Learn how far the database's clock is from this host's (PostgreSQL)."""
        if not self.is_postgres:
            return
        before = time.time()
        database = conn.execute(select(_DATABASE_MS)).scalar_one()
        self._offset = int(database) - int((before + time.time()) * 500)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection, cut if the database does not answer within the timeout."""
        with self.engine.connect() as conn:
            if self.watchdog is None:
                yield conn
                return
            driver = conn.connection.driver_connection
            assert driver is not None  # a connection just checked out of the pool
            with self.watchdog.watching(driver.fileno()):
                yield conn

    @contextmanager
    def commit_counter(self) -> Iterator[Callable[[], int | None]]:
        """SQLite: a probe whose value changes whenever another connection commits.

        ``PRAGMA data_version`` on a connection of its own: one statement, where reading
        the version counters takes a transaction and a query. The probe answers None
        when the database cannot be read.
        """
        with self.connect() as conn:  # opening fails with SQLAlchemy's errors
            driver = conn.connection.driver_connection
            assert driver is not None  # a connection just checked out of the pool
            cursor = driver.cursor()

            def probe() -> int | None:
                try:  # fetchall: the statement is reset, no read transaction stays open
                    return int(cursor.execute("PRAGMA data_version").fetchall()[0][0])
                except sqlite3.Error:
                    return None

            yield probe

    @contextmanager
    def listening(self, channel: str) -> Iterator[Any]:
        """PostgreSQL: a psycopg connection of its own that LISTENs on ``channel``."""
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        args = postgres_connect_args(self.timeout)
        with psycopg.connect(url, autocommit=True, **args) as conn:
            assert self.watchdog is not None
            with self.watchdog.watching(conn.fileno()):
                conn.execute(f"LISTEN {channel}")
            yield conn

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction: its queries."""
        with self.connect() as conn, conn.begin():
            yield Tx(conn, self.is_postgres)

    @contextmanager
    def write(self, kind: Kind | None, *also: Kind) -> Iterator[Tx]:
        """A write transaction, serialised with every other writer of any process.

        It starts by bumping the change counter of ``kind`` (if any), which takes
        the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: that counter's row lock), so
        what the transaction reads next cannot change under another writer of that kind;
        then those of the kinds it changes ``also`` (taken in that order by every writer
        that names them: the locks are always taken in one order). Other processes see
        the new counters and reload.
        """
        with self._turn_to_write(), self.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                for each in (kind, *also) if kind is not None else also:
                    conn.execute(self._bump(each))
                    if self.is_postgres:
                        conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, each)))
                self._read_clock(conn)  # what the transaction writes is of that time
                yield Tx(conn, self.is_postgres)

    @contextmanager
    def _turn_to_write(self) -> Iterator[None]:
        if self._writers is None:
            yield
            return
        if not self._writers.acquire(timeout=self.timeout):
            raise PoolTimeout("no turn to write within the timeout")
        try:
            yield
        finally:
            self._writers.release()

    def check_writable(self) -> None:
        """Raise unless the database takes a write: a committed transaction that changes
        nothing anyone reads (a read-only file or server, a full disk fail it)."""
        with self.write(None) as tx:
            kind = change_counters.c.kind
            tx.conn.execute(update(change_counters).where(kind == KINDS[0]).values(kind=kind))

    def _bump(self, kind: Kind) -> Any:
        new = upsert(change_counters, self.is_postgres).values(kind=kind, counter=1)
        counter = change_counters.c.counter
        return new.on_conflict_do_update(index_elements=["kind"], set_={"counter": counter + 1})

    # -- change counters -------------------------------------------------------------------

    def versions(self) -> dict[Kind, int]:
        """The change counter of each kind of shared data (0 for a kind never changed)."""
        with self.read() as tx:
            rows = tx.conn.execute(select(change_counters.c.kind, change_counters.c.counter))
            counters = {str(kind): int(counter) for kind, counter in rows}
            self._read_clock(tx.conn)  # once a second at least, from each monitor
        return {kind: counters.get(kind, 0) for kind in KINDS}


class Tx(AccountQueries, EventQueries, SilenceQueries):
    """The queries of one transaction (``Store.read()``, ``Store.write()``): SQL, and no
    rule of the domain's, which hands it what to read and write."""

    def __init__(self, conn: Connection, is_postgres: bool) -> None:
        self.conn = conn
        self.is_postgres = is_postgres

    # -- maintenance state and windows -----------------------------------------------------

    def load_state(self, *, with_log: bool = True) -> MaintenanceState | None:
        """The maintenance state with its latest log entries (none when not ``with_log``)."""
        w, s = maintenance_windows.c, maintenance_state.c
        row = self.conn.execute(
            select(maintenance_state, maintenance_windows)
            .join(maintenance_windows, w.id == s.window_id)
            .where(s.id == STATE_ID)
        ).first()
        if row is None:
            return None
        tail: Sequence[Any] = ()
        if with_log:
            query = (
                select(maintenance_log)
                .where(maintenance_log.c.window_id == row.window_id)
                .order_by(maintenance_log.c.id.desc())
                .limit(LOG_TAIL)
            )
            tail = self.conn.execute(query).all()
        return MaintenanceState.current(
            _window(row, maintenance_windows),
            progress_percent=row.progress_percent,
            lease_ttl=row.lease_ttl,
            lease_renewed_at=row.lease_renewed_at,
            log=tuple(_log_entry(r) for r in reversed(tail)),
            holder_ended_at=row.holder_ended_at,
            holder_outcome=row.holder_outcome,
        )

    def log_page(self, window_id: int, offset: int, limit: int) -> Sequence[LogEntry]:
        """A page of the whole log of a window, oldest first."""
        rows = self.conn.execute(
            select(maintenance_log)
            .where(maintenance_log.c.window_id == window_id)
            .order_by(maintenance_log.c.id)
            .offset(offset)
            .limit(limit)
        ).all()
        return [_log_entry(r) for r in rows]

    def insert_state(self, state: MaintenanceState) -> int:
        """Store a new state in a new window, with its log; the window's id. AlreadyExists
        (storing nothing) when a current window exists."""
        try:
            with self.conn.begin_nested():
                window_id = self.conn.execute(
                    insert(maintenance_windows)
                    .values(
                        status=ON,
                        user_name=state.user,
                        user_triggered=state.user_triggered,
                        mode=state.mode,
                        created_at=state.started_at,
                        started_at=state.started_at,
                        log_size=0,
                        auto_end=False,
                    )
                    .returning(maintenance_windows.c.id)
                ).scalar_one()
                self._insert_current(window_id, state)
        except IntegrityError:
            raise AlreadyExists(STATE_ID) from None
        for entry in state.log:
            self.append_log(window_id, entry)
        return int(window_id)

    def _insert_current(self, window_id: int, state: MaintenanceState) -> None:
        self.conn.execute(
            insert(maintenance_state).values(
                id=STATE_ID,
                window_id=window_id,
                progress_percent=state.progress_percent,
                lease_ttl=state.lease_ttl,
                lease_renewed_at=state.lease_renewed_at,
            )
        )

    def set_progress(self, progress: int) -> None:
        """Replace the progress of the stored state."""
        self.conn.execute(
            update(maintenance_state)
            .where(maintenance_state.c.id == STATE_ID)
            .values(progress_percent=progress)
        )

    def append_log(self, window_id: int, entry: LogEntry) -> None:
        """Add an entry at the end of a window's log."""
        self.conn.execute(
            insert(maintenance_log).values(
                window_id=window_id, date=entry.date, user_name=entry.user, message=entry.message
            )
        )
        self.conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(log_size=maintenance_windows.c.log_size + 1)
        )

    def end_window(self, window_id: int, by: str, now: int) -> None:
        """End the current window: maintenance is off, the window kept."""
        self.conn.execute(delete(maintenance_state))
        self.close_window(window_id, ENDED, by, now)

    def close_window(
        self, window_id: int, status: str, by: str, now: int, reason: str | None = None
    ) -> None:
        """Give a window its last status (ended, skipped, cancelled), by whom and when."""
        self.conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(status=status, ended_at=now, ended_by=by, reason=reason)
        )

    def renew_lease(self, window_id: int, holder: str, now: int) -> bool:
        """Renew the lease of ``holder`` on the current window; False when the current
        window is another one, or no longer held with a lease."""
        w, s = maintenance_windows.c, maintenance_state.c
        holds = select(w.id).where(
            w.id == window_id, w.user_name == holder, w.released_by.is_(None)
        )
        result = self.conn.execute(
            update(maintenance_state)
            .where(s.window_id.in_(holds), s.lease_ttl.is_not(None))
            .values(lease_renewed_at=now, expiry_told=False)  # its next end is told anew
        )
        return result.rowcount == 1

    def end_holder(self, now: int, outcome: str) -> None:
        """The holding process ended its work (``outcome``), its lease with it."""
        self.conn.execute(
            update(maintenance_state).values(holder_ended_at=now, holder_outcome=outcome)
        )

    def hold_again(self, lease_ttl: int | None, now: int) -> None:
        """The holding process holds the current window again, with a new lease."""
        self.conn.execute(
            update(maintenance_state).values(
                lease_ttl=lease_ttl,
                lease_renewed_at=None if lease_ttl is None else now,
                holder_ended_at=None,
                holder_outcome=None,
                expiry_told=False,
            )
        )

    def set_mode(self, window_id: int, mode: str) -> None:
        """Change the mode of a window."""
        self.conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(mode=mode)
        )

    def release(self, window_id: int, by: str) -> None:
        """Hand the current window over to ``by``: no lease, user-triggered from now."""
        self.conn.execute(
            update(maintenance_state).values(
                lease_ttl=None, lease_renewed_at=None, holder_ended_at=None, holder_outcome=None
            )
        )
        self.conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(released_by=by)
        )

    def get_window(self, window_id: int) -> Window | None:
        """One window by id."""
        row = self.conn.execute(
            select(maintenance_windows).where(maintenance_windows.c.id == window_id)
        ).first()
        return None if row is None else _window(row)

    def history(self, offset: int, limit: int) -> tuple[int, list[Window]]:
        """How many windows are in the history, and a page of them, newest first."""
        w = maintenance_windows.c
        kept = w.status.in_(HISTORY)
        total = self.conn.execute(select(func.count()).select_from(maintenance_windows).where(kept))
        rows = self.conn.execute(
            select(maintenance_windows)
            .where(kept)
            .order_by(func.coalesce(w.started_at, w.planned_start).desc(), w.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(total.scalar_one()), [_window(row) for row in rows]

    def insert_window(self, window: Window) -> int:
        """Store a planned window; its id."""
        values = {
            c.name: getattr(window, _WINDOW_FIELDS.get(c.name, c.name))
            for c in maintenance_windows.columns
            if c.name not in _NOT_WINDOW
        }
        return int(
            self.conn.execute(
                insert(maintenance_windows).values(values).returning(maintenance_windows.c.id)
            ).scalar_one()
        )

    def planned_windows(self, due_by: int | None = None) -> list[Window]:
        """The planned windows (those whose start came by ``due_by``, when given),
        soonest first."""
        w = maintenance_windows.c
        query = select(maintenance_windows).where(w.status == PLANNED)
        if due_by is not None:
            query = query.where(w.planned_start <= due_by)
        rows = self.conn.execute(query.order_by(w.planned_start, w.id))
        return [_window(row) for row in rows]

    def start_planned(self, window: Window, state: MaintenanceState, now: int) -> None:
        """Make a planned window the current one, from ``now``, in the state ``state``."""
        self.conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window.id)
            .values(status=ON, started_at=now)
        )
        self._insert_current(window.id, state)

    def prune_windows(self, before: int) -> int:
        """Forget the windows (and their logs) that ended, were skipped or cancelled
        before ``before``; how many."""
        w = maintenance_windows.c
        old = select(w.id).where(w.status.in_((ENDED, SKIPPED, CANCELLED)), w.ended_at < before)
        self.conn.execute(delete(maintenance_log).where(maintenance_log.c.window_id.in_(old)))
        return self.conn.execute(delete(maintenance_windows).where(w.id.in_(old))).rowcount


NOTIFY_CHANNEL = "bascule_changes"
# PostgreSQL's clock now (not the transaction's start), in epoch milliseconds.
_DATABASE_MS = func.floor(func.extract("epoch", func.clock_timestamp()) * 1000)


# The fields of Window whose column has another name, and the columns it has no field for.
_WINDOW_FIELDS = {"user_name": "user"}
_NOT_WINDOW = {"id", "upcoming_told"}


def _window(row: Any, table: Table = maintenance_windows) -> Window:
    """The window of a row (its columns those of ``table``, maybe among others)."""
    values = {
        _WINDOW_FIELDS.get(c.name, c.name): row._mapping[c]
        for c in table.columns
        if c.name != "upcoming_told"
    }
    values["user_triggered"] = bool(values["user_triggered"])
    values["auto_end"] = bool(values["auto_end"])
    return Window(**values)


def _log_entry(row: Any) -> LogEntry:
    return LogEntry(id=int(row.id), date=int(row.date), user=row.user_name, message=row.message)
