"""The ``bascule`` command, through click's CliRunner."""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

from bascule import schema
from bascule.cli import main
from bascule.model import STARTED_MESSAGE


@pytest.fixture
def run(database_url, monkeypatch):
    for name in ("BASCULE_ADMIN_PASSWORD", "BASCULE_APP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BASCULE_DATABASE_URL", database_url)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, code: int = 0):
        result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def state(run) -> dict | None:
    return json.loads(run("maintenance", "status", "--json").stdout)


def test_users_add_list_passwd_remove(run, database_url):
    run(
        "users",
        "add",
        "alice",
        "--role",
        "ADMIN",
        "--role",
        "OPS",
        "--password-stdin",
        input="alice-pass-1\n",
    )
    run("users", "add", "bob", "--password-stdin", input="bob-pass-12\n")
    assert run("users", "list").output.splitlines() == ["alice\tADMIN,OPS", "bob\t"]
    from bascule.auth import Auth
    from bascule.store import Store

    store = Store(database_url)
    try:
        auth = Auth(store)
        assert auth.check_credentials("alice", "alice-pass-1").roles == {"ADMIN", "OPS"}
        run("users", "passwd", "alice", "--password-stdin", input="alice-pass-2\n")
        assert auth.check_credentials("alice", "alice-pass-1") is None
        assert auth.check_credentials("alice", "alice-pass-2") is not None
        run("users", "remove", "bob")
        assert auth.check_credentials("bob", "bob-pass-12") is None
    finally:
        store.close()
    assert run("users", "list").output.splitlines() == ["alice\tADMIN,OPS"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("users", "add", "carol", "--password-stdin"), "short\n", "at least 8 characters"),
        (("users", "add", "bad name", "--password-stdin"), "long-enough\n", "user name"),
        (("users", "add", "dave", "--role", "admin", "--password-stdin"), "long-enough\n", "role"),
        (("users", "remove", "nobody"), None, "no user 'nobody'"),
        (("users", "passwd", "nobody", "--password-stdin"), "long-enough\n", "no user 'nobody'"),
    ],
)
def test_user_errors_are_clear(run, args, stdin, message):
    result = run(*args, input=stdin, code=1)
    assert message in result.output
    assert "Traceback" not in result.output


def test_users_add_twice(run):
    run("users", "add", "alice", "--password-stdin", input="alice-pass-1\n")
    assert (
        "exists already"
        in run("users", "add", "alice", "--password-stdin", input="alice-pass-1\n", code=1).output
    )


def test_users_add_without_terminal_asks_for_password_stdin(run):
    assert "--password-stdin" in run("users", "add", "alice", code=2).output


def test_maintenance_on_update_off(run):
    assert run("maintenance", "status").stdout == "Maintenance is off.\n"
    assert state(run) is None
    run("maintenance", "on", "--user", "ops", "--message", "Upgrading", "--progress", "10")
    current = state(run)
    assert (current["user"], current["userTriggered"], current["progressPercent"]) == (
        "ops",
        True,
        10,
    )
    assert [e["message"] for e in current["log"]] == [STARTED_MESSAGE, "Upgrading"]
    run("maintenance", "update", "--user", "ops", "--progress", "60")
    assert state(run)["progressPercent"] == 60
    assert "60% done" in run("maintenance", "status").output
    run("maintenance", "off")
    assert state(run) is None


def test_maintenance_errors(run):
    assert "not enabled" in run("maintenance", "off", code=1).output
    assert "--message, --progress" in run("maintenance", "update", code=2).output
    assert "0<=x<=100" in run("maintenance", "on", "--progress", "101", code=2).output
    assert "message must hold" in run("maintenance", "on", "--message", " ", code=1).output
    assert state(run) is None
    run("maintenance", "on")
    refused = run("maintenance", "on", code=1).output
    assert refused.startswith("Error: Maintenance is already on (switched on by "), refused


def test_automatic_maintenance_from_the_cli(run):
    run("maintenance", "on", "--process", "deploy")
    current = state(run)
    assert (current["user"], current["userTriggered"]) == ("deploy", False)
    output = run("maintenance", "off", code=1).output
    assert "--process deploy" in output
    run("maintenance", "update", "--process", "deploy", "--message", "copying")
    run("maintenance", "off", "--process", "deploy")
    assert state(run) is None


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_switches_off_after_success(run):
    run("run", "--process", "deploy", "--message", "Deploying", "--", *python("print('hello')"))
    assert state(run) is None


def test_run_keeps_maintenance_on_after_failure(run):
    result = run("run", "--process", "deploy", "--", *python("raise SystemExit(3)"), code=3)
    assert "exited with status 3" in result.output
    current = state(run)
    assert current["userTriggered"] is False
    assert "exited with status 3" in current["log"][-1]["message"]


def test_a_failed_run_says_what_next_and_is_retried_without_opening_the_site(run):
    failing = python("raise SystemExit(3)")
    failed = run("run", "--process", "deploy", "--", *failing, code=3).output
    failed = failed.rstrip("\n").splitlines()[-1]  # all of it in one line
    assert "exited with status 3; maintenance is still on. Next: retry with `bascule run" in failed
    assert "--process deploy --" in failed and "(it takes the maintenance over)" in failed
    assert "`bascule maintenance release --reason '...'`" in failed
    assert "`bascule maintenance off --process deploy`" in failed
    status = run("maintenance", "status").output
    assert re.search(r"The process deploy exited with status 3 at \d{4}-\d\d-\d\d ", status)
    assert "alive" not in status and "stopped answering" not in status
    lease = state(run)["lease"]
    assert (lease["alive"], lease["outcome"]) == (False, "exited with status 3")

    # The fixed deploy: it takes the maintenance over, then ends it on success.
    run("run", "--process", "deploy", "--", *python("print('deployed')"))
    assert state(run) is None
    (window,) = json.loads(run("maintenance", "history", "--json").stdout)["windows"]
    assert window["status"] == "ended"  # one window: never off between the tries
    log = run("maintenance", "history", "--window", str(window["id"])).output
    assert "Retried by the process 'deploy'" in log and "exited with status 3" in log


def test_the_retry_offered_is_the_same_run(run):
    failing = python("raise SystemExit(3)")
    again = run(
        "run",
        "--process",
        "lint",
        "--message",
        "Linting v2",
        "--lease-ttl",
        "60",
        "--",
        *failing,
        code=3,
    ).output
    assert "`bascule run --process lint --message 'Linting v2' --lease-ttl 60 -- " in again
    run("maintenance", "off", "--process", "lint")


def test_a_failed_run_is_released_at_once(run):
    run("run", "--process", "deploy", "--", *python("raise SystemExit(3)"), code=3)
    released = run("maintenance", "release", "--reason", "checked", "--user", "ops").output
    assert "Released from the process deploy: maintenance is on, yours;" in released
    assert "`bascule maintenance off`" in released  # what to do with it now
    assert state(run)["user"] == "ops"
    # The log says how its run ended, not that it went silent.
    logged = state(run)["log"][-1]["message"]
    assert logged.startswith(
        "Released by ops from the process 'deploy', which exited with status 3 at "
    )
    assert logged.endswith(": checked")
    run("maintenance", "off", "--user", "ops")


def test_the_mode_changes_while_on(run):
    assert "not enabled" in run("maintenance", "mode", "read-only", code=1).output  # nothing on
    assert state(run) is None
    run("maintenance", "on", "--user", "ops")
    assert run("maintenance", "mode", "read-only", "--user", "ops").output.strip() == (
        "Maintenance is on (read-only)"
    )
    assert state(run)["mode"] == "read-only"
    run("maintenance", "mode", "full", "--user", "ops")
    current = state(run)
    assert current["mode"] == "full" and current["windowId"] == 1  # the same maintenance
    refused = run("maintenance", "mode", "closed", code=2).output
    assert "'closed' is not one of 'full', 'read-only'" in refused


def test_run_always_off(run):
    run("run", "--process", "deploy", "--always-off", "--", *python("raise SystemExit(4)"), code=4)
    assert state(run) is None


@pytest.mark.parametrize(
    ("command", "why"),
    [("/no/such/command", "no such command"), ("no-such-command-x", "no such command")],
)
def test_run_refuses_a_command_that_cannot_run_changing_nothing(run, command, why):
    result = run("run", "--process", "deploy", "--", command, code=1)
    assert f"cannot run {command!r}: {why}; nothing changed" in result.output
    assert state(run) is None


def test_run_refuses_a_file_that_is_not_executable(run, tmp_path):
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\n")
    result = run("run", "--process", "deploy", "--", str(script), code=1)
    assert "not executable; nothing changed" in result.output
    assert state(run) is None


def test_run_exits_128_plus_the_signal_that_killed_its_command(run):
    command = python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    result = run("run", "--process", "deploy", "--", *command, code=137)
    assert "was killed by SIGKILL; maintenance is still on" in result.output
    assert "killed by SIGKILL" in state(run)["log"][-1]["message"]


def test_run_with_an_invalid_message_runs_nothing(run, tmp_path):
    marker = tmp_path / "ran"
    command = python(f"open({str(marker)!r}, 'w').close()")
    assert (
        "message must hold"
        in run("run", "--process", "deploy", "--message", " ", "--", *command, code=1).output
    )
    assert not marker.exists()
    assert state(run) is None


def test_run_refuses_when_maintenance_is_on_saying_who_holds_it(run):
    run("maintenance", "on", "--process", "migration")
    output = run("run", "--process", "deploy", "--", "true", code=1).output
    assert "held by the process 'migration', since " in output
    assert "`bascule maintenance off --process migration` ends it" in output
    run("maintenance", "off", "--process", "migration")
    run("maintenance", "on", "--user", "alice")
    output = run("maintenance", "on", code=1).output
    assert "switched on by 'alice'" in output and "`bascule maintenance off` ends it" in output


def test_a_new_database_is_said_to_be_new(run, tmp_path):
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    first = run("maintenance", "status", "--database-url", url)
    assert f"created a new, empty database at {url}" in first.stderr
    assert first.stdout == "Maintenance is off.\n"
    assert "created" not in run("maintenance", "status", "--database-url", url).stderr


def test_db_status_and_upgrade(run, tmp_path, monkeypatch):
    monkeypatch.setenv("BASCULE_DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    assert "empty" in run("db", "status").output
    every = ", ".join(schema.pending_steps(None))
    assert f"Created the schema ({every})" in run("db", "upgrade").output
    assert "up to date" in run("db", "status").output
    assert "up to date" in run("db", "upgrade").output


def test_a_bad_database_url_is_reported(run):
    assert (
        "unsupported database"
        in run("users", "list", "--database-url", "mysql://x/y", code=1).output
    )
    assert "must name a file" in run("users", "list", "--database-url", "sqlite://", code=1).output


def test_serve_refuses_bad_settings(run, monkeypatch):
    monkeypatch.setenv("BASCULE_ADMIN_PASSWORD", "short")
    assert "at least 8 characters" in run("serve", code=1).output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "99999"], {}, "--port (BASCULE_PORT) must be from 1 to 65535, not 99999"),
        (["--port", "0"], {}, "--port (BASCULE_PORT) must be from 1 to 65535, not 0"),
        ([], {"BASCULE_PORT": "abc"}, "BASCULE_PORT must be an integer, not 'abc'"),
        (["--workers", "0"], {}, "--workers (BASCULE_WORKERS) must be from 1 to 1024"),
        ([], {"BASCULE_POLL_INTERVAL": "0"}, "must be from 0.01 to 60, not 0.0"),
        (["--retry-after", "86401"], {}, "must be from 0 to 86400, not 86401"),
        ([], {"BASCULE_ACCESS_LOG": "maybe"}, "BASCULE_ACCESS_LOG must be true or false"),
    ],
)
def test_serve_refuses_a_setting_out_of_its_range(run, monkeypatch, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run("serve", *args, code=1)
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_flag_wins_over_its_environment_variable(run, monkeypatch, tmp_path):
    monkeypatch.setenv("BASCULE_DATABASE_URL", f"sqlite:///{tmp_path}/from-env.db")
    run("maintenance", "on", "--database-url", f"sqlite:///{tmp_path}/from-flag.db")
    assert (tmp_path / "from-flag.db").exists() and not (tmp_path / "from-env.db").exists()


def test_an_unreachable_database_is_reported_without_a_traceback(run):
    result = run(
        "maintenance", "status", "--database-url", "postgresql://bob:hunter22@127.0.0.1:9/x", code=1
    )
    assert "cannot use the database" in result.output
    assert "hunter22" not in result.output
    assert "Traceback" not in result.output
    assert (
        "not a database URL"
        in run("users", "list", "--database-url", "postgresql://h:port/x", code=1).output
    )


def test_bypass_add_list_revoke(run, database_url):
    from bascule.bypass import BypassTokens
    from bascule.store import Store

    added = run("bypass", "add", "testers", "--expires", "2h")
    token = added.stdout.strip().splitlines()[-1]
    assert "valid until" in added.output
    listed = run("bypass", "list").output
    assert listed.startswith("testers\tby ") and "0 uses" in listed and token not in listed
    store = Store(database_url)
    try:
        found = BypassTokens(store).valid().find(token.encode())
        assert found is not None and found.name == "testers"
        assert found.expires_at - BypassTokens(store).list(_operator())[0].created_at == 7_200_000
    finally:
        store.close()
    assert "exists already" in run("bypass", "add", "testers", code=1).output
    assert "give seconds" in run("bypass", "add", "x", "--expires", "5y", code=2).output
    run("bypass", "revoke", "testers")
    assert "No bypass token" in run("bypass", "revoke", "testers", code=1).output
    assert run("bypass", "list").output == ""


def _operator():
    from bascule.model import Actor

    return Actor.operator("root")


def test_proxy_config_refuses_what_it_cannot_use(run, tmp_path):
    out = str(tmp_path / "out")
    args = ["--upstream", "http://127.0.0.1:1", "--bascule", "http://127.0.0.1:2"]
    for listen in ["nowhere", "127.0.0.1:0", "127.0.0.1:99999", ":8080"]:
        bad_listen = run(
            "proxy-config", "nginx", "--listen", listen, *args, "--output-dir", out, code=2
        )
        assert "give HOST:PORT" in bad_listen.output
    https = ["--upstream", "https://x", "--bascule", "http://127.0.0.1:2"]
    refused = run(
        "proxy-config", "nginx", "--listen", "127.0.0.1:9", *https, "--output-dir", out, code=1
    )
    assert "http://HOST:PORT" in refused.output


def test_maintenance_on_read_only(run):
    assert "Maintenance is on (read-only)" in run("maintenance", "on", "--read-only").output
    assert state(run)["mode"] == "read-only"
    assert "(read-only, user-triggered" in run("maintenance", "status").output


@pytest.mark.parametrize(
    "bascule_url",
    [
        'http://a"..os.execute("touch pwned")..":80',
        "http://a;b:80",
        "http://x/path",
        "http://u@x",
        # A mistyped port made a recipe asking port 80: one that blocks nothing.
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "http://127.0.0.1:",
        "http://127.0.0.1:80x",
    ],
)
def test_proxy_config_writes_nothing_it_was_not_given_as_a_host(run, tmp_path, bascule_url):
    args = ["--listen", "127.0.0.1:9", "--upstream", "http://127.0.0.1:1", "--bascule", bascule_url]
    result = run("proxy-config", "envoy", *args, "--output-dir", str(tmp_path / "o"), code=1)
    assert "give an http://HOST:PORT URL" in result.output
    assert not (tmp_path / "o").exists()


def test_schedule_add_takes_times_from_now(run):
    import datetime

    before = datetime.datetime.now(datetime.UTC)
    run("schedule", "add", "--start", "+1h", "--end", "in 2 hours", "--message", "Upgrade")
    listed = run("schedule", "list").output
    start = datetime.datetime.strptime(listed.split("#1")[1].strip()[:23], "%Y-%m-%d %H:%M:%S UTC")
    start = start.replace(tzinfo=datetime.UTC)
    assert datetime.timedelta(minutes=59) < start - before < datetime.timedelta(minutes=61)
    refused = run("schedule", "add", "--start", "tomorrow", "--message", "x", code=1).output
    assert "+1h30m or 'in 30 minutes'" in refused


def test_schedule_add_list_cancel_and_the_history(run):
    import datetime

    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    later = soon + datetime.timedelta(hours=1)
    added = run(
        "schedule",
        "add",
        "--start",
        soon.isoformat(),
        "--end",
        later.isoformat(),
        "--message",
        "Database upgrade",
        "--read-only",
        "--auto-end",
        "--user",
        "ops",
    )
    window_id = added.stdout.strip()
    assert window_id.isdigit()
    listed = run("schedule", "list").output
    assert f"#{window_id}" in listed and "read-only by ops: Database upgrade" in listed
    assert "(ends by itself)" in listed
    assert (
        "must be in the future"
        in run("schedule", "add", "--start", "2020-01-01T00:00Z", "--message", "x", code=1).output
    )
    assert (
        "offset"
        in run("schedule", "add", "--start", "2099-01-01T00:00", "--message", "x", code=1).output
    )
    run("schedule", "cancel", window_id)
    assert run("schedule", "list").output.strip() == "No window planned."
    assert "cancelled, not planned" in run("schedule", "cancel", window_id, code=1).output
    assert run("maintenance", "history").output.strip() == "No maintenance yet."
    run("maintenance", "on", "--user", "ops", "--message", "by hand")
    run("maintenance", "off", "--user", "ops")
    history = run("maintenance", "history").output
    assert re.fullmatch(
        r"#\d+  ended  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by ops, lasted \d+ s, ended by ops"
        r"  \(2 messages\)\n",
        history,
    )
    first = json.loads(run("maintenance", "history", "--json").stdout)["windows"][0]
    shown = run("maintenance", "history", "--window", str(first["id"])).output
    assert "ops: by hand" in shown
    assert (
        "No maintenance window 999"
        in run("maintenance", "history", "--window", "999", code=1).output
    )


def test_release_needs_a_dead_holder(run):
    assert "not enabled" in run("maintenance", "release", "--reason", "x", code=1).output
    run("maintenance", "on", "--user", "ops")
    assert "nothing to release" in run("maintenance", "release", "--reason", "x", code=1).output


HOSTILE_TEXT = "\x1b]0;PWNED\x07 \x1b[2J\u202etxt.exe\nforged line\r"


def test_no_terminal_escape_reaches_the_operators_terminal(run):
    # Messages, reasons and window messages may hold any character but NUL: printed, each
    # control character is written out, so none acts on the terminal or forges a line.
    run("maintenance", "on", "--message", HOSTILE_TEXT)
    run("maintenance", "update", "--message", HOSTILE_TEXT)
    status = run("maintenance", "status").output
    run("maintenance", "off")
    run("schedule", "add", "--start", "2999-01-01T00:00Z", "--message", HOSTILE_TEXT)
    listed = run("schedule", "list").output
    history = run("maintenance", "history", "--window", "1").output
    for output in (status, listed, history):
        assert not [c for c in output if c != "\n" and (ord(c) < 32 or 0x7F <= ord(c) < 0xA0)]
        assert "\u202e" not in output and "\n  forged line" not in output
        assert "\\x1b]0;PWNED\\x07" in output and "\\u202etxt.exe\\nforged line\\r" in output


@pytest.mark.parametrize("name", ["deploy\x1b[2J", "with space", "", "x" * 256, "-lead"])
def test_process_names_follow_the_user_name_rule(run, name):
    refused = run("maintenance", "on", "--process", name, code=1)
    assert "a process name is 1 to 255 letters, digits" in refused.output
    assert "\x1b" not in refused.output
    assert state(run) is None


def test_webhooks_add_list_test_remove_and_the_events(run, monkeypatch):
    from bascule import events
    from bascule.cli.webhooks import EVENT_TYPES
    from tests.test_webhooks import _receiver

    assert EVENT_TYPES == events.TYPES  # the command's choices are the event types
    receiver_fixture = _receiver()
    receiver = next(receiver_fixture)
    try:
        added = run("webhooks", "add", receiver.url, "--event", "maintenance.ended")
        secret = added.stdout.strip()
        assert secret.startswith("whsec_") and "taking maintenance.ended" in added.stderr
        listed = run("webhooks", "list").stdout
        assert listed.startswith(f"1\t{receiver.url}\tmaintenance.ended\t")
        assert secret not in listed
        tested = run("webhooks", "test", "1")
        assert "delivered, HTTP 204" in tested.stdout
        assert [json.loads(body)["type"] for _, body, _ in receiver.got] == ["webhook.test"]
        receiver.statuses = [500]
        failed = run("webhooks", "test", "1", code=1)
        assert "not delivered (tried again later), HTTP 500" in failed.stdout
        assert "pending after 1 try (HTTP 500" in run("webhooks", "list").stdout
        run("webhooks", "remove", "1")
        assert run("webhooks", "list").stdout == ""
        assert "No webhook 1." in run("webhooks", "remove", "1", code=1).output
        refused = run("webhooks", "add", "http://169.254.169.254/", code=1).output
        assert "link-local or cloud-metadata" in refused
        assert (
            "Invalid value for '--event'"
            in run("webhooks", "add", receiver.url, "--event", "x", code=2).output
        )
    finally:
        next(receiver_fixture, None)
    trail = run("events", "--type", "webhook.").stdout.splitlines()
    assert [line.split("\t")[1] for line in trail] == [
        "webhook.removed",
        "webhook.test",
        "webhook.test",
        "webhook.added",
    ]
    assert all(line.split("\t")[2].endswith(")") for line in trail)  # who (from where)
    assert len(run("events", "--limit", "1").stdout.splitlines()) == 1
