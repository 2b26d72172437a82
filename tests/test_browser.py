"""In a real browser: the maintenance page visitors see, and the operator console.

Playwright drives Debian's Chromium (/usr/bin/chromium; Playwright's own browser download
is not used) against a live ``bascule serve`` mounting a tiny shop application. Scenarios:
a visitor kept out of the shop and let back in by the page itself; an administrator
switching maintenance on, posting progress and switching it off in the console; a
read-only user; automatic maintenance; and axe-core's accessibility rules on both pages.

Every step leaves a screenshot in out/screenshots/; the two the docs show are also
written to out/screenshots/docs/, which `make screenshots` copies to docs/screenshots/
(a test run changes no tracked file). A missing browser or axe-core fails, saying how to
install it: nothing is skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, basic
from tests.serving import BASCULE, Server, clean_env, serving

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
SCREENSHOTS = ROOT / "out" / "screenshots"
README_SCREENSHOTS = SCREENSHOTS / "docs"
VIEWPORT = {"width": 1000, "height": 700}
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
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB")
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


def api(server: Server, method: str, json_body: dict[str, object] | None = None) -> httpx.Response:
    """Call /rest/v1/maintenance as the admin, with HTTP Basic."""
    return httpx.request(
        method, f"{server.url}/rest/v1/maintenance", headers=ADMIN, json=json_body, timeout=10
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
    page.get_by_label("Password").fill(password)
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
        "button", name=re.compile("Enable maintenance|Disable maintenance|Post update")
    )
    fields = page.get_by_role("textbox", name="Message").or_(
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


def test_an_admin_runs_a_maintenance_from_the_console(server: Server, page: Page):
    page.goto(f"{server.url}/maintenance")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
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
    expect(page.locator("#progress-text")).to_have_text("1%")
    expect(log_rows(page)).to_have_count(1)
    current = state(server)
    assert current is not None
    assert current["user"] == "admin"

    page.get_by_label("Message").fill("Upgrading the database to schema 42.")
    page.get_by_label("Progress (%)").fill("40")
    page.get_by_role("button", name="Post update").click()
    expect(page.get_by_role("status")).to_have_text("Update posted.")
    expect(page.locator("#progress")).to_have_attribute("value", "40")
    expect(page.locator("#progress-text")).to_have_text("40%")
    expect(page.locator("#fact-message")).to_have_text("Upgrading the database to schema 42.")
    newest = log_rows(page).first
    expect(newest).to_contain_text("Upgrading the database to schema 42.")
    expect(newest.locator("td").nth(1)).to_have_text("admin")
    expect(newest.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    expect(log_rows(page).last).to_contain_text("Maintenance operation started.")
    expect(page.get_by_label("Message")).to_have_value("")  # cleared once posted

    shot(page, "b4-console-on")

    # A percentage alone; then nothing at all, refused before anything is sent.
    page.get_by_label("Progress (%)").fill("65")
    page.get_by_role("button", name="Post update").click()
    expect(page.locator("#progress-text")).to_have_text("65%")
    expect(log_rows(page)).to_have_count(2)
    page.get_by_role("button", name="Post update").click()
    expect(page.get_by_role("alert")).to_have_text("Enter a message, a progress, or both.")
    expect(page.get_by_label("Message")).to_be_focused()
    shot(page, "b4-nothing-to-post")

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

    # Maintenance switched on elsewhere, with a log longer than the state carries (100):
    # the console pages through GET /maintenance/log for the older entries.
    log_requests: list[str] = []
    page.on(
        "request", lambda r: log_requests.append(r.url) if "/maintenance/log" in r.url else None
    )
    assert api(server, "POST").status_code == 201
    with httpx.Client(headers=ADMIN, timeout=10) as client:
        for step in range(1, 250):
            response = client.put(
                f"{server.url}/rest/v1/maintenance", json={"message": f"Step {step} of 249."}
            )
            assert response.status_code == 201, response.text
    assert api(server, "PUT", {"progressPercentage": 55}).status_code == 201

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
