"""Instant revocation across app servers: two gunicorn instances on one database, each with its own
per-process cache (locmem), so nothing but the database can tell the second about the revocation."""

import json
import secrets
import urllib.error
import urllib.request

import pytest

from .helpers import PASSWORD, gunicorn_serving

pytestmark = pytest.mark.django_db(transaction=True)


def call(base: str, method: str, path: str, body: dict | None = None, access: str | None = None):
    request = urllib.request.Request(
        base + path, method=method, data=json.dumps(body).encode() if body else None
    )
    request.add_header("Content-Type", "application/json")
    if access:
        request.add_header("Authorization", f"Bearer {access}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            content = response.read()
            return response.status, json.loads(content) if content else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_session_revoked_on_one_app_server_is_refused_by_the_other_at_once():
    shared = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "CACHE_URL": "locmemcache://"}
    with gunicorn_serving(workers=1, **shared) as one, gunicorn_serving(workers=1, **shared) as other:
        account = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        assert call(one, "POST", "/api/auth/register/", account)[0] == 201
        _, tokens = call(one, "POST", "/api/auth/login/", {**account, "transport": "body"})
        kept = call(one, "POST", "/api/auth/login/", {**account, "transport": "body"})[1]["access"]
        for base in (one, other, other):  # both have answered for the token
            assert call(base, "GET", "/api/users/me/", access=tokens["access"])[0] == 200

        assert call(one, "POST", "/api/auth/logout/", {"refresh": tokens["refresh"]})[0] == 200

        status, body = call(other, "GET", "/api/users/me/", access=tokens["access"])
        assert (status, body["code"]) == (401, "token_revoked")
        assert call(other, "GET", "/api/users/me/", access=kept)[0] == 200  # the user's other session
