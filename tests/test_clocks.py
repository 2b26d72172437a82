"""One clock: leases and planned windows judged by the database's, whatever each host's
says. Processes run under ``faketime`` (Debian's libfaketime) with clocks minutes apart,
on PostgreSQL (SQLite's instances share one host, and its clock)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, basic
from tests.serving import BASCULE, clean_env, serving, stop
from tests.waiting import until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]
ADMIN = basic("admin", ADMIN_PASSWORD)


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def skewed(seconds: int) -> tuple[str, ...]:
    """A command prefix that runs a process ``seconds`` off the true time, with Debian's
    libfaketime preloaded (its ``faketime`` wrapper's named semaphore clashes when two
    start at once), its monotonic clock left true. (libfaketime 0.9.10 then fails
    Python's time.sleep with EINVAL, and with the monotonic clock moved too, it makes a
    thread's timed wait hang: so the processes run here wait on events, never sleep.)"""
    return (
        "env",
        f"LD_PRELOAD={LIBFAKETIME}",
        f"FAKETIME={seconds:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
    )


# A process holding automatic maintenance, with a lease of 10 s, for argv[2] seconds.
HOLDER = """
import sys, threading
from bascule import automatic_maintenance
with automatic_maintenance(sys.argv[1], "deploy", lease_ttl=10):
    print("on", flush=True)
    threading.Event().wait(float(sys.argv[2]))
"""


def holding(database_url: str, seconds: float, clock: int) -> subprocess.Popen[str]:
    """A process on a host ``clock`` seconds off, holding maintenance ``seconds``; once
    it is on."""
    holder = subprocess.Popen(
        [*skewed(clock), sys.executable, "-c", HOLDER, database_url, str(seconds)],
        env=environment(database_url),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "on\n"
    return holder


def environment(database_url: str, **extra: str) -> dict[str, str]:
    return clean_env(
        BASCULE_DATABASE_URL=database_url,
        BASCULE_LEASE_TTL="10",
        **extra,
    )


def bascule(database_url: str, *args: str, clock: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*skewed(clock), *BASCULE, *args] if clock else [*BASCULE, *args],
        env=environment(database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def state(database_url: str) -> dict | None:
    answer = bascule(database_url, "maintenance", "status", "--json")
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_a_holder_whose_clock_is_slow_keeps_its_lease(database_url):
    # Two minutes slow: by its own clock, each renewal would be two minutes old.
    with holding(database_url, 20, clock=-120) as holder:
        try:
            start = time.monotonic()
            while time.monotonic() - start < 13:  # across renewals (every 10/3 s), and beyond
                time.sleep(1)
                released = bascule(
                    database_url, "maintenance", "release", "--reason", "r", clock=300
                )
                assert released.returncode == 1, released.stderr
                assert "alive" in released.stderr, released.stderr
                assert state(database_url)["lease"]["alive"] is True
            assert holder.wait(timeout=30) == 0
        finally:
            stop(holder)
    assert state(database_url) is None  # it ended its own maintenance


def test_a_killed_holder_whose_clock_was_fast_is_released_after_its_lease(database_url):
    with holding(database_url, 60, clock=600) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    start = time.monotonic()
    # Ten minutes ahead, its renewals do not keep the lease alive ten minutes more: once
    # its ten seconds ran out (and a little), an ADMIN on a slow host releases it.
    until(
        lambda: (
            bascule(
                database_url, "maintenance", "release", "--reason", "the host died", clock=-90
            ).returncode
            == 0
        ),
        20.0,
        "the release",
    )
    assert 8 <= time.monotonic() - start < 16
    assert state(database_url)["releasedFrom"] == "deploy"


def test_a_runner_that_lost_its_lease_says_so_at_once_and_fails_at_the_end(database_url, tmp_path):
    done = tmp_path / "done"
    script = f"import pathlib, time; time.sleep(25); pathlib.Path({str(done)!r}).touch()"
    command = [*BASCULE, "run", "--process", "deploy", "--", sys.executable, "-c", script]
    with subprocess.Popen(
        command, env=environment(database_url), stderr=subprocess.PIPE, text=True
    ) as runner:
        try:
            lost_its_lease(database_url, runner, done)
            _, stderr = runner.communicate(timeout=30)
            assert runner.returncode == 1, stderr
        finally:
            runner.send_signal(signal.SIGCONT)
            stop(runner)
    assert done.exists()  # its command went on
    assert "lost its lease" in stderr and "it was released by" in stderr
    assert "it is left on, to whoever holds it now" in stderr
    on = state(database_url)
    assert on is not None and on["releasedFrom"] == "deploy"  # not switched off by it


def lost_its_lease(database_url: str, runner: subprocess.Popen[str], done: Path) -> None:
    """Stop ``runner`` past its lease, have an ADMIN release its maintenance, let it go
    on: it writes in the log at its next renewal, while its command still runs."""
    until(lambda: state(database_url) is not None, 10.0, "the runner's maintenance")
    runner.send_signal(signal.SIGSTOP)  # its host silent past the lease
    until(
        lambda: bascule(database_url, "maintenance", "release", "--reason", "gone").returncode == 0,
        20.0,
        "the release",
    )
    runner.send_signal(signal.SIGCONT)
    # At its next renewal (a third of the lease), not at the end of its command.
    until(
        lambda: any("lost its lease" in e["message"] for e in state(database_url)["log"]),
        6.0,
        "the runner's word in the log",
    )
    assert not done.exists()


def test_an_instance_whose_clock_is_fast_starts_a_planned_window_on_time(database_url, tmp_path):
    env = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with serving(database_url, tmp_path, env=env, wrapper=skewed(300)) as ahead:
        start = time.monotonic() + 8
        planned = bascule(database_url, "schedule", "add", "--start", _in(8), "--message", "m")
        assert planned.returncode == 0, planned.stderr
        on = lambda: httpx.get(f"{ahead.url}/rest/v1/maintenance", headers=ADMIN).json()["data"]  # noqa: E731
        # Five minutes ahead, it would have started it already: it has not, until its time.
        while time.monotonic() < start - 1:
            assert on() is None
            time.sleep(0.5)
        until(on, start + 5 - time.monotonic(), "the window, at its start")


def _in(seconds: int) -> str:
    """An RFC 3339 time ``seconds`` from the true now."""
    import datetime

    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds")
