"""accounts.conf: every default lives there, and a project setting overrides it when it is set."""

from datetime import timedelta

import pytest
from django.test import override_settings

from accounts.conf import app_settings

DEFAULTS = {  # the values the README's configuration table documents
    "REFRESH_COOKIE_NAME": "refresh_token",
    "REFRESH_COOKIE_PATH": "/api/auth/",
    "REFRESH_COOKIE_DOMAIN": None,
    "REFRESH_COOKIE_SECURE": True,
    "REFRESH_COOKIE_SAMESITE": "Lax",
    "REFRESH_COOKIE_PARTITIONED": False,
    "SESSION_MAX_AGE": timedelta(days=30),
    "REFRESH_GRACE": timedelta(seconds=10),
    "ACCESS_TOKEN_CHECKS_SESSION": True,
    "SESSION_RETENTION": timedelta(days=7),
    "AUDIT_RETENTION": timedelta(days=180),
    "LOGIN_THROTTLE_RATE": "5/min",
    "LOGIN_USERNAME_THROTTLE_RATE": "30/min",
    "LOGIN_IP_THROTTLE_RATE": "60/min",
    "REGISTER_THROTTLE_RATE": "10/hour",
    "PASSWORD_CHANGE_THROTTLE_RATE": "5/min",
    "JWT_SIGNING_KEYS": [],
    "JWT_VERIFY_KEYS": [],
    "JWKS_MAX_AGE": timedelta(hours=1),
    "NATIVE_APP_ORIGINS": [],
    "PASSWORD_RESET_URL": "http://localhost:5173/#reset={key}",
    "PASSWORD_RESET_TIMEOUT": timedelta(hours=1),
    "PASSWORD_RESET_THROTTLE_RATE": "5/hour",
    "PASSWORD_RESET_CONFIRM_THROTTLE_RATE": "20/hour",
    "SITE_NAME": "authproject",
    "WORKER_METRICS_HOST": "127.0.0.1",
    "WORKER_METRICS_PORT": 9108,
}
LIFETIMES = ("ACCESS_TOKEN_LIFETIME", "REFRESH_TOKEN_LIFETIME")


@pytest.mark.parametrize(("name", "default"), DEFAULTS.items(), ids=DEFAULTS)
def test_an_unset_setting_takes_the_default_from_conf(settings, name, default):
    if hasattr(settings, f"ACCOUNTS_{name}"):
        delattr(settings, f"ACCOUNTS_{name}")
    assert getattr(app_settings, name) == default


def test_a_set_setting_overrides_the_default_at_the_next_read(settings):
    assert app_settings.SESSION_MAX_AGE == timedelta(days=30)
    settings.ACCOUNTS_SESSION_MAX_AGE = timedelta(hours=1)
    assert app_settings.SESSION_MAX_AGE == timedelta(hours=1)


def test_a_value_read_is_kept_only_until_the_setting_changes_back():
    assert app_settings.REFRESH_COOKIE_NAME == "refresh_token"
    with override_settings(ACCOUNTS_REFRESH_COOKIE_NAME="rt"):
        assert app_settings.REFRESH_COOKIE_NAME == "rt"
    assert app_settings.REFRESH_COOKIE_NAME == "refresh_token"


def test_token_lifetimes_default_to_15_minutes_and_7_days_when_simple_jwt_leaves_them_out(settings):
    settings.SIMPLE_JWT = {k: v for k, v in settings.SIMPLE_JWT.items() if k not in LIFETIMES}
    assert app_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=15)
    assert app_settings.REFRESH_TOKEN_LIFETIME == timedelta(days=7)


def test_token_lifetimes_set_in_simple_jwt_override_the_defaults(settings):
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "ACCESS_TOKEN_LIFETIME": timedelta(minutes=1),
        "REFRESH_TOKEN_LIFETIME": timedelta(hours=1),
    }
    assert app_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=1)
    assert app_settings.REFRESH_TOKEN_LIFETIME == timedelta(hours=1)


def test_one_token_lifetime_set_in_simple_jwt_leaves_the_other_at_its_default(settings):
    base = {k: v for k, v in settings.SIMPLE_JWT.items() if k not in LIFETIMES}
    settings.SIMPLE_JWT = {**base, "ACCESS_TOKEN_LIFETIME": timedelta(minutes=2)}
    assert app_settings.ACCESS_TOKEN_LIFETIME == timedelta(minutes=2)
    assert app_settings.REFRESH_TOKEN_LIFETIME == timedelta(days=7)


def test_the_algorithm_is_hs256_with_no_issuer_or_audience_when_simple_jwt_leaves_them_out(settings):
    settings.SIMPLE_JWT = {}
    assert (app_settings.ALGORITHM, app_settings.ISSUER, app_settings.AUDIENCE) == ("HS256", None, None)


def test_the_algorithm_issuer_and_audience_are_read_from_simple_jwt(settings):
    settings.SIMPLE_JWT = {"ALGORITHM": "ES256", "ISSUER": "https://auth.example.com", "AUDIENCE": "api"}
    assert (app_settings.ALGORITHM, app_settings.ISSUER, app_settings.AUDIENCE) == (
        "ES256",
        "https://auth.example.com",
        "api",
    )
