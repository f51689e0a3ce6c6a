"""Fixtures and factories shared by the suite (plain helper functions are in tests/helpers.py).

Tests run against whatever DATABASE_URL and CACHE_URL name: SQLite and local memory by default,
PostgreSQL and Redis in the second CI pass.
"""

import io
import itertools
import json
import logging
import os
import subprocess
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.keys import signing_key_generate
from accounts.logs import JsonFormatter
from accounts.models import RevokeReason, Session
from accounts.services import session_create, sessions_revoke
from accounts.throttles import CountingThrottle

from .helpers import (
    BASE_DIR,
    FUZZ_COUNTS,
    PASSWORD,
    TEST_CACHE_KEY_PREFIX,
    TEST_PASSWORD_CHECK_SLOT_DIR,
    BrowserClient,
    SmtpServer,
    cache_clear_own_keys,
    data_queries,
)

# The tests set their own settings: no manage.py they start reads the checkout's development .env
# (manage.py reads the file DJANGO_ENV_FILE names; empty names none).
os.environ["DJANGO_ENV_FILE"] = ""
# Every server or command the tests start puts its cache keys under the run's own prefix too.
os.environ["CACHE_KEY_PREFIX"] = TEST_CACHE_KEY_PREFIX
# ... and takes the run's own password-check slots.
os.environ["PASSWORD_CHECK_SLOT_DIR"] = TEST_PASSWORD_CHECK_SLOT_DIR

_usernames = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _cache_keys_of_our_own():
    """The run's cache keys under TEST_CACHE_KEY_PREFIX (the servers it starts get it from
    CACHE_KEY_PREFIX), so that emptying the tests' cache deletes nobody else's keys."""
    default = {**django_settings.CACHES["default"], "KEY_PREFIX": TEST_CACHE_KEY_PREFIX}
    slots = {"ACCOUNTS_PASSWORD_CHECK_SLOT_DIR": TEST_PASSWORD_CHECK_SLOT_DIR}
    with override_settings(CACHES={**django_settings.CACHES, "default": default}, **slots):
        yield


@pytest.fixture(autouse=True)
def _fast_hasher_and_empty_cache(settings):
    """A fast hasher (production uses Argon2) and throttle counters that start at zero."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache_clear_own_keys()
    yield
    cache_clear_own_keys()


@pytest.fixture(autouse=True)
def _throttle_windows_start_with_the_test(monkeypatch):
    """Every limit's window (a second, a minute, an hour, a day) starts as the test does. The limits
    count in fixed windows, so a test's attempts on both sides of a window's end were counted apart
    (seen in CI: the fourth admin login under a 3/min limit signed in). The limits' clock (DRF's
    ``SimpleRateThrottle.timer``) runs at the real pace, shifted back to the start of a day; the
    counters are emptied per test, so windows numbered alike in two tests never meet. Servers the
    tests start keep the real clock (their tests use helpers.throttle_window_fresh)."""
    shift = time.time() % 86400
    monkeypatch.setattr(CountingThrottle, "timer", staticmethod(lambda: time.time() - shift))


@pytest.fixture(autouse=True)
def _tasks_run_at_once(settings):
    """Tasks (mail) run when enqueued, as in development; a test that wants the queue says so."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free port, and Django's mail pointed at it (``.messages`` holds what
    it received)."""
    server = SmtpServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


@pytest.fixture
def password_tries():
    """How many times Django's authenticate() refused a password."""
    tries = []

    def count(sender, credentials, **kwargs):
        tries.append(credentials.get("username"))

    user_login_failed.connect(count)
    yield tries
    user_login_failed.disconnect(count)


@pytest.fixture
def user_factory(db):
    """Make an active user with the shared test password (override any field)."""

    def make(*, username=None, password=PASSWORD, **fields):
        username = username or f"user{next(_usernames)}"
        fields.setdefault("email", f"{username}@example.com")
        return get_user_model().objects.create_user(username=username, password=password, **fields)

    return make


@pytest.fixture
def make_session(user_factory):
    """A session in a given state: active, expired or revoked."""

    def make(user=None, state="active", ip="198.51.100.1", user_agent="Firefox"):
        user = user or user_factory()
        now = timezone.now()
        if state == "expired":
            return session_create(user=user, ip=ip, user_agent=user_agent, now=now - timedelta(days=60))
        session = session_create(user=user, ip=ip, user_agent=user_agent, now=now)
        if state == "revoked":
            sessions_revoke(sessions=Session.objects.filter(pk=session.pk), reason=RevokeReason.LOGOUT)
        return session

    return make


@pytest.fixture
def user(user_factory):
    return user_factory(username="alice")


@pytest.fixture
def browser(db):
    """A fresh browser-like client."""
    return BrowserClient()


@pytest.fixture
def signed_in(browser, user):
    """A browser signed in as ``user``; ``browser.access`` holds the access token."""
    response = browser.sign_in()
    assert response.status_code == 200, response.content
    browser.access = response.json()["access"]
    return browser


@pytest.fixture
def api(signed_in):
    """The signed-in browser, sending its access token as a Bearer header."""
    return signed_in.bearer(signed_in.access)


@pytest.fixture
def query_budget():
    """``with query_budget(2): ...`` fails if the block runs more than two data queries."""

    @contextmanager
    def budget(limit: int):
        with CaptureQueriesContext(connection) as captured:
            yield captured
        queries = data_queries(captured)
        assert len(queries) <= limit, f"{len(queries)} queries (budget {limit}):\n" + "\n".join(queries)

    return budget


@pytest.fixture
def checkout_env_file():
    """The checkout's development .env, as `make run` writes it: made for the test if missing (and
    removed after), the developer's own left as it is if it has DJANGO_DEBUG=1 (skipped if not)."""
    path = BASE_DIR / ".env"
    if path.exists():
        if "DJANGO_DEBUG=1" not in path.read_text().splitlines():
            pytest.skip(f"{path} exists without DJANGO_DEBUG=1; the test leaves it alone")
        yield path
        return
    try:
        make_environment = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
        subprocess.run(
            ["make", "--no-print-directory", ".env"],
            cwd=BASE_DIR,
            env=make_environment,
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield path
    finally:
        path.unlink(missing_ok=True)


class LogLines:
    """The lines a log handler wrote into ``stream``."""

    def __init__(self, stream: io.StringIO):
        self.stream = stream

    def text(self) -> str:
        """Everything written so far."""
        return self.stream.getvalue()

    def __call__(self) -> list[dict]:
        """The lines written so far, each parsed as JSON (a line that is not JSON fails)."""
        return [json.loads(line) for line in self.text().splitlines()]


@pytest.fixture
def json_log_lines():
    """What the configured log handler (settings.LOGGING's "console", with its request filter)
    writes while the test runs, in JSON (LOG_FORMAT=json, the production default): call it for the
    lines so far, parsed."""
    [handler] = [h for h in logging.getLogger().handlers if h.name == "console"]
    stream, formatter = io.StringIO(), handler.formatter
    previous = handler.setStream(stream)
    handler.setFormatter(JsonFormatter())
    try:
        yield LogLines(stream)
    finally:
        handler.setStream(previous)
        handler.setFormatter(formatter)


@pytest.fixture(scope="session")
def key_file(tmp_path_factory):
    """``key_file("ES256", "a")``: the path of a PEM private key made at run time (keys are never
    committed), the same file for the same name throughout the run."""
    directory = tmp_path_factory.mktemp("keys")
    made: dict[tuple[str, str], str] = {}

    def make(algorithm: str, name: str = "a") -> str:
        if (algorithm, name) not in made:
            path = directory / f"{algorithm}-{name}.pem"
            path.write_bytes(signing_key_generate(algorithm=algorithm))
            made[algorithm, name] = str(path)
        return made[algorithm, name]

    return make


@pytest.fixture
def use_keys(settings):
    """``use_keys("ES256", signing=[...], verify=[...])``: sign and verify with these key files."""

    def use(algorithm: str, signing=(), verify=()):
        settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ALGORITHM": algorithm}
        settings.ACCOUNTS_JWT_SIGNING_KEYS = list(signing)
        settings.ACCOUNTS_JWT_VERIFY_KEYS = list(verify)

    return use


def pytest_terminal_summary(terminalreporter):
    """How many examples the property-based tests ran (schemathesis cases, hypothesis examples)."""
    for name, count in sorted(FUZZ_COUNTS.items()):
        terminalreporter.write_line(f"{name}: {count}")
