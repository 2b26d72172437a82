"""In a real browser: the maintenance page visitors see, and the operator console.

Playwright drives Debian's Chromium (/usr/bin/chromium; Playwright's own browser download
is not used) against a live ``bascule serve`` mounting a tiny shop application. Scenarios:
a visitor kept out of the shop and let back in by the page itself; an administrator
switching maintenance on, posting progress and switching it off in the console; a
read-only user; automatic maintenance; planned windows, the history, and the release of a
process that stopped answering; webhooks, delivering to a real local receiver, and the
audit trail; and axe-core's accessibility rules on both pages.

Every step leaves a screenshot in out/screenshots/; the two the docs show are also
written to out/screenshots/docs/, which `make screenshots` copies to docs/screenshots/
(a test run changes no tracked file). A missing browser or axe-core fails, saying how to
install it: nothing is skipped.
"""

from __future__ import annotations

import datetime
import http.server
import json
import re
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect, sync_playwright
from sqlalchemy import update
from standardwebhooks import Webhook

from bascule.maintenance import Maintenance
from bascule.model import Actor, now_ms
from bascule.store import Store
from bascule.tables import maintenance_windows
from bench.run import free_port
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, basic
from tests.serving import BASCULE, Server, clean_env, serving
from tests.test_webhooks import Receiver, _receiver
from tests.waiting import until

# The browser behaviour does not depend on the database backend.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CONSOLE_DIR = ROOT / "bascule" / "console"
# A browser runs a module script only when it comes with a JavaScript MIME type (strict
# MIME checking): these are the ones of WHATWG's list that servers send.
JAVASCRIPT_TYPE = re.compile(r"(text|application)/(x-)?(java|ecma)script")
SCREENSHOTS = ROOT / "out" / "screenshots"
README_SCREENSHOTS = SCREENSHOTS / "docs"
VIEWPORT = {"width": 1000, "height": 700}
# The browser's time zone: not the machine's, so that local times are really converted.
TIMEZONE = "Europe/Paris"
TIMEOUT_MS = 10_000  # every wait in the browser is bounded by this
RETRY_AFTER = 2  # the maintenance page polls every RETRY_AFTER seconds

ADMIN = basic("admin", ADMIN_PASSWORD)

SHOP_APP = """
PAGE = b'''<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The shop</title></head>
<body><main><h1>Welcome to the shop</h1><p>Everything is in stock.</p></main></body></html>'''


FORM = b'''<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Order</title></head>
<body><main><form method="post" action="/order"><button>Order</button></form></main>
</body></html>'''
ORDERED = b'''<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ordered</title></head>
<body><main><h1>Order received</h1></main></body></html>'''


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    page = PAGE
    if scope["path"] == "/form":
        page = FORM
    elif scope["method"] == "POST":
        page = ORDERED
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": page})
"""

expect.set_options(timeout=TIMEOUT_MS)


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; fail, saying how to install it, when it is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium); "
            "Playwright's own browser download is not used",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(
            f"{AXE} is missing: run `npm ci` at the root of the repository "
            "(package.json pins axe-core)",
            pytrace=False,
        )
    return AXE.read_text()


@pytest.fixture(scope="module", autouse=True)
def screenshot_folders() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """``bascule serve`` with the shop mounted, the admin's password set and a user ``viewer``."""
    (tmp_path / "shop.py").write_text(textwrap.dedent(SHOP_APP))
    env = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD, "BASCULE_RETRY_AFTER": str(RETRY_AFTER)}
    with serving(database_url, tmp_path, "--app", "shop:app", env=env) as server:
        cli(database_url, "users", "add", "viewer", "--password-stdin", input=VIEWER_PASSWORD)
        yield server


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id=TIMEZONE)
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A page that fails the test on a script error or a Content-Security-Policy violation."""
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    assert problems == [], problems


# ---- helpers -----------------------------------------------------------------------------


def cli(database_url: str, *args: str, input: str | None = None) -> None:
    """Run ``bascule ARGS`` on the test's database; fail with its output unless it succeeds."""
    result = subprocess.run(
        [*BASCULE, *args],
        env=clean_env(BASCULE_DATABASE_URL=database_url),
        input=None if input is None else f"{input}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"bascule {' '.join(args)}: {result.stderr}"


def api(
    server: Server, method: str, json_body: dict[str, object] | None = None, *, path: str = ""
) -> httpx.Response:
    """Call /rest/v1/maintenance (followed by ``path``) as the admin, with HTTP Basic."""
    return httpx.request(
        method,
        f"{server.url}/rest/v1/maintenance{path}",
        headers=ADMIN,
        json=json_body,
        timeout=10,
    )


def state(server: Server) -> dict[str, object] | None:
    response = api(server, "GET")
    assert response.status_code == 200, response.text
    data: dict[str, object] | None = response.json()["data"]
    return data


def shot(page: Page, name: str, *, readme: str | None = None, full_page: bool = True) -> None:
    """A screenshot in out/screenshots/; with ``readme``, the viewport also in its docs/."""
    page.mouse.move(0, 0)  # no hover effect in the picture
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page, animations="disabled")
    if readme:
        page.screenshot(path=README_SCREENSHOTS / readme, animations="disabled")


def sign_in(page: Page, server: Server, user: str, password: str) -> None:
    page.goto(f"{server.url}/maintenance")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-name")).to_have_text(user)
    expect(page.get_by_role("heading", name="Current state")).to_be_visible()


def confirm(page: Page, action: str, *, accept: bool = True) -> None:
    """Click the page's button for ``action``, then confirm or cancel in the dialog."""
    page.locator("#console-view").get_by_role("button", name=action).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text(f"{action}?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe default
    dialog.get_by_role("button", name=action if accept else "Cancel").click()
    expect(dialog).to_be_hidden()


def action_controls(page: Page):
    """Every visible control that changes the state: buttons and the update form's fields."""
    buttons = page.get_by_role(
        "button", name=re.compile("Enable maintenance|Disable maintenance|Post update|Switch to")
    )
    fields = page.get_by_role("textbox", name="Message", exact=True).or_(
        page.get_by_role("spinbutton", name="Progress (%)")
    )
    return buttons.or_(fields)


def log_rows(page: Page):
    return page.locator("#log-body tr")


# ---- a. a visitor ------------------------------------------------------------------------


def test_a_visitor_sees_the_maintenance_page_until_it_ends(server: Server, page: Page):
    page.goto(f"{server.url}/shop")
    expect(page.get_by_role("heading", name="Welcome to the shop")).to_be_visible()
    shot(page, "a1-shop-open")

    assert api(server, "POST").status_code == 201
    page.goto(f"{server.url}/shop")
    expect(page.locator("#message")).to_have_text("Maintenance operation started.")
    expect(page.get_by_label(re.compile("Progress"))).to_be_hidden()  # none posted yet
    update = {"message": "Upgrading the database.", "progressPercentage": 10}
    assert api(server, "PUT", update).status_code == 201
    response = page.goto(f"{server.url}/shop")
    assert response is not None
    assert response.status == 503
    assert response.headers["retry-after"] == str(RETRY_AFTER)
    expect(page.get_by_role("heading", name="We are down for maintenance")).to_be_visible()
    expect(page.locator("#message")).to_have_text("Upgrading the database.")
    expect(page.get_by_label(re.compile("Progress"))).to_have_attribute("value", "10")
    expect(page.locator("#progress-text")).to_have_text("10%")
    shot(page, "a2-maintenance-page")

    # From here on the test never navigates: the page follows the state by itself.
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    update = {"message": "Copying the new files: about two minutes left.", "progressPercentage": 60}
    assert api(server, "PUT", update).status_code == 201
    expect(page.locator("#message")).to_have_text(update["message"])
    expect(page.locator("#progress")).to_have_attribute("value", "60")
    expect(page.locator("#progress-text")).to_have_text("60%")
    assert loads == []  # updated in place, not reloaded
    shot(page, "a3-maintenance-page-updated", readme="maintenance-page.png")

    assert api(server, "DELETE").status_code == 200
    expect(page.get_by_role("heading", name="Welcome to the shop")).to_be_visible()
    assert page.url == f"{server.url}/shop"
    assert loads == [f"{server.url}/shop"]  # reloaded once, by the page itself
    shot(page, "a4-shop-back")


def test_a_form_posted_during_maintenance_is_not_posted_again_when_it_ends(
    server: Server, page: Page
):
    page.goto(f"{server.url}/form")
    assert api(server, "POST").status_code == 201
    page.get_by_role("button", name="Order").click()
    expect(page.get_by_role("heading", name="We are down for maintenance")).to_be_visible()
    navigations: list[tuple[str, str]] = []
    page.on(
        "request",
        lambda request: (
            navigations.append((request.method, request.url))
            if request.is_navigation_request()
            else None
        ),
    )
    assert api(server, "DELETE").status_code == 200
    # Back to the address asked for, with a GET: the order is not sent a second time.
    expect(page.get_by_role("heading", name="Welcome to the shop")).to_be_visible()
    assert navigations == [("GET", f"{server.url}/order")]


# ---- b. an administrator -----------------------------------------------------------------


def test_the_console_loads_every_module_without_an_error(server: Server, page: Page):
    """Every script of the console is fetched through main.js's imports, as JavaScript,
    and runs: a module served with another type, or loaded as a classic script (where
    ``import`` is a syntax error), logs an error or never loads the rest."""
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    scripts: dict[str, str] = {}

    def record(response: Response) -> None:
        if response.request.resource_type == "script":
            name = response.url.rpartition("/")[2]
            scripts[name] = response.headers.get("content-type", "").partition(";")[0].strip()

    page.on("response", record)
    page.goto(f"{server.url}/maintenance")  # returns once every module ran
    wrong = {name: kind for name, kind in scripts.items() if not JAVASCRIPT_TYPE.fullmatch(kind)}
    assert wrong == {}, f"served with a type that is not JavaScript's: {wrong}"
    assert sorted(scripts) == sorted(f.name for f in CONSOLE_DIR.glob("*.js"))
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#state-badge")).to_have_text("Off")
    assert errors == []


def test_an_admin_runs_a_maintenance_from_the_console(server: Server, page: Page):
    page.goto(f"{server.url}/maintenance")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password", exact=True).fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Authentication failed, check username and password."
    )
    shot(page, "b1-sign-in-failed")

    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#account-role")).to_have_text("Administrator")
    expect(page.locator("#state-badge")).to_have_text("Off")
    expect(page.locator("#state-summary")).to_contain_text("Maintenance is off")
    shot(page, "b2-console-off")

    # Cancelling the confirmation changes nothing.
    confirm(page, "Enable maintenance", accept=False)
    assert state(server) is None

    page.locator("#enable").click()
    shot(page, "b3-confirm-enable", full_page=False)
    page.get_by_role("dialog").get_by_role("button", name="Enable maintenance").click()
    expect(page.locator("#state-badge")).to_have_text("On")
    expect(page.get_by_role("status")).to_have_text("Maintenance is on.")
    expect(page.locator("#state-summary")).to_have_text("Maintenance is on, enabled by admin.")
    # No progress posted yet: no bar (the API says Alien4Cloud's 1%, and progressSet false).
    expect(page.locator("#progress-none")).to_have_text("No progress posted yet.")
    expect(page.locator("#progress-block")).to_be_hidden()
    expect(log_rows(page)).to_have_count(1)
    current = state(server)
    assert current is not None
    assert current["user"] == "admin"

    page.get_by_label("Message", exact=True).fill("Upgrading the database to schema 42.")
    page.get_by_label("Progress (%)").fill("40")
    page.get_by_role("button", name="Post update").click()
    expect(page.get_by_role("status")).to_have_text("Update posted.")
    expect(page.locator("#progress")).to_have_attribute("value", "40")
    expect(page.locator("#progress-text")).to_have_text("40%")
    expect(page.locator("#progress-none")).to_be_hidden()
    expect(page.locator("#fact-message")).to_have_text("Upgrading the database to schema 42.")
    newest = log_rows(page).first
    expect(newest).to_contain_text("Upgrading the database to schema 42.")
    expect(newest.locator("td").nth(1)).to_have_text("admin")
    expect(newest.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(log_rows(page).last).to_contain_text("Maintenance operation started.")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")  # cleared once posted

    shot(page, "b4-console-on")

    # A percentage alone; then nothing at all, refused before anything is sent.
    page.get_by_label("Progress (%)").fill("65")
    page.get_by_role("button", name="Post update").click()
    expect(page.locator("#progress-text")).to_have_text("65%")
    expect(log_rows(page)).to_have_count(2)
    page.get_by_role("button", name="Post update").click()
    expect(page.get_by_role("alert")).to_have_text("Enter a message, a progress, or both.")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    shot(page, "b4-nothing-to-post")

    # Full to read-only and back, in one step each: maintenance stays on throughout.
    expect(page.locator("#switch-mode-hint")).to_contain_text("Full now")
    confirm(page, "Switch to read-only")
    expect(page.get_by_role("status")).to_have_text("Maintenance is read-only now.")
    expect(page.locator("#state-summary")).to_contain_text("Read-only: GET, HEAD and OPTIONS")
    expect(log_rows(page).first).to_contain_text("read-only")
    current = state(server)
    assert current is not None and current["mode"] == "read-only"
    assert httpx.get(f"{server.url}/shop", timeout=10).status_code == 200
    assert httpx.post(f"{server.url}/shop", timeout=10).status_code == 503
    shot(page, "b4-read-only")
    confirm(page, "Switch to full maintenance")
    expect(page.get_by_role("status")).to_have_text("Maintenance is full now.")
    expect(page.locator("#state-summary")).not_to_contain_text("Read-only")
    current = state(server)
    assert current is not None and current["mode"] == "full"
    assert httpx.get(f"{server.url}/shop", timeout=10).status_code == 503
    expect(log_rows(page)).to_have_count(4)

    # A change made elsewhere shows up by itself; an API error shows its message.
    update = {"message": "Posted from the API.", "progressPercentage": 80}
    assert api(server, "PUT", update).status_code == 201
    expect(log_rows(page).first).to_contain_text("Posted from the API.")
    expect(page.locator("#progress-text")).to_have_text("80%")

    # Another admin disables it while this one is confirming: the API's error is shown.
    page.locator("#disable").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert api(server, "DELETE").status_code == 200
    page.get_by_role("dialog").get_by_role("button", name="Disable maintenance").click()
    expect(page.get_by_role("alert")).to_have_text("Maintenance mode is not enabled.")
    expect(page.locator("#state-badge")).to_have_text("Off")
    shot(page, "b5-api-error")
    assert api(server, "POST").status_code == 201
    expect(page.locator("#state-badge")).to_have_text("On")
    expect(log_rows(page)).to_have_count(1)  # a new maintenance, a new log

    confirm(page, "Disable maintenance")
    expect(page.locator("#state-badge")).to_have_text("Off")
    expect(page.get_by_role("status")).to_have_text("Maintenance is off.")
    expect(page.get_by_role("button", name="Enable maintenance")).to_be_visible()
    assert state(server) is None
    shot(page, "b6-console-off-again")

    # The session ends elsewhere (revoked): the console asks to sign in again.
    session = next(c for c in page.context.cookies() if c["name"] == "JSESSIONID")
    httpx.post(f"{server.url}/logout", cookies={"JSESSIONID": session["value"]})
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        "Your session has ended. Sign in again to continue."
    )
    shot(page, "b7-session-ended")

    sign_in(page, server, "admin", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    status = page.request.get(f"{server.url}/rest/v1/auth/status").json()["data"]
    assert status["isLogged"] is False


def test_the_console_works_with_the_keyboard(server: Server, page: Page):
    page.goto(f"{server.url}/maintenance")
    expect(page.get_by_label("User name")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#account-name")).to_have_text("admin")
    expect(page.get_by_role("heading", name="Maintenance", exact=True)).to_be_focused()

    page.get_by_role("button", name="Enable maintenance").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")  # closing the dialog cancels
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert state(server) is None
    page.get_by_role("button", name="Enable maintenance").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # from Cancel to the confirmation
    expect(
        page.get_by_role("dialog").get_by_role("button", name="Enable maintenance")
    ).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#state-badge")).to_have_text("On")
    expect(page.get_by_role("heading", name="Current state")).to_be_focused()

    page.get_by_label("Progress (%)").focus()
    page.keyboard.type("30")
    page.keyboard.press("Enter")  # submits the form
    expect(page.locator("#progress-text")).to_have_text("30%")
    page.get_by_label("Progress (%)").focus()
    page.keyboard.type("250")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text(
        "The progress must be a whole number from 0 to 100."
    )
    expect(page.get_by_label("Progress (%)")).to_be_focused()
    expect(page.get_by_label("Progress (%)")).to_have_attribute("aria-invalid", "true")
    shot(page, "k1-keyboard-invalid-progress")
    current = state(server)
    assert current is not None
    assert current["progressPercent"] == 30


# ---- c. a read-only user -----------------------------------------------------------------


def test_a_viewer_follows_the_state_read_only(server: Server, page: Page):
    sign_in(page, server, "viewer", VIEWER_PASSWORD)
    expect(page.locator("#account-role")).to_have_text("Read-only")
    expect(page.locator("#state-badge")).to_have_text("Off")
    expect(page.locator("#readonly-note")).to_be_visible()
    expect(action_controls(page)).to_have_count(0)
    shot(page, "c1-viewer-off")

    # Maintenance switched on elsewhere, with a log longer than the state carries (100),
    # while the console cannot follow each change (offline): it pages through GET
    # /maintenance/log for the older entries.
    log_requests: list[str] = []
    page.on(
        "request", lambda r: log_requests.append(r.url) if "/maintenance/log" in r.url else None
    )
    page.context.set_offline(True)
    assert api(server, "POST").status_code == 201
    with httpx.Client(headers=ADMIN, timeout=10) as client:
        for step in range(1, 250):
            response = client.put(
                f"{server.url}/rest/v1/maintenance", json={"message": f"Step {step} of 249."}
            )
            assert response.status_code == 201, response.text
    assert api(server, "PUT", {"progressPercentage": 55}).status_code == 201
    page.context.set_offline(False)

    expect(page.locator("#state-badge")).to_have_text("On")
    expect(page.locator("#progress-text")).to_have_text("55%")
    expect(page.locator("#log-count")).to_have_text("250 entries")
    expect(log_rows(page)).to_have_count(200)
    expect(log_rows(page).first).to_contain_text("Step 249 of 249.")
    expect(log_rows(page).last).to_contain_text("Step 50 of 249.")
    more = page.get_by_role("button", name="Show older entries (50 more)")
    more.click()
    expect(log_rows(page)).to_have_count(250)
    expect(log_rows(page).last).to_contain_text("Maintenance operation started.")
    expect(more).to_be_hidden()
    assert any("offset=0" in url for url in log_requests), log_requests

    expect(action_controls(page)).to_have_count(0)
    expect(page.locator("#state-summary")).to_have_text("Maintenance is on, enabled by admin.")
    shot(page, "c2-viewer-on")


# ---- d. automatic maintenance ------------------------------------------------------------


def test_automatic_maintenance_cannot_be_ended_from_the_console(
    server: Server, page: Page, database_url: str
):
    cli(database_url, "maintenance", "on", "--process", "deploy", "--message", "Deploying 2.4.0")
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#state-badge")).to_have_text("On · automatic")
    expect(page.locator("#state-summary")).to_have_text(
        "Maintenance is on, automatic, by process deploy."
    )
    expect(page.locator("#fact-by")).to_have_text("Automatic, by process deploy")
    expect(page.locator("#automatic-note")).to_contain_text(
        "bascule maintenance off --process deploy"
    )
    expect(log_rows(page).first).to_contain_text("Deploying 2.4.0")
    expect(action_controls(page)).to_have_count(0)
    shot(page, "d1-automatic")

    cli(database_url, "maintenance", "off", "--process", "deploy")
    expect(page.locator("#state-badge")).to_have_text("Off")
    expect(page.get_by_role("button", name="Enable maintenance")).to_be_visible()
    shot(page, "d2-automatic-ended")


# ---- f. planned work ---------------------------------------------------------------------


@contextmanager
def maintenance_of(database_url: str, clock_offset_ms: int = 0) -> Iterator[Maintenance]:
    """The state machine on the server's database, as a process beside the server uses it;
    its clock ``clock_offset_ms`` away from the real one."""
    store = Store(database_url)
    try:
        yield Maintenance(store, clock=lambda: now_ms() + clock_offset_ms)
    finally:
        store.close()


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds")


def in_days(days: int, hour: int, minute: int = 0) -> datetime.datetime:
    """``hour``:``minute`` in the browser's time zone, ``days`` days from today."""
    today = datetime.datetime.now(ZoneInfo(TIMEZONE)).date()
    day = today + datetime.timedelta(days=days)
    return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(TIMEZONE))


# A time the console shows: alone today, with its weekday and date on another day; to
# the second when it is less than an hour away (NEAR), else to the minute.
AT = r"(\w{3} \d{4}-\d\d-\d\d )?\d\d:\d\d(:\d\d)?"
NEAR = r"(\w{3} \d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d"


def planned_items(page: Page):
    return page.locator("#schedule-list > li")


def history_items(page: Page):
    return page.locator("#history-list > li")


def plan_controls(page: Page):
    """Every control that plans, cancels or releases."""
    buttons = page.get_by_role("button", name=re.compile("Plan window|Cancel window|Release"))
    return buttons.or_(page.locator("#plan-form :is(input, textarea):visible"))


def test_a_viewer_follows_planned_windows_and_the_history_read_only(
    server: Server, page: Page, database_url: str
):
    for _ in range(11):  # more than the first page of the history shows
        assert api(server, "POST").status_code == 201
        assert api(server, "DELETE").status_code == 200
    assert api(server, "POST", {"mode": "read-only"}).status_code == 201
    assert api(server, "PUT", {"message": "Moving the files."}).status_code == 201
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)
    skipped = {"start": rfc3339(soon), "message": "Nightly reindex"}
    assert api(server, "POST", skipped, path="/schedule").status_code == 201
    upgrade = {
        "start": rfc3339(in_days(2, 10)),
        "end": rfc3339(in_days(2, 11, 30)),
        "message": "Database upgrade; the shop is closed.",
        "mode": "read-only",
        "autoEnd": True,
    }
    assert api(server, "POST", upgrade, path="/schedule").status_code == 201
    open_ended = {"start": rfc3339(in_days(3, 23)), "message": "Moving to the new host."}
    assert api(server, "POST", open_ended, path="/schedule").status_code == 201

    history_requests: list[str] = []
    page.on(
        "request",
        lambda r: history_requests.append(r.url) if "/maintenance/history" in r.url else None,
    )
    sign_in(page, server, "viewer", VIEWER_PASSWORD)
    expect(planned_items(page).filter(has_text="Database upgrade")).to_contain_text(
        re.compile(r"\w{3} \d{4}-\d\d-\d\d 10:00\u201311:30")
    )
    upgrade_item = planned_items(page).filter(has_text="Database upgrade")
    expect(upgrade_item.locator(".tag")).to_have_text(["Read-only", "Ends by itself"])
    expect(upgrade_item).to_contain_text("planned by admin")
    open_item = planned_items(page).filter(has_text="Moving to the new host.")
    expect(open_item.locator(".tag")).to_have_text(["Full", "No planned end"])
    expect(open_item.locator("time").first).to_have_attribute(
        "datetime", rfc3339(in_days(3, 23)).replace("+00:00", ".000Z")
    )
    expect(page.locator("#state-next")).to_contain_text("Next planned window:")

    # The window planned for now finds maintenance on: it is skipped, and the history
    # (read again once the schedule changed) says why.
    expect(planned_items(page)).to_have_count(2)
    skipped_item = history_items(page).filter(has_text="Skipped")
    expect(skipped_item).to_contain_text("planned by admin · did not start")
    expect(history_items(page)).to_have_count(10)
    expect(page.locator("#history-count")).to_have_text("13 windows")
    on_item = history_items(page).filter(has=page.locator(".badge-on"))
    expect(on_item).to_contain_text("still on · by admin · Read-only · 2 messages")
    skipped_item.locator("summary").click()
    expect(skipped_item).to_contain_text("Maintenance was already on, held by 'admin'")
    expect(skipped_item).to_contain_text("No log: this window did not start.")

    # Unchanged, the history is not read again at each refresh.
    read = len(history_requests)
    for _ in range(2):
        with page.expect_request(lambda r: r.url.endswith("/rest/v1/maintenance")):
            pass
    assert len(history_requests) == read, history_requests

    # Ended elsewhere: the history follows; its log is read once the window is opened.
    assert api(server, "DELETE").status_code == 200
    ended = history_items(page).nth(1)
    expect(ended.locator(".badge")).to_have_text("Ended")
    expect(ended).to_contain_text("by admin · Read-only · 2 messages")
    assert not any(re.search(r"/history/\d+", url) for url in history_requests)
    ended.locator("summary").click()
    expect(ended.locator("tbody tr")).to_have_count(2)
    expect(ended.locator("tbody tr").last).to_contain_text("Moving the files.")
    expect(ended.get_by_role("definition").filter(has_text=re.compile(" by admin$"))).to_have_count(
        1
    )
    assert sum(bool(re.search(r"/history/\d+", url)) for url in history_requests) == 1

    more = page.get_by_role("button", name="Show more (3 older)")
    more.click()
    expect(history_items(page)).to_have_count(13)
    expect(more).to_be_hidden()
    expect(history_items(page).nth(10).locator("summary")).to_be_focused()
    assert any("offset=10" in url for url in history_requests), history_requests

    feed = page.get_by_role("link", name="Subscribe in a calendar")
    href = feed.evaluate("link => link.href")
    assert href == f"{server.url}/rest/v1/maintenance/schedule.ics"
    calendar = page.request.get(href)
    assert calendar.status == 200
    assert calendar.headers["content-type"].startswith("text/calendar")
    assert "Database upgrade" in calendar.text()

    # A process that went silent: the viewer is told, but may not release it.
    with maintenance_of(database_url, clock_offset_ms=-120_000) as maintenance:
        maintenance.enable(Actor.process("deploy"), lease_ttl=30)
    expect(page.locator("#lease-warning")).to_contain_text("The process deploy stopped answering")
    expect(page.locator("#lease-warning")).to_contain_text("Or an administrator can release it")
    expect(plan_controls(page)).to_have_count(0)
    expect(page.locator("#plan-form")).to_be_hidden()
    shot(page, "f1-viewer-planned-work")


def test_an_admin_plans_a_window_and_cancels_it(server: Server, page: Page, axe_source: str):
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#schedule-empty")).to_have_text("No maintenance is planned.")
    expect(page.locator("#plan-time-hint")).to_contain_text(TIMEZONE)
    plan = page.get_by_role("button", name="Plan window")
    start, end = page.get_by_label("Start", exact=True), page.get_by_label("End (optional)")
    message = page.get_by_label("First message")

    # Refused before anything is sent: no start, a start gone, an end before the start,
    # an end needed.
    plan.click()
    expect(page.get_by_role("alert")).to_have_text(
        "Enter when the window starts: a date and a time."
    )
    expect(start).to_be_focused()
    expect(start).to_have_attribute("aria-invalid", "true")
    start.fill(in_days(-1, 10).strftime("%Y-%m-%dT%H:%M"))
    plan.click()
    expect(page.get_by_role("alert")).to_have_text("The start must be in the future.")
    start.fill(in_days(2, 10).strftime("%Y-%m-%dT%H:%M"))
    expect(start).not_to_have_attribute("aria-invalid", "true")
    end.fill(in_days(2, 9).strftime("%Y-%m-%dT%H:%M"))
    plan.click()
    expect(page.get_by_role("alert")).to_have_text("The end must come after the start.")
    expect(end).to_be_focused()
    end.fill("")
    page.get_by_label("End by itself").check()
    plan.click()
    expect(page.get_by_role("alert")).to_have_text("To end by itself, the window needs an end.")
    end.fill(in_days(2, 11, 30).strftime("%Y-%m-%dT%H:%M"))
    plan.click()
    expect(page.get_by_role("alert")).to_have_text(
        "Enter a message: visitors see it on the maintenance page."
    )
    expect(message).to_be_focused()

    # The server's refusal is shown as any error: a message of nothing visible.
    message.fill("\u200b")
    plan.click()
    expect(page.get_by_role("alert")).to_contain_text("at least one of them visible")
    assert api(server, "GET", path="/schedule").json()["data"] == []

    message.fill("Database upgrade; the shop is closed.")
    page.get_by_label("Read-only").check()
    plan.click()
    expect(page.get_by_role("status")).to_have_text(
        re.compile(r"Window planned for \w{3} \d{4}-\d\d-\d\d 10:00\.")
    )
    expect(page.get_by_role("heading", name="Upcoming windows")).to_be_focused()
    (planned,) = api(server, "GET", path="/schedule").json()["data"]
    # 10:00 and 11:30 in Paris, whatever the machine's time zone.
    assert planned["start"] == rfc3339(in_days(2, 10)).replace("+00:00", "Z")
    assert planned["end"] == rfc3339(in_days(2, 11, 30)).replace("+00:00", "Z")
    assert (planned["mode"], planned["autoEnd"], planned["message"]) == (
        "read-only",
        True,
        "Database upgrade; the shop is closed.",
    )
    item = planned_items(page).first
    expect(item).to_contain_text(re.compile(r"\w{3} \d{4}-\d\d-\d\d 10:00\u201311:30"))
    expect(item.locator(".tag")).to_have_text(["Read-only", "Ends by itself"])
    expect(item).to_contain_text("Database upgrade; the shop is closed.")
    expect(item).to_contain_text("planned by admin")
    expect(start).to_have_value("")  # cleared once planned
    expect(message).to_have_value("")
    expect(page.locator("#history-empty")).to_be_visible()
    shot(page, "f2-admin-planned")
    run_axe(page, axe_source, "the console with a planned window and the plan form", CONSOLE)

    # Kept, then cancelled.
    item.get_by_role("button", name="Cancel window…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Cancel this planned window?")
    expect(dialog).to_contain_text("Database upgrade; the shop is closed.")
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert len(api(server, "GET", path="/schedule").json()["data"]) == 1
    item.get_by_role("button", name="Cancel window…").click()
    dialog.get_by_role("button", name="Cancel window").click()
    expect(page.get_by_role("status")).to_have_text("Window cancelled.")
    expect(planned_items(page)).to_have_count(0)
    expect(page.locator("#schedule-empty")).to_be_visible()
    expect(page.get_by_role("heading", name="Upcoming windows")).to_be_focused()
    assert api(server, "GET", path="/schedule").json()["data"] == []


def test_a_planned_window_starts_by_itself_and_says_when_it_overruns(
    server: Server, page: Page, database_url: str
):
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(
        seconds=2
    )
    window = {
        "start": rfc3339(start),
        "end": rfc3339(start + datetime.timedelta(hours=1)),
        "message": "Planned upgrade",
    }
    assert api(server, "POST", window, path="/schedule").status_code == 201
    sign_in(page, server, "viewer", VIEWER_PASSWORD)
    expect(page.locator("#state-badge")).to_have_text("On")
    end = page.locator("#fact-end")
    expect(end).to_have_text(re.compile(rf"^Planned to end at {AT} \(in (59|60) min\)$"))
    expect(end).not_to_have_class(re.compile("overrun"))
    expect(page.locator("#schedule-empty")).to_be_visible()
    expect(history_items(page).first).to_contain_text("still on · planned by admin")
    expect(page.locator("#fact-message")).to_have_text("Planned upgrade")

    # Its end passes (moved back five minutes) with the work still on.
    current = state(server)
    assert current is not None
    store = Store(database_url)
    try:
        with store.write("state") as tx:
            tx.conn.execute(
                update(maintenance_windows)
                .where(maintenance_windows.c.id == current["windowId"])
                .values(planned_end=now_ms() - 5 * 60_000)
            )
    finally:
        store.close()
    expect(end).to_have_text(re.compile(rf"^Overrunning since {NEAR} \(5 min ago\)$"))
    expect(end).to_have_class(re.compile("overrun"))
    shot(page, "f5-overrunning")


def test_an_admin_releases_the_maintenance_of_a_process_that_stopped_answering(
    server: Server, page: Page, database_url: str, axe_source: str
):
    with maintenance_of(database_url) as maintenance:
        held = maintenance.enable(Actor.process("deploy"), "Deploying 2.4.0", lease_ttl=60)
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#fact-holder")).to_have_text(
        re.compile(r"^Held by the process deploy, alive \(renewed (just now|\d+ s ago)\)$")
    )
    expect(page.locator("#automatic-note")).to_contain_text(
        "bascule maintenance off --process deploy"
    )
    expect(page.locator("#lease-warning")).to_be_hidden()
    expect(page.get_by_role("button", name="Release…")).to_have_count(0)

    # Its last renewal two minutes ago: its 60 s lease ran out.
    with maintenance_of(database_url, clock_offset_ms=-120_000) as maintenance:
        assert maintenance.renew(Actor.process("deploy"), held.window_id)
    warning = page.locator("#lease-warning")
    expect(warning).to_contain_text(
        re.compile(rf"The process deploy stopped answering at {NEAR} \(2 min ago\)\.")
    )
    expect(warning).to_contain_text("Or, once the service is checked, release it")
    expect(page.locator("#automatic-note")).to_be_hidden()  # "only that process": no longer
    expect(page.locator("#fact-holder")).to_have_text(
        re.compile(rf"^Held by the process deploy, stopped answering at {NEAR}$")
    )
    shot(page, "f3-holder-stopped-answering")

    page.get_by_role("button", name="Release…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text(
        "Release maintenance from the process deploy?"
    )
    reason = dialog.get_by_label("Reason")
    expect(reason).to_be_focused()
    dialog.get_by_role("button", name="Release maintenance").click()  # no reason yet
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("alert")).to_have_text("Enter a reason: it goes to the log.")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()
    run_axe(page, axe_source, "the release dialog, refusing an empty reason", CONSOLE)
    reason.fill("The deploy host was lost; the database is checked.")
    expect(reason).not_to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Release maintenance").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text(
        "Maintenance released from the process deploy: it is yours now."
    )
    expect(page.locator("#state-summary")).to_have_text(
        "Maintenance is on, held by admin, released from the process deploy."
    )
    expect(page.locator("#fact-holder")).to_have_text("Released from the process deploy, to admin")
    expect(page.locator("#fact-by")).to_have_text("Automatic, by process deploy")
    expect(warning).to_be_hidden()
    expect(log_rows(page).first).to_contain_text(
        "Released by admin from the process 'deploy', silent since"
    )
    expect(log_rows(page).first).to_contain_text(
        "The deploy host was lost; the database is checked."
    )
    current = state(server)
    assert current is not None
    assert (current["user"], current["releasedFrom"], current["lease"]) == ("admin", "deploy", None)

    window = history_items(page).first
    expect(window).to_contain_text("still on · by the process deploy · Full · 3 messages")
    window.locator("summary").click()
    expect(
        window.get_by_role("definition").filter(has_text="admin, from the process deploy")
    ).to_be_visible()
    expect(window.locator("tbody tr")).to_have_count(3)
    shot(page, "f4-released")
    run_axe(page, axe_source, "the console released, a window of the history open", CONSOLE)

    # Now the admin's own, to end.
    confirm(page, "Disable maintenance")
    expect(page.locator("#state-badge")).to_have_text("Off")
    expect(window.locator(".badge")).to_have_text("Ended")
    expect(
        window.get_by_role("definition").filter(has_text=re.compile(" by admin$"))
    ).to_have_count(1)
    expect(window.locator("details")).to_have_attribute("open", "")  # stayed open
    (ended,) = api(server, "GET", path="/history").json()["data"]["windows"]
    assert (ended["status"], ended["user"], ended["releasedBy"], ended["endedBy"]) == (
        "ended",
        "deploy",
        "admin",
        "admin",
    )


# ---- e. accessibility --------------------------------------------------------------------

AXE_URL_PATH = "/__tests__/axe.min.js"
CONSOLE = "bascule/console/"


def run_axe(page: Page, axe_source: str, what: str, source: str) -> list[dict[str, object]]:
    """Run axe-core on ``page``; fail on a serious or critical violation, print the others.

    axe is served from the page's own origin (intercepted by the test), so the console's
    Content-Security-Policy stays in force while it runs.
    """
    origin = re.match(r"https?://[^/]+", page.url)
    assert origin is not None
    page.route(
        f"{origin.group(0)}{AXE_URL_PATH}",
        lambda route: route.fulfill(body=axe_source, content_type="text/javascript"),
    )
    page.add_script_tag(url=AXE_URL_PATH)
    results = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))"
    )
    for violation in results:
        print(f"axe on {what}: {violation['impact']} {violation['id']}: {violation['help']}")
        print(f"    {json.dumps(violation['nodes'])}")
    if not results:
        print(f"axe on {what}: no violation")
    severe = [v for v in results if v["impact"] in ("serious", "critical")]
    assert severe == [], f"axe on {what} (from {source}): {json.dumps(severe, indent=2)}"
    return list(results)


def test_accessibility_of_the_maintenance_page(server: Server, page: Page, axe_source: str):
    assert api(server, "POST").status_code == 201
    update = {"message": "Upgrading the database.", "progressPercentage": 35}
    assert api(server, "PUT", update).status_code == 201
    page.goto(f"{server.url}/shop")
    expect(page.locator("#progress-text")).to_have_text("35%")
    run_axe(page, axe_source, "the maintenance page", "bascule/templates/maintenance.html")


def test_accessibility_of_the_console(server: Server, page: Page, axe_source: str):
    page.goto(f"{server.url}/maintenance")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    run_axe(page, axe_source, "the sign-in form", CONSOLE)

    assert api(server, "POST").status_code == 201
    for message, progress in [
        ("Stopping the workers.", 10),
        ("Backing up the database.", 20),
        ("Upgrading the database to schema 42.", 35),
    ]:
        update = {"message": message, "progressPercentage": progress}
        assert api(server, "PUT", update).status_code == 201
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#progress-text")).to_have_text("35%")
    expect(log_rows(page)).to_have_count(4)
    shot(page, "e1-console-on", readme="console.png", full_page=False)
    run_axe(page, axe_source, "the console, signed in as admin, maintenance on", CONSOLE)

    page.locator("#disable").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    run_axe(page, axe_source, "the console's confirmation dialog", CONSOLE)
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    assert page.evaluate("document.documentElement.lang") == "en"
    for landmark in ("banner", "main"):
        expect(page.get_by_role(landmark)).to_have_count(1)
    shot(page, "e2-console-after-axe")


def test_an_admin_plans_a_window_from_now(server: Server, page: Page):
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    start, end = page.get_by_label("Start", exact=True), page.get_by_label("End (optional)")
    when = page.locator("#plan-when")
    expect(when).to_be_hidden()

    # An end counted from the start needs the start first.
    page.get_by_role("button", name="1 h long").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Choose the start first: the end is counted from it."
    )
    expect(start).to_be_focused()

    before = now_ms()
    page.get_by_role("button", name="in 15 min").click()
    expect(page.get_by_role("alert")).to_be_empty()  # answered
    expect(when).to_have_text(re.compile(r"^Starts in 1[56] min\.$"))
    page.get_by_role("button", name="2 h long").click()
    expect(when).to_have_text(re.compile(r"^Starts in 1[56] min, lasts 2 h\.$"))
    expect(end).to_have_value(re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d$"))
    page.get_by_label("First message").fill("Quick fix of the search index.")
    shot(page, "f6-plan-from-now")
    page.get_by_role("button", name="Plan window").click()
    expect(page.get_by_role("status")).to_have_text(
        re.compile(rf"^Window planned for {NEAR}\.$")  # less than an hour away: to the second
    )
    (planned,) = api(server, "GET", path="/schedule").json()["data"]
    begins = datetime.datetime.fromisoformat(planned["start"]).timestamp() * 1000
    ends = datetime.datetime.fromisoformat(planned["end"]).timestamp() * 1000
    # from now, rounded up to the next whole minute; the end two hours after the start
    assert before + 15 * 60_000 <= begins <= before + 17 * 60_000 and begins % 60_000 == 0
    assert ends - begins == 2 * 3_600_000
    item = planned_items(page).first
    expect(item.locator(".window-when")).to_have_text(
        re.compile(
            r"^\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:00 ?\u2013 ?(\w{3} \d{4}-\d\d-\d\d )?\d\d:\d\d$"
        )
    )
    expect(item).to_contain_text(re.compile(r"Starts in 1[4-6] min"))
    expect(when).to_be_hidden()  # the form is cleared once planned


def test_a_failed_run_says_how_it_ended_and_its_retry_takes_over(
    server: Server, page: Page, database_url: str, axe_source: str
):
    deploy = Actor.process("deploy")
    with maintenance_of(database_url) as maintenance:
        held = maintenance.enable(deploy, "Deploying 2.4.0", lease_ttl=60)
        maintenance.holder_ended(
            deploy, held.window_id, "exited with status 3", "The run exited with status 3."
        )
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.locator("#fact-holder")).to_have_text(
        re.compile(rf"^Held by the process deploy, exited with status 3 at {NEAR}$")
    )
    warning = page.locator("#lease-warning")
    expect(warning).to_contain_text(
        re.compile(rf"The process deploy exited with status 3 at {NEAR} \(just now\)\.")
    )
    expect(warning).to_contain_text("Its run failed: maintenance stays on")
    expect(warning.locator("code")).to_have_text("bascule run --process deploy -- …")
    expect(warning).to_contain_text("Or, once the service is checked, release it")
    expect(page.get_by_role("button", name="Release…")).to_be_visible()
    expect(page.locator("#fact-holder")).not_to_contain_text("alive")
    expect(page.locator("#fact-holder")).not_to_contain_text("stopped answering")
    shot(page, "g1-run-failed")
    run_axe(page, axe_source, "the console after a failed run", CONSOLE)

    # The fixed deploy runs again: it takes its maintenance over, never off between.
    with maintenance_of(database_url) as maintenance:
        retried = maintenance.enable(deploy, "Deploying 2.4.1", lease_ttl=60)
    assert retried.window_id == held.window_id
    expect(page.locator("#fact-holder")).to_have_text(
        re.compile(r"^Held by the process deploy, alive \(renewed (just now|\d+ s ago)\)$")
    )
    expect(warning).to_be_hidden()
    expect(log_rows(page).nth(1)).to_contain_text("Retried by the process 'deploy'")
    expect(log_rows(page).nth(1)).to_contain_text("exited with status 3")
    expect(log_rows(page).first).to_contain_text("Deploying 2.4.1")
    shot(page, "g2-run-retried")
    (window,) = api(server, "GET", path="/history").json()["data"]["windows"]
    assert (window["status"], window["id"]) == ("on", held.window_id)


# ---- h. the banner any site includes -----------------------------------------------------

# Another site, on another loopback port: its styles must not reach the banner, and what
# its window holds is recorded before the banner's script runs (no global may be added).
ANOTHER_SITE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another site</title>
<style>p, div, section, button, strong {{ color: #c00000 !important; font-family: serif; }}</style>
<script>document.documentElement.dataset.globals = Object.keys(window).join(",");</script>
</head><body><main><h1>Another site</h1><p>Its own content.</p></main>
<script src="{bascule}/maintenance/banner.js" async></script></body></html>
"""


@contextmanager
def another_site(bascule: Server) -> Iterator[str]:
    """A page of another origin that includes the banner with one tag: its URL."""
    page = ANOTHER_SITE.format(bascule=bascule.url).encode()

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Site)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(timeout=5)


def test_the_banner_announces_planned_work_on_another_site(
    server: Server, page: Page, axe_source: str
):
    start, end = in_days(1, 9, 30), in_days(1, 10, 45)
    body = {"start": rfc3339(start), "end": rfc3339(end), "message": "Database upgrade."}
    assert api(server, "POST", {**body, "mode": "read-only"}, path="/schedule").status_code == 201
    with another_site(server) as url:
        with page.expect_request(lambda request: "announcement" in request.url) as asked:
            page.goto(url)
        banner = page.get_by_role("region", name="Maintenance notice")
        expect(banner).to_be_visible()
        # In the reader's time zone (the browser's, not the machine's), with its message.
        expect(banner).to_contain_text("Planned maintenance.")
        expect(banner).to_contain_text(re.compile(r"From \w+day.* 09:30 .* until .* 10:45 "))
        expect(banner).to_contain_text("the site can be read, not changed. Database upgrade.")
        assert asked.value.all_headers()["origin"] == url.rstrip("/")  # from another origin
        # Nothing of the site's style inside, nothing of the banner's outside.
        text = banner.locator("p")
        assert text.evaluate("p => getComputedStyle(p).color") == "rgb(27, 27, 27)"
        site_text = page.locator("main p")
        assert site_text.evaluate("p => getComputedStyle(p).color") == "rgb(192, 0, 0)"
        before = set(page.evaluate("document.documentElement.dataset.globals").split(","))
        assert set(page.evaluate("Object.keys(window)")) == before
        shot(page, "h1-banner-planned-window")
        run_axe(page, axe_source, "another site with the banner", "bascule/banner/banner.js")

        # Dismissed with the keyboard: the first control of the page, then gone for good.
        page.keyboard.press("Tab")
        dismiss = page.get_by_role("button", name="Dismiss: planned maintenance")
        expect(dismiss).to_be_focused()
        page.keyboard.press("Enter")
        expect(banner).to_have_count(0)
        page.reload()
        expect(page.get_by_role("heading", name="Another site")).to_be_visible()
        page.wait_for_timeout(500)  # time enough for the banner to have come back
        expect(banner).to_have_count(0)

        # The window that starts is another notice, shown again.
        assert api(server, "POST", {"message": "Copying files."}).status_code == 201
        page.reload()
        expect(banner).to_contain_text("Maintenance in progress.")
        expect(banner).to_contain_text("the site is unavailable. Copying files.")
        shot(page, "h2-banner-maintenance-on")
        run_axe(page, axe_source, "the banner, maintenance on", "bascule/banner/banner.js")


# ---- i. webhooks and the audit trail -----------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port, answering 204."""
    yield from _receiver()


def webhook_items(page: Page):
    return page.locator("#webhooks-list > li")


def event_rows(page: Page):
    return page.locator("#events-body tr")


def event_types() -> list[str]:
    """The types a webhook may take, as the contract lists them."""
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    types: list[str] = spec["components"]["schemas"]["EventType"]["enum"]
    return types


def test_an_admin_adds_tests_and_removes_a_webhook(
    server: Server, page: Page, receiver: Receiver, axe_source: str
):
    said: list[str] = []
    page.on("console", lambda message: said.append(message.text))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    sign_in(page, server, "admin", ADMIN_PASSWORD)
    alert, status = page.get_by_role("alert"), page.get_by_role("status")
    expect(page.locator("#webhooks-empty")).to_be_visible()
    boxes = page.locator("#webhook-events input[type=checkbox]")
    assert boxes.evaluate_all("boxes => boxes.map(box => box.value)") == event_types()

    # Refused before anything is sent: no URL; then by the server: a link-local address.
    url, add = page.get_by_label("URL", exact=True), page.get_by_role("button", name="Add webhook")
    add.click()
    expect(alert).to_have_text("Enter the URL to POST the events to.")
    expect(url).to_be_focused()
    expect(url).to_have_attribute("aria-invalid", "true")
    url.fill("http://169.254.169.254/latest/meta-data")
    add.click()
    expect(alert).to_contain_text("url refused: 169.254.169.254 is a link-local")
    assert api(server, "GET", path="/webhooks").json()["data"] == []

    # Added from the keyboard, for every type: its secret, once, in a field with a copy.
    url.fill(receiver.url)
    url.press("Enter")
    expect(status).to_have_text("Webhook added. Copy its secret now: it will not be shown again.")
    expect(alert).to_be_empty()
    field = page.get_by_label("Signing secret")
    expect(field).to_be_focused()
    secret = field.input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret), secret
    expect(page.locator("#secret-warning")).to_have_text(
        "It will not be shown again: keep it where the receiver checks the signatures."
    )
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(status).to_have_text("Secret copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(url).to_have_value("")
    item = webhook_items(page).first
    expect(item.locator(".webhook-url")).to_have_text(receiver.url)
    expect(item.locator(".tag")).to_have_text(["Every event"])
    expect(item).to_contain_text(re.compile(rf"Added by admin on {NEAR}"))
    # It takes every type: its own webhook.added is delivered to it.
    latest = item.locator(".webhook-latest")
    expect(latest).to_have_text(
        re.compile(rf"^Latest: webhook.added, delivered: HTTP 204 at {NEAR}")
    )
    shot(page, "i1-webhook-added")
    assert run_axe(page, axe_source, "the console with a new webhook's secret", CONSOLE) == []

    page.get_by_role("button", name="Done, hide the secret").click()
    expect(page.locator("#secret-panel")).to_be_hidden()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_focused()
    assert field.input_value() == ""
    assert secret not in page.content()
    assert secret not in json.dumps(api(server, "GET", path="/webhooks").json())

    # A test: sent at once, delivered, and what it got listed; the focus stays put.
    test = item.get_by_role("button", name="Send a test")
    test.click()
    expect(status).to_have_text("Test event sent: the list shows how its delivery goes.")
    expect(latest).to_have_text(
        re.compile(rf"^Latest: webhook.test, delivered: HTTP 204 at {NEAR}\.$")
    )
    expect(test).to_be_focused()
    expect(item).to_contain_text("Deliveries: 2 delivered · 0 pending · 0 failed")
    item.get_by_text("Latest deliveries (2)").click()
    rows = item.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td")).to_have_text(
        [
            "webhook.test",
            "Delivered",
            "1",
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"),
            "HTTP 204",
            "\u2013",
        ]
    )
    # The receiver got it, signed with the secret shown, under the event's id.
    until(lambda: "webhook.test" in receiver.types(), 5, "the test delivered")
    headers, body, _ = next(got for got in receiver.got if b'"webhook.test"' in got[1])
    headers = {name.lower(): value for name, value in headers.items()}
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    events = api(server, "GET", path="/events?type=webhook.test").json()["data"]["events"]
    assert headers["webhook-id"] == events[0]["id"]

    # Only some types: those checked.
    url.fill(f"{receiver.url}&only=maintenance")
    page.get_by_label("maintenance.started").check()
    page.get_by_label("maintenance.ended").check()
    add.click()
    expect(webhook_items(page)).to_have_count(2)
    expect(webhook_items(page).nth(1).locator(".tag")).to_have_text(
        ["maintenance.started", "maintenance.ended"]
    )
    expect(webhook_items(page).nth(1).locator(".webhook-latest")).to_have_text("No delivery yet.")
    expect(page.get_by_label("maintenance.started")).not_to_be_checked()  # the form is reset
    second = page.get_by_label("Signing secret").input_value()
    assert second.startswith("whsec_") and second != secret
    page.get_by_role("button", name="Done, hide the secret").click()
    listed = api(server, "GET", path="/webhooks").json()["data"]
    assert [hook["events"] for hook in listed] == [
        None,
        ["maintenance.started", "maintenance.ended"],
    ]

    # The audit trail: the webhooks added, by whom and from where, newest first (after
    # the users added before: the admin at the first start, the viewer by a command).
    trail = event_rows(page)
    expect(trail).to_have_count(5)
    expect(trail.nth(2).locator("td")).to_have_text(
        [
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"),
            "webhook.added",
            "admin",
            "127.0.0.1",
            f"admin added the webhook {listed[0]['id']} to http://127.0.0.1:{receiver.port}.",
        ]
    )
    expect(trail.nth(1).locator("td").nth(1)).to_have_text("webhook.test")
    expect(trail.nth(4)).to_contain_text("Bascule added the user admin")
    expect(page.locator("#events-count")).to_have_text("5 events")
    expect(page.locator("#events-pager")).to_be_hidden()  # one page

    # Removed, once confirmed; kept when not.
    item.get_by_role("button", name="Remove…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Remove this webhook?")
    expect(dialog).to_contain_text(f"Nothing more is sent to {receiver.url}")
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    assert run_axe(page, axe_source, "the console asking to remove a webhook", CONSOLE) == []
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert len(api(server, "GET", path="/webhooks").json()["data"]) == 2
    item.get_by_role("button", name="Remove…").click()
    dialog.get_by_role("button", name="Remove webhook").click()
    expect(status).to_have_text("Webhook removed.")
    expect(page.get_by_role("heading", name="Webhooks")).to_be_focused()
    expect(webhook_items(page)).to_have_count(1)
    expect(webhook_items(page).first.locator(".webhook-url")).to_have_text(
        f"{receiver.url}&only=maintenance"
    )
    assert [hook["id"] for hook in api(server, "GET", path="/webhooks").json()["data"]] == [
        listed[1]["id"]
    ]
    expect(trail.first.locator("td").nth(1)).to_have_text("webhook.removed")

    # Filtered by type, the rest of the trail paged.
    for _ in range(10):
        assert api(server, "POST").status_code == 201
        assert api(server, "DELETE").status_code == 200
    expect(page.locator("#events-count")).to_have_text("26 events")
    expect(trail).to_have_count(20)
    expect(page.locator("#events-range")).to_have_text("1\u201320 of 26")
    newer, older = (
        page.get_by_role("button", name="Newer"),
        page.get_by_role("button", name="Older"),
    )
    expect(newer).to_have_attribute("aria-disabled", "true")
    older.click()
    expect(page.locator("#events-range")).to_have_text("21\u201326 of 26")
    expect(trail).to_have_count(6)
    expect(trail.last).to_contain_text("Bascule added the user admin")
    expect(older).to_have_attribute("aria-disabled", "true")
    expect(older).to_be_focused()
    older.press("Enter")  # the last page: nothing further, and the focus stays
    expect(page.locator("#events-range")).to_have_text("21\u201326 of 26")
    page.get_by_label("Type").select_option("webhook.")
    expect(page.locator("#events-count")).to_have_text("4 events (webhook.*)")
    expect(trail.locator("td:nth-child(2)")).to_have_text(
        ["webhook.removed", "webhook.added", "webhook.test", "webhook.added"]
    )
    expect(page.locator("#events-pager")).to_be_hidden()
    page.get_by_label("Type").select_option("user.")
    expect(trail.locator("td:nth-child(2)")).to_have_text(["user.added", "user.added"])
    page.get_by_label("Type").select_option("token.")
    expect(page.locator("#events-empty")).to_have_text("No event of this type.")
    expect(page.locator("#events-table")).to_be_hidden()
    page.get_by_label("Type").select_option("maintenance.")
    expect(page.locator("#events-count")).to_have_text("20 events (maintenance.*)")
    expect(trail.first).to_contain_text("maintenance.ended")
    expect(alert).to_be_empty()
    shot(page, "i2-audit-trail")
    assert run_axe(page, axe_source, "the console with webhooks and the audit trail", CONSOLE) == []

    # The secret went to no log: neither the browser's console nor the server's.
    assert not [line for line in said if secret in line or second in line]
    assert secret not in server.output() and second not in server.output()


def test_a_viewer_sees_neither_webhooks_nor_the_audit_trail(
    server: Server, page: Page, receiver: Receiver
):
    assert api(server, "POST", {"url": receiver.url}, path="/webhooks").status_code == 201
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    asked: list[str] = []
    page.on(
        "request",
        lambda r: (
            asked.append(r.url)
            if re.search(r"/rest/v1/maintenance/(webhooks|events)", r.url)
            else None
        ),
    )
    sign_in(page, server, "viewer", VIEWER_PASSWORD)
    for _ in range(2):  # two refreshes
        with page.expect_request(lambda r: r.url.endswith("/rest/v1/maintenance")):
            pass
    for name in ("Webhooks", "Audit trail"):
        expect(page.get_by_role("heading", name=name)).to_have_count(0)
    controls = page.get_by_role(
        "button", name=re.compile("Add webhook|Send a test|Remove|Newer|Older|Copy")
    )
    expect(controls.or_(page.get_by_role("textbox", name="URL", exact=True))).to_have_count(0)
    expect(page.locator("#webhooks")).to_be_hidden()
    expect(page.locator("#events")).to_be_hidden()
    expect(page.get_by_role("alert")).to_be_empty()
    assert asked == [] and errors == []
