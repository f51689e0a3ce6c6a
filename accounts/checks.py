"""Startup checks that refuse unsafe or misspelled configurations (run by manage.py and by wsgi.py)."""

import difflib

from django.conf import settings
from django.core import checks
from django.core.checks.security.base import SECRET_KEY_INSECURE_PREFIX
from django.core.exceptions import ImproperlyConfigured
from rest_framework_simplejwt.settings import DEFAULTS as SIMPLE_JWT_DEFAULTS

from . import keys
from .conf import AppSettings, app_settings, jwt_settings

MIN_HMAC_KEY_BYTES = 32  # RFC 7518 section 3.2: an HS256 key must be at least as long as the hash


@checks.register(checks.Tags.security)
def check_cors_credentials(app_configs=None, **kwargs):
    """Credentialed CORS must name its origins: a wildcard would let any site read the API."""
    origins = list(getattr(settings, "CORS_ALLOWED_ORIGINS", []))
    if getattr(settings, "CORS_ALLOW_CREDENTIALS", False) and (
        getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False)
        or getattr(settings, "CORS_ORIGIN_ALLOW_ALL", False)  # the setting's older name, still honoured
        or "*" in origins
    ):
        return [
            checks.Error(
                "CORS allows every origin while sending credentials.",
                hint="List the SPA origins in CORS_ALLOWED_ORIGINS instead.",
                id="accounts.E001",
            )
        ]
    return []


@checks.register(checks.Tags.security)
def check_refresh_cookie(app_configs=None, **kwargs):
    """SameSite must be one of the three values, and None needs Secure (browsers drop it otherwise)."""
    samesite = app_settings.REFRESH_COOKIE_SAMESITE
    if samesite not in ("Lax", "Strict", "None"):
        return [
            checks.Error(
                f"ACCOUNTS_REFRESH_COOKIE_SAMESITE is {samesite!r}.",
                hint="Use Lax, Strict or None.",
                id="accounts.E002",
            )
        ]
    if samesite == "None" and not app_settings.REFRESH_COOKIE_SECURE:
        return [
            checks.Error(
                "The refresh cookie has SameSite=None without Secure.",
                hint="Set ACCOUNTS_REFRESH_COOKIE_SECURE to True (or use SameSite=Lax).",
                id="accounts.E003",
            )
        ]
    if app_settings.REFRESH_COOKIE_PARTITIONED and not (
        samesite == "None" and app_settings.REFRESH_COOKIE_SECURE
    ):
        return [
            checks.Error(
                "The refresh cookie is Partitioned without SameSite=None and Secure.",
                hint="Partitioned (CHIPS) is for cross-site embedding: set SameSite=None and Secure, "
                "or set ACCOUNTS_REFRESH_COOKIE_PARTITIONED to False.",
                id="accounts.E006",
            )
        ]
    return []


@checks.register(checks.Tags.security)
def check_secret_key(app_configs=None, **kwargs):
    """A development key is public: refuse it outside DEBUG.

    Django's convention marks one by its prefix (``startproject`` writes "django-insecure-..."), so
    the app needs nothing from the project to recognise it.
    """
    if not settings.DEBUG and settings.SECRET_KEY.startswith(SECRET_KEY_INSECURE_PREFIX):
        return [
            checks.Error(
                "DEBUG is off but SECRET_KEY is a development key (it starts with "
                f"{SECRET_KEY_INSECURE_PREFIX!r}).",
                hint="Set SECRET_KEY to a long random value.",
                id="accounts.E004",
            )
        ]
    return []


@checks.register(checks.Tags.security)
def check_signing_key(app_configs=None, **kwargs):
    """An HMAC signing key shorter than the hash output weakens every token."""
    if (
        app_settings.ALGORITHM.startswith("HS")
        and len((jwt_settings().SIGNING_KEY or "").encode()) < MIN_HMAC_KEY_BYTES
    ):
        return [
            checks.Error(
                f"The JWT signing key is shorter than {MIN_HMAC_KEY_BYTES} bytes.",
                hint="Set SECRET_KEY (or SIMPLE_JWT['SIGNING_KEY']) to a longer random value.",
                id="accounts.E005",
            )
        ]
    return []


def setting_names() -> list[str]:
    """The names the app reads as ``ACCOUNTS_<NAME>``: AppSettings' properties, less simplejwt's own
    settings (lifetimes, algorithm, issuer, audience), read from ``SIMPLE_JWT``."""
    return sorted(
        name
        for name, member in vars(AppSettings).items()
        if isinstance(member, property) and name not in SIMPLE_JWT_DEFAULTS
    )


@checks.register(checks.Tags.security)
def check_unknown_settings(app_configs=None, **kwargs):
    """An ``ACCOUNTS_*`` setting the app does not read is a mistake that would silently not apply."""
    prefix = AppSettings.prefix
    known = [prefix + name for name in setting_names()]
    unknown = [name for name in dir(settings) if name.startswith(prefix) and name not in known]
    return [
        checks.Error(
            f"{name} is not a setting of the accounts app.",
            hint=unknown_setting_hint(name, known),
            id="accounts.E007",
        )
        for name in unknown
    ]


def unknown_setting_hint(name: str, known: list[str]) -> str:
    """Where the value belongs: the closest known name, or SIMPLE_JWT for a token lifetime."""
    bare = name.removeprefix(AppSettings.prefix)
    if bare in SIMPLE_JWT_DEFAULTS:
        return f"It is simplejwt's setting: set SIMPLE_JWT[{bare!r}]."
    if close := difflib.get_close_matches(name, known, n=1):
        return f"Did you mean {close[0]}?"
    return f"The accounts settings are {', '.join(known)}."


@checks.register(checks.Tags.security)
def check_renamed_settings(app_configs=None, **kwargs):
    """The app's settings were named ``AUTH_<NAME>`` before ``ACCOUNTS_<NAME>``: an old
    configuration must not silently stop applying. Only those names: Django's own ``AUTH_*``
    settings (AUTH_USER_MODEL, AUTH_PASSWORD_VALIDATORS) are none of the app's business."""
    renamed = {f"AUTH_{name}": AppSettings.prefix + name for name in setting_names()}
    return [
        checks.Error(
            f"{old} is no longer read: the accounts app's settings are now named ACCOUNTS_*.",
            hint=f"Rename it to {new}.",
            id="accounts.E008",
        )
        for old, new in renamed.items()
        if hasattr(settings, old)
    ]


KEY_ERROR_IDS = {
    keys.UnsupportedAlgorithm: "accounts.E009",
    keys.NoSigningKey: "accounts.E010",
    keys.UnreadableKey: "accounts.E011",
    keys.WrongKeyType: "accounts.E012",
    keys.WeakKey: "accounts.E013",
    keys.PrivateVerifyKey: "accounts.E014",
    keys.KeysWithoutAlgorithm: "accounts.E015",
}


@checks.register(checks.Tags.security)
def check_jwt_keys(app_configs=None, **kwargs):
    """The JWT keys must exist, be readable, suit the algorithm and be strong enough; a private key
    never sits among the verify-only keys, and key files are not listed where nothing reads them."""
    return [
        checks.Error(str(e), hint=e.hint, id=KEY_ERROR_IDS[type(e)])
        for e in keys.KeyConfig.current().errors()
    ]


def refuse_unsafe_configuration() -> None:
    """Raise ImproperlyConfigured if any check above fails (for app servers, which skip checks)."""
    errors = [e for e in checks.run_checks(tags=[checks.Tags.security]) if e.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(f"{e.id}: {e.msg}" for e in errors))
