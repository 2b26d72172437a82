"""Maintenance as planned work: the history of windows, planned windows, leases and their
release, by plain calls on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from bascule.maintenance import Maintenance, maintenance_window
from bascule.model import (
    ADMIN,
    PLANNED_END_MESSAGE,
    STARTED_MESSAGE,
    Actor,
    ActorKind,
    AlreadyEnabled,
    Forbidden,
    HolderAlive,
    InvalidUpdate,
    NoSuchWindow,
    NothingToRelease,
    NotYours,
    WindowNotPlanned,
    rfc3339,
)
from bascule.windows import Windows, calendar, parse_time

ALICE = Actor("alice", ActorKind.API_USER, frozenset({ADMIN}))
BOB = Actor("bob", ActorKind.API_USER, frozenset())
DEPLOY = Actor.process("deploy")
T0 = 1_800_000_000_000  # epoch ms
MINUTE = 60_000


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def maintenance(store, clock):
    return Maintenance(store, clock=clock)


@pytest.fixture
def windows(store, clock):
    return Windows(store, clock=clock)


def test_a_window_ends_and_is_kept_with_its_whole_log(maintenance, clock):
    maintenance.enable(ALICE, message="copying")
    clock.now += MINUTE
    maintenance.update(ALICE, message="indexing")
    clock.now += MINUTE
    maintenance.disable(ALICE)
    assert maintenance.state() is None
    maintenance.enable(DEPLOY)  # a second window, with a log of its own
    assert [e.message for e in maintenance.state().log] == [STARTED_MESSAGE]
    total, (current, first) = maintenance.history(0, 10)
    assert total == 2
    assert (current.status, current.user, current.user_triggered) == ("on", "deploy", False)
    assert (current.ended_at, current.ended_by) == (None, None)
    assert (first.status, first.user, first.mode, first.log_size) == ("ended", "alice", "full", 3)
    assert (first.started_at, first.ended_at, first.ended_by) == (T0, T0 + 2 * MINUTE, "alice")
    window, log = maintenance.window(first.id, 0, 100)
    assert window == first
    assert [e.message for e in log] == [STARTED_MESSAGE, "copying", "indexing"]
    assert [e.message for e in maintenance.window(first.id, 1, 1)[1]] == ["copying"]


def test_the_history_pages_newest_first(maintenance, clock):
    for _ in range(5):
        maintenance.enable(ALICE)
        clock.now += MINUTE
        maintenance.disable(ALICE)
    total, page = maintenance.history(1, 2)
    everything = maintenance.history(0, 100)[1]
    assert total == 5 and page == everything[1:3]
    assert [w.started_at for w in everything] == sorted(
        (w.started_at for w in everything), reverse=True
    )


def test_an_unknown_window_is_not_found(maintenance):
    with pytest.raises(NoSuchWindow):
        maintenance.window(999, 0, 10)


def test_retention_forgets_old_windows_only(maintenance, clock, windows):
    maintenance.enable(ALICE)
    maintenance.disable(ALICE)
    clock.now += 3 * 86_400_000
    maintenance.enable(ALICE)
    maintenance.disable(ALICE)
    maintenance.enable(ALICE)  # the current one is never forgotten
    assert windows.prune(2) == 1
    total, windows = maintenance.history(0, 10)
    assert total == 2 and {w.status for w in windows} == {"on", "ended"}
    assert all(w.started_at >= T0 + 3 * 86_400_000 for w in windows)


# -- planned windows ---------------------------------------------------------------------


def plan(windows, start_in=MINUTE, end_in=None, **kwargs):
    clock = windows.clock
    end = None if end_in is None else clock() + end_in
    return windows.plan(ALICE, clock() + start_in, end, kwargs.pop("message", "Upgrade"), **kwargs)


def test_a_planned_window_starts_on_time_with_its_message(maintenance, clock, windows):
    window = plan(windows, start_in=MINUTE, end_in=2 * MINUTE, mode="read-only")
    assert [w.id for w in windows.planned()] == [window.id]
    assert windows.run_schedule() is False  # not yet
    assert maintenance.state() is None
    clock.now += MINUTE
    assert windows.run_schedule() is True
    state = maintenance.state()
    assert (state.user, state.user_triggered, state.mode) == ("alice", True, "read-only")
    assert (state.window_id, state.planned_end, state.auto_end) == (
        window.id,
        T0 + 2 * MINUTE,
        False,
    )
    assert [(e.user, e.message) for e in state.log] == [
        ("schedule", STARTED_MESSAGE),
        ("alice", "Upgrade"),
    ]
    assert windows.planned() == []
    assert windows.run_schedule() is False  # exactly once
    clock.now += 5 * MINUTE
    windows.run_schedule()
    assert maintenance.state() is not None  # no autoEnd: it overruns, it does not end


def test_auto_end_ends_it_at_its_end(maintenance, clock, windows):
    window = plan(windows, start_in=MINUTE, end_in=3 * MINUTE, auto_end=True)
    clock.now += MINUTE
    windows.run_schedule()
    clock.now += MINUTE
    maintenance.update(ALICE, message="half way")
    windows.run_schedule()
    assert maintenance.state() is not None
    clock.now += MINUTE
    assert windows.run_schedule() is True
    assert maintenance.state() is None
    ended, log = maintenance.window(window.id, 0, 10)
    assert (ended.status, ended.ended_by, ended.ended_at) == ("ended", "schedule", T0 + 3 * MINUTE)
    assert log[-1].message == PLANNED_END_MESSAGE


def test_a_window_whose_start_finds_maintenance_on_is_skipped_with_the_reason(
    maintenance, clock, windows
):
    window = plan(windows, start_in=MINUTE)
    maintenance.enable(DEPLOY)
    clock.now += MINUTE
    assert windows.run_schedule() is True
    assert maintenance.state().user == "deploy"
    skipped = next(w for w in maintenance.history(0, 10)[1] if w.id == window.id)
    assert skipped.status == "skipped" and "already on, held by 'deploy'" in skipped.reason
    assert windows.planned() == []


def test_a_window_whose_end_passed_unseen_is_skipped(maintenance, clock, windows):
    window = plan(windows, start_in=MINUTE, end_in=2 * MINUTE)
    clock.now += 10 * MINUTE  # no instance ran meanwhile
    windows.run_schedule()
    assert maintenance.state() is None
    assert maintenance.window(window.id, 0, 1)[0].status == "skipped"


def test_only_one_of_many_runners_starts_a_window(maintenance, windows, store, clock):
    plan(windows, start_in=MINUTE)
    clock.now += MINUTE
    runners = [Windows(store, clock=clock) for _ in range(6)]
    barrier = threading.Barrier(len(runners))
    results: list[bool] = []

    def run(m: Windows) -> None:
        barrier.wait()
        results.append(m.run_schedule())

    threads = [threading.Thread(target=run, args=(m,)) for m in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = maintenance.state()
    assert [e.message for e in state.log] == [STARTED_MESSAGE, "Upgrade"]
    assert maintenance.history(0, 10)[0] == 1


@pytest.mark.parametrize(
    ("start_in", "end_in", "kwargs", "says"),
    [
        (0, None, {}, "start must be in the future"),
        (-MINUTE, None, {}, "start must be in the future"),
        (MINUTE, MINUTE, {}, "end must come after start"),
        (MINUTE, None, {"auto_end": True}, "autoEnd needs an end"),
        (MINUTE, None, {"mode": "half"}, "mode is full or read-only"),
        (MINUTE, None, {"message": "  "}, "message must hold"),
    ],
)
def test_an_invalid_plan_changes_nothing(maintenance, start_in, end_in, kwargs, says, windows):
    with pytest.raises(InvalidUpdate, match=says):
        plan(windows, start_in, end_in, **kwargs)
    assert windows.planned() == []


def test_cancel_a_planned_window_and_only_a_planned_one(maintenance, clock, windows):
    first, second = plan(windows), plan(windows, start_in=2 * MINUTE)
    with pytest.raises(Exception, match="sufficient rights"):
        windows.cancel(BOB, first.id)
    windows.cancel(ALICE, first.id)
    assert [w.id for w in windows.planned()] == [second.id]
    with pytest.raises(WindowNotPlanned, match="cancelled"):
        windows.cancel(ALICE, first.id)
    with pytest.raises(NoSuchWindow):
        windows.cancel(ALICE, 999)
    clock.now += 2 * MINUTE
    windows.run_schedule()
    with pytest.raises(WindowNotPlanned):
        windows.cancel(ALICE, second.id)
    clock.now += 2 * MINUTE
    windows.run_schedule()
    assert maintenance.state() is not None  # a cancelled window never starts


def test_planned_times_keep_their_milliseconds(windows):
    window = plan(windows, start_in=MINUTE + 100, end_in=MINUTE + 900)
    shown = window.as_planned_json()
    assert (shown["start"], shown["end"]) == (
        "2027-01-15T08:01:00.100Z",
        "2027-01-15T08:01:00.900Z",
    )
    assert plan(windows).as_planned_json()["start"] == "2027-01-15T08:01:00Z"


def test_parse_time_takes_rfc3339_with_an_offset():
    assert parse_time("2027-01-15T08:00:00Z", "start") == T0
    assert parse_time("2027-01-15T09:00:00+01:00", "start") == parse_time(
        "2027-01-15T08:00:00Z", "s"
    )
    with pytest.raises(InvalidUpdate, match="offset"):
        parse_time("2027-01-15T08:00:00", "start")
    with pytest.raises(InvalidUpdate, match="RFC 3339"):
        parse_time("next tuesday", "start")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("+1h", 3600),
        ("+1h30m", 5400),
        ("+90s", 90),
        ("+2d", 172800),
        ("in 30 minutes", 1800),
        ("In 1 hour", 3600),
        ("in 2 hours and 30 minutes", 9000),
        ("in 1 day, 2 hours", 93600),
    ],
)
def test_the_command_line_takes_a_time_from_now(text, seconds):
    assert parse_time(f" {text} ", "--start", T0) == T0 + seconds * 1000


@pytest.mark.parametrize("text", ["+1", "+h", "1h", "in 30", "in 30 months", "+1h -5m", "in"])
def test_what_is_not_a_time_from_now_is_refused_saying_what_is(text):
    with pytest.raises(InvalidUpdate, match=r"RFC 3339 time.*\+1h30m or 'in 30 minutes'"):
        parse_time(text, "--start", T0)
    # the API takes RFC 3339 only: a relative time would depend on whose clock reads it
    with pytest.raises(InvalidUpdate, match=r"RFC 3339 time, such as 2026-12-24T02:00:00Z\.$"):
        parse_time("+1h", "start")


def test_a_time_from_now_past_the_year_9999_is_refused():
    with pytest.raises(InvalidUpdate, match="years 1970 to 9999"):
        parse_time("+" + "999999d" * 4, "--end", T0)


def test_the_calendar_has_one_event_per_planned_window(maintenance, windows):
    from icalendar import Calendar

    plan(windows, start_in=MINUTE, end_in=2 * MINUTE, message="Database upgrade\nsecond line")
    plan(windows, start_in=3 * MINUTE, mode="read-only")
    feed = Calendar.from_ical(calendar(windows.planned()))
    events = feed.walk("VEVENT")
    assert [str(e["summary"]) for e in events] == [
        "Maintenance: Database upgrade",
        "Read-only maintenance: Upgrade",
    ]
    assert int(events[0]["dtstart"].dt.timestamp() * 1000) == T0 + MINUTE
    assert int(events[0]["dtend"].dt.timestamp() * 1000) == T0 + 2 * MINUTE
    assert "dtend" not in events[1]
    assert len({str(e["uid"]) for e in events}) == 2


def test_no_line_separator_nor_control_character_reaches_the_calendar_raw(maintenance, windows):
    # Each of these would end a line of the feed (a reader splits there), or is not TEXT.
    separators = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    plan(windows, start_in=MINUTE, message="a" + "b".join(separators) + "c\x1b[31m\x7f")
    feed = calendar(windows.planned())
    for character in separators + "\x1b\x7f":  # (the feed's own lines end with CRLF)
        assert character.encode() not in feed.replace(b"\r\n", b""), repr(character)
    lines = feed.decode().split("\r\n")
    (description,) = [line for line in lines if line.startswith("DESCRIPTION")]
    assert "a\\nb\\nb" in description and "c [31m " in description


# -- leases ------------------------------------------------------------------------------


def test_a_process_lease_is_alive_while_renewed_then_may_be_released(maintenance, clock):
    state = maintenance.enable(DEPLOY, lease_ttl=30)
    assert state.holder_alive(clock()) is True
    clock.now += 20_000
    assert maintenance.renew(DEPLOY, state.window_id) is True
    clock.now += 20_000
    assert maintenance.state().holder_alive(clock()) is True
    with pytest.raises(HolderAlive):
        maintenance.release(ALICE, "looks stuck")
    with pytest.raises(NotYours):  # the REST API still cannot switch it off
        maintenance.disable(ALICE)
    clock.now += 30_000  # silent for 30 s
    silent = maintenance.state()
    assert silent.holder_alive(clock()) is False
    assert silent.as_json(clock())["lease"] == {
        "ttl": 30,
        "renewedAt": T0 + 20_000,
        "alive": False,
        "endedAt": None,
        "outcome": None,
    }
    with pytest.raises(Exception, match="sufficient rights"):
        maintenance.release(BOB, "not mine")
    with pytest.raises(InvalidUpdate):
        maintenance.release(ALICE, " ")
    released = maintenance.release(ALICE, "the deploy host was lost")
    assert (released.user, released.user_triggered, released.released_from) == (
        "alice",
        True,
        "deploy",
    )
    assert released.lease_ttl is None
    assert "Released by alice from the process 'deploy'" in released.log[-1].message
    assert released.log[-1].message.endswith("the deploy host was lost")
    assert maintenance.renew(DEPLOY, state.window_id) is False  # the process lost it
    maintenance.disable(ALICE)
    window = maintenance.history(0, 1)[1][0]
    assert (window.user, window.released_by, window.ended_by) == ("deploy", "alice", "alice")


def test_nothing_to_release_without_a_lease(maintenance):
    maintenance.enable(ALICE)
    with pytest.raises(NothingToRelease):
        maintenance.release(ALICE, "why")
    maintenance.disable(ALICE)
    maintenance.enable(DEPLOY)  # a process without a lease (bascule maintenance on --process)
    with pytest.raises(NothingToRelease):
        maintenance.release(ALICE, "why")


def test_maintenance_window_renews_its_lease_in_the_background(store):
    maintenance = Maintenance(store)
    with maintenance_window(maintenance, DEPLOY, lease_ttl=3):
        first = maintenance.state().lease_renewed_at
        threading.Event().wait(1.5)  # a third of 3 s, and some
        assert maintenance.state().lease_renewed_at > first
    assert maintenance.state() is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("9999-12-31T23:30:00-01:00", "years 1970 to 9999"),
        ("0001-01-01T00:30:00+01:00", "years 1970 to 9999"),
        ("1969-12-31T23:59:59.999Z", "years 1970 to 9999"),
        ("2027-13-01T00:00:00Z", "RFC 3339"),
    ],
)
def test_times_that_cannot_be_shown_are_refused(text, says):
    with pytest.raises(InvalidUpdate, match=says):
        parse_time(text, "start")


def test_the_last_moment_is_kept_to_its_millisecond_and_shown_as_it_is():
    # Rounded by a float, 23:59:59.999999 used to become the year 10000: saved, and then
    # every answer that showed it failed.
    last = parse_time("9999-12-31T23:59:59.999999Z", "end")
    assert last == 253_402_300_799_999
    assert rfc3339(last) == "9999-12-31T23:59:59.999Z"


def test_windows_are_limited_in_number_and_may_not_overlap(maintenance, windows):
    from bascule.model import MAX_PLANNED, TooManyWindows, WindowsOverlap

    hour = 60 * MINUTE
    first = windows.plan(ALICE, T0 + hour, T0 + 2 * hour, "m")
    for start, end in [
        (T0 + hour, None),
        (T0 + hour // 2, T0 + hour + 1),
        (T0 + 90 * MINUTE, T0 + 3 * hour),
    ]:
        with pytest.raises(WindowsOverlap, match=f"planned window {first.id}"):
            windows.plan(ALICE, start, end, "m")
    windows.plan(ALICE, T0 + 2 * hour, None, "m")  # from its end: no overlap
    with pytest.raises(WindowsOverlap):  # a window without an end holds its start
        windows.plan(ALICE, T0 + 2 * hour, T0 + 3 * hour, "m")
    for n in range(MAX_PLANNED - 2):
        windows.plan(ALICE, T0 + (3 + n) * hour, T0 + (3 + n) * hour + MINUTE, "m")
    with pytest.raises(TooManyWindows):
        windows.plan(ALICE, T0 + 1000 * hour, None, "m")
    every = windows.planned()
    assert len(every) == MAX_PLANNED
    assert windows.planned(98, 5) == every[98:]


def test_lowercase_rfc3339_is_taken():
    assert parse_time("2027-01-15t08:00:00z", "start") == T0


def test_automatic_maintenance_refuses_a_lease_out_of_range(database_url):
    from bascule.service import automatic_maintenance

    with (
        pytest.raises(ValueError, match="lease-ttl"),
        automatic_maintenance(database_url, "deploy", lease_ttl=0),
    ):
        pass


# -- a run that failed, and its retry ---------------------------------------------------


class Deploy(Exception):
    """A deploy that failed, as supervise.CommandFailed says it."""

    outcome = "exited with status 3"


def test_a_failed_run_ends_its_lease_so_release_needs_no_wait(maintenance, clock):
    with pytest.raises(Deploy), maintenance_window(maintenance, DEPLOY, lease_ttl=30):
        raise Deploy("the command './deploy.sh' exited with status 3")
    state = maintenance.state()
    assert state is not None  # left on, for someone to look
    assert state.holder_alive(clock()) is False  # at once, not 30 s later
    lease = state.as_json(clock())["lease"]
    assert (lease["alive"], lease["outcome"], lease["endedAt"]) == (
        False,
        "exited with status 3",
        clock(),
    )
    assert state.log[-1].message == "Failed: the command './deploy.sh' exited with status 3"
    released = maintenance.release(ALICE, "it failed; I take it")
    assert released.user == "alice" and released.lease_ttl is None


def test_a_retry_takes_over_its_failed_run_and_a_live_run_is_refused(maintenance, clock):
    with pytest.raises(Deploy), maintenance_window(maintenance, DEPLOY, lease_ttl=30):
        raise Deploy("failed")
    first = maintenance.state()
    clock.now += MINUTE
    retried = maintenance.enable(DEPLOY, message="second try", lease_ttl=30)
    assert retried.window_id == first.window_id  # the same maintenance: never off between
    assert retried.holder_alive(clock()) is True and retried.holder_outcome is None
    messages = [e.message for e in maintenance.state().log]
    assert messages[-2].startswith("Retried by the process 'deploy': its run of")
    assert "exited with status 3" in messages[-2] and messages[-1] == "second try"
    with pytest.raises(AlreadyEnabled):  # two live runs of one process: refused
        maintenance.enable(DEPLOY, lease_ttl=30)
    with pytest.raises(AlreadyEnabled):  # another process: refused, even once it ends
        maintenance.enable(Actor.process("backup"), lease_ttl=30)
    assert maintenance.history(0, 10)[0] == 1


def test_a_run_silent_past_its_lease_is_taken_over_by_its_retry(maintenance, clock):
    first = maintenance.enable(DEPLOY, lease_ttl=30)
    clock.now += 31_000  # killed outright: no word, its lease ran out
    retried = maintenance.enable(DEPLOY, lease_ttl=30)
    assert retried.window_id == first.window_id
    assert "stopped renewing its lease" in maintenance.state().log[-1].message


def test_the_mode_changes_while_on_in_one_step_and_the_log_says_so(maintenance):
    maintenance.enable(ALICE)
    maintenance.set_mode(ALICE, "read-only")
    state = maintenance.state()
    assert state.read_only and "read-only" in state.log[-1].message
    maintenance.update(ALICE, message="reads are safe", progress=60, mode="full")
    state = maintenance.state()
    assert (state.mode, state.progress_percent) == ("full", 60)
    assert [e.message for e in state.log][-2:] == [
        "Mode: full maintenance; every request is refused.",
        "reads are safe",
    ]
    maintenance.set_mode(ALICE, "full")  # the same mode: nothing said
    assert maintenance.state().log_size == state.log_size
    with pytest.raises(Forbidden):
        maintenance.set_mode(BOB, "read-only")
    with pytest.raises(InvalidUpdate):
        maintenance.set_mode(ALICE, "half")
    maintenance.disable(ALICE)
    maintenance.enable(DEPLOY)
    with pytest.raises(NotYours):  # automatic maintenance: its process's to change
        maintenance.set_mode(ALICE, "read-only")
