"""Shared fixtures: a fresh database per test, the real ASGI app with response validation."""

from __future__ import annotations

import base64
import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from bascule.app import create_app
from bascule.config import Settings
from bascule.store import Store

ADMIN_PASSWORD = "admin-secret-1"
VIEWER_PASSWORD = "viewer-secret-1"


def basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic("admin", ADMIN_PASSWORD)
VIEWER = basic("viewer", VIEWER_PASSWORD)


PG_ENV = "BASCULE_TEST_DATABASE_URL"
# Used when PG_ENV is unset, if a server answers there (as on the machines CI runs on).
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@functools.cache
def postgres_server() -> str | None:
    """The PostgreSQL server to test on: PG_ENV, or else the local one if it answers."""
    configured = os.environ.get(PG_ENV)
    if configured:
        return configured
    import psycopg

    try:
        psycopg.connect(LOCAL_POSTGRES, connect_timeout=2).close()
    except psycopg.Error:
        return None
    return LOCAL_POSTGRES


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the PostgreSQL server of ``server_url``; drop it after."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"bascule_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch) -> None:
    """In this process, Argon2's cheapest parameters: every test checks passwords, and the
    default's 64 MiB and three passes cost about 0.15 s each time. Servers started as
    subprocesses keep the default."""
    from argon2 import profiles

    monkeypatch.setattr("bascule.auth.HASH_PARAMETERS", profiles.CHEAPEST)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, and a PostgreSQL database when available."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/bascule.db"
        return
    server_url = postgres_server()
    if not server_url:
        pytest.skip(
            f"no PostgreSQL server answers at {LOCAL_POSTGRES}: set "
            f"{PG_ENV}=postgresql://USER@HOST:PORT/DB to run the PostgreSQL tests"
        )
    with fresh_postgres_database(server_url) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.from_env(
        {},
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        validate_responses=True,
        poll_interval=0.05,
    )


@pytest.fixture
def app(settings: Settings):
    app = create_app(settings)
    app.services.auth.add_user("viewer", VIEWER_PASSWORD, [])
    app.services.monitor.refresh()  # settled: later changes are the test's own
    yield app
    app.services.close()


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    from bascule.schema import prepare

    store = Store(database_url)
    prepare(store)
    yield store
    store.close()


# Engines break_database took away: disposed once the test's app has stopped its monitor.
# Disposed earlier, a connection the monitor held would go back to the disposed pool and
# be left open.
RETIRED_ENGINES: list[Engine] = []


@pytest.fixture(autouse=True)
def _dispose_retired_engines() -> Iterator[None]:
    yield  # autouse: set up before, so torn down after, the app fixture
    while RETIRED_ENGINES:
        RETIRED_ENGINES.pop().dispose()


def break_database(store: Store) -> None:
    """Make the database unreachable for ``store``, as if its server had gone away.

    The monitor is left running: it must notice on its own.
    """
    from bascule.db import make_engine

    RETIRED_ENGINES.append(store.engine)
    if store.is_postgres:
        store.engine = make_engine("postgresql://nobody@127.0.0.1:9/gone")
    else:
        store.engine = make_engine("sqlite:////nonexistent/directory/gone.db")
