"""What a real browser does with the refresh cookie, credentialed CORS and demo/auth-client.js.

Each test drives the demo page (http://localhost:<page port>) against the API on another port of
localhost (another origin on the same site) in Debian's Chromium. The API is the real service in
gunicorn with a 2-second access-token lifetime; see conftest.py.
"""

import os
import re
import time
from pathlib import Path

from playwright.sync_api import expect

from ..helpers import claims, jti
from .conftest import ACCESS_TOKEN_LIFETIME, refresh_cookie

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"
)


def _cookie_in(header: str, name: str = "refresh_token") -> str | None:
    """A cookie's value in a Cookie or Set-Cookie header."""
    match = re.search(rf"(?:^|[;\s]){name}=([^;\s]*)", header or "")
    return match.group(1) if match else None


def test_sign_in_across_origins_keeps_the_refresh_token_out_of_every_script_and_storage(
    context, open_demo, account, api_base, page_origin
):
    demo = open_demo(context)
    demo.expect_signed_out()

    with demo.page.expect_response(f"{api_base}/auth/login/") as login:
        demo.sign_in(account)
    assert login.value.request.header_value("origin") == page_origin  # a cross-origin call
    body = login.value.json()
    assert set(body) == {"access", "access_expires_at", "user"}
    expect(demo.page.locator("#me")).to_contain_text(f"{account}@example.com")  # /me read across origins

    cookie = refresh_cookie(context)
    assert cookie is not None
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (
        True,
        True,
        "Lax",
        "/api/auth/",
    )
    assert claims(cookie["value"])["token_type"] == "refresh"
    secrets_in_play = {"refresh token": cookie["value"], "access token": body["access"]}

    reachable = demo.run(
        """async () => ({
            cookie: document.cookie,
            local: JSON.stringify(Object.entries(localStorage)),
            session: JSON.stringify(Object.entries(sessionStorage)),
            indexedDB: (await indexedDB.databases()).map((db) => db.name),
            cacheStorage: await caches.keys(),
        })"""
    )
    assert "refresh_token" not in reachable["cookie"]
    for name, value in secrets_in_play.items():
        assert value not in reachable["cookie"], f"the {name} is in document.cookie"
    assert (reachable["local"], reachable["session"]) == ("[]", "[]"), "the client wrote to web storage"
    assert (reachable["indexedDB"], reachable["cacheStorage"]) == ([], [])

    # Not even a script on the API's own origin, under the cookie's path, can read it; it does see
    # the cookies that are readable, so this would notice a refresh cookie without HttpOnly.
    api_tab = context.new_page()
    api_tab.goto(f"{api_base}/auth/csrf/")
    api_cookies = api_tab.evaluate("document.cookie")
    assert "csrftoken=" in api_cookies
    assert "refresh_token" not in api_cookies


def test_a_wrong_password_is_shown_and_sets_no_cookie(context, open_demo, account):
    demo = open_demo(context)

    with demo.page.expect_response(lambda r: r.url.endswith("/auth/login/")) as login:
        form = demo.page.locator("#login-form")
        form.get_by_label("Username").fill(account)
        form.get_by_label("Password").fill("not the password")
        form.get_by_role("button", name="Sign in").click()

    assert login.value.status == 401
    expect(demo.page.locator("#message")).to_have_text(
        "That username and password don't match. Check them and try again."
    )
    demo.expect_signed_out()
    assert refresh_cookie(context) is None


def test_a_reload_keeps_the_user_signed_in_through_one_silent_refresh(context, open_demo, account, traffic):
    demo = open_demo(context)
    demo.sign_in(account)
    seen = traffic(context)

    demo.page.reload()
    demo.settle()

    demo.expect_signed_in(account)
    # The access token died with the old page: the new one starts from the cookie.
    assert seen.calls()[:2] == [("GET", "/auth/csrf/"), ("POST", "/auth/refresh/")]
    assert seen.count("POST", "/auth/login/") == 0
    seen.clear()
    new_tab = open_demo(context)  # a new tab of the same browser restores the same way
    new_tab.expect_signed_in(account)
    assert seen.calls()[:2] == [("GET", "/auth/csrf/"), ("POST", "/auth/refresh/")]


def test_five_parallel_calls_after_the_access_token_expires_share_one_refresh_and_all_succeed(
    context, open_demo, account, traffic
):
    demo = open_demo(context)
    demo.sign_in(account)
    time.sleep(ACCESS_TOKEN_LIFETIME + 0.5)  # the token in the page's memory is now expired
    seen = traffic(context)

    statuses = demo.run(
        """() => Promise.all(
            Array.from({ length: 5 }, () => demo.client.request("/users/me/").then((r) => r.status)),
        )"""
    )

    assert statuses == [200] * 5
    assert seen.count("POST", "/auth/refresh/") == 1
    assert seen.count("GET", "/users/me/") == 10  # each call: a 401, then exactly one retry


def test_two_tabs_refreshing_at_the_same_moment_both_stay_signed_in(
    context, open_demo, account, api_base, traffic, server_database
):
    first = open_demo(context)
    first.sign_in(account)
    second = open_demo(context)  # the same browser: the same cookie jar
    second.expect_signed_in(account)
    before = refresh_cookie(context)["value"]
    seen = traffic(context)

    # Both tabs' refreshes are held until both have asked, then let go together. Chromium reads the
    # cookie jar when a held request goes on, so on a busy machine the second may already carry the
    # first one's answer (Playwright's request headers still show the cookie as it was when held):
    # either way the server sees a race it must survive, which is what this test is about. The race
    # with the very same token is made certain in the next test.
    held = []

    def release_together(route):
        held.append(route)
        if len(held) == 2:
            for waiting in held:
                waiting.continue_()

    context.route(f"{api_base}/auth/refresh/", release_together)
    for tab in (first, second):
        tab.run("() => { window.race = demo.client.refresh(); }")
    assert [tab.run("() => window.race") for tab in (first, second)] == [True, True]
    context.unroute(f"{api_base}/auth/refresh/")

    refreshes = [r for r in seen.requests if r.method == "POST" and r.url.endswith("/auth/refresh/")]
    assert len(refreshes) == 2
    answered = {_cookie_in(r.response().all_headers().get("set-cookie")) for r in refreshes}
    received = {jti(token) for token in answered}
    [session] = server_database.sessions(account)
    assert session["revoked_at"] is None  # no reuse detected
    assert session["refresh_jti"] in received and jti(before) not in received
    # One rotation whose answer both got (the grace window), or two in a row: nothing else.
    assert len(received) == 1 or session["previous_jti"] in received
    assert refresh_cookie(context)["value"] in answered
    for tab in (first, second):
        tab.click("Reload")
        tab.expect_signed_in(account)
        assert tab.run("() => demo.client.refresh()") is True


def test_a_tab_that_refreshes_with_the_token_just_rotated_gets_the_same_answer_and_stays_signed_in(
    context, open_demo, account, server_database
):
    """The grace window in a browser: the second of two racing tabs sends the token that the first
    has just rotated (as when both read the jar before either answer arrived, or an answer was
    lost); it gets the session's new token, the same the first got, and nobody is signed out."""
    first = open_demo(context)
    first.sign_in(account)
    second = open_demo(context)
    second.expect_signed_in(account)
    jar = refresh_cookie(context)
    before = jar["value"]

    assert first.run("() => demo.client.refresh()") is True
    rotated = refresh_cookie(context)["value"]
    assert jti(rotated) != jti(before)
    # The second tab's request goes out with the cookie as it was before the first one's answer.
    context.add_cookies([{**jar, "value": before}])
    assert second.run("() => demo.client.refresh()") is True

    assert jti(refresh_cookie(context)["value"]) == jti(rotated)  # the same token: no second rotation
    [session] = server_database.sessions(account)
    assert session["revoked_at"] is None
    assert (session["previous_jti"], session["refresh_jti"]) == (jti(before), jti(rotated))
    for tab in (first, second):
        tab.click("Reload")
        tab.expect_signed_in(account)


def test_logout_then_reload_shows_signed_out_and_the_old_refresh_cookie_is_gone(
    context, open_demo, account, traffic, server_database
):
    demo = open_demo(context)
    demo.sign_in(account)
    old_cookie = refresh_cookie(context)

    demo.click("Log out")

    demo.expect_signed_out()
    assert demo.message() == "You are signed out."
    assert refresh_cookie(context) is None
    assert [s["revoke_reason"] for s in server_database.sessions(account)] == ["logout"]
    seen = traffic(context)
    demo.page.reload()
    demo.settle()
    demo.expect_signed_out()
    assert seen.count("POST", "/auth/refresh/") == 1  # the restore tried, and was refused
    assert refresh_cookie(context) is None

    # The old cookie, put back by hand, signs nobody in: the session is revoked on the server.
    context.add_cookies([old_cookie])
    demo.page.reload()
    demo.settle()
    demo.expect_signed_out()


def test_revoking_a_session_from_another_browser_signs_that_browser_out_at_its_next_call(
    new_browser, open_demo, account, server_database
):
    laptop_browser, phone_browser = new_browser(), new_browser(user_agent=IPHONE)
    laptop = open_demo(laptop_browser)
    laptop.sign_in(account)
    phone = open_demo(phone_browser)
    phone.sign_in(account)
    expect(phone.session_rows()).to_have_count(2)

    laptop_row = phone.session_rows().filter(has=phone.page.get_by_role("button", name="Revoke"))
    expect(laptop_row).to_contain_text("on Linux")
    laptop_row.get_by_role("button", name="Revoke").click()
    expect(phone.session_rows()).to_have_count(1)
    assert [s["revoke_reason"] for s in server_database.sessions(account)] == ["revoked_by_user", ""]

    laptop.click("Reload")  # the laptop's next call

    laptop.expect_signed_out()
    assert laptop.message().startswith("You were signed out on this device")
    assert "token_revoked" not in laptop.message()  # people read it, not programs
    assert refresh_cookie(laptop_browser) is None  # the refused refresh deleted the dead cookie
    phone.click("Reload")
    phone.expect_signed_in(account)


def test_revoking_a_session_in_the_admin_signs_that_browser_out_at_its_next_call(
    new_browser, open_demo, account, admin_account, api_base, server_database
):
    user_browser = new_browser()
    demo = open_demo(user_browser)
    demo.sign_in(account)
    admin = new_browser().new_page()  # the Django admin, on the API's own origin
    admin_root = api_base.removesuffix("/api") + "/admin/"
    admin.goto(f"{admin_root}login/?next=/admin/accounts/session/%3Fq%3D{account}")
    admin.get_by_label("Username").fill(admin_account[0])
    admin.get_by_label("Password").fill(admin_account[1])
    admin.get_by_role("button", name="Log in").click()

    expect(admin.locator("input[name=_selected_action]")).to_have_count(1)  # the user's one session
    admin.locator("input[name=_selected_action]").check()
    admin.locator("select[name=action]").select_option("revoke_selected_sessions")
    admin.get_by_role("button", name="Go").click()
    expect(admin.locator(".messagelist")).to_contain_text(f"Revoked 1 session of {account}.")
    assert [s["revoke_reason"] for s in server_database.sessions(account)] == ["revoked_by_admin"]

    demo.click("Reload")  # the user's next call

    demo.expect_signed_out()
    assert demo.message().startswith("You were signed out on this device")
    assert refresh_cookie(user_browser) is None


def test_log_out_everywhere_signs_out_every_browser_of_the_user(
    new_browser, open_demo, account, server_database
):
    laptop_browser, phone_browser = new_browser(), new_browser(user_agent=IPHONE)
    laptop = open_demo(laptop_browser)
    laptop.sign_in(account)
    phone = open_demo(phone_browser)
    phone.sign_in(account)

    phone.click("Log out everywhere")

    phone.expect_signed_out()
    assert phone.message() == "You are signed out everywhere."
    assert refresh_cookie(phone_browser) is None
    assert [s["revoke_reason"] for s in server_database.sessions(account)] == ["logout_all", "logout_all"]
    laptop.click("Reload")
    laptop.expect_signed_out()
    assert laptop.message().startswith("You were signed out on this device")


def test_a_page_on_an_origin_the_api_does_not_allow_can_neither_read_responses_nor_refresh(
    context, open_demo, account, api_base, other_origin, server_database
):
    demo = open_demo(context)
    demo.sign_in(account)
    cookie_before = refresh_cookie(context)["value"]
    [session_before] = server_database.sessions(account)

    # The same page, from a port the API does not allow, in the same browser: its silent restore fails.
    other = open_demo(context, origin=other_origin)
    other.expect_signed_out()
    assert "Cannot reach the API" in other.message()

    with other.page.expect_response(lambda r: r.url == f"{api_base}/auth/refresh/") as refused:
        attempts = other.run(
            """async (api) => {
                // On localhost the csrftoken cookie is readable from every port (cookies ignore ports),
                // so this page even knows the CSRF token. The Origin check still refuses it.
                const csrf = document.cookie.match(/csrftoken=([^;]+)/)?.[1] ?? "";
                const outcome = (init, path) =>
                    fetch(api + path, { credentials: "include", ...init })
                        .then((r) => `read ${r.status}`, (error) => error.name);
                return {
                    knowsCsrf: csrf !== "",
                    read: await outcome({}, "/auth/csrf/"),
                    refresh: await outcome({
                        method: "POST",
                        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
                        body: "{}",
                    }, "/auth/refresh/"),
                    // A form-style POST needs no preflight: it reaches the API, cookie and all.
                    blindRefresh: await fetch(api + "/auth/refresh/", {
                        method: "POST",
                        mode: "no-cors",
                        credentials: "include",
                        body: new URLSearchParams({ csrfmiddlewaretoken: csrf }),
                    }).then((r) => r.type),
                };
            }""",
            api_base,
        )

    assert attempts == {
        "knowsCsrf": True,
        "read": "TypeError",
        "refresh": "TypeError",
        "blindRefresh": "opaque",
    }
    assert refused.value.status == 403  # the blind one, refused by the CSRF check (its Origin)
    assert server_database.sessions(account) == [session_before]  # not rotated, not touched
    assert refresh_cookie(context)["value"] == cookie_before
    demo.page.reload()  # and the page on the allowed origin still refreshes with it
    demo.settle()
    demo.expect_signed_in(account)


def test_sign_up_signs_in_and_the_page_shows_me_and_each_of_my_sessions(new_browser, open_demo, tmp_path):
    username = "ada"  # the only user of that name: the API's database is new for each run
    phone = open_demo(new_browser(user_agent=IPHONE))
    form = phone.page.locator("#register-form")
    form.get_by_label("New username").fill(username)
    form.get_by_label("Email").fill(f"{username}@example.com")
    form.get_by_label("New password").fill("correct horse battery staple")
    form.get_by_role("button", name="Sign up").click()
    phone.expect_signed_in(username)
    assert phone.message().startswith(f"Welcome, {username}")

    laptop = open_demo(new_browser())
    laptop.sign_in(username)

    expect(laptop.page.locator("#me")).to_contain_text(f"{username}@example.com")
    rows = laptop.session_rows()
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("this browser")  # newest first: the laptop itself
    expect(rows.nth(1)).to_contain_text("Safari 18 on iPhone")
    expect(rows.nth(1).get_by_role("button", name="Revoke")).to_be_visible()
    # The picture in the README: DEMO_SCREENSHOT=demo/screenshot.png make test
    target = Path(os.environ.get("DEMO_SCREENSHOT") or tmp_path / "demo.png")
    laptop.page.set_viewport_size({"width": 1100, "height": 400})  # the page's own height, below
    laptop.page.screenshot(path=target, full_page=True)
    assert target.read_bytes().startswith(b"\x89PNG")
