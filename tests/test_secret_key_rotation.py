"""DJANGO_SECRET_KEY_FALLBACKS (Django's SECRET_KEY_FALLBACKS): HS256 tokens signed with an earlier
secret key still verify, new ones are signed with the current key, Django's own signing follows as
Django does, and a weak fallback is refused at startup (accounts.E041)."""

import time

import jwt
import pytest
from django.core import signing

from accounts import checks

from .helpers import assert_json_error, claims, manage_py

pytestmark = pytest.mark.django_db

OLD_KEY = "the-secret-key-before-the-rotation-" + "o" * 30
NEW_KEY = "the-secret-key-after-the-rotation-" + "n" * 30
STRANGERS_KEY = "a-key-this-service-never-had-" + "s" * 30


@pytest.fixture
def use_secret(settings):
    """``use_secret(key, fallbacks)``: SECRET_KEY and its fallbacks, the JWT signing key being
    SECRET_KEY (as authproject's settings make it)."""

    def use(key: str, fallbacks=()) -> None:
        settings.SECRET_KEY = key
        settings.SECRET_KEY_FALLBACKS = list(fallbacks)
        settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": key, "ALGORITHM": "HS256"}

    return use


@pytest.fixture
def signed_in_before_rotation(use_secret, browser, user):
    """A browser signed in while OLD_KEY was the secret key; ``browser.access`` is its token."""
    use_secret(OLD_KEY)
    response = browser.sign_in()
    assert response.status_code == 200, response.content
    browser.access = response.json()["access"]
    browser.fetch_csrf()
    return browser


def verifies_with(raw: str, key: str) -> bool:
    try:
        jwt.decode(raw, key, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.InvalidSignatureError:
        return False
    return True


def test_tokens_signed_with_a_fallback_key_still_verify_and_new_ones_use_the_current_key(
    signed_in_before_rotation, use_secret
):
    browser = signed_in_before_rotation
    use_secret(NEW_KEY, fallbacks=[OLD_KEY])

    assert browser.bearer(browser.access).get("/api/users/me/").status_code == 200
    refresh = browser.refresh()

    assert refresh.status_code == 200, refresh.content
    access = refresh.json()["access"]
    for issued in (access, browser.refresh_cookie):
        assert verifies_with(issued, NEW_KEY) and not verifies_with(issued, OLD_KEY)
    assert browser.bearer(access).get("/api/users/me/").status_code == 200


def test_without_the_fallback_the_old_tokens_are_refused(signed_in_before_rotation, use_secret):
    browser = signed_in_before_rotation
    use_secret(NEW_KEY)

    assert_json_error(browser.bearer(browser.access).get("/api/users/me/"), 401, "token_not_valid")
    assert_json_error(browser.refresh(), 401, "token_not_valid")


def test_a_token_signed_with_a_key_in_neither_list_is_refused(signed_in_before_rotation, use_secret):
    browser = signed_in_before_rotation
    use_secret(NEW_KEY, fallbacks=[OLD_KEY])
    forged = jwt.encode(claims(browser.access), STRANGERS_KEY, algorithm="HS256")

    assert_json_error(browser.bearer(forged).get("/api/users/me/"), 401, "token_not_valid")


def test_an_expired_token_signed_with_a_fallback_key_is_token_expired(signed_in_before_rotation, use_secret):
    browser = signed_in_before_rotation
    use_secret(NEW_KEY, fallbacks=["another-earlier-key-" + "e" * 30, OLD_KEY])
    now = int(time.time())
    expired = jwt.encode({**claims(browser.access), "iat": now - 3600, "exp": now - 60}, OLD_KEY)

    assert_json_error(browser.bearer(expired).get("/api/users/me/"), 401, "token_expired")


def test_a_signing_key_of_its_own_has_no_fallbacks(signed_in_before_rotation, settings):
    """SECRET_KEY_FALLBACKS are earlier SECRET_KEYs: they say nothing about a JWT key set apart."""
    browser = signed_in_before_rotation
    settings.SECRET_KEY = NEW_KEY
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY]
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": "a-jwt-key-of-its-own-" + "j" * 30}

    assert_json_error(browser.bearer(browser.access).get("/api/users/me/"), 401, "token_not_valid")


def test_an_asymmetric_algorithm_ignores_the_fallbacks(
    signed_in_before_rotation, settings, use_keys, key_file
):
    browser = signed_in_before_rotation
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY]
    use_keys("ES256", signing=[key_file("ES256")])

    assert_json_error(browser.bearer(browser.access).get("/api/users/me/"), 401, "token_not_valid")


def test_djangos_signing_follows_the_fallbacks(use_secret):
    use_secret(OLD_KEY)
    value = signing.dumps({"n": 1}, salt="test")
    use_secret(NEW_KEY, fallbacks=[OLD_KEY])
    assert signing.loads(value, salt="test") == {"n": 1}
    assert signing.dumps({"n": 1}, salt="test") != value  # signed with the new key
    use_secret(NEW_KEY)
    with pytest.raises(signing.BadSignature):
        signing.loads(value, salt="test")


# --- the setting, and accounts.E041 ----------------------------------------------------------------
def test_the_variable_is_a_comma_list_of_keys():
    result = manage_py(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY_FALLBACKS)",
        DJANGO_DEBUG="1",
        DJANGO_SECRET_KEY_FALLBACKS=f" {OLD_KEY}, {STRANGERS_KEY},",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == repr([OLD_KEY, STRANGERS_KEY])


@pytest.mark.parametrize(
    "fallback, debug",
    [("short-key", True), ("django-insecure-" + "d" * 40, False)],
    ids=["shorter than 32 bytes", "a development key with DEBUG off"],
)
def test_a_weak_fallback_is_e041(settings, fallback, debug):
    settings.DEBUG = debug
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY, fallback]
    [error] = checks.check_secret_key_fallbacks()
    assert error.id == "accounts.E041" and "Key 2 of SECRET_KEY_FALLBACKS" in error.msg


def test_long_random_fallbacks_pass(settings):
    settings.DEBUG = False
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY, NEW_KEY]
    assert checks.check_secret_key_fallbacks() == []


def test_manage_py_check_refuses_a_short_fallback_naming_the_variable():
    result = manage_py("check", DJANGO_DEBUG="1", DJANGO_SECRET_KEY_FALLBACKS="too-short")
    assert result.returncode == 1
    assert "accounts.E041" in result.stderr and "DJANGO_SECRET_KEY_FALLBACKS" in result.stderr
