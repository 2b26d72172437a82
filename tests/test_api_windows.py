"""The operations Bascule adds for planned work, through the real ASGI app with response
validation on: the history, planned windows, the calendar feed, and release."""

from __future__ import annotations

import datetime

import pytest

from bascule.maintenance import Maintenance
from bascule.model import Actor
from tests.conftest import ADMIN, VIEWER
from tests.test_api import error, ok
from tests.waiting import until


def rfc3339(seconds_from_now: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="seconds")


def test_the_history_lists_windows_and_reads_one_with_its_log(client):
    assert ok(client.get("/rest/v1/maintenance/history", headers=VIEWER), 200) == {
        "offset": 0,
        "total": 0,
        "windows": [],
    }
    client.post("/rest/v1/maintenance", json={"message": "first"}, headers=ADMIN)
    current = ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    client.delete("/rest/v1/maintenance", headers=ADMIN)
    client.post("/rest/v1/maintenance", json={"mode": "read-only"}, headers=ADMIN)
    page = ok(client.get("/rest/latest/maintenance/history?limit=1", headers=VIEWER), 200)
    assert page["total"] == 2 and [w["status"] for w in page["windows"]] == ["on"]
    assert page["windows"][0]["mode"] == "read-only"
    old = ok(client.get("/rest/v1/maintenance/history?offset=1", headers=VIEWER), 200)
    (ended,) = old["windows"]
    assert ended["id"] == current["windowId"]
    assert (ended["status"], ended["user"], ended["endedBy"], ended["logSize"]) == (
        "ended",
        "admin",
        "admin",
        2,
    )
    read = ok(
        client.get(f"/rest/v1/maintenance/history/{ended['id']}?offset=1", headers=VIEWER), 200
    )
    assert read["window"] == ended
    assert (read["offset"], read["total"], [e["message"] for e in read["log"]]) == (1, 2, ["first"])
    error(client.get("/rest/v1/maintenance/history/999", headers=VIEWER), 404, 504)
    error(client.get("/rest/v1/maintenance/history/zero", headers=VIEWER), 404, 504)
    error(client.get("/rest/v1/maintenance/history?limit=0", headers=VIEWER), 400, 501)
    error(client.get("/rest/v1/maintenance/history"), 401, 100)


def test_the_state_says_its_window_start_and_lease(client):
    client.post("/rest/v1/maintenance", headers=ADMIN)
    state = ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    assert state["windowId"] >= 1 and state["startedAt"] > 0
    assert (state["plannedEnd"], state["lease"], state["releasedFrom"]) == (None, None, None)


def test_plan_list_cancel_and_the_calendar(client):
    body = {"start": rfc3339(3600), "end": rfc3339(7200), "message": "Database upgrade"}
    planned = ok(client.post("/rest/v1/maintenance/schedule", json=body, headers=ADMIN), 201)
    assert (planned["status"], planned["mode"], planned["autoEnd"]) == ("planned", "full", False)
    assert planned["start"].endswith("Z") and planned["createdBy"] == "admin"
    listed = ok(client.get("/rest/v1/maintenance/schedule", headers=VIEWER), 200)
    assert listed == [planned]
    feed = client.get("/rest/v1/maintenance/schedule.ics", headers=VIEWER)
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    assert (
        b"BEGIN:VEVENT" in feed.content and b"SUMMARY:Maintenance: Database upgrade" in feed.content
    )
    error(client.delete(f"/rest/v1/maintenance/schedule/{planned['id']}", headers=VIEWER), 403, 102)
    assert (
        ok(client.delete(f"/rest/v1/maintenance/schedule/{planned['id']}", headers=ADMIN), 200)
        is None
    )
    assert ok(client.get("/rest/v1/maintenance/schedule", headers=VIEWER), 200) == []
    error(client.delete(f"/rest/v1/maintenance/schedule/{planned['id']}", headers=ADMIN), 409, 505)
    error(client.delete("/rest/v1/maintenance/schedule/999", headers=ADMIN), 404, 504)
    no_end = {"start": rfc3339(3600), "end": None, "message": "open-ended"}
    open_ended = ok(client.post("/rest/v1/maintenance/schedule", json=no_end, headers=ADMIN), 201)
    assert open_ended["end"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"start": "2020-01-01T00:00:00Z", "message": "past"},
        {"start": "soon", "message": "x"},
        {"start": "2099-01-01T00:00:00", "message": "no offset"},
        {"start": "2099-01-01T02:00:00Z", "end": "2099-01-01T01:00:00Z", "message": "x"},
        {"start": "2099-01-01T02:00:00Z", "autoEnd": True, "message": "no end"},
        {"start": "2099-01-01T02:00:00Z", "message": "x", "mode": "partial"},
        {"start": "2099-01-01T02:00:00Z"},
        {"start": "2099-01-01T02:00:00Z", "message": "x", "extra": 1},
    ],
)
def test_an_invalid_plan_is_a_400_and_changes_nothing(client, body):
    error(client.post("/rest/v1/maintenance/schedule", json=body, headers=ADMIN), 400, 501)
    assert ok(client.get("/rest/v1/maintenance/schedule", headers=VIEWER), 200) == []


def test_planning_needs_the_admin_role(client):
    body = {"start": rfc3339(3600), "message": "x"}
    error(client.post("/rest/v1/maintenance/schedule", json=body, headers=VIEWER), 403, 102)
    error(client.post("/rest/v1/maintenance/schedule", json=body), 401, 100)


def test_a_planned_window_starts_by_itself_and_says_when_it_ends(app, client):
    body = {"start": rfc3339(1), "end": rfc3339(3600), "message": "Planned upgrade"}
    planned = ok(client.post("/rest/v1/maintenance/schedule", json=body, headers=ADMIN), 201)
    app.services.monitor.start()  # the scheduler runs on the monitor's turns
    until(lambda: app.services.monitor.state is not None, 3.0, "the window started")
    state = ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    assert state["windowId"] == planned["id"]
    assert [e["message"] for e in state["log"]][1:] == ["Planned upgrade"]
    end = datetime.datetime.fromisoformat(planned["end"]).timestamp() * 1000
    assert state["plannedEnd"] == int(end)
    refused = client.get("/anything")
    assert refused.status_code == 503
    # Retry-After is the time left to the planned end, not the configured 120 s
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    # An API client learns what a browser's page says: the message, the end, the wait.
    told = refused.json()["maintenance"]
    assert (told["message"], told["plannedEnd"]) == ("Planned upgrade", state["plannedEnd"])
    assert told["retryAfter"] == int(refused.headers["retry-after"])


def test_the_mode_changes_while_on_through_the_api(client):
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    assert client.get("/shop").status_code == 503
    ok(client.put("/rest/v1/maintenance", json={"mode": "read-only"}, headers=ADMIN), 201)
    state = ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    assert state["mode"] == "read-only" and "read-only" in state["log"][-1]["message"]
    assert client.get("/shop").status_code == 404  # through the gate: reads go on
    assert client.post("/shop").status_code == 503
    error(client.put("/rest/v1/maintenance", json={"mode": "half"}, headers=ADMIN), 400, 501)
    error(client.put("/rest/v1/maintenance", json={"mode": "full"}, headers=VIEWER), 403, 102)
    ok(client.put("/rest/v1/maintenance", json={"mode": "full"}, headers=ADMIN), 201)
    assert client.get("/shop").status_code == 503


def test_release_refused_while_the_holder_lives_then_taken_over(app, client, settings):
    maintenance = Maintenance(app.services.store, app.services.monitor)
    deploy = Actor.process("deploy")
    maintenance.enable(deploy, lease_ttl=30)
    reason = {"reason": "the deploy host was lost"}
    alive = error(client.post("/rest/v1/maintenance/release", json=reason, headers=ADMIN), 409, 505)
    assert "'deploy'" in alive and "alive" in alive
    state = ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    assert state["lease"]["alive"] is True and state["lease"]["ttl"] == 30
    # the process goes silent: its last renewal is 31 s ago
    from sqlalchemy import update

    from bascule.tables import maintenance_state

    with app.services.store.write("state") as tx:
        tx.conn.execute(
            update(maintenance_state).values(lease_renewed_at=state["startedAt"] - 31_000)
        )
    app.services.monitor.refresh()
    silent = ok(client.get("/rest/v1/maintenance", headers=VIEWER), 200)
    assert silent["lease"]["alive"] is False
    error(client.post("/rest/v1/maintenance/release", json=reason, headers=VIEWER), 403, 102)
    error(client.post("/rest/v1/maintenance/release", json={}, headers=ADMIN), 400, 501)
    error(
        client.post("/rest/v1/maintenance/release", json={"reason": " "}, headers=ADMIN), 400, 501
    )
    released = ok(client.post("/rest/v1/maintenance/release", json=reason, headers=ADMIN), 200)
    assert (released["user"], released["userTriggered"], released["releasedFrom"]) == (
        "admin",
        True,
        "deploy",
    )
    assert released["log"][-1]["message"].endswith("the deploy host was lost")
    assert ok(client.delete("/rest/v1/maintenance", headers=ADMIN), 200) is None
    windows = ok(client.get("/rest/v1/maintenance/history", headers=VIEWER), 200)["windows"]
    assert (windows[0]["user"], windows[0]["releasedBy"]) == ("deploy", "admin")


def test_release_of_nothing(client):
    reason = {"reason": "why"}
    error(client.post("/rest/v1/maintenance/release", json=reason, headers=ADMIN), 404, 504)
    client.post("/rest/v1/maintenance", headers=ADMIN)
    error(client.post("/rest/v1/maintenance/release", json=reason, headers=ADMIN), 409, 505)


def test_retry_after_is_the_time_left_then_the_configured_value_and_the_page_says_so():
    import dataclasses

    from bascule.model import MaintenanceState, now_ms
    from bascule.page import DEFAULT_PAGE, Page, retry_after

    now = now_ms()
    planned = MaintenanceState("alice", True, 1, now - 60_000, planned_end=now + 90_500)
    late = dataclasses.replace(planned, planned_end=now - 1)
    assert retry_after(planned, 120, now) == 91
    assert retry_after(late, 120, now) == 120
    assert retry_after(dataclasses.replace(planned, planned_end=None), 120, now) == 120
    # A window ending in the year 3000 asks for a day at most.
    far = dataclasses.replace(planned, planned_end=32_503_680_000_000)
    assert retry_after(far, 120, now) == 86_400
    page = Page(DEFAULT_PAGE, 120)
    on_time = page.render(planned)
    assert b"Planned to end at" in on_time and b"taking longer" not in on_time
    assert b"about 2 minutes" in on_time  # 91 s left
    assert b"it is taking longer than planned" in page.render(late)


def test_the_page_shows_a_planned_end_to_the_second_once_it_is_less_than_an_hour_away():
    import dataclasses

    from bascule.model import MaintenanceState, utc
    from bascule.page import DEFAULT_PAGE, Page

    now = 1_800_000_000_000
    end = now + 3_600_000 - 1_000 + 7  # :59:59.007 left; shown down to its second
    planned = MaintenanceState("alice", True, None, now - 60_000, planned_end=end)
    page = Page(DEFAULT_PAGE, 120)
    assert (
        f"Planned to end at {utc(end):%Y-%m-%d %H:%M:%S} UTC."
        in page.render(planned, lambda: now).decode()
    )
    # further away, to the minute; the same state renders again once it gets closer
    far = dataclasses.replace(planned, planned_end=now + 3_600_000)
    assert (
        f"Planned to end at {utc(far.planned_end):%Y-%m-%d %H:%M} UTC."
        in page.render(far, lambda: now).decode()
    )
    closer = page.render(far, lambda: now + 1_000).decode()
    assert f"Planned to end at {utc(far.planned_end):%Y-%m-%d %H:%M:%S} UTC." in closer


def test_the_page_shows_a_progress_bar_only_once_a_progress_is_posted():
    import dataclasses

    from bascule.model import MaintenanceState
    from bascule.page import DEFAULT_PAGE, Page

    page = Page(DEFAULT_PAGE, 120)
    unset = MaintenanceState("alice", True, None, 1_800_000_000_000)
    assert '<div id="progress-block" hidden>' in page.render(unset).decode()
    posted = page.render(dataclasses.replace(unset, progress_percent=1)).decode()
    assert '<div id="progress-block" >' in posted and 'value="1"' in posted and "1%" in posted


def test_a_change_of_mode_keeps_the_message_visitors_read(client):
    ok(
        client.post("/rest/v1/maintenance", headers=ADMIN, json={"message": "Moving the database"}),
        201,
    )
    ok(client.put("/rest/v1/maintenance", headers=ADMIN, json={"mode": "read-only"}), 201)
    state = client.get("/rest/v1/maintenance", headers=ADMIN).json()["data"]
    assert state["log"][-1]["message"].startswith("Mode: read-only")  # the log tells all
    refused = client.post("/shop", headers={"Accept": "application/json"})
    assert refused.json()["maintenance"]["message"] == "Moving the database"
    assert "Moving the database" in client.post("/shop", headers={"Accept": "text/html"}).text
    announced = client.get("/rest/v1/maintenance/announcement").json()["data"]["current"]
    assert announced["message"] == "Moving the database"
    ok(client.put("/rest/v1/maintenance", headers=ADMIN, json={"message": "Copying"}), 201)
    assert client.post("/shop").json()["maintenance"]["message"] == "Copying"


def test_every_refusal_is_the_envelope_the_contract_declares(client):
    """The gate's 503 and the decision endpoint's are RestResponseRefusal, field for
    field (no field beside those declared in `maintenance`)."""
    import yaml
    from openapi_schema_validator import OAS30Validator

    from bascule.spec import SPEC_FILE

    document = yaml.safe_load(SPEC_FILE.read_text())
    schemas = document["components"]["schemas"]

    def resolved(schema):  # the schema with its local $refs in place
        if isinstance(schema, dict):
            if "$ref" in schema:
                return resolved(schemas[schema["$ref"].rsplit("/", 1)[1]])
            return {key: resolved(value) for key, value in schema.items()}
        if isinstance(schema, list):
            return [resolved(value) for value in schema]
        return schema

    validator = OAS30Validator(resolved(schemas["RestResponseRefusal"]))
    ok(client.post("/rest/v1/maintenance", headers=ADMIN), 201)
    refusals = [
        client.get("/shop"),
        client.get("/rest/v1/gate", headers={"X-Original-URI": "/shop"}),
    ]
    ok(client.put("/rest/v1/maintenance", json={"progressPercentage": 40}, headers=ADMIN), 201)
    refusals.append(client.post("/shop"))
    for refused in refusals:
        assert refused.status_code == 503
        validator.validate(refused.json())
    assert [r.json()["maintenance"]["progress"] for r in refusals] == [None, None, 40]


ANNOUNCEMENT = "/rest/v1/maintenance/announcement"


def test_the_announcement_is_public_open_to_any_origin_and_within_its_notice(app, client):
    page = {"Origin": "https://shop.example"}
    answer = client.get(ANNOUNCEMENT, headers=page)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert ok(answer, 200) == {"current": None, "windows": [], "noticeSeconds": 172800}
    soon, soon_end, later = rfc3339(3600), rfc3339(7200), rfc3339(3 * 86400)
    for start, end, message in ((soon, soon_end, "Upgrade"), (later, None, "Move")):
        body = {"start": start, "end": end, "message": message, "mode": "read-only"}
        ok(client.post("/rest/v1/maintenance/schedule", json=body, headers=ADMIN), 201)
    app.services.monitor.refresh()
    (window,) = ok(client.get(ANNOUNCEMENT, headers=page), 200)["windows"]
    assert window == {
        "start": soon.replace("+00:00", "Z"),
        "end": soon_end.replace("+00:00", "Z"),
        "message": "Upgrade",
        "mode": "read-only",
    }
    client.post("/rest/v1/maintenance", json={"message": "Copying files"}, headers=ADMIN)
    app.services.monitor.refresh()
    current = ok(client.get(ANNOUNCEMENT), 200)["current"]
    assert (current["message"], current["mode"], current["plannedEnd"]) == (
        "Copying files",
        "full",
        None,
    )
    assert current["since"].endswith("Z")


def test_the_announcement_answers_the_cors_preflight(client):
    answer = client.options(
        ANNOUNCEMENT,
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"},
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "GET" in answer.headers["access-control-allow-methods"]


def test_the_notice_period_is_a_setting(database_url):
    from bascule.app import create_app
    from bascule.config import Settings

    settings = Settings.from_env(
        {"BASCULE_ANNOUNCE_BEFORE": "60"},
        database_url=database_url,
        admin_password="admin-secret-1",
    )
    app = create_app(settings)
    try:
        app.services.windows.plan(
            Actor.operator("ops"), start=app.services.store.now() + 120_000, end=None, message="m"
        )
        app.services.monitor.refresh()
        with app.test_client() as client:
            assert ok(client.get(ANNOUNCEMENT), 200) == {
                "current": None,
                "windows": [],
                "noticeSeconds": 60,
            }
    finally:
        app.services.close()
    with pytest.raises(ValueError, match="--announce-before"):
        Settings.from_env({"BASCULE_ANNOUNCE_BEFORE": "-1"})
