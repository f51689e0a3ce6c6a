"""API errors (accounts.http_errors): every 4xx and 5xx of an endpoint is JSON ``{"detail", "code"}``."""

import pytest
from rest_framework import status

from accounts import errors
from accounts.http_errors import to_http_error
from accounts.models import Session

from .helpers import PASSWORD, assert_json_error

pytestmark = pytest.mark.django_db


def post_raw(client, path: str, data, content_type: str = "application/json"):
    return client.generic("POST", path, data, content_type=content_type)


# --- domain errors to HTTP ---------------------------------------------------------------------
@pytest.mark.parametrize("error_class", errors.AuthError.__subclasses__(), ids=lambda c: c.__name__)
def test_every_domain_error_has_an_http_error_with_its_code(error_class):
    http_error = to_http_error(error_class())
    assert status.HTTP_400_BAD_REQUEST <= http_error.status_code < status.HTTP_500_INTERNAL_SERVER_ERROR
    assert error_class.code in str(http_error.get_codes())
    assert isinstance(http_error.__cause__, error_class)


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
