"""The app behind PgBouncer in transaction pooling mode (Debian's pgbouncer, `make test` installs it):
two `make serve` instances whose DATABASE_URL names a pgbouncer the tests start on a free port, in
front of the deployment's PostgreSQL database (benchmarks/servers.py's PgBouncer: its own ini, auth
by name, pool_mode = transaction, ``options`` ignored and the statement timeout set by pgbouncer).

With DATABASE_PREPARED_STATEMENTS=0, as the README says for a PgBouncer that does not track
prepared statements, everything works; with it on, a request whose transaction lands on another
server connection than the one its statement was prepared on fails, which is why the README says so.
"""

import secrets
import time

import psycopg
import pytest

from benchmarks.servers import Client, PgBouncer, Serve, free_ports, pgbouncer_version

from ..helpers import PASSWORD
from .conftest import needs_postgres, server_environment

pytestmark = needs_postgres

GRACE = 1  # seconds: REFRESH_GRACE_SECONDS here, so that reuse is seen without a long wait


def tracks_prepared_statements() -> bool:
    """Whether this pgbouncer can track protocol-level prepared statements (1.21 and later)."""
    major, minor = (int(n) for n in pgbouncer_version().split()[1].split(".")[:2])
    return (major, minor) >= (1, 21)


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory, database_url):
    """pgbouncer in transaction mode before the deployment's database (migrated by `deployment`);
    from 1.21 on, tracking prepared statements as the README says (1.18 would refuse the setting)."""
    extra = "max_prepared_statements = 100" if tracks_prepared_statements() else ""
    prefix = tmp_path_factory.mktemp("pgbouncer")
    bouncer = PgBouncer(prefix, database_url, free_ports(1)[0], extra=extra).start()
    yield bouncer
    bouncer.stop()


def environment(bouncer: PgBouncer, static_root, **values: str) -> dict[str, str]:
    """A production instance's environment, its database reached through pgbouncer."""
    defaults = {
        "DATABASE_URL": bouncer.url,
        "STATIC_ROOT": str(static_root),
        "WEB_CONCURRENCY": "2",
        "REFRESH_GRACE_SECONDS": str(GRACE),
        "LOGIN_IP_THROTTLE_RATE": "10000/min",
        "REGISTER_THROTTLE_RATE": "10000/hour",
    }
    return server_environment(**{**defaults, **values})


@pytest.fixture(scope="module")
def bounced(deployment, pgbouncer, static_root, tmp_path_factory):
    """Two instances through pgbouncer with DATABASE_PREPARED_STATEMENTS=0 (the README's advice)."""
    logs = tmp_path_factory.mktemp("bounced")
    values = environment(pgbouncer, static_root, DATABASE_PREPARED_STATEMENTS="0")
    ports = free_ports(2)
    instances = [Serve(name, port, values, logs).start() for name, port in zip("ab", ports, strict=True)]
    yield instances
    for instance in instances:
        instance.stop()


def register(base: str) -> str:
    username = f"bouncer_{secrets.token_hex(3)}"
    account = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    assert Client(base).request("POST", "/api/auth/register/", account).status == 201
    return username


def on(client: Client, instance: Serve) -> Client:
    """The same client (cookies, CSRF token) sending its next requests to ``instance``."""
    client.origin = instance.base
    return client


def bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def test_through_pgbouncer_login_refresh_me_reuse_revocation_and_logout_work(bounced, pgbouncer):
    a, b = bounced
    username = register(a.base)
    client = Client(a.base)
    answers = [signed := client.sign_in(username, PASSWORD)]
    access = signed.json()["access"]
    answers += [on(client, b).me(access), on(client, a).me(access)]
    old_cookie = client.cookies["refresh_token"]
    answers.append(refreshed := on(client, b).refresh())
    access = refreshed.json()["access"]
    answers.append(on(client, a).me(access))
    assert [x.status for x in answers] == [200] * 5, [x.body for x in answers]
    assert client.cookies["refresh_token"] != old_cookie

    # Reuse: the rotated-out token after the grace window revokes the session, on either instance.
    time.sleep(GRACE + 0.5)
    thief = Client(a.base)
    thief.cookies = {**client.cookies, "refresh_token": old_cookie}
    reused = thief.refresh()
    assert (reused.status, reused.json()["code"]) == (401, "token_revoked"), reused.body
    after = [on(client, instance).me(access) for instance in (b, a)]
    assert [(x.status, x.json()["code"]) for x in after] == [(401, "token_revoked")] * 2

    # A new session revoked on one instance is refused on the other at once; then logout.
    second = Client(a.base)
    access = second.sign_in(username, PASSWORD).json()["access"]
    other = Client(a.base)
    other_access = other.sign_in(username, PASSWORD).json()["access"]
    assert on(second, b).me(access).status == 200
    sessions = on(second, a).request("GET", "/api/auth/sessions/", headers=bearer(access)).json()
    target = next(s["id"] for s in sessions if not s["current"])
    revoked = second.request("DELETE", f"/api/auth/sessions/{target}/", headers=bearer(access))
    assert revoked.status == 204, revoked.body
    refused = on(other, b).me(other_access)
    assert (refused.status, refused.json()["code"]) == (401, "token_revoked")
    logout = on(second, b).request(
        "POST", "/api/auth/logout/", {}, {"X-CSRFToken": second.fetch_csrf(), **bearer(access)}
    )
    assert logout.status in (200, 204), logout.body
    assert on(second, a).refresh().status == 401
    for instance in bounced:
        log = instance.log.read_text()
        assert '" 500 ' not in log and '" 503 ' not in log and '" 502 ' not in log, log[-3000:]


@pytest.mark.parametrize("prepared", ["1", "0"])
def test_prepared_statements_under_transaction_pooling(
    deployment, pgbouncer, static_root, tmp_path, prepared
):
    """psycopg prepares a statement run 5 times (named _pg3_0, _pg3_1, ... on each client connection)
    on the server connection it ran on; in transaction mode the next transaction may get another one.
    A pgbouncer before 1.21 passes the names on untouched, and PostgreSQL answers that the statement
    does not exist, or already does (prepared there by another client): the request fails with 500.
    Off (DATABASE_PREPARED_STATEMENTS=0), every request is answered."""
    values = environment(pgbouncer, static_root, DATABASE_PREPARED_STATEMENTS=prepared, WEB_CONCURRENCY="1")
    instance = Serve(f"prepared_{prepared}", free_ports(1)[0], values, tmp_path).start()
    try:
        username = register(instance.base)
        client = Client(instance.base)
        access = client.sign_in(username, PASSWORD).json()["access"]
        statuses = [client.me(access).status for _ in range(8)]  # prepared from the fifth run on
        # Another client holds the server connection the instance used last (pgbouncer hands out the
        # most recently used one first): the instance's next transaction gets another.
        with psycopg.connect(pgbouncer.url) as holder:
            holder.execute("SELECT 1")  # in a transaction, so pgbouncer keeps it linked
            statuses.append(client.me(access).status)
        log = instance.log.read_text()
        if prepared == "0" or tracks_prepared_statements():
            assert statuses == [200] * 9
            assert "prepared statement" not in log
        else:
            assert 500 in statuses and set(statuses) == {200, 500}, statuses
            assert "prepared statement" in log and "_pg3_" in log, log[-3000:]
    finally:
        instance.stop()
