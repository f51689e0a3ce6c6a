"""Startup checks refuse unsafe configuration, both as functions and through manage.py check."""

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts import checks
from accounts.conf import app_settings
from authproject.settings import DEFAULT_CORS_ORIGINS, DEVELOPMENT_SECRET_KEY

from .helpers import manage_py

BASE_DIR = Path(__file__).resolve().parent.parent
LONG_SECRET = "a-long-random-production-secret-key-" + "x" * 40
ACCOUNTS_CHECKS = [
    checks.check_cors_credentials,
    checks.check_refresh_cookie,
    checks.check_secret_key,
    checks.check_signing_key,
    checks.check_unknown_settings,
    checks.check_renamed_settings,
]


def error_ids() -> list[str]:
    """The ids of the serious messages every accounts check returns now."""
    return [m.id for check in ACCOUNTS_CHECKS for m in check(app_configs=None) if m.is_serious()]


@pytest.fixture
def safe(settings):
    """The production defaults with a long secret: every test below changes one thing."""
    settings.DEBUG = False
    settings.SECRET_KEY = LONG_SECRET
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": LONG_SECRET, "ALGORITHM": "HS256"}
    settings.CORS_ALLOWED_ORIGINS = list(DEFAULT_CORS_ORIGINS)
    settings.CORS_ALLOW_CREDENTIALS = True
    settings.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "Lax"
    settings.ACCOUNTS_REFRESH_COOKIE_SECURE = True
    return settings


def test_the_safe_default_configuration_has_no_errors(safe):
    assert error_ids() == []
    checks.refuse_unsafe_configuration()  # does not raise


# --- E001: credentialed CORS for every origin -----------------------------------------------
def test_allow_all_origins_with_credentials_is_e001(safe):
    safe.CORS_ALLOW_ALL_ORIGINS = True
    assert error_ids() == ["accounts.E001"]


def test_a_wildcard_in_the_allowed_origins_is_e001(safe):
    safe.CORS_ALLOWED_ORIGINS = [*DEFAULT_CORS_ORIGINS, "*"]
    assert error_ids() == ["accounts.E001"]


def test_allow_all_origins_without_credentials_is_allowed(safe):
    safe.CORS_ALLOW_ALL_ORIGINS = True
    safe.CORS_ALLOW_CREDENTIALS = False
    assert error_ids() == []


@pytest.mark.django_db
def test_the_legacy_allow_all_setting_with_credentials_is_e001(safe, client):
    """django-cors-headers still honours CORS_ORIGIN_ALLOW_ALL, the old name of the setting."""
    assert not hasattr(safe, "CORS_ALLOW_ALL_ORIGINS")  # settings.py leaves the new name unset
    safe.CORS_ORIGIN_ALLOW_ALL = True
    response = client.get("/api/auth/csrf/", HTTP_ORIGIN="http://evil.example")
    # Any site may now read credentialed responses...
    assert response["access-control-allow-origin"] == "http://evil.example"
    assert response["access-control-allow-credentials"] == "true"
    # ...so the startup check must refuse it.
    assert error_ids() == ["accounts.E001"]


# --- E002, E003: the refresh cookie's SameSite ----------------------------------------------
@pytest.mark.parametrize("samesite", ["Lax", "Strict"])
def test_lax_and_strict_pass(safe, samesite):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = samesite
    assert error_ids() == []


def test_samesite_none_with_secure_passes(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    assert error_ids() == []


def test_samesite_none_without_secure_is_e003(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    safe.ACCOUNTS_REFRESH_COOKIE_SECURE = False
    assert error_ids() == ["accounts.E003"]


def test_a_partitioned_cookie_with_samesite_none_and_secure_passes(safe):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = "None"
    safe.ACCOUNTS_REFRESH_COOKIE_PARTITIONED = True
    assert error_ids() == []


@pytest.mark.parametrize("samesite", ["Lax", "Strict"])
def test_a_partitioned_cookie_without_samesite_none_is_e006(safe, samesite):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = samesite
    safe.ACCOUNTS_REFRESH_COOKIE_PARTITIONED = True
    assert error_ids() == ["accounts.E006"]


@pytest.mark.parametrize("samesite", ["Sometimes", "", "Lax; Secure"])
def test_an_unknown_samesite_value_is_e002(safe, samesite):
    safe.ACCOUNTS_REFRESH_COOKIE_SAMESITE = samesite
    assert error_ids() == ["accounts.E002"]


# --- E004: the development key outside DEBUG ------------------------------------------------
def test_the_development_key_with_debug_off_is_e004(safe):
    safe.SECRET_KEY = DEVELOPMENT_SECRET_KEY
    assert [m.id for m in checks.check_secret_key(app_configs=None)] == ["accounts.E004"]


def test_any_key_with_djangos_insecure_prefix_with_debug_off_is_e004(safe):
    """Not only this project's development key: any key marked as one by Django's convention."""
    safe.SECRET_KEY = "django-insecure-" + "x" * 50
    assert [m.id for m in checks.check_secret_key(app_configs=None)] == ["accounts.E004"]


def test_the_development_key_with_debug_on_passes(safe):
    safe.SECRET_KEY = DEVELOPMENT_SECRET_KEY
    safe.DEBUG = True
    assert checks.check_secret_key(app_configs=None) == []


# --- E005: a short HMAC signing key ---------------------------------------------------------
def test_a_signing_key_shorter_than_32_bytes_is_e005(safe):
    safe.SIMPLE_JWT = {**safe.SIMPLE_JWT, "SIGNING_KEY": "short"}
    assert error_ids() == ["accounts.E005"]


def test_a_signing_key_of_32_bytes_passes(safe):
    safe.SIMPLE_JWT = {**safe.SIMPLE_JWT, "SIGNING_KEY": "k" * 32}
    assert error_ids() == []


# --- E007, E008: unknown and renamed settings ------------------------------------------------
def test_the_known_settings_are_the_app_settings_without_the_token_lifetimes():
    """Derived from AppSettings' properties; the lifetimes are read from SIMPLE_JWT instead."""
    assert checks.setting_names() == [
        "ACCESS_TOKEN_CHECKS_SESSION",
        "AUDIT_RETENTION",
        "LOGIN_IP_THROTTLE_RATE",
        "LOGIN_THROTTLE_RATE",
        "REFRESH_BODY_TRANSPORT",
        "REFRESH_COOKIE_DOMAIN",
        "REFRESH_COOKIE_NAME",
        "REFRESH_COOKIE_PARTITIONED",
        "REFRESH_COOKIE_PATH",
        "REFRESH_COOKIE_SAMESITE",
        "REFRESH_COOKIE_SECURE",
        "REFRESH_GRACE",
        "SESSION_MAX_AGE",
        "SESSION_RETENTION",
    ]


def test_every_known_setting_passes(safe):
    for name in checks.setting_names():
        setattr(safe, f"ACCOUNTS_{name}", getattr(app_settings, name))
    assert error_ids() == []


def test_a_misspelled_setting_is_e007_and_the_hint_names_the_closest_one(safe):
    safe.ACCOUNTS_REFRESH_GRAVE = timedelta(seconds=30)

    [error] = checks.check_unknown_settings(app_configs=None)

    assert error.id == "accounts.E007"
    assert "ACCOUNTS_REFRESH_GRAVE" in error.msg
    assert error.hint == "Did you mean ACCOUNTS_REFRESH_GRACE?"


def test_each_unknown_setting_is_its_own_e007(safe):
    safe.ACCOUNTS_SESSION_MAXAGE = timedelta(hours=1)
    safe.ACCOUNTS_LOGIN_THROTTLE = "1/min"
    assert error_ids() == ["accounts.E007", "accounts.E007"]
    hints = {e.hint for e in checks.check_unknown_settings(app_configs=None)}
    assert hints == {"Did you mean ACCOUNTS_SESSION_MAX_AGE?", "Did you mean ACCOUNTS_LOGIN_THROTTLE_RATE?"}


def test_an_unknown_setting_with_no_close_match_is_e007_and_the_hint_lists_the_known_ones(safe):
    safe.ACCOUNTS_XYZZY = 1
    [error] = checks.check_unknown_settings(app_configs=None)
    assert error.id == "accounts.E007"
    assert "ACCOUNTS_REFRESH_GRACE" in error.hint


@pytest.mark.parametrize("name", ["ACCESS_TOKEN_LIFETIME", "REFRESH_TOKEN_LIFETIME"])
def test_a_token_lifetime_under_the_accounts_prefix_is_e007_pointing_to_simple_jwt(safe, name):
    setattr(safe, f"ACCOUNTS_{name}", timedelta(minutes=1))
    [error] = checks.check_unknown_settings(app_configs=None)
    assert error.id == "accounts.E007"
    assert f"SIMPLE_JWT['{name}']" in error.hint


@pytest.mark.parametrize(
    "old, new",
    [
        ("AUTH_REFRESH_GRACE", "ACCOUNTS_REFRESH_GRACE"),
        ("AUTH_REFRESH_COOKIE_SECURE", "ACCOUNTS_REFRESH_COOKIE_SECURE"),
        ("AUTH_ACCESS_TOKEN_CHECKS_SESSION", "ACCOUNTS_ACCESS_TOKEN_CHECKS_SESSION"),
    ],
)
def test_a_setting_under_its_old_auth_name_is_e008_naming_the_new_one(safe, old, new):
    setattr(safe, old, getattr(app_settings, new.removeprefix("ACCOUNTS_")))

    [error] = checks.check_renamed_settings(app_configs=None)

    assert error.id == "accounts.E008"
    assert old in error.msg
    assert error.hint == f"Rename it to {new}."


def test_djangos_own_auth_settings_are_not_refused(safe):
    safe.AUTH_USER_MODEL = "accounts.User"
    safe.AUTH_PASSWORD_VALIDATORS = []
    assert checks.check_renamed_settings(app_configs=None) == []
    assert checks.check_unknown_settings(app_configs=None) == []


# --- refuse_unsafe_configuration (what wsgi.py runs) ----------------------------------------
@pytest.mark.parametrize(
    "unsafe",
    [
        {"CORS_ALLOW_ALL_ORIGINS": True},
        {"ACCOUNTS_REFRESH_COOKIE_SAMESITE": "None", "ACCOUNTS_REFRESH_COOKIE_SECURE": False},
        {"ACCOUNTS_REFRESH_COOKIE_SAMESITE": "bogus"},
        {"SECRET_KEY": DEVELOPMENT_SECRET_KEY},
        {"ACCOUNTS_REFRESH_GRAVE": timedelta(0)},
        {"AUTH_REFRESH_GRACE": timedelta(0)},
    ],
    ids=["E001", "E003", "E002", "E004", "E007", "E008"],
)
def test_refuse_unsafe_configuration_raises_improperly_configured(safe, unsafe, request):
    for key, value in unsafe.items():
        setattr(safe, key, value)
    with pytest.raises(ImproperlyConfigured, match=f"accounts.{request.node.callspec.id}"):
        checks.refuse_unsafe_configuration()


# --- manage.py check, in a fresh process reading the environment -----------------------------
def manage_check(**environment) -> subprocess.CompletedProcess:
    return manage_py("check", unset=("DJANGO_SECRET_KEY", "DJANGO_DEBUG"), **environment)


def test_manage_check_fails_with_debug_off_and_no_secret_key():
    result = manage_check(DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "accounts.E004" in result.stderr


def test_manage_check_passes_with_debug_off_and_a_long_secret_key():
    result = manage_check(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=LONG_SECRET)
    assert result.returncode == 0, result.stderr
    assert "accounts." not in result.stdout + result.stderr
