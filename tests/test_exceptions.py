"""Every 4xx and 5xx is JSON ``{"detail": ..., "code": ...}``, Django's own errors included."""

import json

import pytest
from django.test import RequestFactory
from django.urls import get_resolver

from accounts import error_views
from accounts.models import Session

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    """The response is ``status`` with the one JSON error shape (and ``code`` when given)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body, dict)
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert isinstance(body.get("code"), str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body


def post_raw(client, path: str, data, content_type: str = "application/json"):
    return client.generic("POST", path, data, content_type=content_type)


# --- Django's errors ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/nowhere/", "/api/auth/nowhere/", "/nowhere/"])
def test_an_unknown_url_is_a_json_404(browser, path):
    assert_json_error(browser.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/nowhere/", "/api/auth/nowhere/"])
def test_an_unknown_api_url_is_a_json_404_with_debug_on_too(browser, settings, path):
    settings.DEBUG = True
    assert_json_error(browser.get(path), 404, "not_found")


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_without_the_trailing_slash_is_a_json_404_not_a_500(browser, user, settings, debug):
    settings.DEBUG = debug
    response = browser.post("/api/auth/login", {"username": "alice", "password": "x"}, format="json")
    assert_json_error(response, 404, "not_found")
    assert "end with a slash" in response.json()["detail"]


def test_deleting_a_session_with_a_malformed_id_is_a_json_404(api, user):
    response = api.delete("/api/auth/sessions/not-a-uuid/")
    assert_json_error(response, 404, "not_found")
    assert Session.objects.get(user=user).revoked_at is None


def test_a_disallowed_host_is_a_json_400(browser):
    assert_json_error(browser.get("/api/health/", HTTP_HOST="evil.example"), 400)


@pytest.mark.parametrize("status", [400, 403, 404, 500])
def test_djangos_error_handlers_answer_json(status):
    handler = get_resolver().resolve_error_handler(status)
    request = RequestFactory().get("/anything/")
    response = handler(request) if status == 500 else handler(request, exception=Exception("boom"))
    assert_json_error(response, status)
    assert "boom" not in response.content.decode()  # internals never leak


def test_handler500_is_the_json_server_error_view():
    assert get_resolver().resolve_error_handler(500) is error_views.server_error
    response = error_views.server_error(RequestFactory().get("/"))
    assert_json_error(response, 500, "server_error")


# --- DRF's errors ---------------------------------------------------------------------------
def test_malformed_json_on_login_is_a_json_400(browser, user):
    response = post_raw(browser, "/api/auth/login/", '{"username": "alice", "password":')
    assert_json_error(response, 400, "parse_error")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_wrong_content_type_on_login_is_a_json_415(browser, user, content_type):
    response = post_raw(browser, "/api/auth/login/", f"username=alice&password={PASSWORD}", content_type)
    assert_json_error(response, 415, "unsupported_media_type")
    assert not Session.objects.exists()


def test_a_validation_error_is_400_invalid_with_field_errors(browser):
    response = browser.post("/api/auth/login/", {"username": "alice"}, format="json")
    body = assert_json_error(response, 400, "invalid")
    assert isinstance(body["errors"], dict)
    assert "password" in body["errors"] and "username" not in body["errors"]


def test_a_wrong_method_is_a_json_405(browser):
    assert_json_error(browser.get("/api/auth/login/"), 405, "method_not_allowed")


def test_a_missing_bearer_token_is_a_json_401(browser):
    assert_json_error(browser.get("/api/users/me/"), 401, "not_authenticated")


@pytest.mark.parametrize(
    "body",
    ['["alice", "password"]', '"alice"', "42", "null", "true"],
    ids=["list", "string", "number", "null", "boolean"],
)
@pytest.mark.parametrize("path", ["/api/auth/login/", "/api/auth/register/"])
def test_a_json_body_that_is_not_an_object_is_400_not_500(browser, path, body):
    response = post_raw(browser, path, body)
    assert_json_error(response, 400)


# --- hostile input --------------------------------------------------------------------------
NUL = "\x00"
HOSTILE_INPUTS = {
    "NUL in login username": ("/api/auth/login/", {"username": f"ali{NUL}ce", "password": PASSWORD}),
    "NUL in login password": ("/api/auth/login/", {"username": "alice", "password": f"pass{NUL}word"}),
    "10 kB login username": ("/api/auth/login/", {"username": "a" * 10_000, "password": PASSWORD}),
    "10 kB login password": ("/api/auth/login/", {"username": "alice", "password": "p" * 10_000}),
    "NUL in register username": (
        "/api/auth/register/",
        {"username": f"bo{NUL}b", "email": "bob@example.com", "password": PASSWORD},
    ),
    "NUL in register email": (
        "/api/auth/register/",
        {"username": "bob", "email": f"bob{NUL}@example.com", "password": PASSWORD},
    ),
    "10 kB register username": (
        "/api/auth/register/",
        {"username": "b" * 10_000, "email": "bob@example.com", "password": PASSWORD},
    ),
}


@pytest.mark.parametrize("path, payload", HOSTILE_INPUTS.values(), ids=HOSTILE_INPUTS.keys())
def test_nul_bytes_and_huge_fields_are_a_4xx_not_a_5xx(browser, user, path, payload):
    response = browser.post(path, payload, format="json")
    assert 400 <= response.status_code < 500, response.content
    assert_json_error(response, response.status_code)
    assert not Session.objects.exists()
