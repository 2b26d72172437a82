"""SQLAlchemy Core tables and the store: every SQL statement Bascule runs lives here."""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bascule.model import (
    CANCELLED,
    ENDED,
    HISTORY,
    LOG_TAIL,
    ON,
    PLANNED,
    SCHEDULE_ACTOR,
    SKIPPED,
    STARTED_MESSAGE,
    STATE_ID,
    BypassRecord,
    LogEntry,
    MaintenanceState,
    SessionRecord,
    UserRecord,
    Window,
)

log = logging.getLogger(__name__)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A counter per kind of shared data, which every committed change of that kind bumps, so
# that every process can tell, with one cheap query, what changed. A new kind of shared
# data is one more name here: its row is made by its first write.
KINDS = ("state", "users", "sessions", "bypass", "schedule")
Kind = str
change_counters = Table(
    "change_counters",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("counter", BigInteger, nullable=False),
)

# Every maintenance is a window, kept once it ends: planned (scheduled, not started yet),
# on (the current one), ended, skipped (its start found maintenance on) or cancelled.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),
    # Who started it (a user, or an internal process when not user_triggered); for a
    # planned window, who planned it.
    Column("user_name", String(255), nullable=False),
    Column("user_triggered", Boolean, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("ended_at", BigInteger, nullable=True),
    Column("ended_by", String(255), nullable=True),
    # An ADMIN who took over the maintenance of a process that stopped answering.
    Column("released_by", String(255), nullable=True),
    # Kept with the window so that no read ever counts the log.
    Column("log_size", Integer, nullable=False),
    # A planned window: when it starts and ends, its first message, whether it ends by
    # itself, and (skipped) why it did not start.
    Column("planned_start", BigInteger, nullable=True),
    Column("planned_end", BigInteger, nullable=True),
    Column("message", Text, nullable=True),
    Column("auto_end", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_maintenance_windows_status_planned_start", "status", "planned_start"),
)

# The current window, while maintenance is on: one row (its key is the contract's
# ``mms_id``, which makes a second one impossible), with what only the current one has.
maintenance_state = Table(
    "maintenance_state",
    metadata,
    Column("id", String(16), primary_key=True),
    Column(
        "window_id",
        Integer,
        ForeignKey("maintenance_windows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("progress_percent", Integer, nullable=True),
    # The lease of the process holding it: its length (seconds) and last renewal.
    Column("lease_ttl", Integer, nullable=True),
    Column("lease_renewed_at", BigInteger, nullable=True),
)

maintenance_log = Table(
    "maintenance_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "window_id",
        Integer,
        ForeignKey("maintenance_windows.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("date", BigInteger, nullable=False),
    Column("user_name", String(255), nullable=False),
    Column("message", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column(
        "user_name",
        String(255),
        ForeignKey("users.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("role", String(64), primary_key=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_name",
        String(255),
        ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# Failed authentications in the current window of each key (a name, a name at an address,
# a device...: see auth.Throttle), and when that window ends.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False, index=True),
    Column("window_end", BigInteger, nullable=False, index=True),
)

# Browsers a user signed in with (the hash of the device token in their cookie): trusted
# by the throttle for that user, so that nobody else's failures can lock them out.
trusted_devices = Table(
    "trusted_devices",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_name",
        String(255),
        ForeignKey("users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

# Named tokens that let their bearer through the gate during maintenance (hashes only).
bypass_tokens = Table(
    "bypass_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("uses", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
)


# The longest a database call may take by default (BASCULE_DATABASE_TIMEOUT), in seconds:
# connecting, waiting for a pooled connection or a lock, running the statements.
DATABASE_TIMEOUT = 3.0
# SQLite's primary result codes after which a connection is opened anew: a connection
# opened while the file could not be written stays read-only for ever, even once it can.
_SQLITE_REOPEN = {8, 10, 14}  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN
# PostgreSQL: a read-only transaction (a standby, default_transaction_read_only): a new
# session may land on a server that writes again.
_PG_REOPEN = {"25006"}


class DatabaseUrlError(ValueError):
    """The database URL cannot be used."""


def engine_url(url: str) -> str:
    """Normalise a database URL: PostgreSQL URLs use psycopg 3, SQLite needs a file."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a malformed port only fails when read
    except (ArgumentError, ValueError):
        raise DatabaseUrlError(f"not a database URL: {url!r}") from None
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseUrlError("an SQLite URL must name a file, e.g. sqlite:///bascule.db")
        return url
    raise DatabaseUrlError(
        f"unsupported database {parsed.drivername!r}: use sqlite:///FILE or postgresql://..."
    )


def describe_error(exc: BaseException) -> str:
    """Why a database call failed, in one line, without the URL or the statement."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def make_engine(url: str, timeout: float = DATABASE_TIMEOUT) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and explicit BEGIN modes.

    Every wait is bounded by ``timeout`` (the Watchdog cuts what the server cannot
    bound). Errors never show a statement's parameters: a logged error would carry
    password and session hashes.
    """
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url, timeout)
    else:
        engine = create_engine(
            url,
            pool_size=5,
            max_overflow=10,
            pool_timeout=timeout,
            connect_args=postgres_connect_args(timeout),
            hide_parameters=True,
        )

    @event.listens_for(engine, "handle_error")
    def _reopen_after(context: Any) -> None:
        orig = context.original_exception
        code = getattr(orig, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF in _SQLITE_REOPEN) or (
            getattr(orig, "sqlstate", None) in _PG_REOPEN
        ):
            context.is_disconnect = True  # this connection, and the pool's, are replaced

    return engine


def postgres_connect_args(timeout: float) -> dict[str, Any]:
    """libpq's settings for every connection: a bounded connect; TCP keepalives and a
    bound on unacknowledged data (a network that drops packets); the server's own bounds
    on statements, lock waits, and a transaction left open by a client gone silent (its
    row locks would block every other writer)."""
    ms = int(timeout * 1000)
    return {
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq's minimum is 2 s
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 2,
        "tcp_user_timeout": ms,
        "options": (
            f"-c statement_timeout={ms} -c lock_timeout={ms} "
            f"-c idle_in_transaction_session_timeout={ms * 4}"
        ),
    }


def _sqlite_engine(url: str, timeout: float) -> Engine:
    engine = create_engine(url, connect_args={"timeout": timeout}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite, so that writers can say
        # BEGIN IMMEDIATE and queue on the busy timeout instead of failing.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Watchdog:
    """Cuts the connection of a database call that outlives its deadline.

    A database that goes silent (packets dropped, a failed-over address, a relay that
    stopped forwarding) leaves a read blocked for as long as the kernel keeps the
    connection: libpq has no client-side bound on a statement. Shutting the socket
    down makes that read fail at once, as if the server had closed the connection,
    and SQLAlchemy then replaces it.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._armed: dict[int, tuple[float, int]] = {}  # token: (deadline, socket)
        self._tokens = itertools.count()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # After a fork: the thread does not exist here, and the sockets are the parent's.
        self._armed, self._lock, self._thread = {}, threading.Condition(), None

    @contextmanager
    def watching(self, fileno: int) -> Iterator[None]:
        """Cut the socket ``fileno`` unless the block ends within the timeout."""
        token = next(self._tokens)
        with self._lock:
            self._armed[token] = (time.monotonic() + self.timeout, fileno)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bascule-watchdog", daemon=True
                )
                self._thread.start()
            self._lock.notify()
        try:
            yield
        finally:
            # Under the lock: the socket is never cut once its call has returned.
            with self._lock:
                self._armed.pop(token, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for token, (deadline, fileno) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        log.warning(
                            "the database did not answer within %.1f s: connection cut",
                            self.timeout,
                        )
                        _shut_down(fileno)
                waits = [deadline - now for deadline, _ in self._armed.values()]
                self._lock.wait(timeout=min(waits) if waits else None)


def _shut_down(fileno: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fileno))
    except OSError:  # already closed
        return
    with sock, suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class AlreadyExists(Exception):
    """A row with that key exists already."""


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
            with self.read() as conn:
                self._read_clock(conn)
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
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, kind: Kind | None, *also: Kind) -> Iterator[Connection]:
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
                yield conn

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
        with self.write(None) as conn:
            kind = change_counters.c.kind
            conn.execute(update(change_counters).where(kind == KINDS[0]).values(kind=kind))

    def _upsert(self, table: Table) -> Any:
        """An INSERT of this database's dialect, which can do ON CONFLICT ... DO UPDATE."""
        return (pg_insert if self.is_postgres else sqlite_insert)(table)

    def _bump(self, kind: Kind) -> Any:
        new = self._upsert(change_counters).values(kind=kind, counter=1)
        counter = change_counters.c.counter
        return new.on_conflict_do_update(index_elements=["kind"], set_={"counter": counter + 1})

    # -- change counters -------------------------------------------------------------------

    def versions(self) -> dict[Kind, int]:
        """The change counter of each kind of shared data (0 for a kind never changed)."""
        with self.read() as conn:
            rows = conn.execute(select(change_counters.c.kind, change_counters.c.counter))
            counters = {str(kind): int(counter) for kind, counter in rows}
            self._read_clock(conn)  # once a second at least, from each monitor
        return {kind: counters.get(kind, 0) for kind in KINDS}

    # -- maintenance state and windows -----------------------------------------------------

    @staticmethod
    def load_state(conn: Connection, *, with_log: bool = True) -> MaintenanceState | None:
        """The maintenance state with its latest log entries (none when not ``with_log``)."""
        w, s = maintenance_windows.c, maintenance_state.c
        row = conn.execute(
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
            tail = conn.execute(query).all()
        released = row.released_by is not None
        return MaintenanceState(
            user=row.released_by if released else row.user_name,
            user_triggered=bool(row.user_triggered or released),
            progress_percent=row.progress_percent,
            started_at=int(row.started_at),
            log=tuple(_log_entry(r) for r in reversed(tail)),
            log_size=int(row.log_size),
            mode=row.mode,
            window_id=int(row.window_id),
            planned_end=row.planned_end,
            lease_ttl=row.lease_ttl,
            lease_renewed_at=row.lease_renewed_at,
            released_from=row.user_name if released else None,
            auto_end=bool(row.auto_end),
        )

    @staticmethod
    def log_page(conn: Connection, window_id: int, offset: int, limit: int) -> Sequence[LogEntry]:
        """A page of the whole log of a window, oldest first."""
        rows = conn.execute(
            select(maintenance_log)
            .where(maintenance_log.c.window_id == window_id)
            .order_by(maintenance_log.c.id)
            .offset(offset)
            .limit(limit)
        ).all()
        return [_log_entry(r) for r in rows]

    @staticmethod
    def insert_state(conn: Connection, state: MaintenanceState) -> int | None:
        """Store a new state in a new window, with its log; the window's id, or None
        (storing nothing) if maintenance is on."""
        try:
            with conn.begin_nested():
                window_id = conn.execute(
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
                Store._insert_current(conn, window_id, state)
        except IntegrityError:
            return None
        for entry in state.log:
            Store.append_log(conn, window_id, entry)
        return int(window_id)

    @staticmethod
    def _insert_current(conn: Connection, window_id: int, state: MaintenanceState) -> None:
        conn.execute(
            insert(maintenance_state).values(
                id=STATE_ID,
                window_id=window_id,
                progress_percent=state.progress_percent,
                lease_ttl=state.lease_ttl,
                lease_renewed_at=state.lease_renewed_at,
            )
        )

    @staticmethod
    def set_progress(conn: Connection, progress: int) -> None:
        """Replace the progress of the stored state."""
        conn.execute(
            update(maintenance_state)
            .where(maintenance_state.c.id == STATE_ID)
            .values(progress_percent=progress)
        )

    @staticmethod
    def append_log(conn: Connection, window_id: int, entry: LogEntry) -> None:
        """Add an entry at the end of a window's log."""
        conn.execute(
            insert(maintenance_log).values(
                window_id=window_id, date=entry.date, user_name=entry.user, message=entry.message
            )
        )
        conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(log_size=maintenance_windows.c.log_size + 1)
        )

    @staticmethod
    def end_window(conn: Connection, window_id: int, by: str, now: int) -> None:
        """End the current window: maintenance is off, the window kept."""
        conn.execute(delete(maintenance_state))
        Store.close_window(conn, window_id, ENDED, by, now)

    @staticmethod
    def close_window(
        conn: Connection, window_id: int, status: str, by: str, now: int, reason: str | None = None
    ) -> None:
        """Give a window its last status (ended, skipped, cancelled), by whom and when."""
        conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(status=status, ended_at=now, ended_by=by, reason=reason)
        )

    @staticmethod
    def renew_lease(conn: Connection, window_id: int, holder: str, now: int) -> bool:
        """Renew the lease of ``holder`` on the current window; False when the current
        window is another one, or no longer held with a lease."""
        w, s = maintenance_windows.c, maintenance_state.c
        holds = select(w.id).where(
            w.id == window_id, w.user_name == holder, w.released_by.is_(None)
        )
        result = conn.execute(
            update(maintenance_state)
            .where(s.window_id.in_(holds), s.lease_ttl.is_not(None))
            .values(lease_renewed_at=now)
        )
        return result.rowcount == 1

    @staticmethod
    def release(conn: Connection, window_id: int, by: str) -> None:
        """Hand the current window over to ``by``: no lease, user-triggered from now."""
        conn.execute(update(maintenance_state).values(lease_ttl=None, lease_renewed_at=None))
        conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window_id)
            .values(released_by=by)
        )

    @staticmethod
    def get_window(conn: Connection, window_id: int) -> Window | None:
        """One window by id."""
        row = conn.execute(
            select(maintenance_windows).where(maintenance_windows.c.id == window_id)
        ).first()
        return None if row is None else _window(row)

    @staticmethod
    def history(conn: Connection, offset: int, limit: int) -> tuple[int, list[Window]]:
        """How many windows are in the history, and a page of them, newest first."""
        w = maintenance_windows.c
        kept = w.status.in_(HISTORY)
        total = conn.execute(select(func.count()).select_from(maintenance_windows).where(kept))
        rows = conn.execute(
            select(maintenance_windows)
            .where(kept)
            .order_by(func.coalesce(w.started_at, w.planned_start).desc(), w.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(total.scalar_one()), [_window(row) for row in rows]

    @staticmethod
    def insert_window(conn: Connection, window: Window) -> int:
        """Store a planned window; its id."""
        values = {
            c.name: getattr(window, _WINDOW_FIELDS.get(c.name, c.name))
            for c in maintenance_windows.columns
            if c.name != "id"
        }
        return int(
            conn.execute(
                insert(maintenance_windows).values(values).returning(maintenance_windows.c.id)
            ).scalar_one()
        )

    @staticmethod
    def planned_windows(conn: Connection, due_by: int | None = None) -> list[Window]:
        """The planned windows (those whose start came by ``due_by``, when given),
        soonest first."""
        w = maintenance_windows.c
        query = select(maintenance_windows).where(w.status == PLANNED)
        if due_by is not None:
            query = query.where(w.planned_start <= due_by)
        rows = conn.execute(query.order_by(w.planned_start, w.id))
        return [_window(row) for row in rows]

    @staticmethod
    def start_planned(conn: Connection, window: Window, now: int) -> None:
        """Start a planned window: it becomes the current one, its log starts."""
        conn.execute(
            update(maintenance_windows)
            .where(maintenance_windows.c.id == window.id)
            .values(status=ON, started_at=now)
        )
        state = MaintenanceState(window.user, window.user_triggered, 1, now, mode=window.mode)
        Store._insert_current(conn, window.id, state)
        # Started by the schedule, held by who planned it, with their message.
        Store.append_log(conn, window.id, LogEntry(now, SCHEDULE_ACTOR, STARTED_MESSAGE))
        if window.message:
            Store.append_log(conn, window.id, LogEntry(now, window.user, window.message))

    @staticmethod
    def prune_windows(conn: Connection, before: int) -> int:
        """Forget the windows (and their logs) that ended, were skipped or cancelled
        before ``before``; how many."""
        w = maintenance_windows.c
        old = select(w.id).where(w.status.in_((ENDED, SKIPPED, CANCELLED)), w.ended_at < before)
        conn.execute(delete(maintenance_log).where(maintenance_log.c.window_id.in_(old)))
        return conn.execute(delete(maintenance_windows).where(w.id.in_(old))).rowcount

    # -- users and sessions ----------------------------------------------------------------

    @staticmethod
    def get_user(conn: Connection, name: str) -> UserRecord | None:
        """A user by name, with roles."""
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            return None
        roles = conn.execute(
            select(user_roles.c.role).where(user_roles.c.user_name == name).order_by("role")
        ).scalars()
        return UserRecord(row.name, row.password_hash, tuple(roles))

    @staticmethod
    def list_users(conn: Connection) -> list[UserRecord]:
        """Every user, by name."""
        names = conn.execute(select(users.c.name).order_by(users.c.name)).scalars().all()
        found = (Store.get_user(conn, name) for name in names)
        return [user for user in found if user is not None]

    @staticmethod
    def count_users(conn: Connection) -> int:
        """How many users exist."""
        return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    @staticmethod
    def insert_user(
        conn: Connection, name: str, password_hash: str, roles: Sequence[str], now: int
    ) -> None:
        """Create a user; raise AlreadyExists if the name is taken."""
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(users).values(name=name, password_hash=password_hash, created_at=now)
                )
        except IntegrityError:
            raise AlreadyExists(name) from None
        for role in sorted(set(roles)):
            conn.execute(insert(user_roles).values(user_name=name, role=role))

    @staticmethod
    def set_password_hash(conn: Connection, name: str, password_hash: str) -> bool:
        """Replace a user's password hash; False if there is no such user."""
        result = conn.execute(
            update(users).where(users.c.name == name).values(password_hash=password_hash)
        )
        return result.rowcount == 1

    @staticmethod
    def delete_user(conn: Connection, name: str) -> bool:
        """Remove a user with their roles and sessions; False if there is no such user."""
        conn.execute(delete(sessions).where(sessions.c.user_name == name))
        conn.execute(delete(trusted_devices).where(trusted_devices.c.user_name == name))
        conn.execute(delete(user_roles).where(user_roles.c.user_name == name))
        return conn.execute(delete(users).where(users.c.name == name)).rowcount == 1

    @staticmethod
    def insert_session(
        conn: Connection, token_hash: str, user: str, now: int, expires_at: int
    ) -> None:
        """Record a new session; expired sessions are swept on the way."""
        conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
        conn.execute(
            insert(sessions).values(
                token_hash=token_hash, user_name=user, created_at=now, expires_at=expires_at
            )
        )

    @staticmethod
    def get_session(conn: Connection, token_hash: str) -> SessionRecord | None:
        """A session by token hash, with its user."""
        row = conn.execute(
            select(sessions.c.user_name, sessions.c.expires_at).where(
                sessions.c.token_hash == token_hash
            )
        ).first()
        if row is None:
            return None
        user = Store.get_user(conn, row.user_name)
        return None if user is None else SessionRecord(user, int(row.expires_at))

    @staticmethod
    def delete_session(conn: Connection, token_hash: str) -> bool:
        """Revoke a session; False if there was none."""
        result = conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))
        return result.rowcount == 1

    @staticmethod
    def delete_sessions_of(conn: Connection, user: str) -> int:
        """Revoke every session of a user; the number revoked."""
        return conn.execute(delete(sessions).where(sessions.c.user_name == user)).rowcount

    # -- trusted devices -------------------------------------------------------------------

    @staticmethod
    def device_user(conn: Connection, token_hash: str, now: int) -> str | None:
        """The user a device token trusted until after ``now`` belongs to, if any."""
        devices = trusted_devices.c
        found = conn.execute(
            select(devices.user_name).where(
                devices.token_hash == token_hash, devices.expires_at > now
            )
        ).scalar_one_or_none()
        return None if found is None else str(found)

    @staticmethod
    def trust_device(conn: Connection, token_hash: str, user: str, now: int, until: int) -> None:
        """Trust a device token for ``user`` until ``until`` (again, if it was); devices
        no longer trusted are swept on the way."""
        devices = trusted_devices.c
        conn.execute(delete(trusted_devices).where(devices.expires_at <= now))
        updated = conn.execute(
            update(trusted_devices)
            .where(devices.token_hash == token_hash, devices.user_name == user)
            .values(expires_at=until)
        )
        if updated.rowcount == 0:
            conn.execute(
                insert(trusted_devices).values(
                    token_hash=token_hash, user_name=user, created_at=now, expires_at=until
                )
            )

    @staticmethod
    def forget_devices_of(conn: Connection, user: str) -> None:
        """Trust none of the devices ``user`` signed in with."""
        conn.execute(delete(trusted_devices).where(trusted_devices.c.user_name == user))

    # -- bypass tokens ---------------------------------------------------------------------

    @staticmethod
    def insert_bypass(conn: Connection, record: BypassRecord) -> bool:
        """Store a new token; False, storing nothing, if its name is taken."""
        values = {c.name: getattr(record, c.name) for c in bypass_tokens.columns}
        try:
            with conn.begin_nested():
                conn.execute(insert(bypass_tokens).values(values))
        except IntegrityError:
            return False
        return True

    @staticmethod
    def list_bypass(conn: Connection) -> list[BypassRecord]:
        """Every token, by name."""
        rows = conn.execute(select(bypass_tokens).order_by(bypass_tokens.c.name))
        return [BypassRecord(**row._mapping) for row in rows]

    @staticmethod
    def delete_bypass(conn: Connection, name: str) -> bool:
        """End a token; False if there is none of that name."""
        result = conn.execute(delete(bypass_tokens).where(bypass_tokens.c.name == name))
        return result.rowcount == 1

    @staticmethod
    def record_bypass_uses(conn: Connection, uses: dict[str, tuple[int, int]]) -> None:
        """Add to each token's count of uses, and set when it was last used
        (``uses``: by name, how many more times and the last time)."""
        column = bypass_tokens.c
        for name, (count, last) in uses.items():
            later = case((column.last_used_at > last, column.last_used_at), else_=last)
            conn.execute(
                update(bypass_tokens)
                .where(column.name == name)
                .values(uses=column.uses + count, last_used_at=later)
            )

    # -- failed authentications ------------------------------------------------------------

    def add_failure(self, conn: Connection, key: str, now: int, window: int) -> tuple[int, int]:
        """Count one failure for ``key``, in its window of ``window`` ms that starts now
        unless one is running (windows over are swept on the way); the count and the
        window's start, as this write left them (atomically: concurrent writers each see
        theirs)."""
        failures = auth_failures.c
        conn.execute(delete(auth_failures).where(failures.window_end <= now))
        upsert = self._upsert(auth_failures)
        row = conn.execute(
            upsert.values(key=key, failures=1, window_start=now, window_end=now + window)
            .on_conflict_do_update(
                index_elements=[failures.key],
                set_={"failures": failures.failures + 1},
            )
            .returning(failures.failures, failures.window_start)
        ).one()
        return int(row.failures), int(row.window_start)

    @staticmethod
    def forgive_failure(conn: Connection, key: str) -> None:
        """Take back one failure counted for ``key``."""
        conn.execute(
            update(auth_failures)
            .where(auth_failures.c.key == key, auth_failures.c.failures > 0)
            .values(failures=auth_failures.c.failures - 1)
        )

    @staticmethod
    def clear_failures(conn: Connection, key: str) -> None:
        """Forget the failures of ``key``."""
        conn.execute(delete(auth_failures).where(auth_failures.c.key == key))


NOTIFY_CHANNEL = "bascule_changes"
# PostgreSQL's clock now (not the transaction's start), in epoch milliseconds.
_DATABASE_MS = func.floor(func.extract("epoch", func.clock_timestamp()) * 1000)


# The fields of Window whose column has another name.
_WINDOW_FIELDS = {"user_name": "user"}


def _window(row: Any) -> Window:
    values = {_WINDOW_FIELDS.get(k, k): v for k, v in row._mapping.items()}
    values["user_triggered"] = bool(values["user_triggered"])
    values["auto_end"] = bool(values["auto_end"])
    return Window(**values)


def _log_entry(row: Any) -> LogEntry:
    return LogEntry(id=int(row.id), date=int(row.date), user=row.user_name, message=row.message)
