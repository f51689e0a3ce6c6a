"""The production set-up behind a real TLS proxy: nginx terminating https before two `make serve`
instances that share one database and one cache (see conftest.py). Every request goes through nginx,
whose X-Upstream header (added for the tests) names the instance that answered.
"""

import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from playwright.sync_api import expect

from benchmarks.servers import Client, Nginx, Serve, free_ports

from ..e2e.conftest import DemoPage
from ..helpers import PASSWORD, jti, throttle_window_fresh
from .conftest import HSTS_SECONDS, needs_shared_services

HSTS = f"max-age={HSTS_SECONDS}; includeSubDomains; preload"


def signed_in(stack, username: str, *, page: bool = False):
    """A client signed in as ``username``, with its access token."""
    client = stack.client(page=page)
    answer = client.sign_in(username, PASSWORD)
    assert answer.status == 200, answer.body
    return client, answer.json()["access"]


def session_row(stack, username: str) -> dict:
    """The user's one session row, read straight from the shared database."""
    with psycopg.connect(stack.database_url) as connection:
        row = connection.execute(
            "SELECT s.refresh_jti, s.previous_jti, s.revoked_at FROM accounts_session s"
            " JOIN auth_user u ON u.id = s.user_id WHERE u.username = %s",
            (username,),
        ).fetchone()
    return dict(zip(("refresh_jti", "previous_jti", "revoked_at"), row, strict=True))


def test_the_admin_signs_in_over_https_and_revokes_a_session(stack, admin_account, browser_context):
    username = stack.new_user()
    client, access = signed_in(stack, username, page=True)
    page = browser_context.new_page()
    page.goto(f"{stack.origin}/admin/login/?next=/admin/accounts/session/%3Fq%3D{username}")
    page.get_by_label("Username").fill(admin_account[0])
    page.get_by_label("Password").fill(admin_account[1])
    page.get_by_role("button", name="Log in").click()  # a POST checked against CSRF over https

    expect(page.locator("input[name=_selected_action]")).to_have_count(1)
    page.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option("revoke_selected_sessions")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text(f"Revoked 1 session of {username}.")
    assert client.refresh().status == 401
    assert client.me(access).json()["code"] == "token_revoked"


def test_the_admins_css_and_the_swagger_ui_load_with_debug_off(stack, browser_context):
    page = browser_context.new_page()
    static = []
    page.on("response", lambda r: static.append(r) if "/static/" in r.url else None)
    page.goto(f"{stack.origin}/admin/login/")
    # Django's admin stylesheet colours the header; without it the background would be transparent.
    expect(page.locator("#header")).to_have_css("background-color", re.compile(r"rgb\((?!0, 0, 0\))"))
    page.goto(f"{stack.origin}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("authproject API")

    names = {r.url.rsplit("/", 1)[1] for r in static}
    assert {"base.css", "login.css", "swagger-ui.css", "swagger-ui-bundle.js"} <= names, names
    assert [r.url for r in static if r.status != 200] == []
    assert all(r.header_value("strict-transport-security") == HSTS for r in static)


def test_the_demo_spa_on_another_https_origin_signs_in_refreshes_and_logs_out(stack, browser_context):
    username = stack.new_user()
    demo = DemoPage(browser_context.new_page(), stack.demo_origin).open()
    demo.expect_signed_out()
    demo.sign_in(username)
    cookie = next(c for c in browser_context.cookies() if c["name"] == "refresh_token")
    assert (cookie["secure"], cookie["httpOnly"], cookie["domain"], cookie["path"]) == (
        True,
        True,
        "localhost",
        "/api/auth/",
    )

    with demo.page.expect_response(f"{stack.origin}/api/auth/refresh/") as refresh:
        demo.page.reload()  # the access token lived in the page: a silent refresh from the cookie
    assert refresh.value.status == 200
    demo.expect_signed_in(username)
    rotated = next(c for c in browser_context.cookies() if c["name"] == "refresh_token")
    assert rotated["value"] != cookie["value"]

    demo.click("Log out")
    demo.expect_signed_out()
    assert [c for c in browser_context.cookies() if c["name"] == "refresh_token"] == []
    demo.page.reload()
    demo.expect_signed_out()


def test_every_answer_over_https_carries_hsts(stack):
    client = stack.client()
    answers = {
        "health": client.request("GET", "/api/health/"),
        "wrong password": client.sign_in("nobody", "wrong password"),
        "refresh without CSRF": client.request("POST", "/api/auth/refresh/", {}),
        "unknown API path": client.request("GET", "/api/nowhere/"),
        "admin login page": client.request("GET", "/admin/login/"),
        "admin asks to log in": client.request("GET", "/admin/"),
        "static file": client.request("GET", "/static/admin/css/base.css"),
        "missing static file": client.request("GET", "/static/nowhere.css"),
        "schema": client.request("GET", "/api/schema/"),
    }
    assert {name: a.status for name, a in answers.items()} == {
        "health": 200,
        "wrong password": 401,
        "refresh without CSRF": 403,
        "unknown API path": 404,
        "admin login page": 200,
        "admin asks to log in": 302,
        "static file": 200,
        "missing static file": 404,
        "schema": 200,
    }
    assert {name: a.header("Strict-Transport-Security") for name, a in answers.items()} == dict.fromkeys(
        answers, HSTS
    )


def test_plain_http_is_redirected_to_https(stack):
    client = stack.client()
    client.origin = stack.http_origin
    for path in ("/api/health/", "/admin/login/", "/static/admin/css/base.css"):
        answer = client.request("GET", path)
        assert answer.status == 301, (path, answer.status)
        assert answer.header("Location") == f"{stack.origin}{path}"
        assert answer.header("Strict-Transport-Security") is None  # browsers ignore it over http


@needs_shared_services
def test_a_refresh_race_of_one_cookie_across_both_instances_leaves_one_live_token(stack):
    username = stack.new_user()
    first, _ = signed_in(stack, username, page=True)
    csrf, original = first.fetch_csrf(), dict(first.cookies)
    barrier = threading.Barrier(12)

    def race(_):
        client = stack.client(page=True)
        client.cookies, client.csrf = dict(original), csrf
        barrier.wait()
        answer = client.refresh()
        return answer.status, answer.upstream, client.cookies.get("refresh_token")

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(race, range(12)))

    assert [status for status, _, _ in results] == [200] * 12
    assert {upstream for _, upstream, _ in results} == {i.address for i in stack.instances}
    tokens = {token for _, _, token in results}
    assert len(tokens) == 1, "every racer must hold the same current token"
    row = session_row(stack, username)
    assert row["revoked_at"] is None
    assert row["previous_jti"] == jti(original["refresh_token"])  # rotated exactly once...
    assert row["refresh_jti"] == jti(tokens.pop())  # ...and everyone holds the result


@needs_shared_services
def test_the_login_throttle_counts_attempts_on_both_instances_together(stack):
    username = stack.new_user()
    client = stack.client()
    throttle_window_fresh()  # the 7 attempts below in one window of the limit
    failures = [client.sign_in(username, "wrong password") for _ in range(5)]  # LOGIN_THROTTLE_RATE 5/min
    assert [a.status for a in failures] == [401] * 5
    assert {a.upstream for a in failures} == {i.address for i in stack.instances}

    for _ in range(2):  # the next attempt is refused on whichever instance it reaches
        refused = client.sign_in(username, PASSWORD)
        assert refused.status == 429
        assert refused.json()["code"] == "throttled"
        assert int(refused.header("Retry-After")) > 0


@needs_shared_services
def test_a_session_revoked_on_one_instance_is_refused_on_the_other_at_once(stack):
    username = stack.new_user()
    _, access = signed_in(stack, username)
    client = stack.client()
    for _ in range(2):  # both instances have seen the token (and cached its session as active)
        assert client.me(access).status == 200
    session_id = client.request(
        "GET", "/api/auth/sessions/", headers={"Authorization": f"Bearer {access}"}
    ).json()[0]["id"]

    revoked = client.request(
        "DELETE", f"/api/auth/sessions/{session_id}/", headers={"Authorization": f"Bearer {access}"}
    )
    assert revoked.status == 204
    after = [client.me(access) for _ in range(2)]
    assert after[0].upstream != revoked.upstream  # round robin: the other instance, next
    assert {a.upstream for a in after} == {i.address for i in stack.instances}
    assert [(a.status, a.json()["code"]) for a in after] == [(401, "token_revoked")] * 2


@needs_shared_services
def test_stopping_one_instance_mid_run_loses_no_session(stack):
    """SIGTERM: gunicorn finishes the requests it has started, but connections still waiting in its
    listen queue are reset, and nginx answers a POST caught there 502 (it retries only idempotent
    requests on another server). A client that tries again once goes on with its session."""
    users = [stack.new_user() for _ in range(4)]
    clients = [signed_in(stack, username, page=True)[0] for username in users]
    stopping = threading.Event()
    answers, cut_off = [], []

    def once_more_if_cut_off(call):
        answer = call()
        if answer.status == 502:  # nginx's own answer: the instance went away with the request
            cut_off.append(answer)
            answer = call()
        answers.append(answer)
        return answer

    def keep_going(client):
        for round_number in range(12):
            refreshed = once_more_if_cut_off(client.refresh)
            if refreshed.status == 200:
                access = refreshed.json()["access"]
                once_more_if_cut_off(lambda: client.me(access))  # noqa: B023 - called at once
            if round_number == 3:
                stopping.set()

    with ThreadPoolExecutor(len(clients)) as pool:
        running = [pool.submit(keep_going, client) for client in clients]
        stopping.wait(timeout=60)
        stack.instances[1].stop()
        for future in running:
            future.result()

    assert [a.status for a in answers if a.status != 200] == []
    assert {a.upstream.split(", ")[-1] for a in answers} == {i.address for i in stack.instances}
    for client, username in zip(clients, users, strict=True):
        answer = client.refresh()
        assert answer.status == 200
        assert answer.upstream.split(", ")[-1] == stack.instances[0].address  # after the stopped one
        assert session_row(stack, username)["revoked_at"] is None


def test_requests_spaced_across_gunicorns_keepalive_get_no_502(stack):
    """nginx speaks HTTP/1.1 to the instances and keeps idle connections (keepalive, as the README's
    example), closing them after 4 s, before gunicorn's keepalive (5 s) would: a request sent just
    as gunicorn closed a connection nginx reuses would be answered 502."""
    username = stack.new_user()
    client, access = signed_in(stack, username)
    answers = []
    for pause in (0, 4.5, 5.5, 0.5, 6):  # around both timeouts, so every case meets each instance
        time.sleep(pause)
        answers += [client.me(access) for _ in range(2)]
    assert [a.status for a in answers] == [200] * len(answers)
    assert {a.upstream for a in answers} == {i.address for i in stack.instances}
    assert "prematurely closed" not in stack.nginx_error_log.read_text()


def idle_connections_to(port: int) -> int:
    """How many TCP connections to ``port`` on loopback are open now (ss, from iproute2)."""
    command = ["ss", "-Htn", "state", "established", f"( sport = :{port} )"]
    listing = subprocess.run(command, capture_output=True, text=True, check=True)
    return len(listing.stdout.splitlines())


def test_a_worker_that_keeps_connections_is_reused_by_nginx_without_a_502_across_its_keepalive(
    stack, tmp_path
):
    """gunicorn's sync workers close every connection; a worker class that keeps them (gthread,
    gunicorn's keepalive 5 s) is what nginx's upstream keepalive is for. nginx reuses the connection
    and drops an idle one after its 4 s, before gunicorn closes it under a request."""
    environment = {
        **stack.environment,
        "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 2",
        "WEB_CONCURRENCY": "1",
    }
    instance = Serve("gthread", free_ports(1)[0], environment, tmp_path).start()
    (tmp_path / "nginx").mkdir()
    names = ("https_port", "http_port", "demo_port", "demo_backend_port")
    ports = dict(zip(names, free_ports(4), strict=True))
    key = stack.certificate.with_suffix(".key")
    nginx = Nginx(tmp_path / "nginx", certificate=stack.certificate, key=key, **ports).start([instance])
    try:
        username = stack.new_user()
        client = Client(f"https://localhost:{ports['https_port']}", stack.certificate)
        access = client.sign_in(username, PASSWORD).json()["access"]
        answers, kept = [], []
        for pause in (0, 0.2, 3.5, 4.5, 5.0, 5.5, 0.2, 6):  # around both timeouts
            time.sleep(pause)
            answers.append(client.me(access))
            kept.append(idle_connections_to(instance.port))
        assert [a.status for a in answers] == [200] * len(answers)
        assert all(count >= 1 for count in kept), kept  # each answer left its connection open...
        time.sleep(4.5)
        assert idle_connections_to(instance.port) == 0  # ...until nginx's keepalive_timeout closed it
        assert "prematurely closed" not in (tmp_path / "nginx" / "error.log").read_text()
    finally:
        nginx.stop()
        instance.stop()


def test_the_access_logs_print_no_token_and_no_cookie(stack):
    username = stack.new_user()
    client, access = signed_in(stack, username, page=True)
    client.fetch_csrf()
    client.refresh()
    for _ in range(2):  # a token where no client should put one still stays out of the log
        client.request(
            "GET", f"/api/users/me/?access={access}", headers={"Authorization": f"Bearer {access}"}
        )
    secrets_sent = {access, client.cookies["refresh_token"], client.cookies["csrftoken"], client.csrf}

    logs = {i.name: i.log.read_text() for i in stack.instances}
    assert all('"GET /api/users/me/ HTTP/1.1" 200' in text for text in logs.values()), logs
    for text in logs.values():
        assert not [s for s in secrets_sent if s in text]
        assert "eyJ" not in text  # the start of every JWT
