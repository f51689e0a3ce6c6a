"""The Python client (clients/python/authclient.py) against the real service in gunicorn.

The server gives access tokens a 2-second lifetime so that the tests can let one expire; they
sleep past it rather than forging tokens, since the client must cope with the server's own 401.
"""

import threading
import time

import httpx
import pytest
from authclient import AuthClient, MemoryStore, SignedOut

from accounts.models import RevokeReason, Session
from accounts.services import sessions_revoke

from ..helpers import PASSWORD, gunicorn_serving, jti

pytestmark = pytest.mark.django_db(transaction=True)

ACCESS_LIFETIME = 2  # seconds
APP_ORIGIN = "capacitor://localhost"  # a hybrid app's web view, listed in NATIVE_APP_ORIGINS


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    """The service in gunicorn on the test database, with short-lived access tokens, throttles
    raised (these tests sign alice in many times a minute) and one hybrid app's origin listed."""
    environment = {
        "ACCESS_TOKEN_LIFETIME": str(ACCESS_LIFETIME),
        "NATIVE_APP_ORIGINS": APP_ORIGIN,
        "LOGIN_THROTTLE_RATE": "1000/min",
        "REGISTER_THROTTLE_RATE": "1000/hour",
    }
    with django_db_blocker.unblock(), gunicorn_serving(workers=1, threads=8, **environment) as base:
        yield base


@pytest.fixture
def account(server):
    """alice, registered through the API (the server hashes her password)."""
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert httpx.post(f"{server}/api/auth/register/", json=body).status_code == 201
    return "alice"


class Recorder:
    """httpx event hook: the paths the client requested, in order."""

    def __init__(self):
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        with self._lock:
            self.paths.append(request.url.path)

    def count(self, path: str) -> int:
        return self.paths.count(path)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def client(server, recorder):
    logouts: list[str] = []
    with AuthClient(server, on_logout=logouts.append, event_hooks={"request": [recorder]}) as c:
        c.logouts = logouts
        yield c


def the_session() -> Session:
    return Session.objects.get(user__username="alice")


def let_the_access_token_expire() -> None:
    time.sleep(ACCESS_LIFETIME + 1)


def test_login_keeps_the_refresh_token_in_the_store_and_no_cookie(client, account):
    user = client.login(account, PASSWORD)

    assert user["username"] == "alice"
    refresh = client.store.load()
    assert refresh and jti(refresh) == the_session().refresh_jti
    assert "refresh_token" not in client.http.cookies
    me = client.get("/api/users/me/")
    assert me.status_code == 200 and me.json()["username"] == "alice"


def test_wrong_password_raises_and_stores_nothing(client, account):
    with pytest.raises(httpx.HTTPStatusError) as error:
        client.login(account, "wrong password")
    assert error.value.response.status_code == 401
    assert client.store.load() is None


def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(client, account, recorder):
    client.login(account, PASSWORD)
    first = client.store.load()
    let_the_access_token_expire()

    me = client.get("/api/users/me/")

    assert me.status_code == 200
    assert recorder.count("/api/auth/refresh/") == 1
    assert recorder.count("/api/users/me/") == 2  # refused once, retried once
    session = the_session()
    assert session.previous_jti == jti(first)  # rotated...
    assert session.refresh_jti == jti(client.store.load())  # ...and the store holds the new token


def test_threads_refused_together_share_one_refresh(client, account, recorder):
    client.login(account, PASSWORD)
    let_the_access_token_expire()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def call():
        barrier.wait()
        statuses.append(client.get("/api/users/me/").status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [200] * 8
    assert recorder.count("/api/auth/refresh/") == 1  # single flight
    assert the_session().revoked_at is None


def test_restore_resumes_the_stored_session_in_a_new_client(server, client, account):
    client.login(account, PASSWORD)
    store = MemoryStore(client.store.load())

    with AuthClient(server, store=store) as later:
        assert later.restore() is True
        assert later.get("/api/users/me/").status_code == 200
    assert jti(store.load()) == the_session().refresh_jti


def test_restore_without_a_stored_token_is_false(server):
    with AuthClient(server) as fresh:
        assert fresh.restore() is False


def test_logout_revokes_the_session_and_forgets_the_tokens(client, account):
    client.login(account, PASSWORD)

    client.logout()

    assert the_session().revoke_reason == RevokeReason.LOGOUT
    assert client.store.load() is None
    assert client.logouts == ["logged_out"]
    with pytest.raises(SignedOut):
        client.get("/api/users/me/")


def test_a_session_revoked_elsewhere_signs_the_client_out(client, account):
    client.login(account, PASSWORD)
    sessions_revoke(sessions=Session.objects.all(), reason=RevokeReason.REVOKED_BY_ADMIN)

    with pytest.raises(SignedOut) as signed_out:
        client.get("/api/users/me/")

    assert signed_out.value.code == "token_revoked"
    assert client.logouts == ["token_revoked"]
    assert client.store.load() is None


def test_a_hybrid_app_sends_its_listed_origin_and_uses_body_transport(server, account):
    sent: list[str | None] = []
    answered: list[str | None] = []
    hooks = {
        "request": [lambda request: sent.append(request.headers.get("Origin"))],
        "response": [lambda response: answered.append(response.headers.get("access-control-allow-origin"))],
    }
    store = MemoryStore()
    with AuthClient(server, store=store, origin=APP_ORIGIN, event_hooks=hooks) as app:
        app.login(account, PASSWORD)
    first = store.load()
    with AuthClient(server, store=store, origin=APP_ORIGIN, event_hooks=hooks) as app:
        assert app.restore() is True  # a refresh, in the body
        assert the_session().previous_jti == jti(first)
        assert app.get("/api/users/me/").status_code == 200
        app.logout()

    assert the_session().revoke_reason == RevokeReason.LOGOUT
    assert sent == [APP_ORIGIN] * 4  # login, refresh, me, logout
    assert answered == [APP_ORIGIN] * 4  # CORS answers for the web view


def test_an_origin_not_listed_is_refused_body_transport(server, account):
    with AuthClient(server, origin="ionic://localhost") as app:
        with pytest.raises(httpx.HTTPStatusError) as error:
            app.login(account, PASSWORD)
        assert app.store.load() is None
    assert error.value.response.status_code == 400
    assert error.value.response.json()["code"] == "body_transport_forbidden"
    assert not Session.objects.exists()
