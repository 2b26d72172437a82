"""A switch that never lies: `bascule serve` through every kind of database outage.

A database gone silent, one that refuses connections, a file made read-only, a full
disk: each is noticed within its bound and said by health (what does not work), no
request waits past the bound, the last confirmed state is still enforced, and service
comes back by itself, without a restart, once the cause is gone.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from bascule.answers import CANNOT_READ, CANNOT_WRITE
from bascule.maintenance import Maintenance
from bascule.model import Actor
from bascule.store import Store
from tests.conftest import ADMIN_PASSWORD, basic
from tests.proxy import Proxy
from tests.serving import BASCULE, clean_env, serving
from tests.waiting import until

ADMIN = basic("admin", ADMIN_PASSWORD)
WITH_PASSWORD = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}
TIMEOUT = 3.0  # BASCULE_DATABASE_TIMEOUT's default
DETECTION_GOAL = 5.0  # health answers 503 within this of the database going silent
# Root ignores file modes: the server runs without that privilege, as a service would.
UNPRIVILEGED = (
    ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
    if os.geteuid() == 0
    else ()
)


def health(server) -> httpx.Response:
    return httpx.get(f"{server.url}/rest/v1/admin/health", timeout=10)


def timed(call) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def bascule(database_url: str, *args: str, input: str | None = None) -> None:
    result = subprocess.run(
        [*BASCULE, *args],
        env=clean_env(BASCULE_DATABASE_URL=database_url),
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_silent_database_is_noticed_within_5_s_and_recovered_from(database_url, tmp_path):
    url = make_url(database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with serving(through, tmp_path, env=WITH_PASSWORD) as server:
            api = f"{server.url}/rest/v1/maintenance"
            assert httpx.post(api, headers=ADMIN).status_code == 201
            proxy.freeze()
            until(lambda: health(server).status_code == 503, DETECTION_GOAL)
            report = health(server).json()
            assert report["error"] == {"code": 503, "message": CANNOT_READ}
            assert report["data"]["read"] == "DOWN"
            assert report["data"]["stateAge"] > TIMEOUT
            # The last confirmed state is still enforced and still readable.
            assert httpx.get(f"{server.url}/page").status_code == 503
            assert httpx.get(api, headers=ADMIN).json()["data"]["user"] == "admin"
            # No request waits past the bound: a write and a read of the log fail, 503.
            for call in (
                lambda: httpx.put(api, headers=ADMIN, json={"message": "lost?"}, timeout=60),
                lambda: httpx.get(f"{api}/log", headers=ADMIN, timeout=60),
            ):
                refused, took = timed(call)
                assert (refused.status_code, refused.json()["error"]["code"]) == (503, 503)
                assert took < TIMEOUT + 2
            # Meanwhile another instance, which sees the database, switches it off.
            elsewhere = Store(database_url)
            try:
                Maintenance(elsewhere).disable(Actor.operator("ops"))
            finally:
                elsewhere.close()
            proxy.thaw()
            until(lambda: health(server).status_code == 200, 10.0)
            until(lambda: httpx.get(f"{server.url}/page").status_code == 404, 2.0)
            assert httpx.post(api, headers=ADMIN).status_code == 201
            log = httpx.get(api, headers=ADMIN).json()["data"]["log"]
            assert [entry["message"] for entry in log][1:] == []  # "lost?" was not written
    finally:
        proxy.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_read_only_database_file_is_said_and_recovered_from(database_url, tmp_path):
    bascule(database_url, "db", "upgrade")
    bascule(
        database_url,
        "users",
        "add",
        "admin",
        "--role",
        "ADMIN",
        "--password-stdin",
        input=ADMIN_PASSWORD + "\n",
    )
    bascule(database_url, "maintenance", "on", "--user", "ops")
    database = Path(make_url(database_url).database or "")
    database.chmod(0o444)
    ready = "/rest/v1/auth/status"  # health is 503, rightly
    try:
        with serving(database_url, tmp_path, ready=ready, wrapper=UNPRIVILEGED) as server:
            api = f"{server.url}/rest/v1/maintenance"
            until(lambda: health(server).json()["data"]["write"] == "DOWN", 2.0)
            report = health(server).json()
            assert report["error"] == {"code": 503, "message": CANNOT_WRITE}
            assert (report["data"]["read"], report["data"]["maintenance"]) == ("UP", True)
            refused = httpx.put(api, headers=ADMIN, json={"message": "nope"})
            assert (refused.status_code, refused.json()["error"]["code"]) == (503, 503)
            assert httpx.get(f"{server.url}/page").status_code == 503  # still enforced
            database.chmod(0o644)
            until(lambda: health(server).status_code == 200, 3.0)
            assert httpx.put(api, headers=ADMIN, json={"message": "yes"}).status_code == 201
            assert "attempt to write a readonly database" in server.output()
    finally:
        database.chmod(0o644)


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 4 MiB file system of its own (tmpfs: this needs root, as `make test` does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    assert os.geteuid() == 0, "mounting a small disk needs root (as `make test` does)"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; the file that holds them."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_is_said_and_recovered_from(small_disk, tmp_path):
    database_url = f"sqlite:///{small_disk}/bascule.db"
    with serving(database_url, tmp_path, env=WITH_PASSWORD) as server:
        api = f"{server.url}/rest/v1/maintenance"
        assert httpx.post(api, headers=ADMIN).status_code == 201
        filler = fill(small_disk)
        statuses = []
        for _ in range(50):  # until the log grows past what the files hold already
            put = httpx.put(api, headers=ADMIN, json={"message": "x" * 2000})
            statuses.append(put.status_code)
            if put.status_code != 201:
                break
        assert statuses[-1] == 503, statuses
        assert put.json()["error"]["code"] == 503
        until(lambda: health(server).json()["data"]["write"] == "DOWN", 7.0)
        assert health(server).json()["error"]["message"] == CANNOT_WRITE
        filler.unlink()
        until(lambda: health(server).status_code == 200, 3.0)
        assert httpx.put(api, headers=ADMIN, json={"message": "room again"}).status_code == 201
        assert "database or disk is full" in server.output()
