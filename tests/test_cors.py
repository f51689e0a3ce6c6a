"""CORS: an explicit allowlist with credentials, never a wildcard."""

import pytest

pytestmark = pytest.mark.django_db

ALLOWED_ORIGIN = "http://localhost:5173"
DISALLOWED_ORIGIN = "http://evil.example"


def preflight(client, origin: str, path: str = "/api/auth/refresh/"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-csrftoken,content-type",
    )


def header_list(response, name: str) -> set[str]:
    return {part.strip().lower() for part in response.get(name, "").split(",") if part.strip()}


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://localhost:3000"])
def test_preflight_from_an_allowed_origin_echoes_it_with_credentials(browser, origin):
    response = preflight(browser, origin)
    assert response.status_code == 200
    assert response["access-control-allow-origin"] == origin
    assert response["access-control-allow-credentials"] == "true"


def test_preflight_allows_the_headers_and_methods_the_spa_sends(browser):
    response = preflight(browser, ALLOWED_ORIGIN)
    assert header_list(response, "access-control-allow-headers") >= {
        "x-csrftoken",
        "content-type",
        "authorization",
    }
    assert {m.upper() for m in header_list(response, "access-control-allow-methods")} == {
        "GET",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }
    assert int(response["access-control-max-age"]) > 0


@pytest.mark.parametrize(
    "origin",
    [DISALLOWED_ORIGIN, "https://localhost:5173", "http://localhost:5173.evil.example", "null"],
)
def test_preflight_from_a_disallowed_origin_gets_no_cors_headers(browser, origin):
    response = preflight(browser, origin)
    assert "access-control-allow-origin" not in response
    assert "access-control-allow-credentials" not in response


@pytest.mark.parametrize(
    "path, status",
    [("/api/auth/csrf/", 200), ("/api/users/me/", 401)],
    ids=["success", "error"],
)
def test_actual_request_from_an_allowed_origin_carries_the_cors_headers(browser, path, status):
    response = browser.get(path, HTTP_ORIGIN=ALLOWED_ORIGIN)
    assert response.status_code == status
    assert response["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response["access-control-allow-credentials"] == "true"
    assert "origin" in header_list(response, "vary")  # caches must not mix origins


def test_actual_request_from_a_disallowed_origin_gets_no_cors_headers(browser):
    response = browser.get("/api/auth/csrf/", HTTP_ORIGIN=DISALLOWED_ORIGIN)
    assert response.status_code == 200  # CORS is enforced by the browser, which sees no grant
    assert "access-control-allow-origin" not in response
    assert "access-control-allow-credentials" not in response


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, DISALLOWED_ORIGIN])
def test_allow_origin_is_never_a_wildcard(browser, origin):
    for response in (preflight(browser, origin), browser.get("/api/auth/csrf/", HTTP_ORIGIN=origin)):
        assert response.get("access-control-allow-origin") != "*"


def test_preflight_from_a_native_app_origin_echoes_it(browser, settings):
    """settings.py adds NATIVE_APP_ORIGINS to the CORS origins: a hybrid app's web view checks CORS
    like a browser."""
    settings.ACCOUNTS_NATIVE_APP_ORIGINS = ["capacitor://localhost"]
    settings.CORS_ALLOWED_ORIGINS = [*settings.CORS_ALLOWED_ORIGINS, "capacitor://localhost"]
    response = preflight(browser, "capacitor://localhost", path="/api/auth/login/")
    assert response.status_code == 200
    assert response["access-control-allow-origin"] == "capacitor://localhost"
    assert preflight(browser, "ionic://localhost").get("access-control-allow-origin") is None
