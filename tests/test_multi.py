"""More than one process on one database: two servers, workers, a database that goes away."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from bascule.answers import CANNOT_READ
from tests.conftest import ADMIN_PASSWORD, basic
from tests.proxy import Proxy
from tests.serving import serving
from tests.waiting import until

ADMIN = basic("admin", ADMIN_PASSWORD)
WITH_PASSWORD = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}


@pytest.fixture
def two(database_url, tmp_path):
    with (
        serving(database_url, tmp_path, env=WITH_PASSWORD) as a,
        serving(database_url, tmp_path, env=WITH_PASSWORD) as b,
    ):
        yield a, b


def test_a_change_on_one_instance_is_enforced_by_the_other_within_a_second(two):
    a, b = two
    for _ in range(3):
        assert httpx.post(f"{a.url}/rest/v1/maintenance", headers=ADMIN).status_code == 201
        until(lambda: httpx.get(f"{b.url}/page").status_code == 503, 1.0, "on, on the other")
        state = httpx.get(f"{b.url}/rest/v1/maintenance", headers=ADMIN).json()["data"]
        assert state["user"] == "admin"
        assert httpx.delete(f"{b.url}/rest/v1/maintenance", headers=ADMIN).status_code == 200
        until(lambda: httpx.get(f"{a.url}/page").status_code == 404, 1.0, "off, on the other")


def test_sessions_are_shared_and_revoked_everywhere(two):
    a, b = two
    login = httpx.post(f"{a.url}/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    cookie = {"Cookie": f"JSESSIONID={login.cookies['JSESSIONID']}"}
    assert httpx.get(f"{b.url}/rest/v1/maintenance", headers=cookie).status_code == 200
    assert httpx.post(f"{a.url}/logout", headers=cookie).status_code == 200
    until(lambda: httpx.get(f"{b.url}/rest/v1/maintenance", headers=cookie).status_code == 403, 1.0)


def test_a_user_changed_on_one_instance_is_refused_by_the_other(two, database_url):
    from bascule.auth import Auth
    from bascule.store import Store

    _a, b = two
    assert httpx.get(f"{b.url}/rest/v1/maintenance", headers=ADMIN).status_code == 200  # cached
    store = Store(database_url)
    try:
        Auth(store).set_password("admin", "another-password")
    finally:
        store.close()
    until(lambda: httpx.get(f"{b.url}/rest/v1/maintenance", headers=ADMIN).status_code == 401, 1.0)


def test_twenty_concurrent_enables_over_two_instances_make_one_201(two):
    a, b = two
    urls = [f"{(a, b)[i % 2].url}/rest/v1/maintenance" for i in range(20)]
    with httpx.Client(headers=ADMIN, timeout=30) as client:
        client.get(urls[0]), client.get(urls[1])  # credentials verified once on each
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            statuses = sorted(pool.map(lambda url: client.post(url).status_code, urls))
    assert statuses == [201] + [409] * 19


# An application that says which process answered.
PID_APP = """
import os

async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_workers_all_enforce_a_change(database_url, tmp_path):
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with serving(
        database_url, tmp_path, "--workers", "2", "--app", "pidapp:app", env=WITH_PASSWORD
    ) as server:
        api = f"{server.url}/rest/v1/maintenance"
        assert httpx.post(api, headers=ADMIN).status_code == 201
        until(lambda: httpx.get(f"{server.url}/page").status_code == 503, 5.0, "maintenance on")
        assert httpx.delete(api, headers=ADMIN).status_code == 200
        time.sleep(1.0)  # the bound: from now on, every worker lets every request through
        answered: list[httpx.Response] = []

        def both_workers_answered() -> bool:
            answered.append(httpx.get(f"{server.url}/page"))  # a connection of its own
            return len({r.text for r in answered if r.status_code == 200}) == 2

        until(both_workers_answered, 20.0, "an answer from each of the two workers")
        assert {r.status_code for r in answered} == {200}, [r.status_code for r in answered]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_database_going_away_and_coming_back(database_url, tmp_path):
    url = make_url(database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with serving(through, tmp_path, env=WITH_PASSWORD) as server:
            api = f"{server.url}/rest/v1/maintenance"
            assert httpx.post(api, headers=ADMIN).status_code == 201
            proxy.cut()
            until(lambda: httpx.get(f"{server.url}/rest/v1/admin/health").status_code == 503, 5.0)
            health = httpx.get(f"{server.url}/rest/v1/admin/health").json()
            assert health["error"] == {"code": 503, "message": CANNOT_READ}
            assert health["data"]["maintenance"] is True
            # the last known state is still enforced, and still readable
            assert httpx.get(f"{server.url}/page").status_code == 503
            assert httpx.get(api, headers=ADMIN).json()["data"]["user"] == "admin"
            # a write cannot happen: 503 in the envelope, nothing changed
            refused = httpx.put(api, headers=ADMIN, json={"message": "lost?"}, timeout=30)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == 503
            proxy.restore()
            until(lambda: httpx.get(f"{server.url}/rest/v1/admin/health").status_code == 200, 10.0)
            assert httpx.put(api, headers=ADMIN, json={"message": "back"}).status_code == 201
            log = httpx.get(api, headers=ADMIN).json()["data"]["log"]
            assert [entry["message"] for entry in log][1:] == ["back"]
            assert httpx.delete(api, headers=ADMIN).status_code == 200
            until(lambda: httpx.get(f"{server.url}/page").status_code == 404, 1.0)
    finally:
        proxy.close()


def test_three_instances_start_and_end_a_planned_window_once_and_on_time(database_url, tmp_path):
    import datetime

    from bascule.model import PLANNED_END_MESSAGE, STARTED_MESSAGE

    with (
        serving(database_url, tmp_path, env=WITH_PASSWORD) as a,
        serving(database_url, tmp_path, env=WITH_PASSWORD) as b,
        serving(database_url, tmp_path, env=WITH_PASSWORD) as c,
    ):
        now = datetime.datetime.now(datetime.UTC)
        start, end = now + datetime.timedelta(seconds=2), now + datetime.timedelta(seconds=4)
        body = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "message": "Planned upgrade",
            "autoEnd": True,
        }
        planned = httpx.post(f"{a.url}/rest/v1/maintenance/schedule", json=body, headers=ADMIN)
        assert planned.status_code == 201, planned.text
        for when, status in ((start, 503), (end, 404)):
            wait = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
            time.sleep(max(0.0, wait))
            for server in (a, b, c):  # within a second of the time, on every instance
                until(lambda s=server, st=status: httpx.get(f"{s.url}/page").status_code == st, 1.0)
        history = httpx.get(f"{c.url}/rest/v1/maintenance/history", headers=ADMIN).json()["data"]
        assert history["total"] == 1  # started once, by one of the three
        window = history["windows"][0]
        assert (window["id"], window["status"], window["endedBy"]) == (
            planned.json()["data"]["id"],
            "ended",
            "schedule",
        )
        read = f"{b.url}/rest/v1/maintenance/history/{window['id']}"
        log = [e["message"] for e in httpx.get(read, headers=ADMIN).json()["data"]["log"]]
        assert log == [STARTED_MESSAGE, "Planned upgrade", PLANNED_END_MESSAGE]
