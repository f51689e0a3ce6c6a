"""The refresh cookie's attributes, read from the Set-Cookie text as a browser would."""

import time
from datetime import timedelta

import pytest

from accounts.models import Session
from accounts.tokens import RefreshToken

from .helpers import set_cookie_attributes

pytestmark = pytest.mark.django_db

REFRESH_PATH = "/api/auth/"


def assert_max_age_follows_exp(attributes: dict) -> None:
    """Max-Age is the token's own ``exp`` minus now, within two seconds."""
    exp = RefreshToken(attributes["value"])["exp"]
    assert abs(int(attributes["max-age"]) - (exp - time.time())) <= 2, (attributes["max-age"], exp)


def assert_deletes_cookie(response, *, name="refresh_token", domain=None, samesite="Lax") -> None:
    """The response expires the cookie with the attributes it was set with."""
    attributes = set_cookie_attributes(response, name)
    assert attributes["value"] in ("", '""')
    assert attributes["max-age"] == "0"
    assert attributes["path"] == REFRESH_PATH
    assert attributes.get("domain") == domain
    assert attributes["samesite"] == samesite
    assert attributes.get("httponly") is True
    assert attributes.get("secure") is True


# --- set ------------------------------------------------------------------------------------
def test_login_sets_an_httponly_secure_lax_cookie_scoped_to_the_auth_path(browser, user):
    response = browser.sign_in()
    assert response.status_code == 200
    attributes = set_cookie_attributes(response)
    assert attributes["name"] == "refresh_token"
    assert attributes.get("httponly") is True
    assert attributes.get("secure") is True
    assert attributes["samesite"] == "Lax"
    assert attributes["path"] == REFRESH_PATH
    assert "domain" not in attributes  # host-only by default
    token = RefreshToken(attributes["value"])
    assert token.jti == Session.objects.get(user=user).refresh_jti


def test_login_cookie_max_age_follows_the_refresh_tokens_exp(browser, user):
    attributes = set_cookie_attributes(browser.sign_in())
    assert_max_age_follows_exp(attributes)
    # The default idle timeout is 7 days: a session cookie (no Max-Age) or a stale one would fail.
    assert abs(int(attributes["max-age"]) - 7 * 24 * 3600) <= 2


def test_login_cookie_max_age_follows_an_overridden_refresh_lifetime(browser, user, settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "REFRESH_TOKEN_LIFETIME": timedelta(hours=1)}
    attributes = set_cookie_attributes(browser.sign_in())
    assert_max_age_follows_exp(attributes)
    assert abs(int(attributes["max-age"]) - 3600) <= 2


def test_rotated_cookie_keeps_the_attributes_and_max_age_follows_the_new_exp(signed_in):
    first = signed_in.refresh_cookie
    response = signed_in.refresh()
    assert response.status_code == 200
    attributes = set_cookie_attributes(response)
    assert attributes["value"] != first
    assert attributes.get("httponly") is True and attributes.get("secure") is True
    assert attributes["samesite"] == "Lax" and attributes["path"] == REFRESH_PATH
    assert_max_age_follows_exp(attributes)


# --- settings read at use -------------------------------------------------------------------
def test_samesite_strict_setting_applies_without_restart(browser, user, settings):
    assert set_cookie_attributes(browser.sign_in())["samesite"] == "Lax"
    settings.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "Strict"
    assert set_cookie_attributes(browser.sign_in())["samesite"] == "Strict"


def test_cookie_domain_setting_applies_without_restart(browser, user, settings):
    assert "domain" not in set_cookie_attributes(browser.sign_in())
    settings.ACCOUNTS_REFRESH_COOKIE_DOMAIN = "example.com"
    assert set_cookie_attributes(browser.sign_in())["domain"] == "example.com"


def test_cookie_name_setting_applies_to_set_and_read_without_restart(browser, user, settings):
    assert "refresh_token" in browser.sign_in().cookies
    browser.cookies.clear()
    settings.ACCOUNTS_REFRESH_COOKIE_NAME = "rt"
    response = browser.sign_in()
    assert "refresh_token" not in response.cookies
    attributes = set_cookie_attributes(response, "rt")
    assert attributes["name"] == "rt" and attributes["path"] == REFRESH_PATH
    # The refresh view reads the cookie under its new name too.
    refreshed = browser.refresh()
    assert refreshed.status_code == 200, refreshed.content
    assert set_cookie_attributes(refreshed, "rt")["value"] != attributes["value"]


def test_a_partitioned_cookie_carries_the_flag_when_set_rotated_and_deleted(browser, user, settings):
    settings.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    settings.ACCOUNTS_REFRESH_COOKIE_PARTITIONED = True
    for response in (browser.sign_in(), browser.refresh(), browser.sign_out()):
        assert response.status_code == 200, response.content
        attributes = set_cookie_attributes(response)
        assert attributes["samesite"] == "None"
        assert attributes.get("partitioned") is True
        assert attributes.get("secure") is True


def test_cookies_are_not_partitioned_by_default(browser, user):
    assert "partitioned" not in set_cookie_attributes(browser.sign_in())


# --- delete ---------------------------------------------------------------------------------
CONFIGURATIONS = {
    "defaults": {},
    "strict, domain, renamed": {
        "ACCOUNTS_REFRESH_COOKIE_SAMESITE": "Strict",
        "ACCOUNTS_REFRESH_COOKIE_DOMAIN": "example.com",
        "ACCOUNTS_REFRESH_COOKIE_NAME": "rt",
    },
}


def _configure(settings, overrides: dict) -> dict:
    for key, value in overrides.items():
        setattr(settings, key, value)
    return {
        "name": overrides.get("ACCOUNTS_REFRESH_COOKIE_NAME", "refresh_token"),
        "domain": overrides.get("ACCOUNTS_REFRESH_COOKIE_DOMAIN"),
        "samesite": overrides.get("ACCOUNTS_REFRESH_COOKIE_SAMESITE", "Lax"),
    }


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_logout_deletes_the_cookie_with_the_same_name_path_domain_and_samesite(
    browser, user, settings, overrides
):
    expected = _configure(settings, overrides)
    set_attributes = set_cookie_attributes(browser.sign_in(), expected["name"])
    response = browser.sign_out()
    assert response.status_code == 200
    assert_deletes_cookie(response, **expected)
    deleted = set_cookie_attributes(response, expected["name"])
    for attribute in ("path", "domain", "samesite"):
        assert deleted.get(attribute) == set_attributes.get(attribute)


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_logout_without_a_cookie_still_deletes_it(browser, settings, overrides):
    expected = _configure(settings, overrides)
    response = browser.sign_out()
    assert response.status_code == 200
    assert_deletes_cookie(response, **expected)


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_logout_all_deletes_the_cookie_with_the_same_attributes(browser, user, settings, overrides):
    expected = _configure(settings, overrides)
    access = browser.sign_in().json()["access"]
    response = browser.bearer(access).post("/api/auth/logout-all/", {}, format="json")
    assert response.status_code == 200
    assert_deletes_cookie(response, **expected)


@pytest.mark.parametrize("overrides", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_failed_refresh_of_a_revoked_session_deletes_the_cookie(browser, user, settings, overrides):
    expected = _configure(settings, overrides)
    old = set_cookie_attributes(browser.sign_in(), expected["name"])["value"]
    assert browser.sign_out().status_code == 200
    browser.cookies[expected["name"]] = old  # a stale copy, e.g. another tab
    response = browser.refresh()
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    assert_deletes_cookie(response, **expected)
