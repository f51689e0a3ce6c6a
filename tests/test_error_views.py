"""Django's own errors answer in the API's JSON shape (accounts.error_views, wired in authproject/urls.py)."""

import pytest
from django.test import RequestFactory
from django.urls import get_resolver

from accounts import error_views
from accounts.models import Session

from .helpers import assert_json_error

pytestmark = pytest.mark.django_db


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
