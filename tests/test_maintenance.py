"""The state machine, by plain function calls on a real store."""

from __future__ import annotations

import threading

import pytest

from bascule.maintenance import Maintenance, maintenance_window
from bascule.model import (
    ADMIN,
    MESSAGE_MAX_LENGTH,
    STARTED_MESSAGE,
    Actor,
    ActorKind,
    AlreadyEnabled,
    Forbidden,
    InvalidUpdate,
    NotEnabled,
    NotYours,
)
from bascule.service import automatic_maintenance

ADMIN_USER = Actor("alice", ActorKind.API_USER, frozenset({ADMIN}))
VIEWER = Actor("bob", ActorKind.API_USER, frozenset())
DEPLOY = Actor.process("deploy")


@pytest.fixture
def maintenance(store):
    return Maintenance(store, clock=lambda: 1_700_000_000_000)


def test_off_at_first(maintenance):
    assert maintenance.state() is None


def test_enable_records_user_progress_and_first_log_entry(maintenance):
    maintenance.enable(ADMIN_USER)
    state = maintenance.state()
    assert state.user == "alice"
    assert state.user_triggered is True
    assert state.progress_percent is None and not state.progress_posted  # none posted
    shown = state.as_json(1_700_000_000_000)
    assert (shown["progressPercent"], shown["progressSet"]) == (1, False)  # Alien4Cloud's 1
    assert [(e.date, e.user, e.message) for e in state.log] == [
        (1_700_000_000_000, "alice", STARTED_MESSAGE)
    ]
    assert state.log_size == 1


def test_enable_with_a_first_message_and_progress(maintenance):
    maintenance.enable(DEPLOY, message="Migrating", progress=5)
    state = maintenance.state()
    assert (state.user_triggered, state.progress_percent, state.log_size) == (False, 5, 2)
    assert [e.message for e in state.log] == [STARTED_MESSAGE, "Migrating"]


@pytest.mark.parametrize(
    ("message", "progress"), [("   ", None), ("x" * (MESSAGE_MAX_LENGTH + 1), None), (None, 101)]
)
def test_enable_with_an_invalid_first_update_changes_nothing(maintenance, message, progress):
    with pytest.raises(InvalidUpdate):
        maintenance.enable(ADMIN_USER, message=message, progress=progress)
    assert maintenance.state() is None


def test_enable_twice_is_refused(maintenance):
    maintenance.enable(ADMIN_USER)
    with pytest.raises(AlreadyEnabled):
        maintenance.enable(ADMIN_USER)
    with pytest.raises(AlreadyEnabled):
        maintenance.enable(DEPLOY)


def test_update_appends_message_and_replaces_progress(maintenance):
    maintenance.enable(ADMIN_USER)
    maintenance.update(ADMIN_USER, message="copying", progress=40)
    maintenance.update(ADMIN_USER, progress=60)
    maintenance.update(ADMIN_USER, message="  indexing  ")
    state = maintenance.state()
    assert state.progress_percent == 60
    # stored as given, spaces included
    assert [e.message for e in state.log] == [STARTED_MESSAGE, "copying", "  indexing  "]


@pytest.mark.parametrize(
    ("message", "progress"),
    [
        ("   ", None),
        ("a\x00b", None),
        ("\ud800", None),
        ("x" * (MESSAGE_MAX_LENGTH + 1), None),
        (None, 101),
        (None, -1),
    ],
)
def test_invalid_updates_change_nothing(maintenance, message, progress):
    maintenance.enable(ADMIN_USER)
    before = maintenance.state()
    with pytest.raises(InvalidUpdate):
        maintenance.update(ADMIN_USER, message=message, progress=progress)
    assert maintenance.state() == before


def test_empty_update_checks_the_state_and_changes_nothing(maintenance):
    with pytest.raises(NotEnabled):
        maintenance.update(ADMIN_USER)
    maintenance.enable(DEPLOY)
    with pytest.raises(NotYours):
        maintenance.update(ADMIN_USER)
    before = maintenance.state()
    maintenance.update(DEPLOY)
    assert maintenance.state() == before


def test_update_and_disable_when_off(maintenance):
    with pytest.raises(NotEnabled):
        maintenance.update(ADMIN_USER, message="x")
    with pytest.raises(NotEnabled):
        maintenance.disable(ADMIN_USER)


def test_disable(maintenance):
    maintenance.enable(ADMIN_USER)
    maintenance.disable(ADMIN_USER)
    assert maintenance.state() is None
    maintenance.enable(ADMIN_USER)
    assert [e.message for e in maintenance.state().log] == [STARTED_MESSAGE]


def test_users_without_admin_role_cannot_change_anything(maintenance):
    for action in (
        lambda: maintenance.enable(VIEWER),
        lambda: maintenance.update(VIEWER, message="x"),
        lambda: maintenance.disable(VIEWER),
    ):
        with pytest.raises(Forbidden):
            action()
    maintenance.enable(ADMIN_USER)
    with pytest.raises(Forbidden):
        maintenance.disable(VIEWER)
    assert maintenance.state() is not None


def test_automatic_maintenance_cannot_be_changed_by_api_users(maintenance):
    maintenance.enable(DEPLOY)
    state = maintenance.state()
    assert state.user == "deploy"
    assert state.user_triggered is False
    with pytest.raises(NotYours, match="cannot be updated through rest api"):
        maintenance.update(ADMIN_USER, message="x")
    with pytest.raises(NotYours, match="cannot be disabled through rest api"):
        maintenance.disable(ADMIN_USER)
    with pytest.raises(NotYours, match="--process deploy"):
        maintenance.disable(Actor.operator("root"))
    with pytest.raises(NotYours):
        maintenance.disable(Actor.process("other"))
    assert maintenance.state() == state
    maintenance.update(DEPLOY, message="step 2", progress=50)
    maintenance.disable(DEPLOY)
    assert maintenance.state() is None


def test_a_process_cannot_take_over_user_maintenance(maintenance):
    maintenance.enable(ADMIN_USER)
    with pytest.raises(NotYours):
        maintenance.update(DEPLOY, message="x")
    with pytest.raises(NotYours):
        maintenance.disable(DEPLOY)
    maintenance.disable(Actor.operator("root"))


def test_concurrent_enables_exactly_one_wins(store):
    results: list[str] = []
    barrier = threading.Barrier(8)

    def enable(i: int) -> None:
        maintenance = Maintenance(store)
        barrier.wait()
        try:
            maintenance.enable(Actor(f"admin{i}", roles=frozenset({ADMIN})))
            results.append("won")
        except AlreadyEnabled:
            results.append("refused")

    threads = [threading.Thread(target=enable, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["refused"] * 7 + ["won"]


def test_concurrent_updates_lose_no_log_entry(store):
    maintenance = Maintenance(store)
    maintenance.enable(ADMIN_USER)
    writers, per_writer = 6, 15

    def post(i: int) -> None:
        for j in range(per_writer):
            Maintenance(store).update(ADMIN_USER, message=f"{i}-{j}", progress=j)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    total, entries = maintenance.log_page(0, 1000)
    assert total == 1 + writers * per_writer
    assert sorted(e.message for e in entries[1:]) == sorted(
        f"{i}-{j}" for i in range(writers) for j in range(per_writer)
    )


def test_state_carries_only_the_latest_log_entries(maintenance):
    from bascule.model import LOG_TAIL

    maintenance.enable(ADMIN_USER)
    for i in range(LOG_TAIL + 5):
        maintenance.update(ADMIN_USER, message=f"m{i}")
    state = maintenance.state()
    assert state.log_size == LOG_TAIL + 6
    assert len(state.log) == LOG_TAIL
    assert state.log[-1].message == f"m{LOG_TAIL + 4}"
    assert state.log[0].message == "m5"
    total, page = maintenance.log_page(0, 3)
    assert total == LOG_TAIL + 6
    assert [e.message for e in page] == [STARTED_MESSAGE, "m0", "m1"]


def test_window_switches_off_after_success(maintenance):
    with maintenance_window(maintenance, DEPLOY, message="deploying") as window:
        window.update(progress=50)
        state = maintenance.state()
        assert (state.user_triggered, state.progress_percent) == (False, 50)
        assert state.log[-1].message == "deploying"
    assert maintenance.state() is None


def test_window_stays_on_with_a_log_entry_after_failure(maintenance):
    with pytest.raises(RuntimeError), maintenance_window(maintenance, DEPLOY):
        raise RuntimeError("disk full")
    state = maintenance.state()
    assert state is not None
    assert state.log[-1].message == "Failed: disk full"


def test_window_with_an_invalid_message_runs_nothing(maintenance):
    ran = []
    with pytest.raises(InvalidUpdate), maintenance_window(maintenance, DEPLOY, message=" "):
        ran.append(True)
    assert ran == []
    assert maintenance.state() is None


def test_window_always_off(maintenance):
    with pytest.raises(RuntimeError), maintenance_window(maintenance, DEPLOY, always_off=True):
        raise RuntimeError("disk full")
    assert maintenance.state() is None


def test_automatic_maintenance_from_python(database_url):
    with automatic_maintenance(database_url, "deploy", message="go") as window:
        window.update(message="half way", progress=50)
        from bascule.store import Store

        store = Store(database_url)
        state = Maintenance(store).state()
        store.close()
        assert state.user == "deploy"
        assert not state.user_triggered
        assert [e.message for e in state.log] == [STARTED_MESSAGE, "go", "half way"]
    store = Store(database_url)
    assert Maintenance(store).state() is None
    store.close()
