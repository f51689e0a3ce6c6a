"""The accounts app's settings: one object, documented defaults, read when used.

Every default lives here and only here: the project's settings name an ``ACCOUNTS_<NAME>`` setting
only to change it. Each value is read when first used and kept until a setting changes (never bound
at import time): ``override_settings`` and pytest-django's ``settings`` fixture send
``setting_changed``, which makes the next access read it again. Token lifetimes, the algorithm,
issuer and audience are simplejwt's own settings and stay in ``SIMPLE_JWT``; this project's
defaults for them are stated here.
"""

import os
import tempfile
from datetime import timedelta

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework_simplejwt import settings as simplejwt_settings


def jwt_settings():
    """simplejwt's settings object as it is now.

    simplejwt replaces ``api_settings`` with a new object whenever ``SIMPLE_JWT`` changes, so a
    reference bound at import time would keep reading the old values.
    """
    return simplejwt_settings.api_settings


class AppSettings:
    """Settings named ``ACCOUNTS_<NAME>`` in Django's settings, with their defaults here.

    Every property is a setting (simplejwt's own, named as in ``SIMPLE_JWT``, are read from there):
    ``accounts.checks`` derives the known names from them and refuses an ``ACCOUNTS_*`` setting
    that is not one (accounts.E007), since a misspelling would otherwise be ignored.
    """

    prefix = "ACCOUNTS_"
    # The throttle rates (every ``*_THROTTLE_RATE``) that None turns off; the others must be rates,
    # since each guards a place a password is tried (accounts.E045).
    rates_that_may_be_off = frozenset({"LOGIN_GLOBAL_THROTTLE_RATE"})
    # Values as read, until a setting changes. A setting the project leaves out costs Django's
    # settings an AttributeError on every read, and the cookie alone reads seven per refresh.
    _read: dict = {}

    def _setting(self, name, default):
        try:
            return self._read[name]
        except KeyError:
            value = self._read[name] = getattr(settings, self.prefix + name, default)
            return value

    def _jwt_setting(self, name, default):
        """One of simplejwt's settings, from the project's ``SIMPLE_JWT`` if it sets it."""
        return getattr(settings, "SIMPLE_JWT", {}).get(name, default)

    @property
    def REFRESH_COOKIE_NAME(self) -> str:
        """Name of the httpOnly cookie that carries the refresh token."""
        return self._setting("REFRESH_COOKIE_NAME", "refresh_token")

    @property
    def REFRESH_COOKIE_HOST_PREFIX(self) -> bool:
        """Name the cookie ``__Host-<REFRESH_COOKIE_NAME>`` with Path=/ and no Domain, which no other
        host (a sibling subdomain included) can set or shadow; needs Secure, and no
        REFRESH_COOKIE_DOMAIN (checked at startup). The cookie then reaches every path of this host."""
        return self._setting("REFRESH_COOKIE_HOST_PREFIX", False)

    @property
    def REFRESH_COOKIE_PATH(self) -> str:
        """The cookie reaches refresh and logout, never the rest of the API."""
        return self._setting("REFRESH_COOKIE_PATH", "/api/auth/")

    @property
    def REFRESH_COOKIE_DOMAIN(self) -> str | None:
        """None: a host-only cookie."""
        return self._setting("REFRESH_COOKIE_DOMAIN", None)

    @property
    def REFRESH_COOKIE_SECURE(self) -> bool:
        """Browsers treat http://localhost as secure, so this stays on in development too."""
        return self._setting("REFRESH_COOKIE_SECURE", True)

    @property
    def REFRESH_COOKIE_SAMESITE(self) -> str:
        """Lax (default), Strict, or None (only with Secure; checked at startup)."""
        return self._setting("REFRESH_COOKIE_SAMESITE", "Lax")

    @property
    def REFRESH_COOKIE_PARTITIONED(self) -> bool:
        """Add ``Partitioned`` (CHIPS) for an API embedded cross-site; needs SameSite=None and Secure."""
        return self._setting("REFRESH_COOKIE_PARTITIONED", False)

    @property
    def ACCESS_TOKEN_LIFETIME(self) -> timedelta:
        """``SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]``, read at use so that overrides apply.

        The default is this project's, not simplejwt's (5 minutes)."""
        return self._jwt_setting("ACCESS_TOKEN_LIFETIME", timedelta(minutes=15))

    @property
    def REFRESH_TOKEN_LIFETIME(self) -> timedelta:
        """``SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]``: the idle timeout. Each rotation issues a token
        valid this long, capped by SESSION_MAX_AGE. The default is this project's, not simplejwt's
        (1 day)."""
        return self._jwt_setting("REFRESH_TOKEN_LIFETIME", timedelta(days=7))

    @property
    def ALGORITHM(self) -> str:
        """``SIMPLE_JWT["ALGORITHM"]``: HS256 (with simplejwt's SIGNING_KEY, SECRET_KEY unless set),
        RS256 or ES256 (with the PEM files of JWT_SIGNING_KEYS and JWT_VERIFY_KEYS)."""
        return self._jwt_setting("ALGORITHM", "HS256")

    @property
    def ISSUER(self) -> str | None:
        """``SIMPLE_JWT["ISSUER"]``: when set, tokens carry it as ``iss``; tokens without it are refused."""
        return self._jwt_setting("ISSUER", None)

    @property
    def AUDIENCE(self) -> str | list[str] | None:
        """``SIMPLE_JWT["AUDIENCE"]``: when set, tokens carry it as ``aud``; tokens without it are refused."""
        return self._jwt_setting("AUDIENCE", None)

    @property
    def JWT_SIGNING_KEYS(self) -> list[str]:
        """PEM private-key files for RS256/ES256: the first signs; every one verifies and is published
        in the JWKS (a key listed after the first is the next one, published ahead, or the previous
        one, kept while its tokens live)."""
        return self._setting("JWT_SIGNING_KEYS", [])

    @property
    def JWT_VERIFY_KEYS(self) -> list[str]:
        """PEM public-key files that verify and are published but never sign (private keys are refused)."""
        return self._setting("JWT_VERIFY_KEYS", [])

    @property
    def JWKS_MAX_AGE(self) -> timedelta:
        """How long verifiers may cache /.well-known/jwks.json (its Cache-Control max-age): a key
        must be published at least this long before it signs."""
        return self._setting("JWKS_MAX_AGE", timedelta(hours=1))

    @property
    def SESSION_MAX_AGE(self) -> timedelta:
        """Absolute lifetime of a session; rotation never extends it."""
        return self._setting("SESSION_MAX_AGE", timedelta(days=30))

    @property
    def REFRESH_GRACE(self) -> timedelta:
        """How long the previous refresh token still answers with the session's current one."""
        return self._setting("REFRESH_GRACE", timedelta(seconds=10))

    @property
    def REFRESH_BODY_TRANSPORT(self) -> bool:
        """True: clients that are not browsers may ask for the refresh token in the body
        (``"transport": "body"``) and send it back in the body. Requests with an Origin header are
        refused it either way, unless that origin is one of NATIVE_APP_ORIGINS. False: the refresh
        token only ever travels in its cookie."""
        return self._setting("REFRESH_BODY_TRANSPORT", True)

    @property
    def NATIVE_APP_ORIGINS(self) -> list[str]:
        """Origins that are apps, not browsers: the web views of hybrid apps (Capacitor, Ionic,
        Cordova) send one of their own (``capacitor://localhost``, ``ionic://localhost``,
        ``https://localhost``), and requests from them may use body transport. Never a browser
        page's origin (accounts.E016); over http(s), localhost only (accounts.E017)."""
        return self._setting("NATIVE_APP_ORIGINS", [])

    @property
    def ACCESS_TOKEN_CHECKS_SESSION(self) -> bool:
        """True: each access token is checked against its session, so revocation stops it at
        once (one indexed query joined with the user). False: fully stateless access tokens."""
        return self._setting("ACCESS_TOKEN_CHECKS_SESSION", True)

    @property
    def SESSION_RETENTION(self) -> timedelta:
        """How long an expired or revoked session stays visible (admin, audit) before
        ``flush_expired_sessions`` deletes it; ``--older-than`` overrides it."""
        return self._setting("SESSION_RETENTION", timedelta(days=7))

    @property
    def AUDIT_RETENTION(self) -> timedelta:
        """How long audit events are kept; ``flush_expired_sessions`` prunes older ones."""
        return self._setting("AUDIT_RETENTION", timedelta(days=180))

    @property
    def LOGIN_THROTTLE_RATE(self) -> str:
        """Login attempts per username from one client IP, e.g. "5/min" (the admin's form too)."""
        return self._setting("LOGIN_THROTTLE_RATE", "5/min")

    @property
    def LOGIN_USERNAME_THROTTLE_RATE(self) -> str:
        """Login attempts per username from all addresses together: the ceiling against guessing
        one account from many addresses, higher than LOGIN_THROTTLE_RATE so that one stranger
        cannot lock the real user out."""
        return self._setting("LOGIN_USERNAME_THROTTLE_RATE", "30/min")

    @property
    def LOGIN_IP_THROTTLE_RATE(self) -> str:
        """Login attempts per client IP (IPv6: per /64)."""
        return self._setting("LOGIN_IP_THROTTLE_RATE", "60/min")

    @property
    def PASSWORD_CHECK_SLOTS(self) -> int:
        """Password checks at once on this machine, across its app servers' workers (login
        load shedding, ``accounts.password_checks``); 0: no cap. Default: half its cores (at
        least one), so that hashing leaves cores and workers to signed-in users."""
        return self._setting("PASSWORD_CHECK_SLOTS", max(1, (os.cpu_count() or 1) // 2))

    @property
    def PASSWORD_CHECK_NICENESS(self) -> int:
        """How far below the requests' priority a password is hashed (Linux niceness added to the
        hashing thread's, 19 at most); 0: at the requests' own. ``accounts.password_checks``."""
        return self._setting("PASSWORD_CHECK_NICENESS", 10)

    @property
    def PASSWORD_CHECK_SLOT_DIR(self) -> str:
        """Where the slots' lock files are: one directory for every app server of the machine."""
        return self._setting(
            "PASSWORD_CHECK_SLOT_DIR", os.path.join(tempfile.gettempdir(), "authproject-password-checks")
        )

    @property
    def LOGIN_GLOBAL_THROTTLE_RATE(self) -> str | None:
        """Password checks at login across all addresses and app servers together (load shedding:
        past it, an attempt is answered 429 at once, unhashed). Size it below what the app servers
        can hash: one Argon2 hash takes about 0.1 s of a core. None: no budget."""
        return self._setting("LOGIN_GLOBAL_THROTTLE_RATE", "10/s")

    @property
    def REGISTER_THROTTLE_RATE(self) -> str:
        """Registrations per client IP (IPv6: per /64)."""
        return self._setting("REGISTER_THROTTLE_RATE", "10/hour")

    @property
    def PASSWORD_CHANGE_THROTTLE_RATE(self) -> str:
        """Password change attempts per user, wrong old passwords included."""
        return self._setting("PASSWORD_CHANGE_THROTTLE_RATE", "5/min")

    @property
    def PASSWORD_RESET_URL(self) -> str:
        """The link a password reset mail holds: ``{key}`` is replaced with the key (URL-safe). The
        default is the demo page; a native app names its own (``myapp://reset/{key}``)."""
        return self._setting("PASSWORD_RESET_URL", "http://localhost:5173/#reset={key}")

    @property
    def PASSWORD_RESET_TIMEOUT(self) -> timedelta:
        """How long a password reset key works. Keys are Django's PasswordResetTokenGenerator's,
        which also refuses one older than Django's own PASSWORD_RESET_TIMEOUT (3 days by default):
        the shorter of the two applies."""
        return self._setting("PASSWORD_RESET_TIMEOUT", timedelta(hours=1))

    @property
    def PASSWORD_RESET_THROTTLE_RATE(self) -> str:
        """Password reset requests per client IP (IPv6: per /64), and per address asked for."""
        return self._setting("PASSWORD_RESET_THROTTLE_RATE", "5/hour")

    @property
    def PASSWORD_RESET_CONFIRM_THROTTLE_RATE(self) -> str:
        """Password reset confirmations per client IP (keys are tried there), a refused new
        password included."""
        return self._setting("PASSWORD_RESET_CONFIRM_THROTTLE_RATE", "20/hour")

    @property
    def SITE_NAME(self) -> str:
        """The name every mail gives the site (its templates' ``site_name``)."""
        return self._setting("SITE_NAME", "authproject")

    @property
    def SECURITY_NOTICES(self) -> bool:
        """Mail an account's owner when something happens to it that they should know of
        (``accounts.notices``)."""
        return self._setting("SECURITY_NOTICES", True)

    @property
    def MAIL_MAX_ATTEMPTS(self) -> int:
        """How many times a mail is tried before it is given up (logged and audited as failed)."""
        return self._setting("MAIL_MAX_ATTEMPTS", 4)

    @property
    def MAIL_RETRY_BACKOFF(self) -> list[timedelta]:
        """The wait before each retry of a failed send: the first retry waits the first, and so on;
        the last repeats when MAIL_MAX_ATTEMPTS asks for more retries than it lists."""
        return self._setting(
            "MAIL_RETRY_BACKOFF", [timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10)]
        )

    @property
    def METRICS_TOKEN(self) -> str | None:
        """The bearer token ``GET /metrics`` requires; None: the endpoint answers 404."""
        return self._setting("METRICS_TOKEN", None)

    @property
    def WORKER_METRICS_HOST(self) -> str:
        """The address the mail worker (``manage.py accounts_worker``) serves its metrics on: the
        loopback, unless the scraper is on another machine."""
        return self._setting("WORKER_METRICS_HOST", "127.0.0.1")

    @property
    def WORKER_METRICS_PORT(self) -> int:
        """The port of the mail worker's metrics: each worker of a machine needs its own."""
        return self._setting("WORKER_METRICS_PORT", 9108)

    @property
    def EMAIL_VERIFICATION(self) -> str:
        """"none" (no verification mail), "optional" (mailed; login works unverified) or "mandatory"
        (a login with the right password for an unverified address is refused, 403
        email_unverified). Checked at startup (accounts.E042)."""
        return self._setting("EMAIL_VERIFICATION", "optional")

    @property
    def EMAIL_VERIFY_URL(self) -> str:
        """The link a verification mail holds: ``{key}`` is replaced by the key (URL-safe)."""
        return self._setting("EMAIL_VERIFY_URL", "http://localhost:5173/#verify={key}")

    @property
    def EMAIL_VERIFY_TIMEOUT(self) -> timedelta:
        """How long a verification link works."""
        return self._setting("EMAIL_VERIFY_TIMEOUT", timedelta(days=3))

    @property
    def EMAIL_VERIFY_THROTTLE_RATE(self) -> str:
        """Verification mails asked for again (resend), per client IP and per address."""
        return self._setting("EMAIL_VERIFY_THROTTLE_RATE", "5/hour")

    @property
    def EMAIL_VERIFY_KEY_THROTTLE_RATE(self) -> str:
        """Verification keys tried per client IP."""
        return self._setting("EMAIL_VERIFY_KEY_THROTTLE_RATE", "30/hour")

    @property
    def MFA_TOKEN_TIMEOUT(self) -> timedelta:
        """How long the ``mfa_token`` of a login waiting for its second factor works."""
        return self._setting("MFA_TOKEN_TIMEOUT", timedelta(seconds=300))

    @property
    def MFA_THROTTLE_RATE(self) -> str:
        """Second-factor codes (and re-authentications) tried per user."""
        return self._setting("MFA_THROTTLE_RATE", "10/min")

    @property
    def MFA_ENCRYPTION_KEYS(self) -> list[str]:
        """Fernet keys (``Fernet.generate_key()``) that encrypt TOTP secrets at rest: the first
        encrypts, every one decrypts (to rotate: a new key first, then ``manage.py rotate_mfa_keys``,
        then drop the old one). Empty: a key derived from DJANGO_SECRET_KEY encrypts, and keys
        derived from its fallbacks decrypt, so that rotating the secret key loses no secret; the
        derived keys always decrypt (``accounts.encryption``)."""
        return self._setting("MFA_ENCRYPTION_KEYS", [])

    @property
    def REAUTHENTICATION_TIMEOUT(self) -> timedelta:
        """How recent ``auth_time`` must be for adding or removing a factor, new recovery codes and
        an e-mail change (else 401 reauthentication_required)."""
        return self._setting("REAUTHENTICATION_TIMEOUT", timedelta(seconds=300))

    @property
    def WEBAUTHN_RP_ID(self) -> str:
        """The WebAuthn relying party id: this site's registrable domain ("example.com"), which
        every allowed origin's host must equal or end with."""
        return self._setting("WEBAUTHN_RP_ID", "localhost")

    @property
    def WEBAUTHN_RP_NAME(self) -> str:
        """The name an authenticator shows for the site; SITE_NAME unless set."""
        return self._setting("WEBAUTHN_RP_NAME", None) or self.SITE_NAME

    @property
    def WEBAUTHN_ORIGINS(self) -> list[str]:
        """Origins passkey ceremonies may come from besides the CORS allowlist, CSRF_TRUSTED_ORIGINS
        and NATIVE_APP_ORIGINS: an Android app's ``android:apk-key-hash:<hash>`` (its signing
        certificate's SHA-256, base64url), or the ``https://<RP ID>`` an iOS app's carry when no
        page of the site is served there."""
        return self._setting("WEBAUTHN_ORIGINS", [])

    @property
    def WEBAUTHN_CHALLENGE_TIMEOUT(self) -> timedelta:
        """How long a WebAuthn challenge works (once)."""
        return self._setting("WEBAUTHN_CHALLENGE_TIMEOUT", timedelta(minutes=5))


app_settings = AppSettings()


@receiver(setting_changed)
def _forget_read_settings(**kwargs) -> None:
    AppSettings._read.clear()
