"""The monitor: this process's copy of the state, following changes made elsewhere."""

from __future__ import annotations

import os
import select
import signal
import time
from collections import Counter
from contextlib import contextmanager

import pytest

import bascule.monitor
from bascule.auth import Auth
from bascule.maintenance import Maintenance
from bascule.model import Actor
from bascule.monitor import Monitor
from bascule.records import token_hash
from bascule.store import Store
from tests.waiting import until


def wait_for(predicate) -> None:
    until(predicate, 2.0)


@pytest.fixture
def elsewhere(store, database_url):
    """Another store on the same database: connections of their own, as another process has."""
    other = Store(database_url)
    yield other
    other.close()


@pytest.fixture
def monitor(store):
    monitor = Monitor(store, poll_interval=0.02)
    yield monitor
    monitor.stop()


def test_changes_made_elsewhere_are_followed(monitor, elsewhere, monkeypatch):
    monkeypatch.setattr(bascule.monitor, "SAFETY_INTERVAL", 60.0)  # no re-read but the signalled
    heard: Counter[str] = Counter()
    monitor.follow("users", lambda: heard.update(["users"]))
    monitor.follow("sessions", lambda: heard.update(["sessions"]))
    monitor.start()
    wait_for(lambda: monitor.confirmed_at is not None)  # its first look is done
    assert heard == {"users": 1, "sessions": 1}  # every kind is loaded at the first look
    heard.clear()

    Maintenance(elsewhere).enable(Actor.operator("root"))
    wait_for(lambda: monitor.state is not None)
    assert monitor.state.user == "root"

    auth = Auth(elsewhere)
    auth.add_user("carol", "a long enough password", [])
    wait_for(lambda: heard["users"] == 1)
    session = auth.login("carol", "a long enough password")  # a new session: nothing to drop
    auth.logout(token_hash(session.token))  # a revoked one: every process drops its copy
    wait_for(lambda: heard["sessions"] == 1)

    Maintenance(elsewhere).disable(Actor.operator("root"))
    wait_for(lambda: monitor.state is None)
    assert heard == {"users": 1, "sessions": 1}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_a_full_look_only_after_a_commit(monitor, elsewhere, monkeypatch):
    """Between changes the monitor runs one PRAGMA per poll, not a transaction and a query."""
    monkeypatch.setattr(bascule.monitor, "SAFETY_INTERVAL", 60.0)
    looks = Counter[str]()
    store = monitor.store
    versions, commit_counter = store.versions, store.commit_counter

    @contextmanager
    def counted_commits():
        with commit_counter() as probe:
            yield lambda: looks.update(["probe"]) or probe()

    monkeypatch.setattr(store, "versions", lambda: looks.update(["versions"]) or versions())
    monkeypatch.setattr(store, "commit_counter", counted_commits)
    # The write check commits (every WRITE_CHECK_INTERVAL): counted, not committed here.
    monkeypatch.setattr(store, "check_writable", lambda: looks.update(["write check"]))
    monitor.start()
    wait_for(lambda: looks["versions"] == 1)  # its first look
    wait_for(lambda: looks["write check"] == 1)  # and its first write check

    time.sleep(0.5)  # about 25 polls with nothing committed
    assert looks["versions"] == 1
    assert looks["probe"] >= 3  # it did poll

    Maintenance(elsewhere).enable(Actor.operator("root"))  # another connection
    wait_for(lambda: monitor.state is not None)
    Maintenance(store).disable(Actor.operator("root"))  # a connection of the same pool
    wait_for(lambda: monitor.state is None)
    time.sleep(0.2)
    assert looks["versions"] == 3


def test_a_forked_process_follows_changes_with_a_thread_of_its_own(monitor, elsewhere):
    # What a pre-loading server does: build the app (and its monitor), then fork workers.
    monitor.start()
    wait_for(lambda: monitor.confirmed_at is not None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its copy of the monitor sees, then leave at once
        try:
            deadline = time.monotonic() + 10
            while monitor.state is None and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(write, f"{monitor.state is not None}".encode())
        finally:
            os._exit(0)
    os.close(write)
    Maintenance(elsewhere).enable(Actor.operator("root"))
    with os.fdopen(read, "rb") as answer:
        ready, _, _ = select.select([answer], [], [], 30)
        seen = answer.read().decode() if ready else "no answer from the child in 30 s"
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert seen == "True"  # its copy of the monitor, inherited without its thread, followed
