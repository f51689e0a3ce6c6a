"""Reads: session and user look-ups shared by the API, the admin and the commands."""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.text import get_text_list

from .models import EmailAddressState, Passkey, RecoveryCode, Session, TotpDevice
from .statements import Param, Statement


# The attribute the access check gives its user: whether the user's address is verified.
EMAIL_VERIFIED = "accounts_email_verified"


def _users_with_active_session() -> QuerySet:
    """The user of the token, if active, where the token's session is active too; with whether
    their address is verified (``GET /api/users/me/`` shows it), in the same statement."""
    user_model = get_user_model()
    session = Session.objects.active(now=Param("now", Session._meta.get_field("idle_expires_at")))
    verified = EmailAddressState.objects.verifying(
        user_id=OuterRef("pk"), address=OuterRef(user_model.get_email_field_name())
    )
    return (
        user_model.objects.filter(pk=Param("user_id", user_model._meta.pk), is_active=True)
        .filter(Exists(session.filter(pk=Param("session_id", Session._meta.pk), user_id=OuterRef("pk"))))
        .annotate(**{EMAIL_VERIFIED: Exists(verified)})
    )


# Every authenticated request runs it: compiled once, one indexed statement per request.
_USER_FOR_ACCESS_TOKEN = Statement(_users_with_active_session)


def user_get_for_access_token(*, user_id: str, session_id: uuid.UUID):
    """The token's user if it may act now (active user, active session), else None.

    One statement, compiled once: the user by primary key, if its session (by primary key) is active.
    """
    return _USER_FOR_ACCESS_TOKEN.first(user_id=user_id, session_id=session_id, now=timezone.now())


def sessions_list_for_user(*, user) -> QuerySet[Session]:
    """A user's active sessions, newest first."""
    return Session.objects.for_user(user).active().order_by("-created_at")


def sessions_list(*, user=None, status: str = "active") -> QuerySet[Session]:
    """Sessions newest first with their users (one user's when given), in a status of
    ``SESSION_STATUSES``. Ordered like the admin's indexes, so a large table streams cheaply."""
    sessions = Session.objects.select_related("user").order_by("-created_at", "-id")
    if user is not None:
        sessions = sessions.for_user(user)
    return sessions.in_status(status)


_HEX = re.compile(r"[0-9a-f]+")
# A session id may be given by its start (the admin and the commands show 8 characters). Shorter
# prefixes would match many sessions: at a million sessions, 8 still match 2 or more now and then.
SESSION_ID_MIN_PREFIX = 8


def uuid_prefix_q(field: str, prefix: str) -> Q | None:
    """``field`` (a UUIDField) starts with ``prefix`` (hex digits; hyphens and case ignored), said as
    a range so that an index on the field answers it; None if ``prefix`` is not hex or too long."""
    digits = prefix.strip().replace("-", "").lower()
    if not _HEX.fullmatch(digits) or len(digits) > 32:
        return None
    low, high = uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))
    return Q(**{f"{field}__gte": low, f"{field}__lte": high})


def sessions_with_id_prefix(*, prefix: str) -> QuerySet[Session]:
    """The sessions whose id starts with ``prefix`` (none if it is not hex): a primary-key range."""
    condition = uuid_prefix_q("pk", prefix)
    return Session.objects.filter(condition) if condition else Session.objects.none()


def user_get_by_username(*, username: str):
    """The user with this username (the user model's USERNAME_FIELD), or None."""
    return get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()


def users_active_with_email(*, email: str) -> list:
    """The active users whose address (the user model's email field) is ``email``, compared
    case-insensitively, as Django's PasswordResetForm finds them."""
    model = get_user_model()
    lookup = {f"{model.get_email_field_name()}__iexact": email, "is_active": True}
    return list(model._default_manager.filter(**lookup))


# A passkey's fields that people are shown (its public key and credential id never are).
SHOWN_PASSKEY_FIELDS = ("id", "name", "created_at", "last_used_at")


@dataclass(frozen=True)
class SecondFactors:
    """A user's second factors as people are shown them (the API, the admin, reset_mfa): never a
    secret, a digest or a public key. ``totp`` is "on" (confirmed), "pending" (enrolled, not yet
    confirmed) or "off"; ``passkeys`` carry only SHOWN_PASSKEY_FIELDS."""

    totp: str = "off"
    totp_confirmed_at: datetime | None = None
    totp_last_used_at: datetime | None = None
    recovery_codes_left: int = 0
    passkeys: tuple[Passkey, ...] = ()

    @property
    def totp_on(self) -> bool:
        """A confirmed authenticator app: a second factor (a pending one is not yet)."""
        return self.totp == "on"

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


def totp_state(*, confirmed_at: datetime | None, enrolled: bool) -> str:
    """ "on", "pending" or "off": the authenticator app's state."""
    if not enrolled:
        return "off"
    return "on" if confirmed_at else "pending"


def second_factors_summary(*, user) -> SecondFactors:
    """The user's second factors, in two statements: the authenticator app's state and dates with
    the unused recovery codes counted, then the passkeys (oldest first, SHOWN_PASSKEY_FIELDS only).
    No secret, digest or public key is loaded."""
    device = TotpDevice.objects.filter(user_id=OuterRef("pk"))
    found = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values_list(
            Exists(device),
            Subquery(device.values("confirmed_at")),
            Subquery(device.values("last_used_at")),
            Subquery(
                RecoveryCode.objects.filter(user_id=OuterRef("pk"), used_at__isnull=True)
                .values("user_id")
                .annotate(left=Count("pk"))
                .values("left")
            ),
        )
        .first()
    )
    enrolled, confirmed_at, last_used_at, left = found or (False, None, None, 0)
    passkeys = Passkey.objects.filter(user_id=user.pk).order_by("created_at", "pk").only(*SHOWN_PASSKEY_FIELDS)
    return SecondFactors(
        totp=totp_state(confirmed_at=confirmed_at, enrolled=enrolled),
        totp_confirmed_at=confirmed_at,
        totp_last_used_at=last_used_at,
        recovery_codes_left=left or 0,
        passkeys=tuple(passkeys),
    )
