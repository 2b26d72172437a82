"""Black-box: ``bascule serve`` as a subprocess, spoken to over HTTP on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client

from bascule.model import now_ms
from tests.conftest import ADMIN_PASSWORD, basic
from tests.proxying import check_hostile_requests
from tests.serving import BASCULE, clean_env, leave_mid_body, raw_request, serving, stop
from tests.waiting import until

ADMIN = basic("admin", ADMIN_PASSWORD)
WITH_PASSWORD = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}


def bascule(*args: str, database_url: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASCULE, *args],
        env=clean_env(BASCULE_DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_first_start_generates_an_admin_password_printed_once(database_url, tmp_path):
    with serving(database_url, tmp_path) as server:
        printed = re.findall(r"user 'admin' with the password (\S+)", server.output())
        assert len(printed) == 1
        password = printed[0]
        assert len(password) >= 16
        response = httpx.post(
            f"{server.url}/login", data={"username": "admin", "password": password}
        )
        assert response.status_code == 200
        assert response.json()["data"]["roles"] == ["ADMIN"]
        assert "JSESSIONID" in response.cookies
    with serving(database_url, tmp_path) as server:
        assert "password" not in server.output()
    if database_url.startswith("sqlite"):  # not stored in clear anywhere in the file
        assert password.encode() not in (tmp_path / "bascule.db").read_bytes()


def test_maintenance_survives_a_restart(database_url, tmp_path):
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        assert httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN).status_code == 201
        httpx.put(f"{server.url}/rest/v1/maintenance", headers=ADMIN, json={"message": "before"})
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        state = httpx.get(f"{server.url}/rest/v1/maintenance", headers=ADMIN).json()["data"]
        assert state["log"][-1]["message"] == "before"
        assert httpx.get(f"{server.url}/page").status_code == 503


def test_sigkill_loses_nothing(database_url, tmp_path):
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
        httpx.put(
            f"{server.url}/rest/v1/maintenance", headers=ADMIN, json={"progressPercentage": 70}
        )
        stop(server.process, 9)
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        state = httpx.get(f"{server.url}/rest/v1/maintenance", headers=ADMIN).json()["data"]
        assert state["progressPercent"] == 70


def test_a_change_made_by_the_cli_is_enforced_within_a_second(database_url, tmp_path):
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        assert httpx.get(f"{server.url}/page").status_code == 404
        result = bascule("maintenance", "on", "--process", "deploy", database_url=database_url)
        assert result.returncode == 0, result.stderr
        until(lambda: httpx.get(f"{server.url}/page").status_code == 503, 1.0, "the change")
        response = httpx.delete(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == 505
        bascule("maintenance", "off", "--process", "deploy", database_url=database_url)
        until(lambda: httpx.get(f"{server.url}/page").status_code == 404, 1.0)


BYPASSES = [
    "/rest/v1/x/rest/v1/maintenance",
    "/rest/v1/maintenance/../x",
    "//rest/v1/x",
    "//rest/v1/maintenance",
    "/rest/v1/%6daintenance",
    "/rest/v1/maintenance%2F..%2Fx",
    "/rest/v1/ui/../../x",
    "/rest/v1/auth/%2e%2e/x",
    "/x?/rest/v1/maintenance",
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bypass_attempts_over_the_wire(database_url, tmp_path):
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
        for target in BYPASSES:
            assert raw_request(server.url, target) == 503, target
        assert raw_request(server.url, "/rest/v1/admin/health") == 200
        assert raw_request(server.url, "/rest/v1/maintenance") == 401


WSGI_APP = """
def application(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi says hello from " + environ["PATH_INFO"].encode()]
"""

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi says hello"})
"""


@pytest.mark.parametrize(
    ("source", "target", "greeting"),
    [
        (WSGI_APP, "userapp:application", "wsgi says hello"),
        (ASGI_APP, "userapp:app", "asgi says hello"),
    ],
)
def test_a_mounted_app_behind_the_gate(database_url, tmp_path, source, target, greeting):
    (tmp_path / "userapp.py").write_text(textwrap.dedent(source))
    with serving(database_url, tmp_path, "--app", target, env=WITH_PASSWORD) as server:
        page = httpx.get(f"{server.url}/shop/cart")
        assert (page.status_code, page.text.startswith(greeting)) == (200, True)
        # the user's app gets the paths Bascule does not own, even under /rest
        assert httpx.get(f"{server.url}/rest/v1/orders").text.startswith(greeting)
        assert httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN).status_code == 201
        refused = httpx.get(f"{server.url}/shop/cart")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "120"
        assert refused.json()["error"]["code"] == 0
        assert (
            httpx.get(f"{server.url}/rest/v1/maintenance", headers=ADMIN).json()["data"]["user"]
            == "admin"
        )
        assert httpx.delete(f"{server.url}/rest/v1/maintenance", headers=ADMIN).status_code == 200
        assert httpx.get(f"{server.url}/shop/cart").status_code == 200
    if "lifespan" in source:  # the mounted app's own start-up and shut-down ran
        assert (tmp_path / "lifespan.log").read_text().split() == ["startup", "shutdown"]


GATED_APP = f"""
import os

from bascule import MaintenanceGate
{ASGI_APP}
app = MaintenanceGate(app, os.environ["BASCULE_DATABASE_URL"], allow=["/healthz"])
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_gate_around_any_app_served_by_uvicorn_as_the_readme_says(database_url, tmp_path):
    assert bascule("db", "upgrade", database_url=database_url).returncode == 0
    (tmp_path / "shop.py").write_text(GATED_APP)
    args = ("--interface", "asgi3")
    with serving(database_url, tmp_path, *args, uvicorn="shop:app.route", ready="/page") as server:
        assert bascule("maintenance", "on", database_url=database_url).returncode == 0
        until(lambda: httpx.get(f"{server.url}/page").status_code == 503, 5.0)
        assert httpx.get(f"{server.url}/page").json()["error"]["code"] == 0
        assert httpx.get(f"{server.url}/healthz").text == "asgi says hello"
        assert raw_request(server.url, "/healthz/../page") == 503
        assert bascule("maintenance", "off", database_url=database_url).returncode == 0
        until(lambda: httpx.get(f"{server.url}/page").text == "asgi says hello", 5.0)


def refused_handshake(url: str) -> tuple[int, dict[str, str], bytes]:
    """Open a WebSocket that the server refuses: its HTTP status, headers and body."""
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(url, open_timeout=10).close()
    response = refused.value.response
    return response.status_code, dict(response.headers), response.body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_websocket_handshakes_get_the_503_and_unknown_ones_the_404(database_url, tmp_path):
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        ws_url = server.url.replace("http://", "ws://")
        status, _, body = refused_handshake(f"{ws_url}/live")
        assert (status, json.loads(body)["error"]["code"]) == (404, 504)
        assert httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN).status_code == 201
        status, headers, body = refused_handshake(f"{ws_url}/live")
        assert (status, headers["retry-after"]) == (503, "120")
        assert json.loads(body)["error"] == {"code": 0, "message": "Maintenance mode is enabled."}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_behind_a_proxy_that_strips_a_prefix(database_url, tmp_path):
    # uvicorn --root-path /svc: the proxy took /svc off, uvicorn puts it back in the path.
    assert bascule("db", "upgrade", database_url=database_url).returncode == 0
    (tmp_path / "shop.py").write_text(GATED_APP)
    args = ("--interface", "asgi3", "--root-path", "/svc")
    with serving(database_url, tmp_path, *args, uvicorn="shop:app.route", ready="/page") as server:
        assert (
            bascule("maintenance", "on", "--user", "ops", database_url=database_url).returncode == 0
        )
        until(lambda: httpx.get(f"{server.url}/page").status_code == 503, 5.0)
        assert httpx.get(f"{server.url}/healthz").text == "asgi says hello"
    env = {**WITH_PASSWORD, "BASCULE_ACCESS_LOG": "false"}
    target = "bascule.asgi:app"
    with serving(database_url, tmp_path, "--root-path", "/svc", uvicorn=target, env=env) as server:
        state = httpx.get(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
        assert (state.status_code, state.json()["data"]["user"]) == (200, "ops")
        document = httpx.get(f"{server.url}/rest/v1/openapi.json").json()
        assert document["servers"][0]["url"] == "/svc/rest/v1"
        assert httpx.delete(f"{server.url}/rest/v1/maintenance", headers=ADMIN).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_clients_that_leave_mid_body_are_one_line_each_not_an_error(database_url, tmp_path):
    (tmp_path / "userapp.py").write_text(textwrap.dedent(WSGI_APP))
    args = ("--app", "userapp:application")
    with serving(database_url, tmp_path, *args, env=WITH_PASSWORD) as server:
        auth = "Authorization: {}\r\n".format(ADMIN["Authorization"])
        httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
        leave_mid_body(server.url, "/rest/v1/maintenance", "PUT", auth)
        leave_mid_body(server.url, "/login")
        httpx.delete(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
        leave_mid_body(server.url, "/upload")  # to the WSGI application
        assert httpx.post(f"{server.url}/upload", content=b"x").status_code == 200
        output = server.output()
    assert "Traceback" not in output and "ERROR" not in output, output
    assert output.count("the client left before sending its whole body") == 2


COOKIE_ECHO_APP = """
async def app(scope, receive, send):
    cookies = [v for k, v in scope["headers"] if k == b"cookie"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"|".join(cookies) or b"none"})
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bascules_cookies_are_not_handed_to_the_mounted_app(database_url, tmp_path):
    (tmp_path / "userapp.py").write_text(COOKIE_ECHO_APP)
    with serving(database_url, tmp_path, "--app", "userapp:app", env=WITH_PASSWORD) as server:
        login = httpx.post(
            f"{server.url}/login", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        session = login.cookies["JSESSIONID"]

        def seen(cookie: str) -> str:
            return httpx.get(f"{server.url}/shop", headers={"Cookie": cookie}).text

        assert seen(f"JSESSIONID={session}") == "none"
        assert seen(f"cart=3; JSESSIONID={session}; theme=dark") == "cart=3; theme=dark"
        assert seen(f"XJSESSIONID=keep; JSESSIONID={session}") == "XJSESSIONID=keep"
        assert seen("cart=3") == "cart=3"
        device = login.cookies["bascule-device"]  # the browser's, which the throttle trusts
        assert seen(f"bascule-device={device}; cart=3; JSESSIONID={session}") == "cart=3"
        # and Bascule itself still reads it
        status = httpx.get(f"{server.url}/rest/v1/auth/status", cookies={"JSESSIONID": session})
        assert status.json()["data"]["username"] == "admin"


def test_serve_refuses_a_bad_app(database_url, tmp_path):
    result = bascule(
        "serve", "--app", "no_such_module:app", database_url=database_url, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "no_such_module" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_keeps_serving_instances_refusing_while_the_command_runs(database_url, tmp_path):
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        probe = (
            "import httpx, time\n"
            "deadline = time.monotonic() + 5\n"
            f"while httpx.get('{server.url}/page').status_code != 503:\n"
            "    assert time.monotonic() < deadline\n"
            "    time.sleep(0.02)\n"
            "print('refused while running')\n"
        )
        import sys

        result = bascule(
            "run",
            "--process",
            "deploy",
            "--",
            sys.executable,
            "-c",
            probe,
            database_url=database_url,
        )
        assert result.returncode == 0, result.stderr
        assert "refused while running" in result.stdout
        until(lambda: httpx.get(f"{server.url}/page").status_code == 404, 1.0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals_are_logged_in_aggregate_and_the_rest_as_usual(database_url, tmp_path):
    with serving(database_url, tmp_path, env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}) as server:
        admin = basic("admin", ADMIN_PASSWORD)
        assert httpx.post(f"{server.url}/rest/v1/maintenance", headers=admin).status_code == 201
        with httpx.Client() as client:
            for path in ["/shop/a", "/shop/b", "/shop/c", "/api/x", "/"]:
                assert client.get(f"{server.url}{path}").status_code == 503
            assert client.get(f"{server.url}/rest/v1/admin/health").status_code == 200
        stop(server.process)  # the last interval's count is written on the way out
        output = server.output()
    assert '"GET /shop/a HTTP/1.1" 503' not in output  # no line per refusal
    assert '"GET /rest/v1/admin/health HTTP/1.1" 200' in output  # the rest, as usual
    assert "refused 5 requests in the last" in output
    assert "/shop/ 3, / 1, /api/ 1" in output


def run_with_a_grandchild(
    env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.Popen[str], list[int]]:
    """``bascule run`` of a command that starts a child and waits; once both run, the
    process and the command's and its child's pids."""
    pids = tmp_path / "pids"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    command = [*BASCULE, "run", "--process", "deploy", "--", sys.executable, "-c", script]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    until(pids.exists, 10.0, "the command to start")
    until(lambda: len(pids.read_text().split()) == 2, 5.0, "the grandchild")
    return process, [int(pid) for pid in pids.read_text().split()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_passes_sigterm_on_and_leaves_no_orphan(database_url, tmp_path):
    # A command that starts a grandchild, then waits: both must be gone after SIGTERM.
    env = clean_env(BASCULE_DATABASE_URL=database_url)
    process, started = run_with_a_grandchild(env, tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 128 + signal.SIGTERM
    assert "killed by SIGTERM" in stderr
    for pid in started:
        until(lambda pid=pid: not alive(pid), 5.0, f"process {pid} to end")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_killed_outright_leaves_maintenance_on_its_command_ended_and_a_release(
    database_url, tmp_path
):
    from bascule.maintenance import Maintenance
    from bascule.store import Store

    env = clean_env(BASCULE_DATABASE_URL=database_url, BASCULE_LEASE_TTL="10")
    process, started = run_with_a_grandchild(env, tmp_path)
    process.kill()  # SIGKILL: bascule run cannot pass anything on
    _, stderr = process.communicate(timeout=10)  # the watcher holds stderr until it is done
    assert "`bascule run` died; ended its command" in stderr
    for pid in started:  # the watcher ends the whole group, well within the lease
        until(lambda pid=pid: not alive(pid), 3.0, f"process {pid} to end")
    store = Store(database_url)
    try:
        state = Maintenance(store).state()
        assert state is not None and (state.user, state.lease_ttl) == ("deploy", 10)
        assert state.holder_alive(now_ms())  # its last renewal is less than 10 s old
        refused = subprocess.run(
            [*BASCULE, "maintenance", "release", "--reason", "too soon"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 1 and "it is alive" in refused.stderr
        # 10 s of silence, without waiting for them: its last renewal made older
        from sqlalchemy import update

        from bascule.tables import maintenance_state

        with store.write("state") as tx:
            silent_since = now_ms() - 10_001
            tx.conn.execute(update(maintenance_state).values(lease_renewed_at=silent_since))
        status = subprocess.run(
            [*BASCULE, "maintenance", "status"], env=env, capture_output=True, text=True
        )
        assert "The process deploy stopped answering at" in status.stdout
        off = subprocess.run(
            [*BASCULE, "maintenance", "off"], env=env, capture_output=True, text=True
        )
        assert off.returncode == 1 and "bascule maintenance release" in off.stderr
        released = subprocess.run(
            [*BASCULE, "maintenance", "release", "--reason", "host lost", "--user", "ops"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert released.returncode == 0, released.stderr
        assert "Released from the process deploy" in released.stdout
        subprocess.run([*BASCULE, "maintenance", "off", "--user", "ops"], env=env, check=True)
        assert Maintenance(store).state() is None
        window = Maintenance(store).history(0, 1)[1][0]
        assert (window.user, window.released_by, window.ended_by) == ("deploy", "ops", "ops")
    finally:
        store.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead, waiting for its parent
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_token_in_the_url_is_not_written_to_the_access_log(database_url, tmp_path):
    with serving(database_url, tmp_path, env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}) as server:
        admin = basic("admin", ADMIN_PASSWORD)
        api = f"{server.url}/rest/v1/maintenance"
        assert httpx.post(api, headers=admin).status_code == 201
        token = httpx.post(f"{api}/bypass", headers=admin, json={"name": "t"}).json()["data"]
        url = f"{server.url}/shop?page=2&bascule-bypass={token['token']}"
        assert httpx.get(url).status_code == 303
        stop(server.process)
        output = server.output()
    assert token["token"] not in output
    assert '"GET /shop?page=2 HTTP/1.1" 303' in output


RECORDING_APP = """
import json, pathlib

REACHED = pathlib.Path(__file__).with_name("reached.jsonl")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    with REACHED.open("a") as log:
        log.write(json.dumps([scope["method"], scope["raw_path"].decode("latin-1")]) + "\\n")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"the application"})
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["full", "read-only"])
def test_no_hostile_request_reaches_the_mounted_app(database_url, tmp_path, mode):
    (tmp_path / "userapp.py").write_text(RECORDING_APP)
    reached = tmp_path / "reached.jsonl"

    def seen() -> list[tuple[str, str]]:
        lines = reached.read_text().splitlines() if reached.exists() else []
        return [tuple(json.loads(line)) for line in lines]

    args = ("--app", "userapp:app", "--allow", "/healthz")
    with serving(database_url, tmp_path, *args, env=WITH_PASSWORD) as server:
        api = f"{server.url}/rest/v1/maintenance"
        assert httpx.post(api, headers=ADMIN, json={"mode": mode}).status_code == 201
        check_hostile_requests(server.url, seen, mode)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("trusted", [None, "127.0.0.1"])
def test_forwarded_addresses_are_believed_from_trusted_proxies_only(
    database_url, tmp_path, trusted
):
    env = {**WITH_PASSWORD, "BASCULE_FAILED_AUTH_PER_ADDRESS": "3"}
    if trusted:
        env["BASCULE_TRUSTED_PROXIES"] = trusted
    wrong = basic("admin", "not-the-password")
    with serving(database_url, tmp_path, env=env) as server:
        statuses = [
            httpx.get(
                f"{server.url}/rest/v1/maintenance",
                headers={**wrong, "X-Forwarded-For": f"192.0.2.{i}"},
            ).status_code
            for i in range(5)
        ]
    # Believed, each address has guesses of its own; else they are all the loopback's.
    assert statuses == ([401] * 5 if trusted else [401, 401, 401, 429, 429])
