"""A persistent PostgreSQL connection that the server ended is replaced before the next request
uses it, without a round trip per request to find out (authproject/postgresql: the health check
looks at the idle socket instead of sending ``SELECT 1``)."""

import time

import psycopg
import pytest
from django.db import connection

from .helpers import PASSWORD, gunicorn_serving, http_json, served_database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's persistent connections"),
]


def terminate_the_servers_connections() -> int:
    """End every connection to the test database but this process's own (as a restart would)."""
    others = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), %s)"
    )
    with psycopg.connect(served_database_url(), autocommit=True) as admin:
        mine = [connection.connection.info.backend_pid]
        ended = admin.execute(f"SELECT count(pg_terminate_backend(pid)) FROM ({others}) o", mine).fetchone()[
            0
        ]
        deadline = time.monotonic() + 10
        while admin.execute(others, mine).fetchall():  # each backend says goodbye, then exits
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return ended


def test_a_connection_the_server_ended_is_replaced_without_a_failed_request():
    connection.ensure_connection()
    with gunicorn_serving(workers=1) as base:
        account = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
        assert http_json(base, "POST", "/api/auth/register/", account)[0] == 201  # hashed by the server
        status, tokens = http_json(base, "POST", "/api/auth/login/", {**account, "transport": "body"})
        assert status == 200, tokens
        assert (
            http_json(base, "GET", "/api/users/me/", access=tokens["access"])[0] == 200
        )  # its connection is open

        assert terminate_the_servers_connections() >= 1
        for _ in range(3):
            status, body = http_json(base, "GET", "/api/users/me/", access=tokens["access"])
            assert (status, body.get("username")) == (200, "alice")
        status, body = http_json(base, "POST", "/api/auth/refresh/", {"refresh": tokens["refresh"]})
        assert status == 200, body
