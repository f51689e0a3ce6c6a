"""CSRF on the endpoints that read the ambient refresh cookie: a failed check changes nothing."""

import pytest
from django.test import Client, RequestFactory

from accounts import error_views
from accounts.models import Session

from .helpers import PASSWORD, assert_json_error, set_cookie_attributes

pytestmark = pytest.mark.django_db

ALLOWED_ORIGIN = "http://localhost:5173"
COOKIE_ENDPOINTS = ["/api/auth/refresh/", "/api/auth/logout/"]


def csrf_headers(browser, failure: str) -> dict:
    """Request headers that fail Django's CSRF check in the named way."""
    token = browser.fetch_csrf()  # the csrftoken cookie is in the jar in every case
    if failure == "no X-CSRFToken header":
        return {}
    if failure == "a wrong X-CSRFToken":
        return {"HTTP_X_CSRFTOKEN": "x" * len(token)}
    if failure == "no csrftoken cookie":
        del browser.cookies["csrftoken"]
        return {"HTTP_X_CSRFTOKEN": token}
    if failure == "an untrusted Origin":
        return {"HTTP_X_CSRFTOKEN": token, "HTTP_ORIGIN": "http://evil.example"}
    if failure == "an allowed host on another scheme":
        return {"HTTP_X_CSRFTOKEN": token, "HTTP_ORIGIN": "https://localhost:5173"}
    raise AssertionError(failure)


FAILURES = [
    "no X-CSRFToken header",
    "a wrong X-CSRFToken",
    "no csrftoken cookie",
    "an untrusted Origin",
    "an allowed host on another scheme",
]


def assert_csrf_failed(response) -> None:
    assert response.status_code == 403, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] == "csrf_failed"


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("endpoint", COOKIE_ENDPOINTS)
def test_cookie_endpoint_refuses_a_failed_csrf_check_and_changes_nothing(signed_in, user, endpoint, failure):
    session = Session.objects.get(user=user)
    cookie = signed_in.refresh_cookie
    headers = csrf_headers(signed_in, failure)

    response = signed_in.post(endpoint, {}, format="json", **headers)

    assert_csrf_failed(response)
    assert "refresh_token" not in response.cookies  # neither rotated nor deleted
    assert signed_in.refresh_cookie == cookie
    after = Session.objects.get(pk=session.pk)
    assert after.refresh_jti == session.refresh_jti  # not rotated
    assert after.previous_jti == session.previous_jti
    assert after.revoked_at is None  # not revoked
    # The untouched cookie still works once the request passes the check.
    signed_in.csrf_token = None  # refresh() fetches a fresh token (and cookie) first
    refreshed = signed_in.refresh()
    assert refreshed.status_code == 200, refreshed.content
    assert Session.objects.get(pk=session.pk).refresh_jti != session.refresh_jti


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/x-www-form-urlencoded", "csrfmiddlewaretoken=x"),
        ("text/plain", '{"refresh": "x"'),
        ("application/json", "{not json"),
    ],
    ids=["form", "text/plain", "broken JSON"],
)
@pytest.mark.parametrize("endpoint", COOKIE_ENDPOINTS)
def test_a_cross_site_post_the_api_cannot_parse_still_fails_the_csrf_check_first(
    signed_in, user, endpoint, content_type, body
):
    """A blind form POST from another site carries the cookie: it is refused as CSRF (403), not as
    an unreadable body (415/400), since only the cookie could have carried its token."""
    session = Session.objects.get(user=user)

    response = signed_in.generic(
        "POST", endpoint, body, content_type=content_type, HTTP_ORIGIN="http://evil.example"
    )

    assert_csrf_failed(response)
    after = Session.objects.get(pk=session.pk)
    assert (after.refresh_jti, after.revoked_at) == (session.refresh_jti, None)


def test_refresh_from_an_allowed_origin_with_the_token_rotates(signed_in, user):
    before = Session.objects.get(user=user).refresh_jti
    response = signed_in.refresh(HTTP_ORIGIN=ALLOWED_ORIGIN)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"access", "access_expires_at"}
    assert Session.objects.get(user=user).refresh_jti != before


def test_the_check_follows_a_change_of_the_trusted_origins(signed_in, user, settings):
    """One check serves the process (accounts.csrf), made anew when the settings change."""
    assert signed_in.refresh(HTTP_ORIGIN=ALLOWED_ORIGIN).status_code == 200
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com"]
    assert_json_error(signed_in.refresh(HTTP_ORIGIN=ALLOWED_ORIGIN), 403, "csrf_failed")
    assert signed_in.refresh(HTTP_ORIGIN="https://app.example.com").status_code == 200


@pytest.mark.parametrize(
    "trusted_by",
    ["CSRF_TRUSTED_ORIGINS", "a CORS origin regex", "the request's own host"],
)
def test_a_native_app_origin_never_passes_the_csrf_origin_check(signed_in, user, settings, trusted_by):
    """An app's origin is no browser page's, whatever would otherwise trust it (E016 refuses the
    first at startup; the regexes are DEBUG's; an app served from the API's own host is odd)."""
    origin = "http://testserver" if trusted_by == "the request's own host" else "http://localhost"
    if trusted_by == "CSRF_TRUSTED_ORIGINS":
        settings.CSRF_TRUSTED_ORIGINS = [*settings.CSRF_TRUSTED_ORIGINS, origin]
    if trusted_by == "a CORS origin regex":
        settings.CORS_ALLOWED_ORIGIN_REGEXES = [r"^http://localhost(:\d+)?$"]
    assert signed_in.refresh(HTTP_ORIGIN=origin).status_code == 200  # trusted as a browser's

    settings.ACCOUNTS_NATIVE_APP_ORIGINS = [origin]

    assert_json_error(signed_in.refresh(HTTP_ORIGIN=origin), 403, "csrf_failed")


def test_logout_from_an_allowed_origin_with_the_token_revokes(signed_in, user):
    response = signed_in.sign_out(HTTP_ORIGIN=ALLOWED_ORIGIN)
    assert response.status_code == 200, response.content
    session = Session.objects.get(user=user)
    assert session.revoked_at is not None and session.revoke_reason == "logout"


def test_csrf_endpoint_returns_the_token_in_the_body_and_sets_the_cookie(browser):
    response = browser.get("/api/auth/csrf/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"csrf_token"}
    assert isinstance(body["csrf_token"], str) and len(body["csrf_token"]) >= 32
    attributes = set_cookie_attributes(response, "csrftoken")
    assert attributes["value"]
    assert attributes["samesite"] == "Lax"
    assert attributes.get("secure") is True


def test_the_token_from_the_csrf_endpoint_passes_the_check(signed_in, user):
    token = signed_in.get("/api/auth/csrf/").json()["csrf_token"]
    response = signed_in.post(
        "/api/auth/refresh/", {}, format="json", HTTP_X_CSRFTOKEN=token, HTTP_ORIGIN=ALLOWED_ORIGIN
    )
    assert response.status_code == 200, response.content


def test_login_needs_no_csrf_token(browser, user):
    """Login reads no ambient credential, so an SPA can call it before it has a token."""
    response = browser.sign_in()
    assert response.status_code == 200


def test_djangos_csrf_failure_view_answers_json_outside_the_admin():
    response = error_views.csrf_failure(RequestFactory().post("/elsewhere/"), reason="Origin checking failed")
    assert_json_error(response, 403, "csrf_failed")


def test_the_admins_own_csrf_failure_is_djangos_html_page(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "admin", "password": PASSWORD})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "CSRF verification failed" in response.content.decode()
