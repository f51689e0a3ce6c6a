"""Second factors: the rules of TOTP, recovery codes, the login's second step (``mfa_token``) and
recent authentication. Passkeys' own rules are in ``accounts.passkeys``. No HTTP here.

The database keeps digests of what is handed out (``mfa_token``, recovery codes) and the TOTP secret
encrypted (``accounts.encryption``); every single-use thing is used in one conditional statement,
so that concurrent uses of it give exactly one success on PostgreSQL and on SQLite.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from . import notices
from .audit import audit_event_record, typed_name_digest
from .conf import app_settings
from .encryption import secret_decrypt, secret_encrypt
from .errors import (
    InvalidCode,
    NoSecondFactor,
    ReauthenticationRequired,
    TotpAlreadyEnabled,
    TotpNotPending,
)
from .models import AuditEventType, MfaToken, Passkey, RecoveryCode, TotpDevice, WebAuthnChallenge
from .origin import NOWHERE, Origin
from .selectors import SHOWN_PASSKEY_FIELDS, SecondFactors, totp_state

# A pending second step dies after this many wrong codes.
MAX_FAILURES = 5

# RFC 6238 as every authenticator app reads an otpauth URI without parameters: 6 digits, 30-second
# steps, HMAC-SHA-1; a code of the step before or after the server's is taken too (clock drift).
TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30
TOTP_DRIFT_STEPS = 1

# Recovery codes: 10 of them, each 10 characters of RFC 4648 base32 (50 random bits; no 0/O or 1/I
# to mix up), shown in two groups of five ("k3xq7-mw2pa"). Typed back, case, spaces and dashes do
# not matter.
RECOVERY_CODES = 10
RECOVERY_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
RECOVERY_CODE_LENGTH = 10
_RECOVERY_CODE = re.compile(f"[{RECOVERY_CODE_ALPHABET}]{{{RECOVERY_CODE_LENGTH}}}")
_TOTP_CODE = re.compile(f"[0-9]{{{TOTP_DIGITS}}}")
_SEPARATORS = re.compile(r"[\s-]+")

# The names of the second factors, as the login's second step lists them ("methods").
TOTP, RECOVERY_CODE, PASSKEY = "totp", "recovery_code", "passkey"
# RFC 8176: a TOTP code and a recovery code are both one-time passwords.
OTP = "otp"
AUTHENTICATOR_APP = "an authenticator app"  # the notices' ``factor``


def handed_out_digest(value: str) -> str:
    """The SHA-256 digest kept of a random value handed out (an ``mfa_token``, a WebAuthn challenge):
    each has 256 random bits, so an unkeyed digest cannot be reversed, and the value itself is
    never stored."""
    return hashlib.sha256(value.encode()).hexdigest()


def recent_authentication_require(*, auth_time: datetime | None, now: datetime | None = None) -> None:
    """ReauthenticationRequired unless ``auth_time`` (an access token's) is within
    REAUTHENTICATION_TIMEOUT: adding or removing a factor, new recovery codes, an address change."""
    if auth_time is None or (now or timezone.now()) - auth_time > app_settings.REAUTHENTICATION_TIMEOUT:
        raise ReauthenticationRequired()


# --- Which factors a user has ----------------------------------------------------------------
def _confirmed_totp(user_id) -> QuerySet:
    return TotpDevice.objects.filter(user_id=user_id, confirmed_at__isnull=False)


def _unused_recovery_codes(user_id) -> QuerySet:
    return RecoveryCode.objects.filter(user_id=user_id, used_at__isnull=True)


def no_second_factor(user_id) -> Q:
    """The condition, in SQL, that a user has no second factor (no confirmed authenticator app, no
    passkey): a password alone signs them in. ``user_id`` is a value or an ``OuterRef``."""
    return ~Exists(_confirmed_totp(user_id)) & ~Exists(Passkey.objects.filter(user_id=user_id))


def second_factor_methods(*, user) -> list[str]:
    """What the user can give as a second factor, in the order the API lists them: "totp" (a
    confirmed authenticator app), "recovery_code" (unused codes), "passkey". One statement."""
    found = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values_list(
            Exists(_confirmed_totp(OuterRef("pk"))),
            Exists(_unused_recovery_codes(OuterRef("pk"))),
            Exists(Passkey.objects.filter(user_id=OuterRef("pk"))),
        )
        .first()
    )
    return [name for name, has in zip((TOTP, RECOVERY_CODE, PASSKEY), found or (), strict=False) if has]


# --- TOTP (RFC 6238) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TotpEnrolment:
    """A pending authenticator app: its base32 secret and the otpauth URI an app scans."""

    secret: str
    otpauth_uri: str


def totp_step(now: datetime) -> int:
    """The RFC 6238 time step of ``now`` (30-second steps since 1970)."""
    return int(now.timestamp()) // TOTP_STEP_SECONDS


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)


def totp_code_step(*, secret: str, code: str, now: datetime, after: int | None = None) -> int | None:
    """The earliest time step within the drift window, later than ``after``, whose code ``code`` is
    (compared in constant time); else None."""
    totp, step = _totp(secret), totp_step(now)
    for candidate in range(step - TOTP_DRIFT_STEPS, step + TOTP_DRIFT_STEPS + 1):
        if (after is None or candidate > after) and hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def totp_enrol(*, user) -> TotpEnrolment:
    """Start setting up an authenticator app: a new secret, pending until a code confirms it
    (``totp_confirm``). A pending one is replaced; a confirmed one is TotpAlreadyEnabled (turn it
    off first), since replacing it would leave the user's app with a dead secret."""
    secret = pyotp.random_base32()  # 32 characters: 160 bits, RFC 4226's recommended length
    fields = {"secret": secret_encrypt(secret), "created_at": timezone.now(), "last_step": None}
    pending = TotpDevice.objects.filter(pk=user.pk, confirmed_at__isnull=True)
    for _ in range(2):  # a concurrent first enrolment may insert between the update and the insert
        if pending.update(**fields):
            break
        try:
            with transaction.atomic():
                TotpDevice.objects.create(user=user, **fields)
            break
        except IntegrityError:
            continue
    else:
        raise TotpAlreadyEnabled()
    uri = _totp(secret).provisioning_uri(name=user.get_username(), issuer_name=app_settings.SITE_NAME)
    return TotpEnrolment(secret=secret, otpauth_uri=uri)


def totp_confirm(*, user, code: str, origin: Origin = NOWHERE) -> list[str]:
    """Turn the pending authenticator app on with a code from it; a new set of recovery codes
    (shown once, the old set dead). The code's step is stored, so it cannot sign in later."""
    device = TotpDevice.objects.filter(pk=user.pk).first()
    if device is None:
        raise TotpNotPending()
    if device.confirmed_at is not None:
        raise TotpAlreadyEnabled()
    now = timezone.now()
    step = totp_code_step(secret=secret_decrypt(device.secret), code=_normalized(code), now=now)
    if step is None:
        audit_event_record(
            type=AuditEventType.MFA_FAILED, user_id=user.pk, origin=origin, detail="totp set-up"
        )
        raise InvalidCode()
    with transaction.atomic():
        # Only the secret this code was checked against: a new enrolment meanwhile replaced it.
        confirmed = TotpDevice.objects.filter(pk=user.pk, confirmed_at__isnull=True, secret=device.secret)
        if not confirmed.update(confirmed_at=now, last_step=step, last_used_at=now):
            raise TotpNotPending()
        codes = recovery_codes_replace(user=user, origin=origin)
        audit_event_record(type=AuditEventType.TOTP_ENABLED, user_id=user.pk, origin=origin)
        notices.notice_send(
            user=user,
            notice=notices.Notice.SECOND_FACTOR_ADDED,
            origin=origin,
            context={"factor": AUTHENTICATOR_APP},
        )
    return codes


def totp_disable(*, user, origin: Origin = NOWHERE) -> bool:
    """Turn the authenticator app off (a pending one is dropped too); True if one was on. With no
    second factor left, the recovery codes go as well: they would stand in for nothing, and a
    leftover set must not come back to life when a factor is added later."""
    with transaction.atomic():
        was_on = TotpDevice.objects.filter(pk=user.pk, confirmed_at__isnull=False).delete()[0] > 0
        TotpDevice.objects.filter(pk=user.pk).delete()
        if not was_on:
            return False
        recovery_codes_delete_without_factor(user_id=user.pk)
        audit_event_record(type=AuditEventType.TOTP_DISABLED, user_id=user.pk, origin=origin)
        notices.notice_send(
            user=user,
            notice=notices.Notice.SECOND_FACTOR_REMOVED,
            origin=origin,
            context={"factor": AUTHENTICATOR_APP, "by_admin": origin.actor_id is not None},
        )
    return True


def totp_code_use(*, device: TotpDevice, code: str, now: datetime) -> bool:
    """Accept a code of the user's confirmed authenticator app once: its time step is stored in one
    conditional UPDATE that matches only while the stored step is earlier, so of any number of
    concurrent uses of a code (or of an earlier one) exactly one succeeds."""
    if device.confirmed_at is None:
        return False
    step = totp_code_step(secret=secret_decrypt(device.secret), code=code, now=now, after=device.last_step)
    if step is None:
        return False
    later = Q(last_step__isnull=True) | Q(last_step__lt=step)
    return bool(
        TotpDevice.objects.filter(later, pk=device.pk, confirmed_at__isnull=False).update(
            last_step=step, last_used_at=now
        )
    )


# --- Recovery codes -------------------------------------------------------------------------------
def _normalized(code: str) -> str:
    """A typed code without spaces and dashes, in lower case (as recovery codes are shown)."""
    return _SEPARATORS.sub("", code).lower()


def recovery_code_new() -> str:
    """A random recovery code as shown: two groups of five base32 characters."""
    code = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return f"{code[:5]}-{code[5:]}"


def recovery_code_digests(code: str) -> list[str]:
    """The keyed hashes a recovery code may be stored as: HMAC-SHA256 of the normalized code under
    SECRET_KEY (the first, which new codes are stored with) and under each of
    SECRET_KEY_FALLBACKS, so that rotating the secret key leaves the codes working. The key is
    derived as the audit trail's and the throttles' are (``audit.typed_name_digest``)."""
    normalized = _normalized(code)
    return [
        typed_name_digest(normalized, purpose="mfa.recovery_code", secret=key)
        for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    ]


def recovery_codes_replace(*, user, origin: Origin = NOWHERE) -> list[str]:
    """A new set of recovery codes for the user, the old set (used or not) deleted: the codes, to be
    shown once; only their keyed hashes are kept."""
    codes = [recovery_code_new() for _ in range(RECOVERY_CODES)]
    now = timezone.now()
    with transaction.atomic():
        RecoveryCode.objects.filter(user_id=user.pk).delete()
        RecoveryCode.objects.bulk_create(
            [
                RecoveryCode(user_id=user.pk, digest=recovery_code_digests(code)[0], created_at=now)
                for code in codes
            ]
        )
        audit_event_record(type=AuditEventType.RECOVERY_CODES_GENERATED, user_id=user.pk, origin=origin)
    return codes


def recovery_codes_regenerate(*, user, origin: Origin = NOWHERE) -> list[str]:
    """New recovery codes asked for by the user (the old set dead), and a notice; NoSecondFactor
    when they have none to stand in for."""
    if not {TOTP, PASSKEY} & set(second_factor_methods(user=user)):
        raise NoSecondFactor()
    with transaction.atomic():
        codes = recovery_codes_replace(user=user, origin=origin)
        notices.notice_send(user=user, notice=notices.Notice.RECOVERY_CODES_REGENERATED, origin=origin)
    return codes


def recovery_codes_delete_without_factor(*, user_id) -> int:
    """Delete the user's recovery codes if they have no second factor left (one statement); how
    many. Whoever removes a factor (an authenticator app, a passkey, an admin) calls it after."""
    return RecoveryCode.objects.filter(no_second_factor(user_id), user_id=user_id).delete()[0]


def recovery_code_use(*, user_id, code: str, now: datetime) -> bool:
    """Accept one of the user's recovery codes once: one conditional UPDATE sets ``used_at`` where
    it is NULL, so of any number of concurrent uses of a code exactly one succeeds."""
    if not _RECOVERY_CODE.fullmatch(_normalized(code)):
        return False
    unused = _unused_recovery_codes(user_id).filter(digest__in=recovery_code_digests(code))
    return unused.update(used_at=now) == 1


# --- A code given as a second factor ----------------------------------------------------------
def second_factor_code_use(*, user, code: str, origin: Origin = NOWHERE, now: datetime | None = None) -> bool:
    """Accept ``code`` as the user's second factor, once: six digits are a code of their
    authenticator app, ten base32 characters one of their recovery codes (spaces, dashes and case
    ignored). A recovery code used is audited. False for anything else; nothing is written then."""
    now = now or timezone.now()
    normalized = _normalized(code)
    if _TOTP_CODE.fullmatch(normalized):
        device = _loaded_totp_device(user)
        return device is not None and totp_code_use(device=device, code=normalized, now=now)
    if recovery_code_use(user_id=user.pk, code=normalized, now=now):
        audit_event_record(type=AuditEventType.RECOVERY_CODE_USED, user_id=user.pk, origin=origin)
        return True
    return False


def _loaded_totp_device(user) -> TotpDevice | None:
    """The user's authenticator app: the one ``mfa_token_pending`` loaded with the user, else read."""
    try:
        return user.totp_device
    except TotpDevice.DoesNotExist:
        return None


# --- The login's second step ------------------------------------------------------------------
def mfa_token_issue(*, user, transport: str, now: datetime | None = None) -> str:
    """A new ``mfa_token`` for a user whose password was right: 256 random bits, kept as a digest,
    with the refresh token's transport asked for at login; it lives MFA_TOKEN_TIMEOUT."""
    token = secrets.token_urlsafe(32)
    now = now or timezone.now()
    MfaToken.objects.create(
        digest=handed_out_digest(token),
        user=user,
        transport=transport,
        created_at=now,
        expires_at=now + app_settings.MFA_TOKEN_TIMEOUT,
    )
    return token


def _mfa_tokens_working(now: datetime) -> QuerySet:
    return MfaToken.objects.filter(used_at__isnull=True, expires_at__gt=now, failures__lt=MAX_FAILURES)


def mfa_token_pending(*, token: str, now: datetime | None = None) -> MfaToken | None:
    """The pending second step an ``mfa_token`` names, while it works (unused, unexpired, fewer than
    MAX_FAILURES wrong codes), with its user and the user's authenticator app; else None."""
    if not isinstance(token, str) or not token:
        return None
    return (
        _mfa_tokens_working(now or timezone.now())
        .select_related("user", "user__totp_device")
        .filter(digest=handed_out_digest(token), user__is_active=True)
        .first()
    )


def mfa_token_attempt(*, pending: MfaToken, now: datetime) -> bool:
    """Count one code tried against a pending second step, before it is checked, if the step still
    works (one conditional UPDATE): so even concurrent guesses get at most MAX_FAILURES checks.
    Inside a transaction, the row stays locked until it ends (PostgreSQL)."""
    return bool(_mfa_tokens_working(now).filter(pk=pending.pk).update(failures=F("failures") + 1))


def mfa_token_use(*, pending: MfaToken, now: datetime) -> bool:
    """Mark a pending second step used (it works once); False if it was used or died meanwhile."""
    return bool(MfaToken.objects.filter(pk=pending.pk, used_at__isnull=True).update(used_at=now))


# --- Removing every second factor (the admin, reset_mfa) -------------------------------------------
@transaction.atomic
def second_factors_remove(*, user, origin: Origin = NOWHERE, detail: str = "") -> SecondFactors:
    """Remove every second factor of ``user`` (an admin or a command acting for someone who lost
    theirs): the authenticator app (pending or confirmed), the recovery codes and the passkeys,
    and the pending second steps and WebAuthn challenges that could still use them. What it removed
    is returned (falsy: nothing).

    One transaction. Something removed is audited (MFA_RESET, naming ``origin.actor_id``, the admin)
    and the user is mailed a notice; nothing removed, nothing recorded. Sessions stay: the user
    signs in with a password alone until they add a factor again, and ending their sessions is a
    separate decision (revoke_sessions).
    """
    # Read under lock, then deleted: what is described is what goes (no confirmation or new passkey
    # slips in between on PostgreSQL; SQLite writes one transaction at a time anyway).
    device = TotpDevice.objects.select_for_update().filter(user_id=user.pk).values("confirmed_at").first()
    passkeys = Passkey.objects.select_for_update().filter(user_id=user.pk).order_by("created_at", "pk")
    removed = SecondFactors(
        totp=totp_state(confirmed_at=device and device["confirmed_at"], enrolled=device is not None),
        recovery_codes_left=RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).delete()[0],
        passkeys=tuple(passkeys.only(*SHOWN_PASSKEY_FIELDS)),
    )
    TotpDevice.objects.filter(user_id=user.pk).delete()
    RecoveryCode.objects.filter(user_id=user.pk).delete()  # the used ones, kept until a new set
    Passkey.objects.filter(user_id=user.pk).delete()
    # The second steps waiting for a code, and the challenges handed out for this user's passkeys.
    MfaToken.objects.filter(user_id=user.pk, used_at__isnull=True).delete()
    WebAuthnChallenge.objects.filter(user_id=user.pk, used_at__isnull=True).delete()
    if not removed:
        return removed
    audit_event_record(
        type=AuditEventType.MFA_RESET,
        user_id=user.pk,
        origin=origin,
        detail=f"removed {removed.described()}" + (f"; {detail}" if detail else ""),
    )
    notices.notice_send(
        user=user,
        notice=notices.Notice.SECOND_FACTOR_REMOVED,
        origin=origin,
        context={"factor": "every second factor", "by_admin": True},
    )
    return removed
