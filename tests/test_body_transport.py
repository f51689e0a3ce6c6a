"""Body transport: the refresh token in the JSON body, for clients that are not browsers.

Every test runs over HTTPS (Django's test client with secure=True) with no Origin and no Referer, as
a mobile app, CLI or server sends, and again over plain http. Time is moved by editing the session
row or the grace setting, never by sleeping.
"""

from datetime import datetime, timedelta

import pytest

from accounts.models import RevokeReason, Session

from .helpers import BrowserClient, NativeClient, assert_json_error, claims, jti

pytestmark = pytest.mark.django_db

BROWSER_ORIGIN = {"HTTP_ORIGIN": "http://localhost:5173"}
APP_ORIGIN = "capacitor://localhost"
FROM_THE_APP = {"HTTP_ORIGIN": APP_ORIGIN}


@pytest.fixture(params=[True, False], ids=["https", "http"])
def native(request, db):
    """A client that is not a browser, over HTTPS and over plain http."""
    return NativeClient(secure=request.param)


@pytest.fixture
def native_signed_in(native, user):
    """``native`` signed in as ``user`` with body transport; ``native.tokens`` holds the answer."""
    response = native.sign_in()
    assert response.status_code == 200, response.content
    native.tokens = response.json()
    return native


def session_of(token: str) -> Session:
    return Session.objects.get(pk=claims(token)["sid"])


def assert_no_refresh_cookie(response) -> None:
    """No Set-Cookie for the refresh token at all: not set, not deleted."""
    assert "refresh_token" not in response.cookies, response.cookies


def expire_grace(session: Session, settings) -> None:
    """Pretend the grace window has passed since the session's last rotation."""
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(seconds=10)
    Session.objects.filter(pk=session.pk).update(rotated_at=session.rotated_at - timedelta(seconds=11))


# --- login ------------------------------------------------------------------------------------
def test_login_with_body_transport_answers_both_tokens_in_the_body_and_sets_no_cookie(native, user):
    response = native.sign_in()

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "refresh", "refresh_expires_at", "user"}
    assert_no_refresh_cookie(response)
    refresh = body["refresh"]
    assert claims(refresh)["token_type"] == "refresh"
    assert claims(refresh)["sid"] == claims(body["access"])["sid"]
    session = session_of(refresh)
    assert session.refresh_jti == jti(refresh)
    expires_at = datetime.fromisoformat(body["refresh_expires_at"].replace("Z", "+00:00"))
    assert int(expires_at.timestamp()) == claims(refresh)["exp"] == int(session.idle_expires_at.timestamp())
    assert body["user"]["username"] == "alice"
    me = NativeClient().get("/api/users/me/", HTTP_AUTHORIZATION=f"Bearer {body['access']}", secure=True)
    assert me.status_code == 200


def test_body_transport_sessions_are_ordinary_sessions(native_signed_in, user):
    access = native_signed_in.tokens["access"]
    listing = NativeClient().get("/api/auth/sessions/", HTTP_AUTHORIZATION=f"Bearer {access}", secure=True)
    assert listing.status_code == 200
    assert [s["id"] for s in listing.json()] == [claims(access)["sid"]]

    revoke = NativeClient().delete(
        f"/api/auth/sessions/{claims(access)['sid']}/", HTTP_AUTHORIZATION=f"Bearer {access}", secure=True
    )

    assert revoke.status_code == 204
    assert_json_error(native_signed_in.refresh(native_signed_in.tokens["refresh"]), 401, "token_revoked")


def test_login_without_transport_is_the_cookie_transport(browser, user):
    response = browser.sign_in()
    assert response.status_code == 200
    assert set(response.json()) == {"access", "access_expires_at", "user"}
    assert response.cookies["refresh_token"].value


def test_login_refuses_an_unknown_transport(native, user):
    response = native.post(
        "/api/auth/login/",
        {"username": "alice", "password": "x", "transport": "header"},
        format="json",
        secure=native.secure,
    )
    body = assert_json_error(response, 400, "invalid")
    assert "transport" in body["errors"]
    assert not Session.objects.exists()


# --- refresh ----------------------------------------------------------------------------------
def test_refresh_with_a_body_token_rotates_it_without_a_csrf_token(native_signed_in):
    old = native_signed_in.tokens["refresh"]

    response = native_signed_in.refresh(old)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "refresh", "refresh_expires_at"}
    assert_no_refresh_cookie(response)
    new = body["refresh"]
    assert new != old and jti(new) != jti(old)
    session = session_of(new)
    assert session.refresh_jti == jti(new)
    assert session.previous_jti == jti(old)
    assert claims(body["access"])["sid"] == str(session.pk)


def test_refresh_in_the_grace_window_gives_the_current_token_back_in_the_body(native_signed_in):
    old = native_signed_in.tokens["refresh"]
    current = native_signed_in.refresh(old).json()["refresh"]

    again = native_signed_in.refresh(old)

    assert again.status_code == 200, again.content
    assert again.json()["refresh"] == current  # no second rotation
    assert_no_refresh_cookie(again)
    session = session_of(current)
    assert session.refresh_jti == jti(current) and session.previous_jti == jti(old)
    assert session.revoked_at is None


def test_a_replayed_body_token_after_the_grace_window_revokes_the_session(native_signed_in, settings):
    old = native_signed_in.tokens["refresh"]
    current = native_signed_in.refresh(old).json()["refresh"]
    expire_grace(session_of(current), settings)

    replay = native_signed_in.refresh(old)

    assert_json_error(replay, 401, "token_revoked")
    assert_no_refresh_cookie(replay)
    session = session_of(current)
    assert session.revoke_reason == RevokeReason.REUSE_DETECTED
    assert_json_error(native_signed_in.refresh(current), 401, "token_revoked")


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_refresh_with_a_bad_body_token_is_401_and_sets_no_cookie(native, token):
    response = native.refresh(token)
    assert_json_error(response, 401, "token_not_valid")
    assert_no_refresh_cookie(response)


def test_refresh_with_an_access_token_in_the_body_is_refused(native_signed_in):
    response = native_signed_in.refresh(native_signed_in.tokens["access"])
    assert_json_error(response, 401, "token_not_valid")


@pytest.mark.parametrize("value", [None, ""], ids=["null", "empty"])
def test_refresh_with_an_empty_body_token_is_400(native, value):
    response = native.post("/api/auth/refresh/", {"refresh": value}, format="json", secure=native.secure)
    body = assert_json_error(response, 400, "invalid")
    assert "refresh" in body["errors"]


def test_a_body_token_beside_a_refresh_cookie_leaves_the_cookies_session_alone(native_signed_in, user):
    """The token that came in the body is answered in the body; the cookie is not read or touched."""
    browser = BrowserClient()
    browser.sign_in()
    cookie_token = browser.refresh_cookie
    native_signed_in.cookies["refresh_token"] = cookie_token

    response = native_signed_in.refresh(native_signed_in.tokens["refresh"])

    assert response.status_code == 200
    assert_no_refresh_cookie(response)
    assert session_of(cookie_token).refresh_jti == jti(cookie_token)  # not rotated
    assert claims(response.json()["refresh"])["sid"] == claims(native_signed_in.tokens["refresh"])["sid"]


# --- the cookie transport is unchanged ------------------------------------------------------------
def test_a_token_that_came_in_a_cookie_is_answered_only_in_a_cookie(signed_in):
    response = signed_in.refresh()
    assert response.status_code == 200
    assert set(response.json()) == {"access", "access_expires_at"}
    assert response.cookies["refresh_token"].value


def test_over_https_a_cookie_refresh_without_referer_is_refused_which_body_transport_avoids(user):
    """Why native clients need the body: Django's HTTPS Referer rule refuses them the cookie."""
    browser = BrowserClient()
    browser.sign_in(secure=True)
    csrf = browser.get("/api/auth/csrf/", secure=True).json()["csrf_token"]
    response = browser.post("/api/auth/refresh/", {}, format="json", secure=True, HTTP_X_CSRFTOKEN=csrf)
    assert_json_error(response, 403, "csrf_failed")


# --- logout -----------------------------------------------------------------------------------
def test_logout_with_a_body_token_revokes_its_session_without_a_csrf_token(native_signed_in):
    token = native_signed_in.tokens["refresh"]

    response = native_signed_in.sign_out(token)

    assert response.status_code == 200, response.content
    assert response.json() == {"detail": "Logged out."}
    assert_no_refresh_cookie(response)
    assert session_of(token).revoke_reason == RevokeReason.LOGOUT
    assert_json_error(native_signed_in.refresh(token), 401, "token_revoked")


def test_logout_with_a_bad_body_token_is_still_200(native):
    response = native.sign_out("garbage")
    assert response.status_code == 200
    assert_no_refresh_cookie(response)


# --- browsers are refused the body ----------------------------------------------------------------
def test_a_browser_asking_to_log_in_with_body_transport_gets_400_and_no_session(user):
    response = NativeClient().sign_in(**BROWSER_ORIGIN)

    assert_json_error(response, 400, "body_transport_forbidden")
    assert set(response.json()) == {"detail", "code"}
    assert_no_refresh_cookie(response)
    assert not Session.objects.exists()


@pytest.mark.parametrize("origin", ["http://localhost:5173", "https://evil.example", "null"])
def test_a_browser_sending_a_body_token_to_refresh_gets_400_and_nothing_rotates(native_signed_in, origin):
    token = native_signed_in.tokens["refresh"]

    response = native_signed_in.refresh(token, HTTP_ORIGIN=origin)

    assert_json_error(response, 400, "body_transport_forbidden")
    assert_no_refresh_cookie(response)
    session = session_of(token)
    assert session.refresh_jti == jti(token) and session.revoked_at is None


def test_a_browser_sending_a_body_token_to_logout_gets_400_and_the_session_stays(native_signed_in):
    token = native_signed_in.tokens["refresh"]

    response = native_signed_in.sign_out(token, **BROWSER_ORIGIN)

    assert_json_error(response, 400, "body_transport_forbidden")
    assert session_of(token).revoked_at is None


# --- hybrid apps: a web view's Origin named in NATIVE_APP_ORIGINS -----------------------------------
@pytest.fixture
def app_origins(settings):
    """The hybrid app's origin listed as an app's (and so among the CORS origins, as settings.py
    does it); returns the settings to change further."""
    settings.ACCOUNTS_NATIVE_APP_ORIGINS = [APP_ORIGIN, "ionic://localhost"]
    settings.CORS_ALLOWED_ORIGINS = [*settings.CORS_ALLOWED_ORIGINS, APP_ORIGIN, "ionic://localhost"]
    return settings


@pytest.mark.parametrize("listed", [APP_ORIGIN, APP_ORIGIN + "/", "CAPACITOR://localhost"])
def test_a_listed_app_origin_may_log_in_refresh_and_log_out_with_body_transport(
    native, user, app_origins, listed
):
    app_origins.ACCOUNTS_NATIVE_APP_ORIGINS = [listed]  # compared as django-cors-headers compares

    login = native.sign_in(**FROM_THE_APP)
    assert login.status_code == 200, login.content
    assert_no_refresh_cookie(login)
    refreshed = native.refresh(login.json()["refresh"], **FROM_THE_APP)
    assert refreshed.status_code == 200, refreshed.content
    token = refreshed.json()["refresh"]
    assert session_of(token).refresh_jti == jti(token)

    logout = native.sign_out(token, **FROM_THE_APP)
    assert logout.status_code == 200
    assert session_of(token).revoke_reason == RevokeReason.LOGOUT


def test_a_listed_app_origin_gets_cors_answers_with_its_tokens(native, user, app_origins):
    response = native.sign_in(**FROM_THE_APP)
    assert response.status_code == 200
    assert response["access-control-allow-origin"] == APP_ORIGIN


@pytest.mark.parametrize(
    "origin", ["capacitor://localhost:8080", "capacitor://evil", "https://localhost", "null"]
)
def test_an_origin_not_listed_as_an_apps_is_refused_body_transport(native_signed_in, app_origins, origin):
    token = native_signed_in.tokens["refresh"]
    headers = {"HTTP_ORIGIN": origin}

    assert_json_error(native_signed_in.sign_in(**headers), 400, "body_transport_forbidden")
    assert_json_error(native_signed_in.refresh(token, **headers), 400, "body_transport_forbidden")
    assert_json_error(native_signed_in.sign_out(token, **headers), 400, "body_transport_forbidden")
    session = session_of(token)
    assert session.refresh_jti == jti(token) and session.revoked_at is None
    assert Session.objects.count() == 1


def test_an_app_origin_is_refused_body_transport_unless_listed(native, user):
    assert_json_error(native.sign_in(**FROM_THE_APP), 400, "body_transport_forbidden")
    assert not Session.objects.exists()


def test_body_transport_turned_off_refuses_the_apps_too(native, user, app_origins):
    app_origins.ACCOUNTS_REFRESH_BODY_TRANSPORT = False
    assert_json_error(native.sign_in(**FROM_THE_APP), 400, "body_transport_forbidden")


def test_the_cookie_transport_from_an_app_origin_behaves_as_from_any_untrusted_origin(user, app_origins):
    """Login by cookie works from anywhere, as before; reading the cookie back needs the CSRF
    check, whose Origin check an app's origin never passes."""
    browser = BrowserClient()
    login = browser.sign_in(**FROM_THE_APP)
    assert login.status_code == 200 and browser.refresh_cookie
    assert "refresh" not in login.json()

    assert_json_error(browser.refresh(**FROM_THE_APP), 403, "csrf_failed")
    assert_json_error(browser.sign_out(**FROM_THE_APP), 403, "csrf_failed")
    assert Session.objects.get().revoked_at is None


# --- turned off -------------------------------------------------------------------------------
def test_body_transport_turned_off_refuses_login_refresh_and_logout(native_signed_in, settings):
    token = native_signed_in.tokens["refresh"]
    settings.ACCOUNTS_REFRESH_BODY_TRANSPORT = False

    assert_json_error(native_signed_in.sign_in(), 400, "body_transport_forbidden")
    assert_json_error(native_signed_in.refresh(token), 400, "body_transport_forbidden")
    assert_json_error(native_signed_in.sign_out(token), 400, "body_transport_forbidden")
    session = session_of(token)
    assert session.refresh_jti == jti(token) and session.revoked_at is None
    assert Session.objects.count() == 1


def test_body_transport_turned_off_leaves_the_cookie_transport_working(signed_in, settings):
    settings.ACCOUNTS_REFRESH_BODY_TRANSPORT = False
    assert signed_in.refresh().status_code == 200
    assert signed_in.sign_out().status_code == 200
