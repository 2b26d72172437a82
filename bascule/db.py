"""The database connection: URLs, engines and their drivers' settings, every wait bounded
(the Watchdog cuts what PostgreSQL's client cannot), and how a failure is told."""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

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


def note_failure(
    logger: logging.Logger, previous: str | None, exc: BaseException, what: str
) -> str:
    """Log that ``what`` failed, and why (describe_error), unless it failed for that same
    reason the last time (``previous``): the reason, to pass next time."""
    reason = describe_error(exc)
    if reason != previous:
        logger.warning("%s: %s", what, reason)
    return reason


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


def upsert(table: Table, is_postgres: bool) -> Any:
    """An INSERT of this database's dialect, which can do ON CONFLICT ... DO UPDATE."""
    return (pg_insert if is_postgres else sqlite_insert)(table)
