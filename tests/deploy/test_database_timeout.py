"""DATABASE_TIMEOUT against databases that really stop answering, served by `make serve`.

PostgreSQL: the instance reaches the server through a TCP proxy that can freeze (it keeps every
connection open and passes nothing on, as a paused server or a network black hole does; the kernel
keeps acknowledging, so no TCP timeout fires). SQLite: another connection holds the write lock.
Either way a request must answer 503 service_unavailable within the timeout, and the same worker
must serve again once the database answers.
"""

import secrets
import sqlite3
import time
from urllib.parse import urlsplit

import psycopg
import pytest

from benchmarks.servers import Client, Serve

from ..helpers import PASSWORD, free_port
from .conftest import needs_postgres, server_environment
from .proxy import FreezableProxy

TIMEOUT = 2  # seconds: DATABASE_TIMEOUT for these instances (libpq's connect_timeout is 2 at least)
SLACK = 1.5  # seconds on top, for a busy 2-core machine


def timed(call):
    """``call()``'s answer and how long it took, in seconds."""
    start = time.monotonic()
    answer = call()
    return answer, time.monotonic() - start


def signed_in_client(base: str) -> tuple[Client, str, str]:
    """A registered user's client on ``base`` (plain http), an access token, the username."""
    client = Client(base)
    username = f"timeout_{secrets.token_hex(3)}"
    account = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    assert client.request("POST", "/api/auth/register/", account).status == 201
    answer = client.sign_in(username, PASSWORD)
    assert answer.status == 200, answer.body
    return client, answer.json()["access"], username


def assert_unavailable_in_time(answer, elapsed: float) -> None:
    assert answer.status == 503, answer.body
    assert answer.json()["code"] == "service_unavailable"
    assert elapsed < TIMEOUT + SLACK, f"{elapsed:.1f} s"


@pytest.fixture
def instance_environment(static_root):
    """A single-worker production instance, plain http, DATABASE_TIMEOUT=2."""

    def environment(database_url: str) -> dict[str, str]:
        return server_environment(
            DATABASE_URL=database_url,
            DATABASE_TIMEOUT=str(TIMEOUT),
            WEB_CONCURRENCY="1",  # one worker: a hung one would show at once
            STATIC_ROOT=str(static_root),
            LOGIN_IP_THROTTLE_RATE="10000/min",
            REGISTER_THROTTLE_RATE="10000/hour",
        )

    return environment


@needs_postgres
def test_a_postgresql_server_that_stops_answering_gives_503_within_the_timeout(
    database_url, instance_environment, tmp_path
):
    server = urlsplit(database_url)
    proxy = FreezableProxy((server.hostname, server.port or 5432))
    through_proxy = server._replace(netloc=f"{server.username}@127.0.0.1:{proxy.port}").geturl()
    instance = Serve("frozen", free_port(), instance_environment(through_proxy), tmp_path).start()
    try:
        client, access, _ = signed_in_client(f"http://127.0.0.1:{instance.port}")
        assert client.me(access).status == 200  # the worker holds an open connection now

        proxy.freeze()
        # First the open connection (the request's first query), then new ones (libpq's
        # connect_timeout): each within the timeout.
        assert_unavailable_in_time(*timed(lambda: client.me(access)))
        assert_unavailable_in_time(*timed(lambda: client.sign_in("anyone", PASSWORD)))
        health, elapsed = timed(lambda: client.request("GET", "/api/health/"))
        assert (health.status, health.json()["database"]) == (503, "error")
        assert elapsed < TIMEOUT + SLACK

        proxy.thaw()
        assert client.me(access).status == 200  # the same single worker, not a replacement
        assert "WORKER TIMEOUT" not in instance.log.read_text()
    finally:
        instance.stop()
        proxy.close()


@needs_postgres
def test_a_query_stuck_behind_a_lock_gives_503_within_the_timeout(
    database_url, instance_environment, tmp_path
):
    instance = Serve("locked", free_port(), instance_environment(database_url), tmp_path).start()
    try:
        client, _, _ = signed_in_client(f"http://127.0.0.1:{instance.port}")
        client.fetch_csrf()
        with psycopg.connect(database_url) as other:  # a transaction that holds every session row
            other.execute("SELECT id FROM accounts_session FOR UPDATE").fetchall()
            answer, elapsed = timed(client.refresh)  # refresh locks its row: it must wait
            assert_unavailable_in_time(answer, elapsed)
        assert client.refresh().status == 200
    finally:
        instance.stop()


def test_sqlite_locked_by_another_writer_gives_503_within_the_timeout(instance_environment, tmp_path):
    path = tmp_path / "db.sqlite3"
    instance = Serve("sqlite", free_port(), instance_environment(f"sqlite:///{path}"), tmp_path).start()
    try:
        client, _, username = signed_in_client(f"http://127.0.0.1:{instance.port}")
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long write would
        try:
            assert client.request("GET", "/api/health/").status == 200  # reads go on beside it (WAL)
            # A login writes its session: it waits for the lock, then gives up.
            assert_unavailable_in_time(*timed(lambda: client.sign_in(username, PASSWORD)))
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert client.sign_in(username, PASSWORD).status == 200
    finally:
        instance.stop()
