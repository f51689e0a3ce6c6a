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


# --- two refresh cookies: a sibling subdomain's and ours -------------------------------------
def post_with_cookie_header(browser, path: str, cookies: str):
    """A POST whose Cookie header is exactly ``cookies`` (with the CSRF cookie): a test client's
    jar holds one cookie per name, a browser sends one per (name, domain, path) it holds."""
    csrf = browser.csrf_token or browser.fetch_csrf()
    header = f"csrftoken={csrf}; {cookies}"
    return browser.post(path, {}, format="json", HTTP_X_CSRFTOKEN=csrf, HTTP_COOKIE=header)


@pytest.fixture
def victim_and_attacker(browser, user, user_factory):
    """The victim's browser signed in; the attacker's refresh token, for their own account, which a
    sibling subdomain has set for the parent domain in the victim's browser."""
    from .helpers import BrowserClient

    user_factory(username="mallory")
    victim = browser.sign_in().cookies["refresh_token"].value
    attacker = BrowserClient().sign_in(username="mallory").cookies["refresh_token"].value
    return victim, attacker


def sessions_as_they_are():
    return sorted(Session.objects.values_list("pk", "refresh_jti", "revoked_at"))


@pytest.mark.parametrize("path", ["/api/auth/refresh/", "/api/auth/logout/"])
@pytest.mark.parametrize("attacker_first", [True, False], ids=["attacker-first", "attacker-last"])
def test_two_refresh_cookies_are_refused_with_400_and_neither_is_used(
    browser, victim_and_attacker, path, attacker_first
):
    victim, attacker = victim_and_attacker
    before = sessions_as_they_are()
    pair = [attacker, victim] if attacker_first else [victim, attacker]
    response = post_with_cookie_header(browser, path, "; ".join(f"refresh_token={t}" for t in pair))
    assert response.status_code == 400, response.content
    assert response.json() == {
        "detail": "The request carries more than one refresh token cookie; neither is used.",
        "code": "duplicate_refresh_cookie",
    }
    assert "refresh_token" not in response.cookies  # neither set nor deleted: ours is kept
    assert sessions_as_they_are() == before  # neither rotated nor revoked


def test_one_refresh_cookie_in_a_written_cookie_header_still_rotates(browser, victim_and_attacker):
    victim, _ = victim_and_attacker
    response = post_with_cookie_header(browser, "/api/auth/refresh/", f"refresh_token={victim}")
    assert response.status_code == 200, response.content
    assert response.cookies["refresh_token"].value not in ("", victim)


HOST_PREFIXED = "__Host-refresh_token"


def test_the_host_prefix_names_the_cookie_with_path_slash_secure_and_no_domain(browser, user, settings):
    settings.ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX = True
    for response in (browser.sign_in(), browser.refresh(), browser.sign_out()):
        assert response.status_code == 200, response.content
        assert "refresh_token" not in response.cookies
        attributes = set_cookie_attributes(response, HOST_PREFIXED)
        assert attributes["path"] == "/" and "domain" not in attributes
        assert attributes.get("secure") is True and attributes.get("httponly") is True
    assert attributes["max-age"] == "0"  # logout deleted it under the same name and path


def test_with_the_host_prefix_a_siblings_unprefixed_cookie_is_ignored(
    browser, victim_and_attacker, settings
):
    """The sibling can set ``refresh_token`` for the parent domain, never ``__Host-refresh_token``:
    the victim's own cookie is the one used, and the victim stays in their own account."""
    settings.ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX = True
    victim, attacker = victim_and_attacker
    cookies = f"refresh_token={attacker}; {HOST_PREFIXED}={victim}"
    response = post_with_cookie_header(browser, "/api/auth/refresh/", cookies)
    assert response.status_code == 200, response.content
    rotated = response.cookies[HOST_PREFIXED].value
    assert RefreshToken(rotated).session_id == RefreshToken(victim).session_id
