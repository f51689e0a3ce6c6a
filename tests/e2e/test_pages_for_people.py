"""The admin's session pages and the demo page as people see them, in Chromium: the layout facts
(no column off-screen, nothing scrolling sideways on a phone), the Revoke buttons, the messages.

Each test saves its screenshots into $SCREENSHOTS_DIR (a temporary folder unless set); the README's
pictures are retaken with ``SCREENSHOTS_DIR=docs/screenshots make test``.
"""

import json
import os
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from playwright.sync_api import expect

from accounts import errors, http_errors

from ..helpers import IPHONE_SAFARI, MAC_CHROME, PASSWORD

ADMIN_VIEWPORT = {"width": 1400, "height": 900}
AGENTS = [
    MAC_CHROME,
    IPHONE_SAFARI,
    "curl/8.1.2",
    # A long agent, as real ones are: it must not widen the table.
    "Mozilla/5.0 (Linux; Android 14; SM-S928B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.135 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/480.0.0.36.108;IABMV/1;]",
]


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(api_base: str, username: str, user_agent: str) -> None:
    """A login through the API from a client with this user agent (a session named after it)."""
    request = urllib.request.Request(
        f"{api_base}/auth/login/",
        data=json.dumps({"username": username, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json", "User-Agent": user_agent},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def horizontal_overflow(page) -> int:
    """How many pixels the page is wider than its window (0: nothing scrolls sideways)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def serve_static(route) -> None:
    """The admin's CSS and JavaScript, from Django's static files finders (gunicorn with DEBUG off
    serves no static files by itself): the layout checked here is the one people get."""
    found = finders.find(urlsplit(route.request.url).path.removeprefix("/static/"))
    if found:
        route.fulfill(path=found)
    else:
        route.fulfill(status=404)


@pytest.fixture
def admin(new_browser, admin_account, api_base):
    """The Django admin in a 1400x900 window with its styles and sidebar, signed in."""
    context = new_browser(viewport=ADMIN_VIEWPORT)
    context.route(api_base.removesuffix("/api") + "/static/**", serve_static)
    # The admin's navigation sidebar open, as it is for anyone who has not closed it.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'true')")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the Revoke buttons ask first
    root = api_base.removesuffix("/api") + "/admin/"
    page.goto(f"{root}login/?next=/admin/")
    page.get_by_label("Username").fill(admin_account[0])
    page.get_by_label("Password").fill(admin_account[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()
    page.root = root
    return page


def expect_sidebar_open(page) -> None:
    expect(page.locator("#main.shifted #nav-sidebar")).to_be_visible()


def test_the_sessions_list_fits_1400_pixels_with_the_sidebar_open_and_names_devices(
    admin, account, api_base, manage, screenshots
):
    for agent in AGENTS:
        log_in(api_base, account, agent)
    [gone] = [
        row
        for row in json.loads(manage("list_sessions", "--user", account, "--json"))
        if "curl" in row["device"]
    ]
    manage("revoke_sessions", "--session", gone["id"][:8], "--reason", "lost laptop")

    admin.goto(f"{admin.root}accounts/session/?status=all&q={account}")
    expect_sidebar_open(admin)
    rows = admin.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(AGENTS))
    for device in ("Chrome 131 on macOS", "Safari 18 on iPhone", "curl 8.1", "Facebook 480 on Android"):
        expect(admin.locator("#result_list")).to_contain_text(device)
    expect(admin.locator("#result_list")).to_contain_text("revoked by a command")
    assert AGENTS[-1] not in admin.locator("#result_list").inner_text()

    # The table fits its box (which would scroll sideways otherwise, hiding the last columns), and
    # the box fits the window.
    results = admin.locator("#changelist-form .results")
    assert results.evaluate("box => box.scrollWidth - box.clientWidth") == 0
    box, status = results.bounding_box(), admin.locator("#result_list th.column-status").bounding_box()
    assert status["x"] + status["width"] <= box["x"] + box["width"] <= ADMIN_VIEWPORT["width"], (status, box)
    assert horizontal_overflow(admin) == 0
    admin.screenshot(path=screenshots / "admin-sessions.png")

    # "Show all" after a search: every status, not the default (active).
    admin.goto(f"{admin.root}accounts/session/?q={account}")
    expect(rows).to_have_count(len(AGENTS) - 1)
    admin.get_by_role("link", name="Show all").click()
    expect(admin).to_have_url(f"{admin.root}accounts/session/?status=all")


def test_a_sessions_page_revokes_it_with_one_click_and_its_history_says_so(
    admin, account, api_base, screenshots, server_database
):
    log_in(api_base, account, MAC_CHROME)
    admin.goto(f"{admin.root}accounts/session/?q={account}")
    admin.locator("#result_list tbody tr th a").first.click()
    expect(admin.locator("#content")).to_contain_text("Chrome 131 on macOS")
    admin.screenshot(path=screenshots / "admin-session.png", full_page=True)

    admin.get_by_role("button", name="Revoke", exact=True).click()

    expect(admin.locator(".messagelist")).to_have_text(f"Revoked 1 session of {account}.")
    assert [s["revoke_reason"] for s in server_database.sessions(account)] == ["revoked_by_admin"]
    expect(admin.get_by_role("button", name="Revoke", exact=True)).to_have_count(0)  # nothing left to revoke
    admin.get_by_role("link", name="History").click()
    expect(admin.locator("#change-history")).to_contain_text("Revoked.")


def test_the_user_page_shows_sessions_first_each_with_a_revoke_button(
    admin, account, api_base, screenshots, server_database
):
    for agent in AGENTS[:2]:
        log_in(api_base, account, agent)
    admin.goto(f"{admin.root}auth/user/?q={account}")
    admin.get_by_role("link", name=account, exact=True).click()
    expect_sidebar_open(admin)
    sessions = admin.locator(".inline-group", has_text="Active sessions")
    expect(sessions.locator("tbody tr.has_original")).to_have_count(2)
    personal = admin.get_by_role("heading", name="Personal info")
    assert sessions.bounding_box()["y"] < personal.bounding_box()["y"]  # near the top, not below the dates
    assert horizontal_overflow(admin) == 0
    admin.screenshot(path=screenshots / "admin-user.png")

    sessions.locator("tr", has_text="Safari 18 on iPhone").get_by_role("button", name="Revoke").click()

    expect(admin.locator(".messagelist")).to_have_text(f"Revoked 1 session of {account}.")
    expect(admin.locator("h1")).to_contain_text("Change user")  # back on the user's page
    expect(sessions.locator("tbody tr.has_original")).to_have_count(1)
    expect(sessions).to_contain_text("Chrome 131 on macOS")
    assert sorted(s["revoke_reason"] for s in server_database.sessions(account)) == ["", "revoked_by_admin"]


@pytest.mark.parametrize("width", [360, 390])
def test_the_demo_fits_a_phone_without_scrolling_sideways(
    new_browser, open_demo, account, api_base, width, screenshots
):
    log_in(api_base, account, MAC_CHROME)  # a second session: the table has a Revoke button
    phone = new_browser(viewport={"width": width, "height": 800}, user_agent=IPHONE_SAFARI, is_mobile=True)
    demo = open_demo(phone)
    assert horizontal_overflow(demo.page) == 0  # signed out: the two forms
    demo.sign_in(account)
    expect(demo.session_rows()).to_have_count(2)
    expect(demo.session_rows().nth(1)).to_contain_text("Chrome 131 on macOS")
    assert horizontal_overflow(demo.page) == 0
    for button in demo.page.get_by_role("button").all():
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (button.inner_text(), box)
    if width == 390:
        demo.page.screenshot(path=screenshots / "demo-390.png", full_page=True)


def api_error_codes() -> set[str]:
    """Every error code the API can answer with: the domain errors' and the HTTP layer's own."""
    domain = {error.code for error in errors.AuthError.__subclasses__()}
    http = {getattr(value, "default_code", None) for value in vars(http_errors).values()}
    listed_in_the_spec = {"throttled", "body_transport_forbidden", "csrf_failed", "service_unavailable"}
    return (domain | listed_in_the_spec | {code for code in http if isinstance(code, str)}) - {"error"}


def test_every_error_code_has_a_message_for_people(context, open_demo):
    demo = open_demo(context)
    codes = sorted(api_error_codes())
    assert {"token_revoked", "invalid_credentials", "throttled", "not_authenticated"} <= set(codes)
    messages = demo.run(
        """(codes) => Object.fromEntries(codes.map((code) => [
            code,
            demo.describe(new demo.ApiError(code === "service_unavailable" ? 503 : 400, {
                detail: "Request was throttled. Expected available in 42 seconds.", code,
            })),
        ]))""",
        codes,
    )
    fallbacks = {"That did not work. Please reload the page and try again."}
    for code, message in messages.items():
        assert code not in message and message not in fallbacks, (code, message)
    assert messages["throttled"] == "Too many attempts. Please wait 42 seconds and try again."
