"""End-to-end fixtures: the real service and the demo page on loopback, driven in real Chromium.

Three processes serve the tests, once for the whole package:
- the API: gunicorn, DEBUG off, on a database of its own (a temporary SQLite file, or a database
  ``<name>_e2e_<pid>`` beside the one DATABASE_URL names, so the PostgreSQL pass covers it too), with a
  2-second access-token lifetime so that tests can watch tokens expire;
- the demo page (``demo/serve.py``) on another port of localhost: another origin on the same site,
  the only origin in the API's CORS_ALLOWED_ORIGINS;
- the same page on a third port that the API does not allow.

Chromium is Debian's (``/usr/bin/chromium``, or $CHROMIUM); ``make test`` installs it with
apt-get when it is missing. Playwright only drives it and never downloads a browser.
"""

import itertools
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from ..helpers import PASSWORD, SmtpServer, free_port, fresh_postgres_database

BASE_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags this machine needs (see the machine notes): no sandbox as root, and none of Chromium's
# own background traffic, which a closed network refuses. Playwright adds --headless itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACCESS_TOKEN_LIFETIME = 2  # seconds, so that expiry can be waited for
STARTUP_TIMEOUT = 60

# Playwright's default of 5 s for what a page shows is tight on a busy 2-core CI machine.
expect.set_options(timeout=15_000)

_usernames = itertools.count(1)


def pytest_collection_modifyitems(items):
    """Mark everything here ``e2e``: ``pytest -m "not e2e"`` runs the rest without a browser."""
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _fast_hasher_and_empty_cache():
    """Replaces the suite's autouse fixture: these tests change nothing in this process, and must
    not clear a shared cache (Redis) under the running server."""


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:  # refused, reset (URLError), or too slow to answer yet (TimeoutError)
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{url} did not come up; its log ({log}):\n{log.read_text()[-3000:]}")
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ServerDatabase:
    """The API server's own database, and a read-only look at its sessions table."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")

    def _connect(self):
        if self.is_sqlite:
            return closing(sqlite3.connect(urlsplit(self.url).path))
        return psycopg.connect(self.url, autocommit=True)

    def sessions(self, username: str) -> list[dict]:
        """The user's session rows, oldest first."""
        placeholder = "?" if self.is_sqlite else "%s"
        sql = (
            "SELECT s.refresh_jti, s.previous_jti, s.last_used_at, s.revoked_at, s.revoke_reason, s.amr"
            " FROM accounts_session s JOIN auth_user u ON u.id = s.user_id"
            f" WHERE u.username = {placeholder} ORDER BY s.created_at"
        )
        with self._connect() as connection:
            rows = connection.execute(sql, (username,)).fetchall()
        keys = ("refresh_jti", "previous_jti", "last_used_at", "revoked_at", "revoke_reason", "amr")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def sign_ins_long_ago(self, username: str) -> None:
        """Move the ``auth_time`` of the user's sessions an hour back, as if they had signed in then:
        the next access token a refresh issues carries it (tests need not wait
        REAUTHENTICATION_TIMEOUT for a change to ask for the password again)."""
        then = datetime.now(UTC) - timedelta(hours=1)
        placeholder = "?" if self.is_sqlite else "%s"
        value = then.strftime("%Y-%m-%d %H:%M:%S.%f") if self.is_sqlite else then  # Django's format
        sql = (
            f"UPDATE accounts_session SET auth_time = {placeholder}"
            f" WHERE user_id = (SELECT id FROM auth_user WHERE username = {placeholder})"
        )
        with self._connect() as connection:
            connection.execute(sql, (value, username))
            if self.is_sqlite:
                connection.commit()


@pytest.fixture(scope="package")
def server_database(tmp_path_factory):
    """A fresh database for the API server: never the one pytest-django tests in."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql://")):
        with fresh_postgres_database(f"e2e_{os.getpid()}") as url:
            yield ServerDatabase(url)
    elif not configured or configured.startswith("sqlite"):
        yield ServerDatabase(f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'api.sqlite3'}")
    else:
        pytest.fail(f"The e2e tests know SQLite and PostgreSQL, not {configured.split(':')[0]}.")


@pytest.fixture(scope="package")
def ports():
    """Free loopback ports for the API, the demo page, and the page on an origin not allowed."""
    return {"api": free_port(), "page": free_port(), "other": free_port()}


@pytest.fixture(scope="package")
def page_origin(ports) -> str:
    return f"http://localhost:{ports['page']}"


@pytest.fixture(scope="package")
def other_origin(ports) -> str:
    """Same site, another port: an origin the API does not allow."""
    return f"http://localhost:{ports['other']}"


@pytest.fixture(scope="package")
def mail_server():
    """A real SMTP server that receives every mail the API sends (reset and verification links)."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def server_env(page_origin, server_database, mail_server) -> dict[str, str]:
    """The API server's environment (also for manage.py commands against its database): mail goes
    to ``mail_server`` right after each request's commit, with links to the demo page."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="authproject.settings",
        DJANGO_DEBUG="0",  # with DEBUG on, every localhost port would be allowed
        DJANGO_ENV_FILE="",  # never the checkout's development .env
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        EMAIL_URL=f"smtp://127.0.0.1:{mail_server.port}",
        TASKS_BACKEND="immediate",
        PASSWORD_RESET_URL=f"{page_origin}/#reset={{key}}",
        EMAIL_VERIFY_URL=f"{page_origin}/#verify={{key}}",
        DATABASE_URL=server_database.url,
        CACHE_URL=os.environ.get("CACHE_URL", "locmemcache://"),
        CORS_ALLOWED_ORIGINS=page_origin,
        ACCESS_TOKEN_LIFETIME=str(ACCESS_TOKEN_LIFETIME),
        LOGIN_THROTTLE_RATE="1000/min",
        LOGIN_USERNAME_THROTTLE_RATE="1000/min",
        LOGIN_IP_THROTTLE_RATE="1000/min",
        REGISTER_THROTTLE_RATE="1000/hour",
        MFA_THROTTLE_RATE="1000/min",
        WEBAUTHN_RP_ID="localhost",  # the pages' host: a passkey belongs to the site, not a port
    )
    return env


@pytest.fixture(scope="package")
def manage(server_env):
    """``manage("migrate", "--noinput")`` runs a manage.py command against the server's database."""

    def run(*args: str, **extra_env: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            check=False,
            cwd=BASE_DIR,
            env={**server_env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    return run


@pytest.fixture(scope="package")
def api_base(ports, server_env, manage, tmp_path_factory) -> str:
    """The API, served by gunicorn from a migrated database of its own; yields its root URL."""
    manage("migrate", "--noinput")
    log = tmp_path_factory.mktemp("api") / "gunicorn.log"
    # One worker process with threads: parallel requests, and one local-memory cache.
    bind = ["--bind", f"127.0.0.1:{ports['api']}", "--workers", "1", "--threads", "8"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "authproject.wsgi", *bind],
            cwd=BASE_DIR,
            env=server_env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    _wait_until_serving(f"http://127.0.0.1:{ports['api']}/api/health/", process, log)
    yield f"http://localhost:{ports['api']}/api"
    _stop(process)


def _serve_page(port: int, api: str, log: Path):
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "demo" / "serve.py"), "--port", str(port), "--api", api],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    _wait_until_serving(f"http://127.0.0.1:{port}/config.js", process, log)
    return process


@pytest.fixture(scope="package")
def demo_page_servers(ports, api_base, tmp_path_factory):
    """demo/serve.py on the allowed page port and on the other one, both pointing at the API."""
    logs = tmp_path_factory.mktemp("page")
    processes = [_serve_page(ports[name], api_base, logs / f"{name}.log") for name in ("page", "other")]
    yield
    for process in processes:
        _stop(process)


@pytest.fixture(scope="package")
def chromium():
    """Debian's Chromium, headless, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: `make test` installs Debian's, or set CHROMIUM.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_browser(chromium, demo_page_servers):
    """``new_browser()`` is a fresh browser profile (its own cookie jar): another device, in effect."""
    contexts = []

    def make(**options):
        context = chromium.new_context(**{"viewport": {"width": 1100, "height": 720}, **options})
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_browser):
    """One browser profile for the test."""
    return new_browser()


@pytest.fixture
def account(api_base) -> str:
    """A new user, registered straight through the API; its username."""
    username = f"e2e{next(_usernames)}_{secrets.token_hex(3)}"
    fields = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    request = urllib.request.Request(
        f"{api_base}/auth/register/",
        data=json.dumps(fields).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    return username


@pytest.fixture
def admin_account(api_base, manage) -> tuple[str, str]:
    """A new superuser for the Django admin; its username and password."""
    username, password = f"admin_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    manage(
        "createsuperuser",
        "--noinput",
        f"--username={username}",
        f"--email={username}@example.com",
        DJANGO_SUPERUSER_PASSWORD=password,
    )
    return username, password


class DemoPage:
    """The demo page in one tab, driven as a person would: forms, buttons, what it shows."""

    def __init__(self, page: Page, origin: str):
        self.page = page
        self.origin = origin

    def open(self) -> "DemoPage":
        """Load the page and wait until its session restore has settled."""
        self.page.goto(f"{self.origin}/")
        self.settle()
        return self

    def settle(self) -> None:
        expect(self.page.locator("body")).not_to_have_attribute("data-state", "loading")

    @property
    def state(self) -> str:
        return self.page.locator("body").get_attribute("data-state")

    def expect_signed_in(self, username: str) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-state", "signed-in")
        expect(self.page.locator("#status")).to_have_text(f"Signed in as {username}")

    def expect_signed_out(self) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-state", "signed-out")
        expect(self.page.locator("#status")).to_have_text("Signed out")

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        form = self.page.locator("#login-form")
        form.get_by_label("Username").fill(username)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Sign in").click()
        self.expect_signed_in(username)

    def click(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()

    def message(self) -> str:
        return self.page.locator("#message").inner_text()

    def session_rows(self):
        return self.page.locator("#sessions tr")

    def run(self, script: str, arg=None):
        """Evaluate JavaScript in the page, where ``demo.client`` is the page's auth client."""
        return self.page.evaluate(script, arg)


@pytest.fixture
def open_demo(page_origin):
    """``open_demo(context)`` opens the demo page in a new tab of that browser profile."""

    def open_in(context, origin: str | None = None) -> DemoPage:
        return DemoPage(context.new_page(), origin or page_origin).open()

    return open_in


class Traffic:
    """The requests a browser profile sends to the API, as (method, path) pairs, in order."""

    def __init__(self, context, api_base: str):
        self.api_base = api_base
        self.requests = []
        context.on("request", self._record)

    def _record(self, request) -> None:
        if request.url.startswith(self.api_base):
            self.requests.append(request)

    def calls(self) -> list[tuple[str, str]]:
        """(method, path relative to the API root) of each request, in order."""
        return [(r.method, r.url.removeprefix(self.api_base)) for r in self.requests]

    def count(self, method: str, path: str) -> int:
        """How many ``method`` requests went to ``path`` (relative to the API root)."""
        url = self.api_base + path
        return sum(1 for r in self.requests if r.method == method and r.url == url)

    def clear(self) -> None:
        self.requests.clear()


@pytest.fixture
def traffic(api_base):
    """``traffic(context)`` records what that browser profile sends to the API from now on."""
    return lambda context: Traffic(context, api_base)


def refresh_cookie(context) -> dict | None:
    """The refresh cookie in the browser's jar (all attributes), or None."""
    return next((c for c in context.cookies() if c["name"] == "refresh_token"), None)
