"""Second factors: the rules of TOTP, recovery codes, the login's second step (``mfa_token``) and
recent authentication. Passkeys' own rules are in ``accounts.passkeys``. No HTTP here.

The database keeps digests of what is handed out (``mfa_token``, recovery codes) and the TOTP secret
encrypted (``accounts.encryption``); every single-use thing is used in one conditional statement,
so that concurrent uses of it give exactly one success on PostgreSQL and on SQLite.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.text import get_text_list

from .audit import audit_event_record
from .conf import app_settings
from .errors import ReauthenticationRequired
from .models import AuditEventType, MfaToken, Passkey, RecoveryCode, TotpDevice, WebAuthnChallenge
from .notices import Notice, notice_send
from .origin import NOWHERE, Origin

# A pending second step dies after this many wrong codes.
MAX_FAILURES = 5


def handed_out_digest(value: str) -> str:
    """The SHA-256 digest kept of a random value handed out (an ``mfa_token``, a WebAuthn challenge):
    each has 256 random bits, so an unkeyed digest cannot be reversed, and the value itself is
    never stored."""
    return hashlib.sha256(value.encode()).hexdigest()


def mfa_token_pending(*, token: str, now: datetime | None = None) -> MfaToken | None:
    """The pending second step an ``mfa_token`` names, while it works (unused, unexpired, fewer than
    MAX_FAILURES wrong codes); else None."""
    if not isinstance(token, str) or not token:
        return None
    return (
        MfaToken.objects.select_related("user")
        .filter(
            digest=handed_out_digest(token),
            used_at__isnull=True,
            expires_at__gt=now or timezone.now(),
            failures__lt=MAX_FAILURES,
            user__is_active=True,
        )
        .first()
    )


def recent_authentication_require(*, auth_time: datetime | None, now: datetime | None = None) -> None:
    """ReauthenticationRequired unless ``auth_time`` (an access token's) is within
    REAUTHENTICATION_TIMEOUT: adding or removing a factor, new recovery codes, an address change."""
    if auth_time is None or (now or timezone.now()) - auth_time > app_settings.REAUTHENTICATION_TIMEOUT:
        raise ReauthenticationRequired()


# --- Removing every second factor (the admin, reset_mfa) -------------------------------------------
@dataclass(frozen=True)
class SecondFactors:
    """A user's second factors as people are shown them (the admin, reset_mfa): never a secret, a
    digest or a public key. ``totp`` is "on" (confirmed), "pending" (enrolled, not yet confirmed)
    or "off"; ``passkeys`` are (name, created_at, last_used_at)."""

    totp: str = "off"
    totp_confirmed_at: datetime | None = None
    totp_last_used_at: datetime | None = None
    recovery_codes_left: int = 0
    passkeys: tuple[tuple[str, datetime, datetime | None], ...] = ()

    def __bool__(self) -> bool:
        """Whether there is anything to remove: an authenticator app (even pending), an unused
        recovery code or a passkey."""
        return self.totp != "off" or self.recovery_codes_left > 0 or bool(self.passkeys)

    def described(self) -> str:
        """In words, for messages and the audit trail: "the authenticator app, 9 recovery codes and
        1 passkey"; "nothing" when there is none."""
        parts = []
        if self.totp != "off":
            parts.append("the authenticator app" + (" (not yet confirmed)" if self.totp == "pending" else ""))
        if self.recovery_codes_left:
            parts.append(f"{self.recovery_codes_left} recovery code{pluralize(self.recovery_codes_left)}")
        if self.passkeys:
            parts.append(f"{len(self.passkeys)} passkey{pluralize(len(self.passkeys))}")
        return get_text_list(parts, "and") if parts else "nothing"


def _totp_state(device: dict | None) -> str:
    """ "on", "pending" or "off": the authenticator app's state, from its row's ``confirmed_at``."""
    if device is None:
        return "off"
    return "on" if device["confirmed_at"] else "pending"


def second_factors_summary(*, user) -> SecondFactors:
    """The user's second factors (three small reads; no secret, digest or public key is loaded)."""
    device = TotpDevice.objects.filter(user_id=user.pk).values("confirmed_at", "last_used_at").first()
    passkeys = Passkey.objects.filter(user_id=user.pk).order_by("created_at", "pk")
    return SecondFactors(
        totp=_totp_state(device),
        totp_confirmed_at=device and device["confirmed_at"],
        totp_last_used_at=device and device["last_used_at"],
        recovery_codes_left=RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).count(),
        passkeys=tuple(passkeys.values_list("name", "created_at", "last_used_at")),
    )


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
        totp=_totp_state(device),
        recovery_codes_left=RecoveryCode.objects.filter(user_id=user.pk, used_at__isnull=True).delete()[0],
        passkeys=tuple(passkeys.values_list("name", "created_at", "last_used_at")),
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
    notice_send(
        user=user,
        notice=Notice.SECOND_FACTOR_REMOVED,
        origin=origin,
        context={"factor": "every second factor", "by_admin": True},
    )
    return removed
