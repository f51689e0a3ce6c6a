"""Instant revocation across app servers: two gunicorn instances on one database, each with its own
per-process cache (locmem), so nothing but the database can tell the second about the revocation."""

import secrets

import pytest

from .helpers import PASSWORD, gunicorn_serving, http_json

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_session_revoked_on_one_app_server_is_refused_by_the_other_at_once():
    shared = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "CACHE_URL": "locmemcache://"}
    with gunicorn_serving(workers=1, **shared) as one, gunicorn_serving(workers=1, **shared) as other:
        account = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        assert http_json(one, "POST", "/api/auth/register/", account)[0] == 201
        _, tokens = http_json(one, "POST", "/api/auth/login/", {**account, "transport": "body"})
        kept = http_json(one, "POST", "/api/auth/login/", {**account, "transport": "body"})[1]["access"]
        for base in (one, other, other):  # both have answered for the token
            assert http_json(base, "GET", "/api/users/me/", access=tokens["access"])[0] == 200

        assert http_json(one, "POST", "/api/auth/logout/", {"refresh": tokens["refresh"]})[0] == 200

        status, body = http_json(other, "GET", "/api/users/me/", access=tokens["access"])
        assert (status, body["code"]) == (401, "token_revoked")
        assert http_json(other, "GET", "/api/users/me/", access=kept)[0] == 200  # the user's other session
