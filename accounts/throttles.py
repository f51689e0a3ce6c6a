"""Limits on every place a password or a key is tried (login, the admin's login form, password change,
password reset) and on registration, counted atomically in the shared cache.

Each limit counts attempts per key in fixed windows (a minute for "5/min"): one ``cache.add`` (start
the window's counter at 0, a no-op when it exists) and one ``cache.incr``, both atomic on Redis and
on the local-memory cache, so N concurrent attempts admit at most the limit. (DRF's own throttles
read the history, append and write it back: concurrent attempts all read the same history.)

Login is limited three ways (see README, "Security model"): per client IP; per username and client
IP (the tight limit, so that a stranger's guesses spend only their own address's budget, not the
real user's); and per username across all addresses (a higher ceiling against guessing one account
from many addresses). Only attempts that both narrower limits let through count toward the ceiling:
DRF calls every throttle's ``allow_request``, so otherwise one address's refused attempts would fill
the ceiling and lock the real user out from everywhere. IPv4-mapped IPv6 addresses count as their
IPv4 address, and IPv6 addresses by their /64, the block one subscriber usually holds. A fourth,
global budget of password checks sheds a flood from many addresses (LoginGlobalThrottle).
"""

import ipaddress
import math

from django.contrib.auth import get_user_model
from rest_framework.throttling import SimpleRateThrottle

from . import metrics
from .audit import audit_event_record, typed_name_digest
from .conf import app_settings
from .models import AuditEventType
from .origin import client_ip, request_origin

IPV6_BUCKET_PREFIX = 64
# DRF's units, spelled exactly (DRF itself reads only the first letter, so "5/month" is 5 a minute).
RATE_UNITS = {
    **dict.fromkeys(("s", "sec", "second"), 1),
    **dict.fromkeys(("m", "min", "minute"), 60),
    **dict.fromkeys(("h", "hour"), 3600),
    **dict.fromkeys(("d", "day"), 86400),
}


class InvalidRate(ValueError):
    """A throttle rate that is not ``<count>/<unit>`` with one of DRF's units."""


def rate_parse(rate: str) -> tuple[int, int]:
    """``(requests, seconds)`` of a rate such as "5/min"; InvalidRate unless it is a whole number, a
    slash and one of RATE_UNITS exactly ("5/month", "5/minn" and "five/min" are refused)."""
    count, slash, unit = str(rate).partition("/")
    if not (slash and count.isascii() and count.isdigit() and unit in RATE_UNITS):
        raise InvalidRate(
            f"{rate!r} is not a rate: write <count>/<unit>, the unit one of {', '.join(RATE_UNITS)}."
        )
    return int(count), RATE_UNITS[unit]


def login_name(request) -> str:
    """What the login body gives for the user model's USERNAME_FIELD (the login serializer's
    field: "username" for Django's User, "email" for a model that signs in by email), or ""."""
    data = request.data if isinstance(request.data, dict) else {}
    name = data.get(get_user_model().USERNAME_FIELD)
    return name if isinstance(name, str) else ""


def ip_bucket(ip: str | None) -> str:
    """The address whose attempts count together: an IPv6 address's /64, else the address itself
    (``origin.client_ip`` already folds IPv4-mapped IPv6 to IPv4)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_BUCKET_PREFIX}", strict=False))
    return str(address)


def name_digest(name: str) -> str:
    """A username as a throttle key: case-folded and keyed-hashed (HMAC-SHA256 under SECRET_KEY),
    so the cache holds neither the name, which may be a password typed into the wrong field, nor a
    hash of it that a guess could be checked against."""
    return typed_name_digest(name, purpose="throttle.username")


class CountingThrottle(SimpleRateThrottle):
    """A DRF throttle whose counting is atomic: fixed windows, ``cache.add`` then ``cache.incr``.

    Subclasses name their ``scope``, the app setting holding their rate, and ``ident`` (what is
    counted together, or None for nothing to count).
    """

    rate_setting = ""

    def get_rate(self) -> str:
        """The configured rate, looked up per request (DRF binds THROTTLE_RATES at import)."""
        return getattr(app_settings, self.rate_setting)

    def parse_rate(self, rate: str | None) -> tuple[int | None, int | None]:
        """DRF's parse, strict: ``rate_parse`` (accounts.E045 refuses a bad rate at startup)."""
        return (None, None) if rate is None else rate_parse(rate)

    def ident(self, request) -> str | None:
        """What this limit counts attempts by; None: this request is not counted."""
        raise NotImplementedError

    def get_cache_key(self, request, view) -> str | None:
        ident = self.ident(request)
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        """Count this attempt; False once the window's count is past the limit."""
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        allowed = self.count_attempt() <= self.num_requests
        if not allowed:
            self.on_refused(request)
        return allowed

    def count_attempt(self) -> int:
        """This attempt's number in the current window, counted atomically."""
        self.now = self.timer()
        window = math.floor(self.now / self.duration)
        self.window_ends = (window + 1) * self.duration
        key = f"{self.key}:{window}"
        # The counter outlives its window, so it cannot expire between the add and the incr.
        timeout = 2 * self.duration
        self.cache.add(key, 0, timeout=timeout)
        try:
            return self.cache.incr(key)
        except ValueError:  # evicted in between (a full cache): this attempt opens a new count
            self.cache.add(key, 1, timeout=timeout)
            return 1

    def wait(self) -> float:
        """Seconds until the window ends (Retry-After)."""
        return max(self.window_ends - self.now, 1)

    def on_refused(self, request) -> None:
        """Called when an attempt is refused."""


NARROW_REFUSED = "login_narrow_limit_refused"
REFUSED = "login_limit_refused"


class LoginThrottle(CountingThrottle):
    """A login limit: a refused key also goes to the audit trail, once per window.

    A narrow limit (per IP, per username and IP) marks the request it refuses, so that the ceiling,
    checked after them, neither counts nor refuses it.
    """

    narrow = False

    def allow_request(self, request, view) -> bool:
        allowed = super().allow_request(request, view)
        if not allowed:
            if not getattr(request, REFUSED, False):  # the first limit to refuse it counts it
                metrics.login_counted(result="throttled")
            setattr(request, REFUSED, True)
            if self.narrow:
                setattr(request, NARROW_REFUSED, True)
        return allowed

    def on_refused(self, request) -> None:
        """One event per key and window, not one per refused request: a flood of attempts must not
        turn into a flood of inserts. ``cache.add`` is atomic on the shared cache."""
        if not self.cache.add(f"{self.key}:audited", True, timeout=int(self.wait()) or 1):
            return
        audit_event_record(
            type=AuditEventType.THROTTLED,
            username=self.attempted_name(request),
            origin=request_origin(request),
            detail=f"{self.scope} {self.rate}",
        )

    def attempted_name(self, request) -> str:
        """The username tried (the API's login body; the admin's form passes its own request)."""
        name = getattr(request, "login_name", None)
        return login_name(request) if name is None else name


class LoginIPThrottle(LoginThrottle):
    """Attempts per client IP, whatever the username."""

    scope = "login_ip"
    rate_setting = "LOGIN_IP_THROTTLE_RATE"
    narrow = True

    def ident(self, request) -> str:
        return ip_bucket(client_ip(request))


class LoginUsernameIPThrottle(LoginThrottle):
    """Attempts per username from one client IP: the tight limit, which strangers cannot spend for
    the real user, who signs in from another address."""

    scope = "login_username_ip"
    rate_setting = "LOGIN_THROTTLE_RATE"
    narrow = True

    def ident(self, request) -> str | None:
        username = self.attempted_name(request)
        if not username:
            return None  # nothing to count; the serializer answers 400
        return f"{name_digest(username)}:{ip_bucket(client_ip(request))}"


class LoginUsernameThrottle(LoginThrottle):
    """Attempts per username from every address together: a higher ceiling against guessing one
    account from many addresses. It counts only attempts the narrow limits let through (it comes
    after them in LOGIN_THROTTLES): those refused already are no guess at the password, and
    counting them would let one address spend the ceiling and lock the user out everywhere."""

    scope = "login_username"
    rate_setting = "LOGIN_USERNAME_THROTTLE_RATE"

    def allow_request(self, request, view) -> bool:
        if getattr(request, NARROW_REFUSED, False):
            return True  # refused already, by a narrow limit: not counted here
        return super().allow_request(request, view)

    def ident(self, request) -> str | None:
        username = self.attempted_name(request)
        return name_digest(username) if username else None


class LoginGlobalThrottle(LoginThrottle):
    """Load shedding: password checks per second across every address and app server together.

    A flood of logins from many addresses passes every per-address limit, and each attempt costs an
    Argon2 hash (about 0.1 s of a core): hashed in turn, they would hold every worker while ``me``
    and refresh wait. Past this budget an attempt is answered at once (429, Retry-After: 1) without
    its password being checked. Only attempts that every other login limit let through are
    counted, so refused ones spend none of it. None turns it off.
    """

    scope = "login_global"
    rate_setting = "LOGIN_GLOBAL_THROTTLE_RATE"

    def ident(self, request) -> str:
        return "all"

    def allow_request(self, request, view) -> bool:
        if getattr(request, REFUSED, False):
            return True  # refused already: no password will be checked
        return super().allow_request(request, view)

    def attempted_name(self, request) -> str:
        return ""  # the budget is everyone's: its event names no one


# The order matters: the ceiling reads what the narrow limits decided for this request, and the
# global budget what all three did.
LOGIN_THROTTLES = (LoginIPThrottle, LoginUsernameIPThrottle, LoginUsernameThrottle, LoginGlobalThrottle)


class ClientIPThrottle(CountingThrottle):
    """A limit counted per client IP (IPv6: per /64, ``ip_bucket``)."""

    def ident(self, request) -> str:
        return ip_bucket(client_ip(request))


class RegisterThrottle(ClientIPThrottle):
    """Registrations per client IP: each costs a password hash, and a "taken" answer tells a name."""

    scope = "register"
    rate_setting = "REGISTER_THROTTLE_RATE"


class SignedInUserThrottle(CountingThrottle):
    """A limit counted per signed-in user (only their own token spends it); an anonymous request
    is not counted."""

    def ident(self, request) -> str | None:
        user = getattr(request, "user", None)
        return str(user.pk) if user is not None and user.is_authenticated else None


class PasswordChangeThrottle(SignedInUserThrottle):
    """Password changes per signed-in user, wrong old passwords included (each is a password try)."""

    scope = "password_change"
    rate_setting = "PASSWORD_CHANGE_THROTTLE_RATE"


def address_digest(address: str) -> str:
    """An e-mail address as a throttle key: keyed-hashed like a username (``name_digest``), so the
    cache holds no address."""
    return typed_name_digest(address, purpose="throttle.email")


RESET_IP_REFUSED = "password_reset_ip_limit_refused"


def reset_address(request) -> str:
    """The address a password reset request names (its body's ``email``), or ""."""
    data = request.data if isinstance(request.data, dict) else {}
    address = data.get("email")
    return address if isinstance(address, str) else ""


class PasswordResetIPThrottle(ClientIPThrottle):
    """Password reset requests per client IP: each may send mail."""

    scope = "password_reset_ip"
    rate_setting = "PASSWORD_RESET_THROTTLE_RATE"

    def on_refused(self, request) -> None:
        setattr(request, RESET_IP_REFUSED, True)


class PasswordResetAddressThrottle(CountingThrottle):
    """Password reset requests per address, from every client IP together: no mailbox gets more
    than the limit's mails. Counted by a keyed hash of the case-folded address (never the address),
    whether or not an account uses it, so that its answers tell nothing.

    A stranger may spend it for the real user, but not lock them out: each request the limit let
    through mailed the account a link, and the last of them still works until this window ends (a
    key lives PASSWORD_RESET_TIMEOUT, an hour by default, as long as the default rate's window). A
    request the per-IP limit refused is not counted here: one address's flood spends its own
    budget, not the mailbox's."""

    scope = "password_reset_address"
    rate_setting = "PASSWORD_RESET_THROTTLE_RATE"

    def allow_request(self, request, view) -> bool:
        if getattr(request, RESET_IP_REFUSED, False):
            return True  # refused already, by the per-IP limit: not counted here
        return super().allow_request(request, view)

    def ident(self, request) -> str | None:
        address = reset_address(request)
        if not address:
            return None  # nothing to count; the serializer answers 400
        return address_digest(address)


# The order matters: the per-address limit reads what the per-IP limit decided for this request.
PASSWORD_RESET_THROTTLES = (PasswordResetIPThrottle, PasswordResetAddressThrottle)


class PasswordResetConfirmThrottle(ClientIPThrottle):
    """Password reset confirmations per client IP: keys are tried there."""

    scope = "password_reset_confirm"
    rate_setting = "PASSWORD_RESET_CONFIRM_THROTTLE_RATE"


def login_attempt_wait(request, *, username: str) -> float | None:
    """Count one login attempt (outside DRF: the admin's form) against every login limit; None if it
    may go ahead, else the seconds to wait. Every limit is asked in turn, as DRF's throttle check
    does (the ceiling counts only what the narrow limits let through)."""
    request.login_name = username
    setattr(request, NARROW_REFUSED, False)
    setattr(request, REFUSED, False)
    waits = [t.wait() for t in (cls() for cls in LOGIN_THROTTLES) if not t.allow_request(request, None)]
    return max(waits) if waits else None


class EmailVerifyKeyThrottle(ClientIPThrottle):
    """Verification keys tried per client IP."""

    scope = "email_verify_key"
    rate_setting = "EMAIL_VERIFY_KEY_THROTTLE_RATE"


class EmailVerifyResendIPThrottle(ClientIPThrottle):
    """Verification mails asked for again, per client IP."""

    scope = "email_verify_ip"
    rate_setting = "EMAIL_VERIFY_THROTTLE_RATE"


class EmailVerifyResendAddressThrottle(CountingThrottle):
    """Verification mails asked for again, per address: the body's ``email``, or the signed-in
    caller's address."""

    scope = "email_verify_address"
    rate_setting = "EMAIL_VERIFY_THROTTLE_RATE"

    def ident(self, request) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            address = getattr(user, user.get_email_field_name(), "") or ""
        else:
            data = request.data if isinstance(request.data, dict) else {}
            address = data.get("email")
        if not isinstance(address, str) or not address:
            return None  # nothing to count; the serializer answers 400
        return address_digest(address)


# The user a request's second-factor attempt is for, when no Bearer token names them (the login's
# second step names them by its mfa_token): set by ``mfa_attempt_wait``.
MFA_USER = "accounts_mfa_user_id"


class MfaThrottle(SignedInUserThrottle):
    """Second-factor codes and re-authentications tried, per user (MFA_THROTTLE_RATE): a code has
    a million values, so guesses must be few. Only someone who proved the password (a working
    ``mfa_token``) or holds the user's access token can spend it; a stranger cannot lock the user
    out. Requests naming nobody are not counted (an invalid ``mfa_token`` spends nothing)."""

    scope = "mfa"
    rate_setting = "MFA_THROTTLE_RATE"

    def ident(self, request) -> str | None:
        user_id = getattr(request, MFA_USER, None)
        return super().ident(request) if user_id is None else str(user_id)


def mfa_attempt_wait(request, *, user_id) -> float | None:
    """Count one second-factor attempt of ``user_id`` (whom the caller resolved from a working
    ``mfa_token``); None if it may go ahead, else the seconds to wait."""
    setattr(request, MFA_USER, user_id)
    throttle = MfaThrottle()
    return None if throttle.allow_request(request, None) else throttle.wait()


class PasskeyOptionsIPThrottle(ClientIPThrottle):
    """Passkey request options asked for without a password, per client IP: each keeps a challenge
    row. The rate of login attempts per IP (LOGIN_IP_THROTTLE_RATE), counted apart from them."""

    scope = "passkey_options_ip"
    rate_setting = "LOGIN_IP_THROTTLE_RATE"


class PasskeyOptionsUserThrottle(SignedInUserThrottle):
    """Passkey options a signed-in user asks for (a new passkey, a re-authentication), per user:
    each keeps a challenge row, which a user's own token must not be able to pile up. The rate of
    login attempts per IP (LOGIN_IP_THROTTLE_RATE), counted apart from them."""

    scope = "passkey_options_user"
    rate_setting = "LOGIN_IP_THROTTLE_RATE"


class PasskeyLoginIPThrottle(ClientIPThrottle):
    """Passwordless sign-ins with a passkey, per client IP: LOGIN_IP_THROTTLE_RATE, as password
    logins, counted apart from them (no password is tried, and no username names the account)."""

    scope = "passkey_login_ip"
    rate_setting = "LOGIN_IP_THROTTLE_RATE"

    def on_refused(self, request) -> None:
        """A sign-in refused by the limit is counted as one (``authproject_logins_total``)."""
        metrics.login_counted(result="throttled", method="passkey")
