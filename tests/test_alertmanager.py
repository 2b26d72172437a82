"""Alertmanager silenced while maintenance is on: the settings, the silence's life, and
Debian's real Alertmanager (prometheus-alertmanager) kept in step by one Bascule or two
on one database, while it is up, down, and back."""

from __future__ import annotations

import datetime
import http.server
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bascule import alertmanager
from bascule.alertmanager import (
    LEASE,
    MARGIN,
    RENEW_BEFORE,
    Alertmanager,
    AlertmanagerError,
    Wanted,
    next_step,
)
from bascule.app import create_app
from bascule.cli import main
from bascule.config import Matcher, Settings, parse_matcher
from bascule.model import EPOCH, Actor, LogEntry, MaintenanceState
from bascule.records import SilenceRecord
from bench.run import free_port
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.serving import BASCULE, clean_env, serving
from tests.waiting import until

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
MATCHERS = ('job="web"', 'env=~"prod|staging"')
EXPECTED_MATCHERS = [
    {"name": "job", "value": "web", "isRegex": False, "isEqual": True},
    {"name": "env", "value": "prod|staging", "isRegex": True, "isEqual": True},
]

# -- the settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "matcher"),
    [
        ('job="web"', Matcher("job", "web")),
        ('job!="web"', Matcher("job", "web", is_equal=False)),
        ('env=~"prod|staging"', Matcher("env", "prod|staging", is_regex=True)),
        ('env!~"dev.*"', Matcher("env", "dev.*", is_regex=True, is_equal=False)),
        (" job = web ", Matcher("job", "web")),
        (r'msg="say \"hi\", twice\\"', Matcher("msg", 'say "hi", twice\\')),
        (r'path=~"\d+"', Matcher("path", r"\d+", is_regex=True)),
        ('__name__="up"', Matcher("__name__", "up")),
    ],
)
def test_a_matcher_is_read_as_alertmanager_reads_it(text, matcher):
    assert parse_matcher(text) == matcher
    assert parse_matcher(str(matcher)) == matcher  # and written back


@pytest.mark.parametrize("text", ["job", 'job=="web"', '="web"', 'job="web', '1job="x"', 'a="b" c'])
def test_a_malformed_matcher_is_refused_saying_the_form(text):
    with pytest.raises(ValueError, match=r'--alertmanager-matcher takes LABEL="VALUE"'):
        parse_matcher(text)


def settings(**values):
    return Settings.from_env({}, **values)


def test_the_variable_takes_matchers_comma_separated_a_quoted_comma_kept():
    read = Settings.from_env(
        {
            "BASCULE_ALERTMANAGER_URL": "http://alertmanager:9093",
            "BASCULE_ALERTMANAGER_MATCHERS": 'job="web", env=~"a,b", team!="x\\",y"',
        }
    )
    assert read.alertmanager_matchers == ('job="web"', 'env=~"a,b"', 'team!="x\\",y"')
    assert Settings.from_env(read.to_env()) == read  # as workers get them


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alertmanager_url": "http://am:9093"}, "needs at least one --alertmanager-matcher"),
        ({"alertmanager_matchers": MATCHERS}, "--alertmanager-matcher needs --alertmanager-url"),
        (
            {"alertmanager_url": "ftp://am", "alertmanager_matchers": MATCHERS},
            "http:// or https://",
        ),
        ({"alertmanager_url": "am:9093", "alertmanager_matchers": MATCHERS}, "http:// or https://"),
        ({"alertmanager_url": "http://am:99999", "alertmanager_matchers": MATCHERS}, "http://"),
        ({"alertmanager_url": "http://am/?a=1", "alertmanager_matchers": MATCHERS}, "no query"),
        (
            {"alertmanager_url": "http://am", "alertmanager_matchers": ('job!="web"', 'a=~".*"')},
            "would silence every alert",
        ),
        ({"alertmanager_url": "http://am", "alertmanager_matchers": ("job",)}, "LABEL="),
    ],
)
def test_bad_alertmanager_settings_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        settings(**values)


def test_a_refused_url_is_never_repeated():
    secret_url = "htp://bascule:s3cret-pass@am:9093"
    with pytest.raises(ValueError) as refused:
        settings(alertmanager_url=secret_url, alertmanager_matchers=MATCHERS)
    assert "s3cret" not in str(refused.value)
    good = settings(
        alertmanager_url=secret_url.replace("htp", "http"), alertmanager_matchers=MATCHERS
    )
    assert "s3cret" not in repr(good)


def test_serve_refuses_bad_alertmanager_settings_at_start(tmp_path):
    env = {"BASCULE_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}
    url_only = ["serve", "--alertmanager-url", "http://u:s3cret@127.0.0.1:9"]
    refused = CliRunner().invoke(main, url_only, env=env)
    assert refused.exit_code == 1
    assert "needs at least one --alertmanager-matcher" in refused.output
    assert "s3cret" not in refused.output
    bad = CliRunner().invoke(main, [*url_only, "--alertmanager-matcher", "job"], env=env)
    assert bad.exit_code == 1 and "takes LABEL=" in bad.output
    assert not (tmp_path / "b.db").exists()  # refused before anything was done


# -- what the silence needs, step by step ------------------------------------------------

NOW = 1_800_000_000_000
WANT = Wanted(window_id=3, comment="Upgrading", planned_end=None, digest="d")


def test_maintenance_on_makes_a_silence_that_is_pushed_forward_while_it_lasts():
    step = next_step(SilenceRecord(), WANT, NOW)
    assert step is not None and (step.kind, step.ends_at) == ("send", NOW + LEASE)
    kept = SilenceRecord("s1", 3, NOW, NOW + LEASE, "d")
    assert next_step(kept, WANT, NOW + LEASE - RENEW_BEFORE) is None
    later = NOW + LEASE - RENEW_BEFORE + 1  # well before it runs out
    step = next_step(kept, WANT, later)
    assert step is not None and (step.kind, step.ends_at) == ("send", later + LEASE)


def test_a_new_message_or_window_updates_the_silence():
    kept = SilenceRecord("s1", 3, NOW, NOW + LEASE, "d")
    step = next_step(kept, Wanted(3, "Almost done", None, "e"), NOW + 1000)
    assert step is not None and (step.kind, step.ends_at) == ("send", NOW + LEASE)
    step = next_step(kept, Wanted(4, "Upgrading", None, "d"), NOW + 1000)  # off, on again
    assert step is not None and step.ends_at == NOW + 1000 + LEASE


def test_a_planned_end_is_the_silences_end_until_it_passes():
    planned = Wanted(3, "Upgrading", NOW + 3_600_000, "d")
    step = next_step(SilenceRecord(), planned, NOW)
    assert step is not None and step.ends_at == NOW + 3_600_000 + MARGIN
    kept = SilenceRecord("s1", 3, NOW, NOW + 3_600_000 + MARGIN, "d")
    assert next_step(kept, planned, NOW + 3_000_000) is None  # not pushed forward
    overrun = NOW + 3_600_001  # maintenance outlasts its plan: pushed forward from then
    step = next_step(kept, planned, overrun)
    assert step is not None and step.ends_at == overrun + LEASE


def test_maintenance_off_expires_the_silence_and_then_forgets_a_failure():
    step = next_step(SilenceRecord("s1", 3, NOW, NOW + LEASE, "d"), None, NOW)
    assert step is not None and step.kind == "expire"
    assert next_step(SilenceRecord(), None, NOW) is None
    failed = next_step(SilenceRecord(error="cannot reach Alertmanager"), None, NOW)
    assert failed is not None and failed.kind == "forget"


def test_the_comment_is_the_latest_message_or_a_sentence():
    state = MaintenanceState("ops", True, None, NOW, window_id=3)
    assert alertmanager.wanted(state, []).comment == "Maintenance is on."
    said = MaintenanceState("ops", True, None, NOW, log=(LogEntry(NOW, "ops", "Moving the DB"),))
    assert alertmanager.wanted(said, []).comment == "Moving the DB"
    assert alertmanager.wanted(None, []) is None


# -- the client: credentials sent, never shown -------------------------------------------


@contextmanager
def recording_server(status: int, body: bytes) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server answering every request ``status`` with ``body``; the headers of
    each request it got."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(dict(self.headers))
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_urls_credentials_go_in_basic_auth_and_nowhere_else():
    with recording_server(200, b'{"silenceID": "abc"}') as (address, seen):
        client = Alertmanager(f"http://bascule:s%40cret@{address}/prefix/")
        assert client.where == f"http://{address}/prefix"
        assert client.set_silence({"comment": "x"}) == "abc"
    assert seen[0]["Authorization"] == "Basic YmFzY3VsZTpzQGNyZXQ="  # bascule:s@cret


def test_a_failed_call_says_why_in_one_line_without_the_url():
    answer = b'"silence invalid: bad matcher"\n'
    with recording_server(400, answer) as (address, _), pytest.raises(AlertmanagerError) as refused:
        Alertmanager(f"http://u:s3cret@{address}").set_silence({})
    assert str(refused.value) == "Alertmanager answered 400: silence invalid: bad matcher"
    port = free_port()  # nobody listens there
    with pytest.raises(AlertmanagerError, match="cannot reach Alertmanager") as unreachable:
        Alertmanager(f"http://u:s3cret@127.0.0.1:{port}").set_silence({})
    assert "s3cret" not in str(unreachable.value) and str(port) not in str(unreachable.value)


# -- the real Alertmanager ---------------------------------------------------------------


class RealAlertmanager:
    """Debian's Alertmanager, a single node on a loopback port, its data in ``directory``."""

    def __init__(self, directory: Path) -> None:
        assert ALERTMANAGER.exists(), "install prometheus-alertmanager (make system-packages)"
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        config = {"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]}
        (directory / "alertmanager.yml").write_text(json.dumps(config))  # JSON is YAML

    def start(self) -> None:
        log = (self.directory / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={self.directory / 'alertmanager.yml'}",
                f"--storage.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.output()
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(ready, 30, "Alertmanager answering")

    def stop(self, *, forget: bool = False) -> None:
        """Stop it (``forget``: and lose its data, as a new node would)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        if forget:
            shutil.rmtree(self.directory / "data", ignore_errors=True)

    def output(self) -> str:
        return (self.directory / "alertmanager.log").read_text(errors="replace")

    def silences(self) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v2/silences", timeout=2)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def active(self) -> list[dict]:
        return [s for s in self.silences() if s["status"]["state"] == "active"]


@pytest.fixture
def alertmanager_server(tmp_path) -> Iterator[RealAlertmanager]:
    directory = tmp_path / "alertmanager"
    directory.mkdir()
    server = RealAlertmanager(directory)
    server.start()
    yield server
    server.stop()


def bascule_app(database_url: str, alertmanager_url: str):
    app = create_app(
        Settings.from_env(
            {},
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            validate_responses=True,
            poll_interval=0.05,
            alertmanager_url=alertmanager_url,
            alertmanager_matchers=MATCHERS,
        )
    )
    app.services.monitor.refresh()
    return app


@pytest.fixture
def instance(database_url, alertmanager_server):
    app = bascule_app(database_url, alertmanager_server.url)
    yield app
    app.services.close()


@pytest.fixture
def bascule(instance):
    with instance.test_client() as client:
        yield client


def ms(text: str) -> int:
    """An RFC 3339 time of Alertmanager's, in epoch milliseconds."""
    return (datetime.datetime.fromisoformat(text) - EPOCH) // datetime.timedelta(milliseconds=1)


def health(client) -> dict:
    answer = client.get("/rest/v1/admin/health")
    assert answer.status_code == 200, answer.text  # whatever Alertmanager does
    return answer.json()["data"]


def one_active(server: RealAlertmanager, comment: str | None = None) -> dict | None:
    active = server.active()
    assert len(active) <= 1, active
    if active and (comment is None or active[0]["comment"] == comment):
        return active[0]
    return None


@pytest.mark.slow
def test_maintenance_on_keeps_one_silence_which_ends_with_it(bascule, alertmanager_server):
    body = {"message": "Moving the database"}
    assert bascule.post("/rest/v1/maintenance", headers=ADMIN).status_code == 201
    assert bascule.put("/rest/v1/maintenance", headers=ADMIN, json=body).status_code == 201
    until(lambda: one_active(alertmanager_server, "Moving the database"), 10, "the silence")
    (silence,) = alertmanager_server.silences()
    assert silence["matchers"] == EXPECTED_MATCHERS
    assert silence["createdBy"] == "Bascule"
    # no planned end: it lasts LEASE from now, and is pushed forward while maintenance lasts
    assert abs(ms(silence["endsAt"]) - ms(silence["startsAt"]) - LEASE) < 5000
    until(lambda: health(bascule)["alertmanager"]["silenceId"] == silence["id"], 10, "health")
    assert health(bascule)["alertmanager"] == {
        "status": "UP",
        "silenceId": silence["id"],
        "error": None,
    }
    # a new message is the comment of the same silence
    body = {"message": "Almost done", "progressPercentage": 90}
    assert bascule.put("/rest/v1/maintenance", headers=ADMIN, json=body).status_code == 201
    until(lambda: one_active(alertmanager_server, "Almost done"), 10, "the new comment")
    assert [s["id"] for s in alertmanager_server.silences()] == [silence["id"]]
    assert bascule.delete("/rest/v1/maintenance", headers=ADMIN).status_code == 200
    waited = until(lambda: not alertmanager_server.active(), 5, "the silence expired")
    print(f"silence expired {waited:.2f} s after maintenance ended")
    (expired,) = alertmanager_server.silences()
    assert expired["status"]["state"] == "expired"
    until(lambda: health(bascule)["alertmanager"]["silenceId"] is None, 10, "health")


@pytest.mark.slow
def test_two_instances_on_one_database_keep_one_silence(database_url, alertmanager_server, bascule):
    other = bascule_app(database_url, alertmanager_server.url)
    try:
        with other.test_client() as second:
            for _ in range(3):  # on and off, three times, with both following
                assert second.post("/rest/v1/maintenance", headers=ADMIN).status_code == 201
                silence = until_value(lambda: one_active(alertmanager_server), 10, "a silence")
                known = {silence["id"]}
                until(
                    lambda known=known: (
                        {health(c)["alertmanager"]["silenceId"] for c in (bascule, second)} == known
                    ),
                    10,
                    "both instances knowing the silence",
                )
                assert bascule.delete("/rest/v1/maintenance", headers=ADMIN).status_code == 200
                until(lambda: not alertmanager_server.active(), 5, "the silence expired")
            # three maintenances, three silences: none made twice, none left active
            silences = alertmanager_server.silences()
            assert len(silences) == 3, silences
            assert {s["status"]["state"] for s in silences} == {"expired"}
    finally:
        other.services.close()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_planned_window_is_silenced_until_its_end(instance, alertmanager_server):
    windows = instance.services.windows
    start = windows.clock() + 1500
    end = start + 3_600_000
    windows.plan(Actor.operator("ops"), start, end, "Database upgrade")
    until(lambda: one_active(alertmanager_server, "Database upgrade"), 15, "the silence")
    (silence,) = alertmanager_server.active()
    assert ms(silence["endsAt"]) == end + MARGIN
    assert silence["matchers"] == EXPECTED_MATCHERS


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_silence_is_pushed_forward_keeping_its_id(bascule, alertmanager_server, monkeypatch):
    monkeypatch.setattr(alertmanager, "LEASE", 8000)
    monkeypatch.setattr(alertmanager, "RENEW_BEFORE", 6000)  # pushed every 2 s or so
    assert bascule.post("/rest/v1/maintenance", headers=ADMIN).status_code == 201
    first = until_value(lambda: one_active(alertmanager_server), 10, "the silence")
    pushed = until_value(
        lambda: (s := one_active(alertmanager_server)) and s["endsAt"] > first["endsAt"] and s,
        10,
        "the silence pushed forward",
    )
    assert pushed["id"] == first["id"] and pushed["startsAt"] == first["startsAt"]
    assert len(alertmanager_server.silences()) == 1


def until_value(produce, timeout: float, what: str):
    found = []
    until(lambda: found.append(produce()) or found[-1], timeout, what)
    return found[-1]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_alertmanager_down_is_reported_and_the_silence_made_once_it_is_back(
    bascule, alertmanager_server, caplog
):
    caplog.set_level(logging.INFO, "bascule.alertmanager")
    alertmanager_server.stop()
    body = {"message": "Upgrading"}
    assert bascule.post("/rest/v1/maintenance", headers=ADMIN).status_code == 201
    assert bascule.put("/rest/v1/maintenance", headers=ADMIN, json=body).status_code == 201
    until(lambda: health(bascule)["alertmanager"]["status"] == "DOWN", 10, "health DOWN")
    report = health(bascule)  # 200: a load balancer keeps this instance
    assert report["status"] == "UP"
    assert report["alertmanager"]["silenceId"] is None
    assert report["alertmanager"]["error"].startswith("cannot reach Alertmanager")
    alertmanager_server.start()
    until(lambda: one_active(alertmanager_server, "Upgrading"), 15, "the silence")
    until(lambda: health(bascule)["alertmanager"]["status"] == "UP", 10, "health UP")
    lines = [r.getMessage() for r in caplog.records if r.name == "bascule.alertmanager"]
    assert len([line for line in lines if " fails: " in line]) == 1, lines
    assert len([line for line in lines if "answers again" in line]) == 1, lines
    # Alertmanager restarted without its data: the silence is made again
    first = one_active(alertmanager_server)
    alertmanager_server.stop(forget=True)
    alertmanager_server.start()
    body = {"message": "Still upgrading"}
    assert bascule.put("/rest/v1/maintenance", headers=ADMIN, json=body).status_code == 201
    again = until_value(
        lambda: one_active(alertmanager_server, "Still upgrading"), 15, "the new silence"
    )
    assert again["id"] != first["id"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bascule_serve_keeps_the_silence_and_never_logs_the_urls_password(
    database_url, tmp_path, alertmanager_server
):
    alertmanager_server.stop()
    url = alertmanager_server.url.replace("http://", "http://bascule:s3cret-pass@")
    args = ["--alertmanager-url", url]
    for matcher in MATCHERS:
        args += ["--alertmanager-matcher", matcher]
    env = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with serving(database_url, tmp_path, *args, env=env) as server:
        on = subprocess.run(
            [*BASCULE, "maintenance", "on", "--message", "Deploying"],
            env=clean_env(BASCULE_DATABASE_URL=database_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert on.returncode == 0, on.stderr

        def alertmanager_health() -> dict:
            answer = httpx.get(f"{server.url}/rest/v1/admin/health", timeout=5)
            assert answer.status_code == 200
            return answer.json()["data"]["alertmanager"]

        until(lambda: alertmanager_health()["status"] == "DOWN", 10, "health DOWN")
        alertmanager_server.start()
        until(lambda: one_active(alertmanager_server, "Deploying"), 15, "the silence")
        until(lambda: alertmanager_health()["status"] == "UP", 10, "health UP")
        off = subprocess.run(
            [*BASCULE, "maintenance", "off"],
            env=clean_env(BASCULE_DATABASE_URL=database_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert off.returncode == 0, off.stderr
        until(lambda: not alertmanager_server.active(), 5, "the silence expired")
        until(lambda: "expired the silence" in server.output(), 5, "the log")
    output = server.output()
    assert "s3cret" not in output
    assert f"Alertmanager ({alertmanager_server.url}) fails: cannot reach" in output
    assert f"Alertmanager ({alertmanager_server.url}) answers again" in output
    assert 'silenced the alerts of job="web" env=~"prod|staging"' in output
