"""Guessing passwords is throttled, per user name and per client address, shared by every
instance through the database, answered 429 before any password is checked."""

from __future__ import annotations

import pytest

from bascule.auth import Throttle, Throttled
from bascule.store import Store
from tests.conftest import ADMIN, ADMIN_PASSWORD, VIEWER, basic
from tests.test_api import error, ok

WRONG = basic("admin", "not-the-password")


@pytest.fixture
def settings(settings):
    """Small limits, so that a test reaches them in a few requests."""
    import dataclasses

    return dataclasses.replace(
        settings, failed_auth_per_address=4, failed_auth_per_user=6, failed_auth_window=60
    )


@pytest.fixture
def verified(app, monkeypatch) -> list[str]:
    """The names whose password Argon2 checked, in order."""
    names: list[str] = []
    check = app.services.auth.check_credentials

    def counted(name, password):
        names.append(name)
        return check(name, password)

    monkeypatch.setattr(app.services.auth, "check_credentials", counted)
    return names


def client_at(app, address: str):
    return app.test_client(client=(address, 40000))


def test_basic_guesses_past_the_address_limit_get_429_unchecked(app, verified):
    with client_at(app, "10.0.0.1") as attacker:
        for _ in range(4):
            error(attacker.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
        refused = attacker.get("/rest/v1/maintenance", headers=WRONG)
        error(refused, 429, 103)
        assert 55 <= int(refused.headers["retry-after"]) <= 60
        assert "try again in" in refused.json()["error"]["message"]
        # the right password from there is refused too: the address is out of guesses
        error(attacker.get("/rest/v1/maintenance", headers=ADMIN), 429, 103)
    assert verified == ["admin"] * 4  # Argon2 ran for the four failures only
    with client_at(app, "10.0.0.2") as someone_else:  # another address is not concerned
        ok(someone_else.get("/rest/v1/maintenance", headers=ADMIN), 200)


def test_login_guesses_are_counted_with_basic_ones(app):
    form = {"username": "admin", "password": "nope"}
    with client_at(app, "10.0.0.1") as attacker:
        for _ in range(2):
            error(attacker.post("/login", data=form), 401, 101)
            error(attacker.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
        error(attacker.post("/login", data={**form, "password": ADMIN_PASSWORD}), 429, 103)


def test_a_name_guessed_from_many_addresses_is_locked_for_all(app, verified):
    for i in range(6):
        with client_at(app, f"10.0.1.{i}") as guesser:
            error(guesser.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
    with client_at(app, "10.0.2.1") as owner:
        error(owner.get("/rest/v1/maintenance", headers=ADMIN), 429, 103)
        ok(owner.get("/rest/v1/maintenance", headers=VIEWER), 200)  # other names are not
    assert verified.count("admin") == 6


def test_credentials_verified_before_and_sessions_are_not_locked_out(app):
    with client_at(app, "10.0.3.1") as owner:
        ok(owner.get("/rest/v1/maintenance", headers=ADMIN), 200)  # verified, remembered
        login = owner.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
        ok(login, 200)
    for i in range(6):
        with client_at(app, f"10.0.4.{i}") as guesser:
            error(guesser.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
    with client_at(app, "10.0.3.1") as owner:
        ok(owner.get("/rest/v1/maintenance", headers=ADMIN), 200)
        owner.cookies.set("JSESSIONID", login.cookies["JSESSIONID"])
        ok(owner.post("/rest/v1/maintenance"), 201)


def test_a_right_password_forgets_the_names_failures(app):
    with client_at(app, "10.0.5.1") as owner:
        for _ in range(3):
            error(owner.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
        app.services.auth.forget_users()
        ok(owner.get("/rest/v1/maintenance", headers=ADMIN), 200)
    for i in range(5):  # six more from elsewhere would be needed, not three
        with client_at(app, f"10.0.6.{i}") as guesser:
            error(guesser.get("/rest/v1/maintenance", headers=WRONG), 401, 101)


def test_the_limits_are_shared_by_every_instance(store, database_url):
    clock = [1_800_000_000_000]
    here = Throttle(store, per_user=3, per_address=100, window=60, clock=lambda: clock[0])
    other_store = Store(database_url)
    try:
        there = Throttle(
            other_store, per_user=3, per_address=100, window=60, clock=lambda: clock[0]
        )
        for _ in range(3):
            here.check("admin", "10.0.0.1")
            here.failed("admin", "10.0.0.1")
        with pytest.raises(Throttled) as refused:
            there.check("admin", "10.0.0.9")
        assert refused.value.retry_after == 60
        clock[0] += 59_000
        with pytest.raises(Throttled) as refused:
            there.check("admin", "10.0.0.9")
        assert refused.value.retry_after == 1
        clock[0] += 1_000  # the window is over
        there.check("admin", "10.0.0.9")
        here.check("admin", "10.0.0.1")  # what this one remembered is over too
    finally:
        other_store.close()


def test_failures_of_windows_over_are_swept(store):
    clock = [1_800_000_000_000]
    throttle = Throttle(store, per_user=3, per_address=3, window=60, clock=lambda: clock[0])
    for i in range(50):
        throttle.failed(f"user{i}", f"10.0.0.{i}")
    clock[0] += 61_000
    throttle.failed("last", "10.0.9.9")
    with store.read() as conn:
        remaining = store.get_failures(
            conn, [f"user:user{i}" for i in range(50)] + ["user:last"], 0
        )
    assert list(remaining) == ["user:last"]


def test_names_no_user_can_have_are_counted_against_the_address_only(store):
    throttle = Throttle(store, per_user=1, per_address=2, window=60)
    throttle.failed("no such\x00name", "10.0.0.1")
    throttle.check("no such\x00name", "10.0.0.2")  # no row for the name
    throttle.failed("x" * 400, "10.0.0.1")
    with pytest.raises(Throttled):
        throttle.check("anyone", "10.0.0.1")
