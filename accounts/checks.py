"""Startup checks that refuse unsafe or misspelled configurations (run by manage.py and by wsgi.py)."""

import difflib
import ipaddress
import logging
import os
import re
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import password_validation
from django.core import checks
from django.core.checks.security.base import SECRET_KEY_INSECURE_PREFIX
from django.core.exceptions import ImproperlyConfigured
from rest_framework_simplejwt.settings import DEFAULTS as SIMPLE_JWT_DEFAULTS

from . import keys, throttles
from .conf import AppSettings, app_settings, jwt_settings
from .origin import origin_normalized

logger = logging.getLogger(__name__)

MIN_HMAC_KEY_BYTES = 32  # RFC 7518 section 3.2: an HS256 key must be at least as long as the hash
# /metrics tries a bearer token with no limit on attempts (a scraper is no user to throttle), so the
# token itself must be beyond guessing: 32 characters of token_urlsafe are 192 random bits.
MIN_METRICS_TOKEN_LENGTH = 32


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
def check_refresh_cookie_host_prefix(app_configs=None, **kwargs):
    """A ``__Host-`` cookie must be Secure and have no Domain: browsers drop one that is not."""
    if not app_settings.REFRESH_COOKIE_HOST_PREFIX:
        return []
    errors = []
    if not app_settings.REFRESH_COOKIE_SECURE:
        errors.append(
            checks.Error(
                "The refresh cookie has the __Host- prefix without Secure: browsers would drop it.",
                hint="Set ACCOUNTS_REFRESH_COOKIE_SECURE to True (REFRESH_COOKIE_SECURE=1), or turn "
                "ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX off.",
                id="accounts.E030",
            )
        )
    if app_settings.REFRESH_COOKIE_DOMAIN:
        errors.append(
            checks.Error(
                "The refresh cookie has the __Host- prefix and a Domain: browsers would drop it.",
                hint="A __Host- cookie is this host's alone: unset ACCOUNTS_REFRESH_COOKIE_DOMAIN, or "
                "turn ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX off.",
                id="accounts.E031",
            )
        )
    return errors


def bind_address_is_public(host: str) -> bool:
    """Whether an app server bound to ``host`` (gunicorn.conf.py's HOST) may be reached from the
    internet: every interface (0.0.0.0, ::) or a global address. A private, loopback or link-local
    address is not; nor, since it cannot be known here, a name."""
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    return address.is_unspecified or address.is_global


@checks.register(checks.Tags.security)
def check_proxy_headers_with_a_public_bind(app_configs=None, **kwargs):
    """Proxy headers are trusted (NUM_PROXIES, TRUST_X_FORWARDED_PROTO) while the app server binds
    a public address (the HOST environment variable, as make serve and gunicorn.conf.py read it):
    a client reaching gunicorn directly would choose its own throttle address (X-Forwarded-For)
    and claim https, and a few slow clients would hold every sync worker."""
    host = os.environ.get("HOST", "")
    num_proxies = (getattr(settings, "REST_FRAMEWORK", {}) or {}).get("NUM_PROXIES") or 0
    trusts_proto = getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is not None
    if not (host and (num_proxies or trusts_proto) and bind_address_is_public(host)):
        return []
    trusted = " and ".join(
        name
        for name, on in (("NUM_PROXIES", num_proxies), ("TRUST_X_FORWARDED_PROTO", trusts_proto))
        if on
    )
    return [
        checks.Warning(
            f"Proxy headers are trusted ({trusted}) while the app server binds {host}, a public address.",
            hint="Bind gunicorn to the address only the proxy reaches (HOST=127.0.0.1 when the proxy "
            "runs on this machine, else this server's private address) and firewall it: clients "
            "that reach gunicorn directly can set X-Forwarded-For and X-Forwarded-Proto, and slow "
            "clients can hold every worker.",
            id="accounts.W030",
        )
    ]


@checks.register(checks.Tags.security)
def check_native_app_origins(app_configs=None, **kwargs):
    """NATIVE_APP_ORIGINS get refresh tokens in a body, so each must be an app's and no web page's:
    not an origin trusted for CSRF (a browser page's, E016), and over http(s) only localhost, which
    no web site can claim (E017)."""
    browsers = {origin_normalized(origin) for origin in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    errors = []
    for origin in app_settings.NATIVE_APP_ORIGINS:
        normalized, url = origin_normalized(origin), urlsplit(origin.strip())
        if normalized is not None and normalized in browsers:
            errors.append(
                checks.Error(
                    f"{origin!r} is both a native app's origin (ACCOUNTS_NATIVE_APP_ORIGINS) and a "
                    "browser's (CSRF_TRUSTED_ORIGINS).",
                    hint="Keep it in one list: a browser page on it would get the refresh token in a "
                    "body, where its scripts can read it.",
                    id="accounts.E016",
                )
            )
        if normalized is None or (url.scheme in ("http", "https") and url.hostname != "localhost"):
            errors.append(
                checks.Error(
                    f"{origin!r} in ACCOUNTS_NATIVE_APP_ORIGINS is not a hybrid app's origin.",
                    hint="List app origins such as capacitor://localhost, ionic://localhost or "
                    "https://localhost: any other http(s) origin is a web site's, whose pages would "
                    "get the refresh token in a body.",
                    id="accounts.E017",
                )
            )
    return errors


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


@checks.register(checks.Tags.security)
def check_metrics_token(app_configs=None, **kwargs):
    """A short METRICS_TOKEN could be guessed at /metrics, which does not count attempts."""
    token = app_settings.METRICS_TOKEN
    if token and len(token) < MIN_METRICS_TOKEN_LENGTH:
        return [
            checks.Error(
                f"METRICS_TOKEN is shorter than {MIN_METRICS_TOKEN_LENGTH} characters.",
                hint="Set it to a long random value, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="accounts.E040",
            )
        ]
    return []


@checks.register()
def check_password_check_niceness(app_configs=None, **kwargs):
    """Niceness is 0 to 19 above the process's own: a negative one would ask to raise a priority,
    which an unprivileged worker may not, and every password check would fail."""
    niceness = app_settings.PASSWORD_CHECK_NICENESS
    if not isinstance(niceness, int) or not 0 <= niceness <= 19:
        return [
            checks.Error(
                f"ACCOUNTS_PASSWORD_CHECK_NICENESS is {niceness!r}, not a whole number from 0 to 19.",
                hint="Set PASSWORD_CHECK_NICENESS to 0 (hash at the requests' priority) up to 19.",
                id="accounts.E048",
            )
        ]
    return []


@checks.register(checks.Tags.security)
def check_secret_key_fallbacks(app_configs=None, **kwargs):
    """A fallback key still verifies (Django's signatures; HS256 tokens when the signing key is
    SECRET_KEY), so it must be as strong as the key itself: as long as the signing key must be
    (accounts.E005), and, outside DEBUG, no development key, which is public."""
    errors = []
    for position, key in enumerate(getattr(settings, "SECRET_KEY_FALLBACKS", []), start=1):
        if len(str(key).encode()) < MIN_HMAC_KEY_BYTES:
            problem = f"is shorter than {MIN_HMAC_KEY_BYTES} bytes"
        elif not settings.DEBUG and str(key).startswith(SECRET_KEY_INSECURE_PREFIX):
            problem = f"is a development key (it starts with {SECRET_KEY_INSECURE_PREFIX!r})"
        else:
            continue
        errors.append(
            checks.Error(
                f"Key {position} of SECRET_KEY_FALLBACKS (DJANGO_SECRET_KEY_FALLBACKS) {problem}: "
                "anything signed with it would still be accepted.",
                hint="List only earlier secret keys, each a long random value; remove a weak one.",
                id="accounts.E041",
            )
        )
    return errors


@checks.register(checks.Tags.security)
def check_mfa_encryption_keys(app_configs=None, **kwargs):
    """Every key of MFA_ENCRYPTION_KEYS must be a Fernet key: a key that is not would fail the first
    enrolment of an authenticator app (or, listed after the first, the reading of a secret)."""
    errors = []
    for position, key in enumerate(app_settings.MFA_ENCRYPTION_KEYS, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            errors.append(
                checks.Error(
                    f"Key {position} of ACCOUNTS_MFA_ENCRYPTION_KEYS (MFA_ENCRYPTION_KEYS) is not a Fernet "
                    "key (32 random bytes, URL-safe base64).",
                    hint="Make one with: python3 -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                    id="accounts.E047",
                )
            )
    return errors


@checks.register(checks.Tags.security)
def check_mail_configured(app_configs=None, **kwargs):
    """With DEBUG off, mail must go where the project said: Django's default (SMTP on localhost:25)
    would lose every mail, password reset links and security notices included, in a log line."""
    if settings.DEBUG or settings.is_overridden("EMAIL_BACKEND") or settings.is_overridden("EMAIL_HOST"):
        return []
    return [
        checks.Error(
            "DEBUG is off but no mail server is configured (EMAIL_BACKEND and EMAIL_HOST are Django's "
            "defaults).",
            hint="Set EMAIL_BACKEND and EMAIL_HOST (authproject: EMAIL_URL, e.g. "
            "smtp+tls://user:password@mail.example.com:587, or consolemail:// to print mail).",
            id="accounts.E018",
        )
    ]


@checks.register(checks.Tags.security)
def check_email_verification(app_configs=None, **kwargs):
    """EMAIL_VERIFICATION must be one of its three modes (a misspelt "mandatory" would let
    unverified addresses sign in), and EMAIL_VERIFY_URL must have a place for the key."""
    from .email_verification import MODES

    errors = []
    if app_settings.EMAIL_VERIFICATION not in MODES:
        errors.append(
            checks.Error(
                f"ACCOUNTS_EMAIL_VERIFICATION is {app_settings.EMAIL_VERIFICATION!r}.",
                hint=f"Use one of {', '.join(MODES)} (EMAIL_VERIFICATION).",
                id="accounts.E042",
            )
        )
    if "{key}" not in app_settings.EMAIL_VERIFY_URL:
        errors.append(
            checks.Error(
                "ACCOUNTS_EMAIL_VERIFY_URL has no {key}: its links could verify nothing.",
                hint="Put {key} where the key goes, e.g. https://app.example.com/#verify={key}.",
                id="accounts.E043",
            )
        )
    return errors


@checks.register(checks.Tags.security)
def check_password_set_ends_sessions(app_configs=None, **kwargs):
    """Without its validator, a password set outside the API (the admin, changepassword, password
    reset, code) would leave the user's sessions running: Django calls no other hook on every path."""
    from .password_validation import PasswordSetEndsSessions

    try:
        validators = password_validation.get_default_password_validators()
    except ImproperlyConfigured:
        validators = []  # Django's own error, raised when a password is first validated, says why
    if any(isinstance(validator, PasswordSetEndsSessions) for validator in validators):
        return []
    return [
        checks.Error(
            "A password set outside the API would not end the user's sessions: "
            "AUTH_PASSWORD_VALIDATORS does not list accounts.password_validation.PasswordSetEndsSessions.",
            hint='Add {"NAME": "accounts.password_validation.PasswordSetEndsSessions"} to '
            "AUTH_PASSWORD_VALIDATORS (it refuses no password).",
            id="accounts.E044",
        )
    ]


def setting_names() -> list[str]:
    """The names the app reads as ``ACCOUNTS_<NAME>``: AppSettings' properties, less simplejwt's own
    settings (lifetimes, algorithm, issuer, audience), read from ``SIMPLE_JWT``."""
    return sorted(
        name
        for name, member in vars(AppSettings).items()
        if isinstance(member, property) and name not in SIMPLE_JWT_DEFAULTS
    )


@checks.register(checks.Tags.security)
def check_throttle_rates(app_configs=None, **kwargs):
    """Every throttle rate must parse as DRF's units spelled exactly: a rate that does not would make
    each attempt it guards a 500, and DRF's own parse reads "5/month" as 5 a minute."""
    errors = []
    for name in setting_names():
        if not name.endswith("_THROTTLE_RATE"):
            continue
        rate = getattr(app_settings, name)
        may_be_off = name in AppSettings.rates_that_may_be_off
        if rate is None and may_be_off:
            continue
        try:
            throttles.rate_parse(rate)
        except throttles.InvalidRate:
            units = ", ".join(throttles.RATE_UNITS)
            off = ", or None to turn it off (authproject: off)" if may_be_off else ""
            errors.append(
                checks.Error(
                    f"{AppSettings.prefix}{name} is {rate!r}, which is not a throttle rate.",
                    hint=f"Write <count>/<unit>, e.g. 5/min, the unit one of {units}{off}. "
                    f"(authproject reads it from the environment variable {name}.)",
                    id="accounts.E045",
                )
            )
    return errors


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


# A WebAuthn RP ID: a domain in its ASCII form (labels of letters, digits and hyphens), lower case,
# without scheme, port or path. An IP address is no RP ID (WebAuthn 5.1.4.1: a valid domain).
RP_ID = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@checks.register(checks.Tags.security)
def check_webauthn_rp_id(app_configs=None, **kwargs):
    """Passkeys are bound to WEBAUTHN_RP_ID: it must be a domain, and each allowed https origin's
    host must equal it or end with "." and it, or every browser refuses each passkey ceremony on
    that origin's pages (WebAuthn 5.1.3 and 5.1.4.1). An error, not a warning: like a misspelled
    setting, it breaks a sign-in method, and the fix is one variable, which startup names.
    Origins over http get no check (outside localhost, browsers offer no WebAuthn there), nor do
    NATIVE_APP_ORIGINS: an app's web view (``https://localhost``) is no page of the site, and an
    app's passkeys go through the platform's API, tied to the RP ID by the site's own files."""
    from .passkeys import allowed_origins  # after the app registry: it reads the models

    rp_id = app_settings.WEBAUTHN_RP_ID
    hint = (
        "Set WEBAUTHN_RP_ID (ACCOUNTS_WEBAUTHN_RP_ID) to the site's domain, e.g. example.com for "
        "https://app.example.com: each allowed origin's host must be it or a subdomain of it."
    )
    if not isinstance(rp_id, str) or not RP_ID.match(rp_id) or _is_ip_address(rp_id):
        return [
            checks.Error(
                f"ACCOUNTS_WEBAUTHN_RP_ID is {rp_id!r}, which is no domain.", hint=hint, id="accounts.E046"
            )
        ]
    apps = {origin_normalized(origin) for origin in app_settings.NATIVE_APP_ORIGINS}
    outside = [
        origin
        for origin in allowed_origins()
        if origin not in apps
        and (url := urlsplit(origin)).scheme == "https"
        and url.hostname != rp_id
        and not (url.hostname or "").endswith("." + rp_id)
    ]
    return [
        checks.Error(
            f"The allowed origin {origin!r} is outside ACCOUNTS_WEBAUTHN_RP_ID {rp_id!r}: no passkey "
            "works on its pages.",
            hint=hint,
            id="accounts.E046",
        )
        for origin in outside
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
    """Raise ImproperlyConfigured if any check above fails (for app servers, which skip checks);
    log the app's warnings (accounts.W*), which manage.py would print."""
    messages = checks.run_checks(tags=[checks.Tags.security])
    for warning in (m for m in messages if not m.is_serious() and (m.id or "").startswith("accounts.")):
        logger.warning("%s: %s %s", warning.id, warning.msg, warning.hint or "")
    errors = [e for e in messages if e.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(f"{e.id}: {e.msg}" for e in errors))
