"""Django's auth signals for API sign-ins: what ``login()``, ``logout()`` and ``authenticate()`` send
for a Django form login, the API sends too, so that django-axes, audit apps and Django's own
``update_last_login`` see API sign-ins.

Each test connects a receiver of its own (the ``received`` fixture) and looks at what it got: the
sender, the request (Django's HttpRequest, carrying the client's address) and the user.
"""

from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest
from django.urls import reverse

from accounts.tokens import RefreshToken

from .helpers import PASSWORD, BrowserClient, NativeClient, claims

pytestmark = pytest.mark.django_db

SIGNALS = {"logged_in": user_logged_in, "logged_out": user_logged_out, "login_failed": user_login_failed}
CLIENT_IP = "203.0.113.7"
AT_CLIENT_IP = {"REMOTE_ADDR": CLIENT_IP}


@dataclass
class Received:
    """What the receivers got, by signal: the keyword arguments of each send, sender included."""

    sent: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in SIGNALS})

    def one(self, name: str) -> dict:
        """The one send of that signal (fails if there were none or several)."""
        [sent] = self.sent[name]
        return sent

    def none(self) -> bool:
        """True if no auth signal was sent."""
        return not any(self.sent.values())


@pytest.fixture
def received():
    """A receiver on each of Django's auth signals for the test's duration."""
    record = Received()
    for name, signal in SIGNALS.items():

        def receiver(sender, _name=name, **kwargs):
            kwargs.pop("signal")
            record.sent[_name].append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False, dispatch_uid=f"tests.received.{name}")
    yield record
    for name, signal in SIGNALS.items():
        signal.disconnect(dispatch_uid=f"tests.received.{name}")


@pytest.fixture
def without_update_last_login():
    """Django's ``update_last_login`` receiver disconnected, as a project may do."""
    assert user_logged_in.disconnect(dispatch_uid="update_last_login")
    yield
    user_logged_in.connect(update_last_login, dispatch_uid="update_last_login")


def assert_from_the_client(request) -> None:
    """The request is Django's own (not DRF's wrapper) and carries the client's address."""
    assert isinstance(request, HttpRequest)  # DRF's Request is not one
    assert request.META["REMOTE_ADDR"] == CLIENT_IP


def sign_in(transport: str, **credentials):
    """Log alice in with the given transport from CLIENT_IP; the client and its answer."""
    client = NativeClient() if transport == "body" else BrowserClient()
    return client, client.sign_in(**credentials, **AT_CLIENT_IP)


TRANSPORTS = pytest.mark.parametrize("transport", ["cookie", "body"])


# --- login ------------------------------------------------------------------------------------
@TRANSPORTS
def test_an_api_login_sends_user_logged_in_with_the_request_and_the_user(received, user, transport):
    _, response = sign_in(transport)

    assert response.status_code == 200
    sent = received.one("logged_in")
    assert sent["sender"] is get_user_model()
    assert sent["user"] == user
    assert_from_the_client(sent["request"])
    assert received.sent["login_failed"] == [] and received.sent["logged_out"] == []


@TRANSPORTS
def test_last_login_is_kept_by_djangos_update_last_login(user, transport):
    assert user.last_login is None
    _, response = sign_in(transport)
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.last_login is not None


def test_a_project_that_disconnects_update_last_login_gets_no_last_login(
    user, without_update_last_login, received
):
    _, response = sign_in("cookie")

    assert response.status_code == 200
    assert received.one("logged_in")["user"] == user  # the signal still goes out
    user.refresh_from_db()
    assert user.last_login is None


@TRANSPORTS
@pytest.mark.parametrize("who", ["wrong password", "unknown user"])
def test_a_failed_login_sends_user_login_failed_with_the_request_and_no_password(
    received, user, transport, who
):
    username, password = {"wrong password": ("alice", "not it"), "unknown user": ("nobody", PASSWORD)}[who]

    _, response = sign_in(transport, username=username, password=password)

    assert response.status_code == 401
    sent = received.one("login_failed")
    assert sent["credentials"]["username"] == username
    assert sent["credentials"]["password"] not in (password, PASSWORD)  # Django cleanses it
    assert_from_the_client(sent["request"])
    assert received.sent["logged_in"] == []


def test_an_inactive_user_sends_user_login_failed(received, user_factory):
    user_factory(username="carol", is_active=False)
    _, response = sign_in("cookie", username="carol")
    assert response.status_code == 401
    assert received.one("login_failed")["credentials"]["username"] == "carol"


def test_a_session_opened_from_code_sends_nothing_and_leaves_last_login(received, user):
    """``RefreshToken.for_user`` has no request to hand Django's receivers, which expect one."""
    RefreshToken.for_user(user)
    assert received.none()
    user.refresh_from_db()
    assert user.last_login is None


# --- refresh: not a sign-in ---------------------------------------------------------------------
def test_a_refresh_sends_no_auth_signal(signed_in, received):
    assert signed_in.refresh().status_code == 200
    native = NativeClient()
    token = native.sign_in().json()["refresh"]
    received.sent["logged_in"].clear()
    assert native.refresh(token).status_code == 200
    assert received.none()


# --- logout -----------------------------------------------------------------------------------
def test_a_cookie_logout_sends_user_logged_out_with_the_request_and_the_user(signed_in, user, received):
    response = signed_in.sign_out(**AT_CLIENT_IP)

    assert response.status_code == 200
    sent = received.one("logged_out")
    assert sent["sender"] is get_user_model() and sent["user"] == user
    assert_from_the_client(sent["request"])


def test_a_body_logout_sends_user_logged_out_with_the_request_and_the_user(user, received):
    client, signed_in = sign_in("body")

    response = client.sign_out(signed_in.json()["refresh"], **AT_CLIENT_IP)

    assert response.status_code == 200
    sent = received.one("logged_out")
    assert sent["sender"] is get_user_model() and sent["user"] == user
    assert_from_the_client(sent["request"])


def test_a_logout_that_ends_no_session_sends_nothing(signed_in, received):
    """Unlike Django's ``logout()`` (``user=None`` when nobody was signed in): a logout with no
    token, a dead one or garbage signed nobody out."""
    token = signed_in.refresh_cookie
    assert signed_in.sign_out().status_code == 200
    received.sent["logged_out"].clear()

    signed_in.set_refresh_cookie(token)  # the session is over already
    assert signed_in.sign_out().status_code == 200
    assert NativeClient().sign_out("garbage").status_code == 200
    assert received.none()


def test_logout_all_sends_user_logged_out_once_with_the_request_and_the_user(api, user, received):
    BrowserClient().sign_in()
    received.sent["logged_in"].clear()

    response = api.post("/api/auth/logout-all/", {}, format="json", **AT_CLIENT_IP)

    assert response.json() == {"revoked": 2}
    sent = received.one("logged_out")
    assert sent["sender"] is get_user_model() and sent["user"] == user
    assert_from_the_client(sent["request"])


def test_revoking_one_session_is_not_a_logout_and_sends_nothing(api, user, received):
    _, other = sign_in("body")
    received.sent["logged_in"].clear()
    session_id = claims(other.json()["refresh"])["sid"]

    assert api.delete(f"/api/auth/sessions/{session_id}/").status_code == 204
    assert received.none()


def test_a_logout_with_nobody_listening_does_not_load_the_user(signed_in, query_budget):
    """The body logout knows only the token's user id: the user is read only for a receiver."""
    assert not user_logged_out.has_listeners(get_user_model())
    signed_in.fetch_csrf()
    with query_budget(2):  # the UPDATE that revokes, the audit INSERT
        assert signed_in.sign_out().status_code == 200


# --- the Django admin: Django's own login() and logout() ------------------------------------
def test_the_admin_login_and_logout_send_djangos_signals(client, user_factory, received):
    staff = user_factory(username="root", is_staff=True, is_superuser=True)
    login = {"username": "root", "password": PASSWORD, "next": "/admin/"}

    assert client.post(reverse("admin:login"), login, **AT_CLIENT_IP).status_code == 302
    assert client.post(reverse("admin:logout"), **AT_CLIENT_IP).status_code == 200

    assert received.one("logged_in")["user"] == staff
    assert received.one("logged_out")["user"] == staff
    assert_from_the_client(received.one("logged_in")["request"])
