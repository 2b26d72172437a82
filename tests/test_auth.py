"""Guessing passwords is throttled, shared by every instance through the database, answered
429 before any password is checked; and no one can lock a user out of a browser they signed
in with."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
from sqlalchemy import select

from bascule.store import Store
from bascule.tables import auth_failures
from bascule.throttle import Attempt, Throttle, Throttled
from tests.conftest import ADMIN, ADMIN_PASSWORD, VIEWER, basic
from tests.test_api import error, ok

WRONG = basic("admin", "not-the-password")
GUESS = Attempt("admin", "10.0.0.1", known=True)


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


def test_basic_guesses_past_the_limit_of_a_name_at_an_address_get_429_unchecked(app, verified):
    with client_at(app, "10.0.0.1") as attacker:
        for _ in range(4):
            error(attacker.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
        refused = attacker.get("/rest/v1/maintenance", headers=WRONG)
        error(refused, 429, 103)
        assert 55 <= int(refused.headers["retry-after"]) <= 60
        assert "try again in" in refused.json()["error"]["message"]
        # the right password for that name from there is refused too; other names go on
        error(attacker.get("/rest/v1/maintenance", headers=ADMIN), 429, 103)
        ok(attacker.get("/rest/v1/maintenance", headers=VIEWER), 200)
    assert verified == ["admin"] * 4 + ["viewer"]  # Argon2 ran for the four failures only
    with client_at(app, "10.0.0.2") as someone_else:  # the name elsewhere is not concerned
        ok(someone_else.get("/rest/v1/maintenance", headers=ADMIN), 200)


def test_guesses_past_a_limit_this_process_knows_cost_no_database_read(app, monkeypatch):
    reads: list[str] = []
    known = app.services.auth.known

    def counted(name, device):
        reads.append(name)
        return known(name, device)

    monkeypatch.setattr(app.services.auth, "known", counted)
    with client_at(app, "10.0.13.1") as attacker:
        for _ in range(5):
            attacker.get("/rest/v1/maintenance", headers=WRONG)
        assert len(reads) == 5  # four checked, the fifth refused once counted
        for _ in range(20):
            error(attacker.get("/rest/v1/maintenance", headers=WRONG), 429, 103)
    assert len(reads) == 5


def test_login_guesses_are_counted_with_basic_ones(app):
    form = {"username": "admin", "password": "nope"}
    with client_at(app, "10.0.0.1") as attacker:
        for _ in range(2):
            error(attacker.post("/login", data=form), 401, 101)
            error(attacker.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
        error(attacker.post("/login", data={**form, "password": ADMIN_PASSWORD}), 429, 103)


def test_a_name_guessed_from_many_addresses_gets_its_days_guesses_and_no_more(app, verified):
    # Six a day for clients the name never signed in with (this test's settings), however
    # many addresses they come from: a few hundred a day by default.
    for i in range(20):
        with client_at(app, f"10.0.1.{i}") as guesser:
            answer = guesser.get("/rest/v1/maintenance", headers=WRONG)
            error(answer, 401 if i < 6 else 429, 101 if i < 6 else 103)
    assert verified.count("admin") == 6
    with client_at(app, "10.0.2.1") as newcomer:
        refused = newcomer.get("/rest/v1/maintenance", headers=ADMIN)
        error(refused, 429, 103)
        assert int(refused.headers["retry-after"]) > 86_000  # the rest of the day
        ok(newcomer.get("/rest/v1/maintenance", headers=VIEWER), 200)  # other names go on


def sign_in(client, password: str = ADMIN_PASSWORD, device: str | None = None):
    """POST /login as admin, with the device cookie ``device`` if given (and nothing
    the client keeps)."""
    cookies = {"Cookie": f"bascule-device={device}"} if device else {}
    form = {"username": "admin", "password": password}
    return client.post("/login", data=form, headers=cookies)


def device_of(answer) -> str:
    """The device token a sign-in's answer gives its browser."""
    (cookie,) = [c for c in answer.headers.get_list("set-cookie") if "bascule-device=" in c]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=7776000" in cookie
    return cookie.split(";")[0].partition("=")[2]


def test_no_attacker_locks_out_an_admin_who_signed_in_before_even_from_their_address(settings, app):
    from bascule.app import create_app

    with client_at(app, "10.0.7.1") as browser:
        device = device_of(ok_answer(sign_in(browser)))
    # From the admin's own address (the same NAT), and from a hundred others: every
    # limit the throttle has, reached.
    for i in range(100):
        with client_at(app, "10.0.7.1" if i % 2 else f"10.0.8.{i}") as attacker:
            sign_in(attacker, f"guess-{i}", device="made-up")
            attacker.get("/rest/v1/maintenance", headers=WRONG)
    # A fresh instance, nothing in its caches: the admin's browser signs in and switches.
    fresh = create_app(settings)
    try:
        with client_at(fresh, "10.0.7.1") as stranger:  # the same address, no device
            error(sign_in(stranger), 429, 103)
        with client_at(fresh, "10.0.7.1") as browser:
            error(sign_in(browser, "a-typo-typo", device=device), 401, 101)
            signed_in = ok_answer(sign_in(browser, device=device))
            assert device_of(signed_in) == device  # trusted again, the same device
            browser.cookies.set("JSESSIONID", signed_in.cookies["JSESSIONID"])
            ok(browser.post("/rest/v1/maintenance"), 201)
    finally:
        fresh.services.close()


def ok_answer(answer):
    assert answer.status_code == 200, answer.text
    return answer


def test_a_device_is_trusted_for_its_own_user_only_and_until_the_password_changes(app):
    with client_at(app, "10.0.9.1") as browser:
        form = {"username": "viewer", "password": "viewer-secret-1"}
        viewers_device = device_of(ok_answer(browser.post("/login", data=form)))
    with client_at(app, "10.0.9.2") as browser:
        admins_device = device_of(ok_answer(sign_in(browser)))
    for i in range(6):  # the admin's day, spent from elsewhere
        with client_at(app, f"10.0.10.{i}") as guesser:
            guesser.get("/rest/v1/maintenance", headers=WRONG)
    app.services.auth.forget_users()  # no credentials remembered: the throttle decides
    with client_at(app, "10.0.9.1") as browser:
        error(sign_in(browser, device=viewers_device), 429, 103)  # the viewer's device
        ok_answer(sign_in(browser, device=admins_device))
    app.services.auth.set_password("admin", "a-new-password-1")
    with client_at(app, "10.0.9.2") as browser:  # no longer trusted
        error(sign_in(browser, "a-new-password-1", device=admins_device), 429, 103)


def test_a_trusted_device_has_guesses_of_its_own_only(app, verified):
    with client_at(app, "10.0.11.1") as browser:
        device = device_of(ok_answer(sign_in(browser)))
        for _ in range(4):
            error(sign_in(browser, "typo-typo", device=device), 401, 101)
        app.services.auth.forget_users()
        error(sign_in(browser, device=device), 429, 103)  # this device is out of guesses
    with client_at(app, "10.0.11.1") as other:
        ok_answer(sign_in(other))  # the same address without it is not


def test_names_that_are_no_users_are_never_refused_and_soon_not_checked(store, app, verified):
    from bascule.throttle import UNKNOWN_NAMES_PER_ADDRESS

    with client_at(app, "10.0.12.1") as prober:
        for i in range(UNKNOWN_NAMES_PER_ADDRESS + 20):
            answer = prober.get("/rest/v1/maintenance", headers=basic(f"nobody{i}", "x" * 8))
            error(answer, 401, 101)
        ok(prober.get("/rest/v1/maintenance", headers=ADMIN), 200)
    assert len(verified) == UNKNOWN_NAMES_PER_ADDRESS + 1  # then no Argon2 for them


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


def test_a_right_password_forgets_the_failures_at_its_address_not_the_days(app):
    with client_at(app, "10.0.5.1") as owner:
        for _ in range(3):
            error(owner.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
        app.services.auth.forget_users()
        ok(owner.get("/rest/v1/maintenance", headers=ADMIN), 200)
        for _ in range(3):  # four more here would be needed, not one
            error(owner.get("/rest/v1/maintenance", headers=WRONG), 401, 101)
    with client_at(app, "10.0.6.1") as guesser:  # six for the day: three, and three
        error(guesser.get("/rest/v1/maintenance", headers=WRONG), 429, 103)


def test_the_limits_are_shared_by_every_instance(store, database_url):
    clock = [1_800_000_000_000]
    here = Throttle(store, per_user=100, per_address=3, window=60, clock=lambda: clock[0])
    other_store = Store(database_url)
    try:
        there = Throttle(
            other_store, per_user=100, per_address=3, window=60, clock=lambda: clock[0]
        )
        for _ in range(3):
            here.attempt(GUESS)  # three attempts, none proven right
        with pytest.raises(Throttled) as refused:
            there.attempt(GUESS)
        assert refused.value.retry_after == 60
        clock[0] += 59_000
        with pytest.raises(Throttled) as refused:
            there.attempt(GUESS)  # what it remembered: no database write
        assert refused.value.retry_after == 1
        clock[0] += 1_000  # the window is over
        there.attempt(GUESS)
        here.attempt(GUESS)  # what this one remembered is over too
    finally:
        other_store.close()


def test_guesses_sent_all_at_once_get_no_more_tries_than_one_by_one(store):
    throttle = Throttle(store, per_user=100, per_address=4, window=60)
    barrier = threading.Barrier(20)

    def guess(_: int) -> bool:
        barrier.wait()
        try:
            throttle.attempt(GUESS)
        except Throttled:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        let_in = list(pool.map(guess, range(20)))
    assert let_in.count(True) == 4


def test_a_right_attempt_is_not_a_failure_of_its_address(store):
    throttle = Throttle(store, per_user=100, per_address=2, window=60)
    for _ in range(5):
        throttle.attempt(GUESS)
        throttle.succeeded(GUESS)
    throttle.attempt(GUESS)
    throttle.attempt(GUESS)
    with pytest.raises(Throttled):
        throttle.attempt(GUESS)


def counted_keys(store) -> list[str]:
    with store.read() as tx:
        return sorted(tx.conn.execute(select(auth_failures.c.key)).scalars())


def test_failures_of_windows_over_are_swept(store):
    clock = [1_800_000_000_000]
    throttle = Throttle(store, per_user=3, per_address=3, window=60, clock=lambda: clock[0])
    for i in range(50):
        throttle.attempt(Attempt(f"user{i}", f"10.0.0.{i}", known=True))
    clock[0] += 61_000
    throttle.attempt(Attempt("last", "10.0.9.9", known=False))
    kept = counted_keys(store)  # the days of the fifty names, and the last address
    assert len(kept) == 51 and "unknown:10.0.9.9" in kept
    assert not [key for key in kept if key.startswith("pair:")]
    clock[0] += 86_400_000
    throttle.attempt(Attempt("last", "10.0.9.9", known=False))
    assert counted_keys(store) == ["unknown:10.0.9.9"]


def test_names_no_user_can_have_are_counted_against_the_address_only(store):
    from bascule.throttle import UNKNOWN_NAMES_PER_ADDRESS

    throttle = Throttle(store, per_user=1, per_address=2, window=60)
    for name in ["no such\x00name", "x" * 400] * (UNKNOWN_NAMES_PER_ADDRESS // 2):
        assert throttle.attempt(Attempt(name, "10.0.0.1", known=False))
    assert counted_keys(store) == ["unknown:10.0.0.1"]
    assert not throttle.attempt(Attempt("anyone", "10.0.0.1", known=False))  # not checked
