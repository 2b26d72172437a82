"""Guessing passwords is throttled, per user name and per client address, shared by every
instance through the database, answered 429 before any password is checked."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
from sqlalchemy import select

from bascule.auth import Throttle, Throttled
from bascule.store import Store, auth_failures
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
            here.attempt("admin", "10.0.0.1")  # three attempts, none proven right
        with pytest.raises(Throttled) as refused:
            there.attempt("admin", "10.0.0.9")
        assert refused.value.retry_after == 60
        clock[0] += 59_000
        with pytest.raises(Throttled) as refused:
            there.attempt("admin", "10.0.0.9")  # what it remembered: no database write
        assert refused.value.retry_after == 1
        clock[0] += 1_000  # the window is over
        there.attempt("admin", "10.0.0.9")
        here.attempt("admin", "10.0.0.1")  # what this one remembered is over too
    finally:
        other_store.close()


def test_guesses_sent_all_at_once_get_no_more_tries_than_one_by_one(store):
    throttle = Throttle(store, per_user=100, per_address=4, window=60)
    barrier = threading.Barrier(20)

    def guess(_: int) -> bool:
        barrier.wait()
        try:
            throttle.attempt("admin", "10.0.0.1")
        except Throttled:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        let_in = list(pool.map(guess, range(20)))
    assert let_in.count(True) == 4


def test_a_right_attempt_is_not_a_failure_of_its_address(store):
    throttle = Throttle(store, per_user=100, per_address=2, window=60)
    for _ in range(5):
        throttle.attempt("admin", "10.0.0.1")
        throttle.succeeded("admin", "10.0.0.1")
    throttle.attempt("admin", "10.0.0.1")
    throttle.attempt("admin", "10.0.0.1")
    with pytest.raises(Throttled):
        throttle.attempt("admin", "10.0.0.1")


def counted_keys(store) -> list[str]:
    with store.read() as conn:
        return sorted(conn.execute(select(auth_failures.c.key)).scalars())


def test_failures_of_windows_over_are_swept(store):
    clock = [1_800_000_000_000]
    throttle = Throttle(store, per_user=3, per_address=3, window=60, clock=lambda: clock[0])
    for i in range(50):
        throttle.attempt(f"user{i}", f"10.0.0.{i}")
    clock[0] += 61_000
    throttle.attempt("last", "10.0.9.9")
    assert counted_keys(store) == ["address:10.0.9.9", "user:last"]


def test_names_no_user_can_have_are_counted_against_the_address_only(store):
    throttle = Throttle(store, per_user=1, per_address=2, window=60)
    throttle.attempt("no such\x00name", "10.0.0.1")
    throttle.attempt("x" * 400, "10.0.0.1")
    assert counted_keys(store) == ["address:10.0.0.1"]
    with pytest.raises(Throttled):
        throttle.attempt("anyone", "10.0.0.1")
