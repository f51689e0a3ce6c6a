"""The Python client (clients/python/authclient.py) against the real service in gunicorn.

The server gives access tokens a 2-second lifetime so that the tests can let one expire; they
sleep past it rather than forging tokens, since the client must cope with the server's own 401.
"""

import threading
import time
from datetime import timedelta

import httpx
import pyotp
import pytest
from authclient import AuthClient, MemoryStore, MfaStep, SignedOut
from django.utils import timezone

from accounts.models import RevokeReason, Session
from accounts.services import sessions_revoke

from ..helpers import PASSWORD, SmtpServer, gunicorn_serving, jti, links_in, mail_text

pytestmark = pytest.mark.django_db(transaction=True)

ACCESS_LIFETIME = 2  # seconds
APP_ORIGIN = "capacitor://localhost"  # a hybrid app's web view, listed in NATIVE_APP_ORIGINS


@pytest.fixture(scope="module")
def mail_server():
    """A real SMTP server that the service's mail goes to (links for the account e-mail calls)."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, mail_server):
    """The service in gunicorn on the test database, with short-lived access tokens, throttles
    raised (these tests sign alice in, and try codes, many times a minute), one hybrid app's origin
    listed, and
    mail sent at once (after each request's commit) to ``mail_server``."""
    environment = {
        "ACCESS_TOKEN_LIFETIME": str(ACCESS_LIFETIME),
        "NATIVE_APP_ORIGINS": APP_ORIGIN,
        "LOGIN_THROTTLE_RATE": "1000/min",
        "REGISTER_THROTTLE_RATE": "1000/hour",
        "PASSWORD_RESET_THROTTLE_RATE": "1000/hour",
        "EMAIL_VERIFY_THROTTLE_RATE": "1000/hour",
        "MFA_THROTTLE_RATE": "1000/min",
        "EMAIL_URL": f"smtp://127.0.0.1:{mail_server.port}",
        "TASKS_BACKEND": "immediate",
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


# --- account e-mail -------------------------------------------------------------------------------
def key_from_mail(mail_server, *, to: str, link: str, after: int = 0) -> str:
    """The key of the link starting with ``link`` in the latest mail to ``to`` that has one, among
    those received after the first ``after`` messages."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in reversed(mail_server.messages[after:]):
            links = [found for found in links_in(mail_text(message)) if found.startswith(link)]
            if message["To"] == to and links:
                return links[0].removeprefix(link)
        time.sleep(0.05)
    raise AssertionError(f"no mail to {to} with a link starting {link}")


RESET_LINK = "http://localhost:5173/#reset="
VERIFY_LINK = "http://localhost:5173/#verify="


def test_a_password_reset_by_mail_sets_the_password_and_ends_the_session(
    server, client, account, mail_server
):
    client.login(account, PASSWORD)
    before = len(mail_server.messages)

    client.request_password_reset("alice@example.com")
    key = key_from_mail(mail_server, to="alice@example.com", link=RESET_LINK, after=before)
    client.confirm_password_reset(key, "a new passphrase 9")

    assert the_session().revoke_reason == RevokeReason.PASSWORD_RESET
    with pytest.raises(SignedOut):
        client.get("/api/users/me/")
    assert client.logouts == ["token_revoked"]
    with AuthClient(server) as again:
        assert again.login(account, "a new passphrase 9")["username"] == "alice"
    with pytest.raises(httpx.HTTPStatusError) as error:
        client.confirm_password_reset(key, "another passphrase 10")  # a key works once
    assert error.value.response.json()["code"] == "invalid_key"


def test_an_unknown_address_is_answered_as_a_known_one(client, account):
    client.request_password_reset("nobody@example.com")  # raises on anything but 2xx
    client.resend_verification("nobody@example.com")


def test_the_registration_link_verifies_the_address(client, account, mail_server):
    key = key_from_mail(mail_server, to="alice@example.com", link=VERIFY_LINK)  # at registration
    client.login(account, PASSWORD)
    assert client.get("/api/users/me/").json()["email_verified"] is False

    client.verify_email(key)

    assert client.get("/api/users/me/").json()["email_verified"] is True


def test_resend_for_the_signed_in_user_then_change_the_address(client, account, mail_server):
    client.login(account, PASSWORD)
    before = len(mail_server.messages)
    client.resend_verification()  # the signed-in user's own address
    key_from_mail(mail_server, to="alice@example.com", link=VERIFY_LINK, after=before)

    before = len(mail_server.messages)
    client.change_email("alice@example.org", PASSWORD)
    key = key_from_mail(mail_server, to="alice@example.org", link=VERIFY_LINK, after=before)
    assert client.get("/api/users/me/").json()["email"] == "alice@example.com"  # not before the link
    client.verify_email(key)

    me = client.get("/api/users/me/").json()
    assert (me["email"], me["email_verified"]) == ("alice@example.org", True)


# --- second factors -------------------------------------------------------------------------------
def error_code(error: pytest.ExceptionInfo) -> tuple[int, str]:
    response = error.value.response
    return response.status_code, response.json()["code"]


def enable_totp(client: AuthClient) -> tuple[pyotp.TOTP, list[str]]:
    """Turn the authenticator app on for the signed-in client, as an app would: the secret read
    into pyotp, a code it computes confirmed; returns the app and the recovery codes."""
    started = client.start_totp()
    assert started["otpauth_uri"].startswith("otpauth://totp/")
    assert started["qr_svg"].lstrip().startswith(("<svg", "<?xml"))
    app = pyotp.TOTP(started["secret"])
    return app, client.confirm_totp(app.now())


def next_code(app: pyotp.TOTP) -> str:
    """The code of the next 30-second step: the server allows one step of drift, and accepts a step
    only after the last one it accepted (the enrolment used the current one)."""
    return app.at(time.time() + app.interval)


def test_with_an_authenticator_app_login_returns_the_step_and_a_code_signs_in(server, client, account):
    client.login(account, PASSWORD)
    app, recovery_codes = enable_totp(client)
    assert len(recovery_codes) == 10 and len(set(recovery_codes)) == 10
    assert client.mfa_status()["totp"] is True

    with AuthClient(server) as phone:
        step = phone.login(account, PASSWORD)
        assert isinstance(step, MfaStep)
        assert {"totp", "recovery_code"} <= set(step.methods)
        assert phone.store.load() is None  # nothing issued before the second factor
        assert "token=" not in repr(step)

        user = phone.verify_mfa(step, next_code(app))

        assert user["username"] == "alice"
        assert phone.get("/api/users/me/").status_code == 200
        refresh = phone.store.load()
    session = Session.objects.get(refresh_jti=jti(refresh))
    assert session.amr_values == ["pwd", "otp"]


def test_a_wrong_code_is_refused_and_the_step_still_takes_the_right_one(server, client, account):
    client.login(account, PASSWORD)
    app, _ = enable_totp(client)
    right = next_code(app)
    near = {app.at(time.time() + steps * app.interval) for steps in (-1, 0, 1, 2)}  # all it may accept
    wrong = next(code for code in (f"{n:06d}" for n in range(1000)) if code not in near)

    with AuthClient(server) as phone:
        step = phone.login(account, PASSWORD)
        with pytest.raises(httpx.HTTPStatusError) as error:
            phone.verify_mfa(step, wrong)
        assert error_code(error) == (401, "invalid_code")
        assert phone.store.load() is None

        assert phone.verify_mfa(step, right)["username"] == "alice"
        with pytest.raises(httpx.HTTPStatusError) as error:
            phone.verify_mfa(step, right)  # the step is over once it signed in
        assert error_code(error) == (401, "mfa_token_invalid")


def test_a_recovery_code_signs_in_once(server, client, account):
    client.login(account, PASSWORD)
    _, recovery_codes = enable_totp(client)

    with AuthClient(server) as phone:
        assert phone.verify_mfa(phone.login(account, PASSWORD), recovery_codes[0])["username"] == "alice"
    with AuthClient(server) as thief:
        with pytest.raises(httpx.HTTPStatusError) as error:
            thief.verify_mfa(thief.login(account, PASSWORD), recovery_codes[0])
        assert error_code(error) == (401, "invalid_code")
    assert client.mfa_status()["recovery_codes_left"] == 9


def test_a_change_after_an_old_sign_in_needs_reauthenticate_then_works(client, account):
    client.login(account, PASSWORD)
    Session.objects.update(auth_time=timezone.now() - timedelta(hours=1))  # signed in an hour ago
    let_the_access_token_expire()  # the next access token comes from the session: its auth_time

    with pytest.raises(httpx.HTTPStatusError) as error:
        client.start_totp()
    assert error_code(error) == (401, "reauthentication_required")
    with pytest.raises(httpx.HTTPStatusError) as error:
        client.reauthenticate(password="not the password")
    assert error_code(error) == (401, "invalid_credentials")

    client.reauthenticate(password=PASSWORD)

    app, _ = enable_totp(client)
    assert client.mfa_status()["totp"] is True
    assert the_session().auth_time > timezone.now() - timedelta(minutes=1)  # kept for the refreshes
    Session.objects.update(auth_time=timezone.now() - timedelta(hours=1))
    let_the_access_token_expire()
    client.reauthenticate(code=next_code(app))  # a code from the app does it too
    client.disable_totp()
    assert client.mfa_status()["totp"] is False


def test_new_recovery_codes_kill_the_old_ones_and_turning_the_app_off_ends_the_second_step(
    server, client, account
):
    client.login(account, PASSWORD)
    _, old_codes = enable_totp(client)

    new_codes = client.regenerate_recovery_codes()

    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    with AuthClient(server) as phone:
        with pytest.raises(httpx.HTTPStatusError) as error:
            phone.verify_mfa(phone.login(account, PASSWORD), old_codes[0])
        assert error_code(error) == (401, "invalid_code")
        assert phone.verify_mfa(phone.login(account, PASSWORD), new_codes[0])["username"] == "alice"

    client.disable_totp()

    with AuthClient(server) as phone:
        assert phone.login(account, PASSWORD)["username"] == "alice"  # the password alone again
