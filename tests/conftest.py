"""Shared fixtures: a fresh database per test, the real ASGI app with response validation."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
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


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/bascule.db"


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
