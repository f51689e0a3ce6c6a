"""Fixtures and factories shared by the suite.

Tests run against whatever DATABASE_URL and CACHE_URL name: SQLite and local memory by default,
PostgreSQL and Redis in the second CI pass.
"""

import itertools
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import RevokeReason, Session
from accounts.services import session_create, sessions_revoke

PASSWORD = "correct horse battery staple"
TRANSACTION_CONTROL = (
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE SAVEPOINT",
    "ROLLBACK TO SAVEPOINT",
)

_usernames = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_hasher_and_empty_cache(settings):
    """A fast hasher (production uses Argon2) and throttle counters that start at zero."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


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


class BrowserClient(APIClient):
    """A test client that behaves like the SPA: real CSRF checks, the CSRF token from the API,
    the refresh token only ever in its cookie jar."""

    def __init__(self, **defaults):
        super().__init__(enforce_csrf_checks=True, **defaults)
        self.csrf_token = None

    def fetch_csrf(self) -> str:
        self.csrf_token = self.get("/api/auth/csrf/").json()["csrf_token"]
        return self.csrf_token

    def sign_in(self, username="alice", password=PASSWORD, **extra):
        return self.post(
            "/api/auth/login/", {"username": username, "password": password}, format="json", **extra
        )

    def refresh(self, **extra):
        headers = {"HTTP_X_CSRFTOKEN": self.csrf_token or self.fetch_csrf(), **extra}
        return self.post("/api/auth/refresh/", {}, format="json", **headers)

    def sign_out(self, **extra):
        headers = {"HTTP_X_CSRFTOKEN": self.csrf_token or self.fetch_csrf(), **extra}
        return self.post("/api/auth/logout/", {}, format="json", **headers)

    def bearer(self, access: str):
        self.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        return self

    @property
    def refresh_cookie(self) -> str | None:
        morsel = self.cookies.get("refresh_token")
        return morsel.value if morsel and morsel.value else None

    def set_refresh_cookie(self, value: str):
        self.cookies["refresh_token"] = value


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


def data_queries(captured) -> list[str]:
    """The SQL statements run, without transaction control (BEGIN, COMMIT, savepoints)."""
    return [
        q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(TRANSACTION_CONTROL)
    ]


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


def set_cookie_attributes(response, name="refresh_token") -> dict[str, str | bool]:
    """The attributes of the Set-Cookie header for ``name``, parsed from its text."""
    header = response.cookies[name].output(header="").strip()
    first, *rest = [part.strip() for part in header.split(";")]
    key, _, value = first.partition("=")
    attributes = {"name": key, "value": value}
    for part in rest:
        attr, sep, attr_value = part.partition("=")
        attributes[attr.lower()] = attr_value if sep else True
    return attributes
