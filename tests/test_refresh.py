"""Refresh: rotation, the grace window, reuse detection, expiry, and what a failed refresh leaves.

Time is moved by editing the session row (``rotated_at``, the expiries) or by the grace setting,
never by sleeping.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import RevokeReason, Session

from .helpers import BrowserClient, assert_json_error, claims, jti, set_cookie_attributes

pytestmark = pytest.mark.django_db


# --- helpers ----------------------------------------------------------------------------------


def session_of(client: BrowserClient) -> Session:
    """The session behind the client's current refresh cookie, fresh from the database."""
    return Session.objects.get(pk=claims(client.refresh_cookie)["sid"])


def present(client: BrowserClient, refresh_token: str):
    """Refresh with ``refresh_token`` in the cookie."""
    client.set_refresh_cookie(refresh_token)
    return client.refresh()


def me(access: str):
    """GET /api/users/me/ with ``access`` as the Bearer token, from a client without cookies."""
    return BrowserClient().bearer(access).get("/api/users/me/")


def shift_back(session: Session, by: timedelta, *fields: str) -> None:
    """Pretend ``by`` has passed since the given timestamps of the session were written."""
    Session.objects.filter(pk=session.pk).update(**{f: getattr(session, f) - by for f in fields})


# --- rotation ---------------------------------------------------------------------------------
def test_refresh_rotates_the_refresh_token(signed_in, settings):
    old = signed_in.refresh_cookie
    before = session_of(signed_in)

    response = signed_in.refresh()

    assert response.status_code == 200
    assert set(response.json()) == {"access", "access_expires_at"}
    new = signed_in.refresh_cookie
    assert new and new != old
    assert jti(new) != jti(old)
    after = Session.objects.get(pk=before.pk)
    assert after.refresh_jti == jti(new) != before.refresh_jti
    assert after.previous_jti == jti(old) == before.refresh_jti
    assert after.rotated_at is not None and after.last_used_at >= before.last_used_at
    assert claims(new)["sid"] == claims(old)["sid"] == str(before.pk)
    assert response.json()["access"] != signed_in.access
    assert claims(response.json()["access"])["sid"] == str(before.pk)
    assert me(response.json()["access"]).status_code == 200

    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)
    assert present(BrowserClient(), old).status_code == 401  # the old token is dead


# --- reuse detection --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grace, elapsed",
    [(timedelta(0), timedelta(0)), (timedelta(seconds=10), timedelta(seconds=11))],
    ids=["no grace window", "11 s after a rotation with a 10 s window"],
)
def test_replayed_refresh_token_after_the_grace_window_revokes_the_session(
    signed_in, settings, grace, elapsed
):
    settings.ACCOUNTS_REFRESH_GRACE = grace
    login_access = signed_in.access
    replayed = signed_in.refresh_cookie
    rotation = signed_in.refresh()
    assert rotation.status_code == 200
    newest, newest_access = signed_in.refresh_cookie, rotation.json()["access"]
    assert me(newest_access).status_code == 200
    shift_back(session_of(signed_in), elapsed, "rotated_at")

    response = present(signed_in, replayed)

    assert_json_error(response, 401, "token_revoked")
    session = Session.objects.get(pk=claims(newest)["sid"])
    assert session.revoked_at is not None
    assert session.revoke_reason == RevokeReason.REUSE_DETECTED
    assert_json_error(present(signed_in, newest), 401, "token_revoked")
    assert_json_error(me(newest_access), 401, "token_revoked")
    assert_json_error(me(login_access), 401, "token_revoked")


def test_an_older_refresh_token_is_reuse_even_inside_the_grace_window(signed_in, settings):
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(hours=1)
    two_back = signed_in.refresh_cookie
    assert signed_in.refresh().status_code == 200
    assert signed_in.refresh().status_code == 200
    newest = signed_in.refresh_cookie
    session = session_of(signed_in)
    assert jti(two_back) not in (session.refresh_jti, session.previous_jti)

    response = present(signed_in, two_back)

    assert_json_error(response, 401, "token_revoked")
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.REUSE_DETECTED and session.revoked_at is not None
    assert_json_error(present(signed_in, newest), 401, "token_revoked")


# --- the grace window -------------------------------------------------------------------------
def test_replay_inside_the_grace_window_returns_the_current_refresh_token_without_rotating(signed_in):
    replayed = signed_in.refresh_cookie
    assert signed_in.refresh().status_code == 200
    current = signed_in.refresh_cookie
    before = session_of(signed_in)

    for _ in range(2):  # a lost response may be retried more than once
        response = present(signed_in, replayed)

        assert response.status_code == 200, response.content
        assert set(response.json()) == {"access", "access_expires_at"}
        access = response.json()["access"]
        assert claims(access)["sid"] == str(before.pk)
        assert me(access).status_code == 200
        assert response.cookies["refresh_token"].value == current
        after = Session.objects.get(pk=before.pk)
        assert jti(response.cookies["refresh_token"].value) == after.refresh_jti
        assert (after.refresh_jti, after.previous_jti, after.rotated_at, after.idle_expires_at) == (
            before.refresh_jti,
            before.previous_jti,
            before.rotated_at,
            before.idle_expires_at,
        )
        assert after.revoked_at is None

    assert signed_in.refresh().status_code == 200  # the current token still rotates: one chain
    assert session_of(signed_in).previous_jti == jti(current)


@pytest.mark.parametrize(
    "grace, elapsed, status",
    [
        (timedelta(seconds=10), timedelta(seconds=9), 200),
        (timedelta(seconds=10), timedelta(seconds=11), 401),
        (timedelta(seconds=60), timedelta(seconds=11), 200),
    ],
    ids=["9 s into a 10 s window", "11 s into a 10 s window", "11 s into a 60 s window"],
)
def test_the_grace_window_follows_the_setting(signed_in, settings, grace, elapsed, status):
    settings.ACCOUNTS_REFRESH_GRACE = grace
    replayed = signed_in.refresh_cookie
    signed_in.refresh()
    shift_back(session_of(signed_in), elapsed, "rotated_at")

    assert present(signed_in, replayed).status_code == status


@pytest.mark.parametrize(
    "past_the_window, status",
    [(timedelta(0), 200), (timedelta(microseconds=1), 401)],
    ids=["exactly at the window's end", "one microsecond after it"],
)
def test_the_grace_window_includes_its_last_instant(
    signed_in, settings, monkeypatch, past_the_window, status
):
    """``now - rotated_at <= REFRESH_GRACE``: the boundary belongs to the window. The clock the
    rule reads is held still, so that "exactly" means exactly."""
    settings.ACCOUNTS_REFRESH_GRACE = grace = timedelta(seconds=10)
    replayed = signed_in.refresh_cookie
    signed_in.refresh()
    session = session_of(signed_in)
    now = timezone.now()
    Session.objects.filter(pk=session.pk).update(rotated_at=now - grace - past_the_window)
    monkeypatch.setattr(timezone, "now", lambda: now)

    assert present(signed_in, replayed).status_code == status
    session.refresh_from_db()
    assert (session.revoke_reason == RevokeReason.REUSE_DETECTED) == (status == 401)


# --- idle and absolute expiry -----------------------------------------------------------------
def test_rotation_extends_the_idle_expiry(signed_in):
    session = session_of(signed_in)
    lifetime = session.idle_expires_at - session.created_at
    three_days = timedelta(days=3)
    shift_back(session, three_days, "created_at", "last_used_at", "idle_expires_at", "absolute_expires_at")
    absolute = session.absolute_expires_at - three_days

    start = timezone.now()
    response = signed_in.refresh()
    end = timezone.now()

    assert response.status_code == 200
    session.refresh_from_db()
    assert start + lifetime <= session.idle_expires_at <= end + lifetime
    assert session.absolute_expires_at == absolute
    assert claims(signed_in.refresh_cookie)["exp"] == int(session.idle_expires_at.timestamp())
    max_age = int(set_cookie_attributes(response)["max-age"])
    assert abs(max_age - lifetime.total_seconds()) <= 2


def test_rotation_never_extends_the_idle_expiry_past_the_absolute_expiry(browser, user, settings):
    settings.ACCOUNTS_SESSION_MAX_AGE = timedelta(days=8)
    browser.sign_in()
    session = session_of(browser)
    assert session.idle_expires_at < session.absolute_expires_at
    three_days = timedelta(days=3)
    shift_back(session, three_days, "created_at", "last_used_at", "idle_expires_at", "absolute_expires_at")
    absolute = session.absolute_expires_at - three_days  # 5 days away; the idle timeout is 7 days

    for _ in range(2):
        response = browser.refresh()

        assert response.status_code == 200
        session.refresh_from_db()
        assert session.absolute_expires_at == absolute
        assert session.idle_expires_at == absolute
        assert claims(browser.refresh_cookie)["exp"] == int(absolute.timestamp())
        max_age = int(set_cookie_attributes(response)["max-age"])
        assert max_age <= (absolute - timezone.now()).total_seconds() + 1


def test_a_session_past_its_absolute_expiry_refuses_refresh(signed_in):
    session = session_of(signed_in)
    Session.objects.filter(pk=session.pk).update(absolute_expires_at=timezone.now() - timedelta(seconds=1))

    response = signed_in.refresh()

    assert_json_error(response, 401, "token_expired")
    assert set_cookie_attributes(response)["max-age"] == "0"
    assert Session.objects.get(pk=session.pk).refresh_jti == session.refresh_jti
    assert me(signed_in.access).status_code == 401


def test_a_session_past_its_idle_expiry_refuses_refresh_while_its_token_has_not_expired(signed_in):
    """The row's idle expiry decides, not only the token's exp: the one-statement rotation checks it
    too (e.g. after REFRESH_TOKEN_LIFETIME was shortened, the rows are what changed)."""
    session = session_of(signed_in)
    Session.objects.filter(pk=session.pk).update(idle_expires_at=timezone.now() - timedelta(seconds=1))
    assert claims(signed_in.refresh_cookie)["exp"] > timezone.now().timestamp()

    response = signed_in.refresh()

    assert_json_error(response, 401, "token_expired")
    assert Session.objects.get(pk=session.pk).refresh_jti == session.refresh_jti


# --- deactivated users ------------------------------------------------------------------------
def _deactivate_with_save(user):
    user.is_active = False
    user.save()


def _deactivate_without_signals(user):
    type(user).objects.filter(pk=user.pk).update(is_active=False)


@pytest.mark.parametrize(
    "deactivate",
    [_deactivate_with_save, _deactivate_without_signals],
    ids=["saved", "updated without signals"],
)
def test_a_deactivated_user_is_refused_on_refresh_and_on_bearer_calls(signed_in, user, deactivate):
    assert me(signed_in.access).status_code == 200

    deactivate(user)

    assert_json_error(me(signed_in.access), 401, "token_revoked")
    assert_json_error(signed_in.refresh(), 401, "token_revoked")


# --- what a failed refresh answers ------------------------------------------------------------
def test_a_missing_cookie_is_401_not_authenticated(browser, user):
    response = browser.refresh()

    assert_json_error(response, 401, "not_authenticated")
    assert set_cookie_attributes(response)["max-age"] == "0"


def _garbage(client):
    client.set_refresh_cookie("garbage")


def _revoked(client):
    token = client.refresh_cookie
    client.sign_out()
    client.set_refresh_cookie(token)


def _expired(client):
    Session.objects.update(absolute_expires_at=timezone.now() - timedelta(seconds=1))


def _missing(client):
    del client.cookies["refresh_token"]


@pytest.mark.parametrize(
    "spoil, code",
    [
        (_garbage, "token_not_valid"),
        (_revoked, "token_revoked"),
        (_expired, "token_expired"),
        (_missing, "not_authenticated"),
    ],
    ids=["garbage", "revoked", "expired", "missing"],
)
def test_a_failed_refresh_deletes_the_cookie_with_the_attributes_it_was_set_with(browser, user, spoil, code):
    login = browser.sign_in()
    assert login.status_code == 200
    set_with = set_cookie_attributes(login)
    spoil(browser)

    response = browser.refresh()

    assert_json_error(response, 401, code)
    deleted = set_cookie_attributes(response)
    assert response.cookies["refresh_token"].value == "" and deleted["max-age"] == "0"
    assert deleted["path"] == set_with["path"] == "/api/auth/"
    for attribute in ("name", "domain", "samesite", "secure", "httponly"):
        assert deleted.get(attribute) == set_with.get(attribute), attribute
    assert browser.refresh_cookie is None


def test_a_refresh_that_fails_the_csrf_check_changes_nothing(signed_in):
    before = session_of(signed_in)

    response = signed_in.post("/api/auth/refresh/", {}, format="json")  # no X-CSRFToken

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert "refresh_token" not in response.cookies
    assert session_of(signed_in).refresh_jti == before.refresh_jti
