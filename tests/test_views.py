"""The HTTP contract of each endpoint, as an SPA sees it."""

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework_simplejwt import views as jwt_views

from accounts import views
from accounts.models import RevokeReason, Session
from accounts.serializers import LoginSerializer
from accounts.services import session_create
from accounts.tokens import AccessToken, RefreshToken

from .helpers import MAC_CHROME, PASSWORD, BrowserClient

pytestmark = pytest.mark.django_db


# --- health, csrf, schema -------------------------------------------------------------------
def test_health_reports_database_and_cache_ok(browser):
    response = browser.get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


def test_health_names_the_failing_cache(browser):
    unreachable = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
    with override_settings(CACHES={"default": unreachable}):
        response = browser.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["cache"] == "error" and body["database"] == "ok"


def test_schema_is_openapi_3_and_lists_every_endpoint(browser):
    response = browser.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in [
        "/api/auth/login/",
        "/api/auth/refresh/",
        "/api/auth/sessions/{session_id}/",
        "/api/auth/password/reset/",
        "/api/auth/password/reset/confirm/",
        "/api/users/me/",
        "/api/auth/email/verify/",
        "/api/auth/email/verify/resend/",
        "/api/auth/email/change/",
    ]:
        assert path in schema["paths"]


def test_schema_declares_duplicate_refresh_cookie_where_the_cookie_is_read(browser, settings):
    settings.ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX = True
    paths = browser.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in ("/api/auth/refresh/", "/api/auth/logout/"):
        operation = paths[path]["post"]
        assert "`duplicate_refresh_cookie`" in operation["responses"]["400"]["description"], path
        cookies = [p["name"] for p in operation.get("parameters", []) if p["in"] == "cookie"]
        assert cookies == ["__Host-refresh_token"], path
    assert "duplicate_refresh_cookie" not in str(paths["/api/auth/login/"])


def test_schema_generates_without_warnings_and_documents_the_bearer_scheme(tmp_path):
    target = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", target)
    schema = json.loads(target.read_text())
    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert {"jwtAuth": []} in schema["paths"]["/api/users/me/"]["get"]["security"]


def test_docs_serve_swagger_ui_without_a_cdn(browser):
    response = browser.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"cdn.jsdelivr.net" not in response.content


# --- register -------------------------------------------------------------------------------
def test_register_creates_a_user_with_a_hashed_password(browser):
    response = browser.post(
        "/api/auth/register/",
        {"username": "bob", "email": "bob@example.com", "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "username", "email"} and "password" not in body
    user = get_user_model().objects.get(username="bob")
    assert user.password != PASSWORD and user.check_password(PASSWORD)


def test_register_applies_djangos_password_validators(browser):
    response = browser.post(
        "/api/auth/register/",
        {"username": "bob", "email": "bob@example.com", "password": "123"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "password" in response.json()["errors"]
    assert not get_user_model().objects.filter(username="bob").exists()


def test_register_refuses_a_taken_username(browser, user):
    response = browser.post(
        "/api/auth/register/",
        {"username": "alice", "email": "x@example.com", "password": PASSWORD},
        format="json",
    )
    assert response.status_code == 400
    assert "username" in response.json()["errors"]


# --- login ----------------------------------------------------------------------------------
def test_login_returns_access_token_and_user_and_sets_only_the_cookie(browser, user):
    response = browser.sign_in()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "user"}
    assert body["user"]["username"] == "alice"
    assert browser.refresh_cookie and browser.refresh_cookie not in response.content.decode()


def test_login_creates_one_session_with_ip_and_user_agent(browser, user):
    browser.sign_in(HTTP_USER_AGENT="TestAgent/1.0", REMOTE_ADDR="203.0.113.7")
    session = Session.objects.get(user=user)
    assert session.user_agent == "TestAgent/1.0"
    assert session.ip == "203.0.113.7"
    assert session.revoked_at is None
    assert session.idle_expires_at <= session.absolute_expires_at


def test_login_stores_the_jti_but_never_the_token(browser, user):
    browser.sign_in()
    session = Session.objects.get(user=user)
    row = Session.objects.filter(pk=session.pk).values().get()
    assert browser.refresh_cookie not in str(row)
    assert RefreshToken(browser.refresh_cookie).jti == session.refresh_jti


@pytest.mark.parametrize(
    "username, password",
    [("alice", "wrong password"), ("nobody", PASSWORD)],
    ids=["wrong password", "unknown user"],
)
def test_login_failure_is_401_invalid_credentials(browser, user, username, password):
    response = browser.sign_in(username=username, password=password)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert "refresh_token" not in response.cookies
    assert not Session.objects.exists()


def test_login_refuses_an_inactive_user_like_a_wrong_password(browser, user_factory):
    user_factory(username="carol", is_active=False)
    response = browser.sign_in(username="carol")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_login_records_last_login(browser, user):
    assert user.last_login is None
    browser.sign_in()
    user.refresh_from_db()
    assert user.last_login is not None


# --- me -------------------------------------------------------------------------------------
def test_me_requires_a_bearer_token(browser):
    response = browser.get("/api/users/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_me_returns_the_user(api, user):
    response = api.get("/api/users/me/")
    assert response.status_code == 200
    assert response.json()["id"] == user.id and response.json()["email"] == user.email


# --- logout ---------------------------------------------------------------------------------
def test_logout_revokes_the_session_and_deletes_the_cookie(signed_in, user):
    response = signed_in.sign_out()
    assert response.status_code == 200
    assert response.cookies["refresh_token"]["max-age"] == 0
    session = Session.objects.get(user=user)
    assert session.revoked_at is not None and session.revoke_reason == RevokeReason.LOGOUT


def test_logout_stops_the_sessions_access_token_at_once(signed_in):
    signed_in.sign_out()
    response = signed_in.bearer(signed_in.access).get("/api/users/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


def test_logged_out_refresh_token_no_longer_refreshes(signed_in):
    token = signed_in.refresh_cookie
    signed_in.sign_out()
    signed_in.set_refresh_cookie(token)
    response = signed_in.refresh()
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


@pytest.mark.parametrize("cookie", [None, "garbage"], ids=["no cookie", "bad cookie"])
def test_logout_is_idempotent(browser, cookie):
    if cookie:
        browser.set_refresh_cookie(cookie)
    response = browser.sign_out()
    assert response.status_code == 200
    assert response.cookies["refresh_token"]["max-age"] == 0


# --- logout-all -----------------------------------------------------------------------------
def test_logout_all_revokes_every_session_of_the_user_only(api, user, user_factory):
    other_browser = BrowserClient()
    other_browser.sign_in()
    bob = user_factory(username="bob")
    BrowserClient().sign_in(username="bob")

    response = api.post("/api/auth/logout-all/", {}, format="json")

    assert response.status_code == 200
    assert response.json() == {"revoked": 2}
    assert response.cookies["refresh_token"]["max-age"] == 0
    assert not Session.objects.for_user(user).active().exists()
    assert Session.objects.for_user(bob).active().count() == 1
    assert api.get("/api/users/me/").status_code == 401
    assert other_browser.refresh().status_code == 401


# --- sessions -------------------------------------------------------------------------------
def test_sessions_lists_active_sessions_and_marks_the_current_one(api, user):
    other = BrowserClient()
    other.sign_in(HTTP_USER_AGENT=MAC_CHROME)
    revoked = BrowserClient()
    revoked.sign_in()
    revoked.sign_out()

    response = api.get("/api/auth/sessions/")

    assert response.status_code == 200
    sessions = response.json()
    assert len(sessions) == 2
    assert set(sessions[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "ip",
        "device",
        "user_agent",
        "amr",
        "auth_time",
        "current",
    }
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["id"] == str(AccessToken(api.access).session_id)
    assert current[0]["amr"] == ["pwd"]
    assert parse_datetime(current[0]["auth_time"]) == Session.objects.get(pk=current[0]["id"]).auth_time
    [listed_other] = [s for s in sessions if not s["current"]]
    assert (listed_other["device"], listed_other["user_agent"]) == ("Chrome 131 on macOS", MAC_CHROME)


def test_the_sessions_list_says_how_each_session_signed_in(api, user):
    """``amr`` as the session's access tokens carry it; ``auth_time`` the sign-in's time."""
    now = timezone.now() - timedelta(minutes=3)
    second_step = session_create(user=user, ip="192.0.2.4", user_agent="Firefox", amr=("pwd", "otp"), now=now)
    listed = {s["id"]: s for s in api.get("/api/auth/sessions/").json()}
    assert listed[str(second_step.pk)]["amr"] == ["pwd", "otp"]
    assert parse_datetime(listed[str(second_step.pk)]["auth_time"]) == now


def test_the_sessions_list_never_shows_another_users_active_session(api, user, make_session, user_factory):
    bob = user_factory(username="bob")
    bobs = make_session(user=bob, ip="203.0.113.77", user_agent="Bob's browser")
    assert bobs.is_active()

    listed = api.get("/api/auth/sessions/").json()

    assert [s["id"] for s in listed] == [str(AccessToken(api.access).session_id)]
    assert str(bobs.pk) not in {s["id"] for s in listed}
    assert "Bob's browser" not in {s["user_agent"] for s in listed}


def test_revoking_a_session_stops_its_refresh_and_access_tokens(api, user):
    other = BrowserClient()
    other_access = other.sign_in().json()["access"]
    other_id = Session.objects.for_user(user).order_by("-created_at").first().pk

    response = api.delete(f"/api/auth/sessions/{other_id}/")

    assert response.status_code == 204
    assert Session.objects.get(pk=other_id).revoke_reason == RevokeReason.REVOKED_BY_USER
    assert other.refresh().status_code == 401
    assert BrowserClient().bearer(other_access).get("/api/users/me/").status_code == 401
    assert api.get("/api/users/me/").status_code == 200


def test_revoking_another_users_session_is_404_and_changes_nothing(api, user_factory):
    user_factory(username="bob")
    BrowserClient().sign_in(username="bob")
    bobs = Session.objects.get(user__username="bob")

    response = api.delete(f"/api/auth/sessions/{bobs.pk}/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    bobs.refresh_from_db()
    assert bobs.revoked_at is None


def test_revoking_an_unknown_session_is_404(api):
    response = api.delete(f"/api/auth/sessions/{uuid.uuid4()}/")
    assert response.status_code == 404


# --- password change ------------------------------------------------------------------------
def test_password_change_revokes_the_other_sessions_and_keeps_the_callers(api, user):
    other = BrowserClient()
    other.sign_in()

    response = api.post(
        "/api/auth/password/change/",
        {"old_password": PASSWORD, "new_password": "a brand new passphrase"},
        format="json",
    )

    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password("a brand new passphrase")
    assert other.refresh().status_code == 401
    assert api.get("/api/users/me/").status_code == 200
    assert api.refresh().status_code == 200
    assert Session.objects.for_user(user).filter(revoke_reason=RevokeReason.PASSWORD_CHANGED).count() == 1


def test_password_change_with_a_wrong_old_password_is_400_and_changes_nothing(api, user):
    response = api.post(
        "/api/auth/password/change/",
        {"old_password": "nope", "new_password": "a brand new passphrase"},
        format="json",
    )
    assert response.status_code == 400
    assert "old_password" in response.json()["errors"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_change_applies_the_validators(api, user):
    response = api.post(
        "/api/auth/password/change/", {"old_password": PASSWORD, "new_password": "alice"}, format="json"
    )
    assert response.status_code == 400
    assert "new_password" in response.json()["errors"]


# --- deactivation ---------------------------------------------------------------------------
def test_deactivating_a_user_revokes_their_sessions(signed_in, user):
    user.is_active = False
    user.save()
    session = Session.objects.get(user=user)
    assert session.revoke_reason == RevokeReason.USER_DEACTIVATED
    assert signed_in.bearer(signed_in.access).get("/api/users/me/").status_code == 401


# --- simplejwt's views, and an app that does not lean on the project's DRF settings ---------------
class LoginWithGreeting(LoginSerializer):
    """A project's own login serializer, named in SIMPLE_JWT as a simplejwt user would."""

    greeting = serializers.SerializerMethodField()

    def get_greeting(self, issued) -> str:
        return f"hello {issued.session.user.get_username()}"


def test_the_auth_views_are_simplejwts_views():
    assert issubclass(views.LoginView, jwt_views.TokenObtainPairView)
    assert issubclass(views.RefreshView, jwt_views.TokenRefreshView)
    assert issubclass(views.LogoutView, jwt_views.TokenBlacklistView)


def test_a_login_serializer_named_in_simple_jwt_is_used(browser, user, settings):
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "TOKEN_OBTAIN_SERIALIZER": f"{__name__}.LoginWithGreeting",
    }
    response = browser.sign_in()
    assert response.status_code == 200, response.content
    assert response.json()["greeting"] == "hello alice"
    assert browser.refresh_cookie and "refresh" not in response.json()


def test_the_endpoints_answer_alike_whatever_the_projects_drf_defaults(signed_in, settings):
    settings.REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.BrowsableAPIRenderer"],
    }
    anonymous = signed_in.get("/api/users/me/")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    assert signed_in.bearer(signed_in.access).get("/api/users/me/").json()["username"] == "alice"
    wrong = BrowserClient().sign_in(password="wrong")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_credentials")
