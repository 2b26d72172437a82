"""GET /metrics: the shared state read at scrape time, the gate's decisions counted over
every worker, checked by promtool and scraped by a real Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bascule.app import create_app
from bascule.config import Settings
from bascule.model import DECISIONS, MODES, Actor, now_ms
from bascule.service import automatic_maintenance
from bench.run import free_port
from tests.conftest import ADMIN, ADMIN_PASSWORD, VIEWER
from tests.serving import BASCULE, clean_env, serving
from tests.waiting import until

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
# The only labels, and every value each may take: never a path, never a token.
LABELS = {"decision": set(DECISIONS), "mode": set(MODES), "version": None}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels; the labels checked on the way."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert label in LABELS, sample
                assert LABELS[label] is None or value in LABELS[label], sample
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def scrape(client, headers=ADMIN) -> str:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return answer.text


def test_metrics_need_any_users_credentials(client):
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="Bascule"'
    assert refused.json() == {
        "data": None,
        "error": {"code": 100, "message": "Authentication required for this request : /metrics"},
    }
    assert value(scrape(client, VIEWER), "bascule_maintenance_active") == 0


def test_metrics_can_be_public(database_url):
    settings = Settings.from_env(
        {}, database_url=database_url, admin_password=ADMIN_PASSWORD, metrics_public=True
    )
    app = create_app(settings)
    try:
        with app.test_client() as client:
            assert value(scrape(client, {}), "bascule_build_info", version="0.1.0") == 1
    finally:
        app.services.close()


def test_the_state_is_read_from_the_database_at_scrape_time(app, client):
    app.services.monitor.stop()  # this instance's copy stays as it is: off
    assert client.post("/rest/v1/maintenance", headers=ADMIN, json={"mode": "read-only"}).is_success
    text = scrape(client)
    assert value(text, "bascule_maintenance_active") == 1
    assert value(text, "bascule_maintenance_mode", mode="read-only") == 1
    assert value(text, "bascule_maintenance_mode", mode="full") == 0
    started = value(text, "bascule_maintenance_start_timestamp_seconds")
    assert started is not None and abs(started - time.time()) < 60
    assert value(text, "bascule_database_up") == 1
    assert value(text, "bascule_state_age_seconds") >= 0
    assert value(text, "bascule_watchers") == 0  # nobody follows this one


def test_the_next_window_and_the_lease(app, client, database_url):
    start = now_ms() + 3_600_000
    assert value(scrape(client), "bascule_next_window_start_timestamp_seconds") is None
    app.services.windows.plan(Actor.operator("admin"), start=start, end=None, message="Upgrade")
    text = scrape(client)
    assert value(text, "bascule_next_window_start_timestamp_seconds") == start / 1000
    assert value(text, "bascule_planned_windows") == 1
    assert value(text, "bascule_maintenance_lease_expiry_timestamp_seconds") is None
    with automatic_maintenance(database_url, "deploy", lease_ttl=60):
        expiry = value(scrape(client), "bascule_maintenance_lease_expiry_timestamp_seconds")
        assert expiry is not None and 0 < expiry - time.time() <= 60
    assert value(scrape(client), "bascule_maintenance_active") == 0


def test_the_gate_counts_its_decisions_and_nothing_of_the_path(app, client):
    monitor = app.services.monitor
    for _ in range(3):
        client.get("/shop?token=secret")
    client.post("/rest/v1/maintenance", headers=ADMIN, json={"mode": "read-only"})
    monitor.refresh()
    client.get("/shop/a-very-long-path")
    client.post("/shop/order")
    client.post("/shop/order")
    token = client.post("/rest/v1/maintenance/bypass", headers=ADMIN, json={"name": "ops"})
    monitor.refresh()
    client.post("/shop/order", headers={"X-Bascule-Bypass": token.json()["data"]["token"]})
    text = scrape(client)
    counted = {d: value(text, "bascule_gate_requests_total", decision=d) for d in DECISIONS}
    assert counted == {"allowed": 3, "read_only": 1, "bypassed": 1, "refused": 2}
    assert "shop" not in text and "secret" not in text


def test_the_decision_endpoint_counts_as_the_gate(app, client):
    client.get("/rest/v1/gate", headers={"X-Original-URI": "/shop"})
    client.post("/rest/v1/maintenance", headers=ADMIN)
    app.services.monitor.refresh()
    client.get("/rest/v1/gate", headers={"X-Original-URI": "/shop"})
    client.get("/rest/v1/gate?deny=401", headers={"X-Original-URI": "/shop"})
    text = scrape(client)
    assert value(text, "bascule_gate_requests_total", decision="allowed") == 1
    assert value(text, "bascule_gate_requests_total", decision="refused") == 2


# On SQLite only: the fallback does not depend on the backend, and PostgreSQL's engine,
# swapped under a running monitor by break_database, leaves a connection open here
# (a ResourceWarning at teardown).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_copy_enforced_is_shown_when_the_database_does_not_answer(app, client):
    from tests.conftest import break_database

    client.post("/rest/v1/maintenance", headers=ADMIN)
    app.services.monitor.refresh()
    break_database(app.services.store)
    health = "/rest/v1/admin/health"
    until(lambda: client.get(health).status_code == 503, 3, "the monitor seeing it gone")
    text = scrape(client)
    assert value(text, "bascule_database_up") == 0
    assert value(text, "bascule_maintenance_active") == 1


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_promtool_finds_nothing_and_workers_are_summed(database_url, tmp_path):
    # Where Bascule makes the directory of the workers' counters (tempfile's TMPDIR).
    env = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD, "TMPDIR": str(tmp_path)}
    with serving(database_url, tmp_path, "--workers", "2", env=env) as server:
        (counters,) = tmp_path.glob("bascule-metrics-*")
        until(lambda: len(list(counters.glob("counter_*.db"))) == 2, 10, "a file per worker")
        with httpx.Client(base_url=server.url) as client:
            sent = []

            def shop() -> int:
                sent.append(1)
                return httpx.get(f"{server.url}/shop").status_code  # a new connection

            for _ in range(40):  # on new connections: both workers answer some
                assert shop() == 404
            httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN)
            until(lambda: shop() == 503, 5, "refusing")

            def counted() -> float:
                text = scrape(client)
                return sum(
                    value(text, "bascule_gate_requests_total", decision=d) for d in DECISIONS
                )

            until(lambda: counted() == len(sent), 5, "both workers' counts summed")

            # Two followers waiting on the watch, on connections of their own: counted
            # whichever worker holds each, and no more once a change answered them.
            watch = f"{server.url}/rest/v1/maintenance/watch"
            version = httpx.get(watch).json()["data"]["version"]
            followers = [
                threading.Thread(
                    target=httpx.get, args=(watch,), kwargs={"params": {"version": version}}
                )
                for _ in range(2)
            ]
            for follower in followers:
                follower.start()
            until(lambda: value(scrape(client), "bascule_watchers") == 2, 5, "two watchers")
            put = httpx.put(
                f"{server.url}/rest/v1/maintenance", headers=ADMIN, json={"message": "m"}
            )
            assert put.status_code == 201
            for follower in followers:
                follower.join(timeout=10)
            until(lambda: value(scrape(client), "bascule_watchers") == 0, 5, "none left")
            text = scrape(client)
        assert value(text, "bascule_maintenance_active") == 1
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0 and not checked.stdout + checked.stderr, checked
    assert not list(tmp_path.glob("bascule-metrics-*"))  # Bascule's own: gone with it


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_prometheus_scrapes_the_state(database_url, tmp_path):
    assert PROMETHEUS.exists(), "install Debian's prometheus (make system-packages)"
    env = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with serving(database_url, tmp_path, env=env) as server:
        added = subprocess.run(
            [*BASCULE, "users", "add", "prometheus", "--password-stdin"],
            input="scraper-secret-1\n",
            env=clean_env(BASCULE_DATABASE_URL=database_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        (tmp_path / "password").write_text("scraper-secret-1")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "bascule",
                    "basic_auth": {
                        "username": "prometheus",
                        "password_file": str(tmp_path / "password"),
                    },
                    "static_configs": [{"targets": [server.url.removeprefix("http://")]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        api = f"http://127.0.0.1:{port}/api/v1/query"

        def active() -> float | None:
            try:
                answer = httpx.get(api, params={"query": "bascule_maintenance_active"}, timeout=2)
            except httpx.TransportError:
                return None
            result = answer.json()["data"]["result"] if answer.status_code == 200 else []
            return float(result[0]["value"][1]) if result else None

        try:
            until(lambda: active() == 0, 30, "Prometheus reading maintenance off")
            assert httpx.post(f"{server.url}/rest/v1/maintenance", headers=ADMIN).is_success
            until(lambda: active() == 1, 10, "Prometheus reading maintenance on")
            assert httpx.delete(f"{server.url}/rest/v1/maintenance", headers=ADMIN).is_success
            until(lambda: active() == 0, 10, "Prometheus reading maintenance off again")
            targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()
            (target,) = targets["data"]["activeTargets"]
            assert target["health"] == "up", target
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=15)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(timeout=5)
            log.close()
            shutil.rmtree(tmp_path / "data", ignore_errors=True)
