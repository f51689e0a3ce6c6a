"""Recent authentication: the changes that need it refuse an access token whose ``auth_time`` is
older than REAUTHENTICATION_TIMEOUT, and POST /api/auth/reauthenticate/ makes it recent again, for
the session's later refreshes too."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, AuditEventType, Session
from accounts.services import session_create, tokens_issue
from accounts.tokens import RefreshToken

from .helpers import PASSWORD, BrowserClient, NativeClient, assert_json_error, claims
from .test_mfa import code_of, turn_on_totp

pytestmark = pytest.mark.django_db

# Each change that needs a recent authentication, as (method, path, body).
GUARDED = [
    ("post", "/api/auth/mfa/totp/", None),
    ("delete", "/api/auth/mfa/totp/", None),
    ("post", "/api/auth/mfa/recovery-codes/", None),
    ("post", "/api/auth/email/change/", {"new_email": "alice@example.org", "password": PASSWORD}),
]


@pytest.fixture(autouse=True)
def _generous_mfa_limit(settings):
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "1000/min"


@pytest.fixture
def stale(user):
    """A native client in a session whose user signed in 10 minutes ago: its access token (Bearer)
    is valid but not recent; ``.refresh_token`` is the session's."""
    signed_in_at = timezone.now() - timedelta(minutes=10)
    session = session_create(user=user, ip=None, user_agent="test", now=signed_in_at)
    issued = tokens_issue(session=session)
    client = NativeClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.access}")
    client.session_id, client.refresh_token = session.pk, str(issued.refresh)
    return client


def call(client, method: str, path: str, body):
    return getattr(client, method)(path, body, format="json", secure=True)


def reauthenticate(client, **body):
    return client.post("/api/auth/reauthenticate/", body, format="json", secure=True)


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
def test_an_old_access_token_gets_401_reauthentication_required(stale, user, method, path, body):
    turn_on_totp(user)  # so that each change has something to act on

    response = call(stale, method, path, body)

    assert_json_error(response, 401, "reauthentication_required")
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
def test_after_reauthenticating_each_guarded_change_goes_ahead(stale, user, method, path, body):
    turn_on_totp(user)
    fresh = reauthenticate(stale, password=PASSWORD)
    assert fresh.status_code == 200, fresh.content
    stale.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh.json()['access']}")

    response = call(stale, method, path, body)

    assert response.status_code < 300 or response.json()["code"] == "totp_already_enabled", response.content


def test_a_token_without_auth_time_is_not_recent(user):
    session = session_create(user=user, ip=None, user_agent="test")
    access = RefreshToken.for_session(session).access_token  # made by code: no auth_time claim
    assert "auth_time" not in access.payload
    client = BrowserClient().bearer(str(access))
    assert_json_error(client.post("/api/auth/mfa/totp/"), 401, "reauthentication_required")


def test_the_timeout_is_the_setting(stale, settings):
    settings.ACCOUNTS_REAUTHENTICATION_TIMEOUT = timedelta(minutes=15)
    assert stale.post("/api/auth/mfa/totp/", secure=True).status_code == 200


def test_reauthenticating_with_the_password_makes_auth_time_now_for_the_session_and_its_refreshes(
    stale, user
):
    before = timezone.now().replace(microsecond=0)

    response = reauthenticate(stale, password=PASSWORD)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at"}
    assert "no-store" in response["Cache-Control"]
    access = claims(body["access"])
    assert access["auth_time"] >= before.timestamp() and access["amr"] == ["pwd"]
    assert access["sid"] == str(stale.session_id)
    session = Session.objects.get(pk=stale.session_id)
    assert session.auth_time >= before and session.amr == "pwd"
    event = AuditEvent.objects.get(type=AuditEventType.REAUTHENTICATED)
    assert (event.user_id, event.session_id) == (user.pk, stale.session_id)

    refreshed = NativeClient().refresh(stale.refresh_token)

    assert refreshed.status_code == 200, refreshed.content
    assert claims(refreshed.json()["access"])["auth_time"] == access["auth_time"]
    stale.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert stale.post("/api/auth/mfa/totp/", secure=True).status_code == 200


def test_reauthenticating_with_a_code_says_otp(stale, user):
    totp = turn_on_totp(user)

    response = reauthenticate(stale, code=code_of(totp.secret))

    assert response.status_code == 200, response.content
    assert claims(response.json()["access"])["amr"] == ["otp"]
    assert Session.objects.get(pk=stale.session_id).amr == "otp"
    again = reauthenticate(stale, code=code_of(totp.secret))  # the same code: used
    assert_json_error(again, 401, "invalid_code")
    assert reauthenticate(stale, code=totp.recovery_codes[0]).status_code == 200


def test_a_wrong_password_or_code_changes_nothing(stale, user):
    turn_on_totp(user)
    auth_time = Session.objects.get(pk=stale.session_id).auth_time

    assert_json_error(reauthenticate(stale, password="wrong"), 401, "invalid_credentials")
    assert_json_error(reauthenticate(stale, code="000000"), 401, "invalid_code")

    assert Session.objects.get(pk=stale.session_id).auth_time == auth_time
    assert not AuditEvent.objects.filter(type=AuditEventType.REAUTHENTICATED).exists()
    assert AuditEvent.objects.filter(type=AuditEventType.LOGIN_FAILED, user_id=user.pk).count() == 1
    assert AuditEvent.objects.filter(type=AuditEventType.MFA_FAILED, user_id=user.pk).count() == 1


@pytest.mark.parametrize("body", [{}, {"password": PASSWORD, "code": "123456"}])
def test_reauthenticating_takes_the_password_or_a_code(stale, body):
    assert_json_error(reauthenticate(stale, **body), 400, "invalid")


def test_reauthenticating_is_limited_per_user(stale, user, settings):
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "2/min"
    for _ in range(2):
        assert_json_error(reauthenticate(stale, password="wrong"), 401, "invalid_credentials")
    refused = reauthenticate(stale, password=PASSWORD)
    assert_json_error(refused, 429, "throttled")
    # Another user is counted apart.
    other = BrowserClient()
    other.bearer(other.sign_in(username=_another_user(user)).json()["access"])
    assert other.post("/api/auth/reauthenticate/", {"password": PASSWORD}, format="json").status_code == 200


def _another_user(user) -> str:
    type(user).objects.create_user(username="bob", email="bob@example.com", password=PASSWORD)
    return "bob"


def test_a_revoked_sessions_token_cannot_reauthenticate(stale):
    Session.objects.filter(pk=stale.session_id).update(revoked_at=timezone.now())
    assert_json_error(reauthenticate(stale, password=PASSWORD), 401, "token_revoked")


def test_without_a_bearer_token_reauthenticating_is_401(user):
    body = {"password": PASSWORD}
    response = NativeClient().post("/api/auth/reauthenticate/", body, format="json", secure=True)
    assert_json_error(response, 401, "not_authenticated")


def test_the_password_is_checked_in_a_slot_as_at_login(stale, user, settings, tmp_path, password_tries):
    """With every password-check slot taken (another worker hashing), re-authentication by password
    is 429 at once and its password unchecked, as a login is."""
    from .test_password_checks import held_by_another_process

    settings.ACCOUNTS_PASSWORD_CHECK_SLOTS = 1
    settings.ACCOUNTS_PASSWORD_CHECK_SLOT_DIR = str(tmp_path)
    with held_by_another_process(tmp_path / "slot-0"):
        busy = reauthenticate(stale, password="wrong")
    assert_json_error(busy, 429, "throttled")
    assert busy["Retry-After"] == "1" and password_tries == []

    assert_json_error(reauthenticate(stale, password="wrong"), 401, "invalid_credentials")
    assert password_tries == ["alice"]
