"""Reads: session and user look-ups shared by the API, the admin and the commands."""

import re
import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

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


@dataclass(frozen=True)
class MfaState:
    """A user's second factors, as the API shows them: never a secret or a code."""

    totp: bool
    recovery_codes_left: int
    passkeys: list


def mfa_state(*, user) -> MfaState:
    """The user's second factors: whether an authenticator app is on, how many recovery codes are
    unused, and their passkeys (oldest first). Two statements."""
    found = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .values_list(
            Exists(TotpDevice.objects.filter(user_id=OuterRef("pk"), confirmed_at__isnull=False)),
            Subquery(
                RecoveryCode.objects.filter(user_id=OuterRef("pk"), used_at__isnull=True)
                .values("user_id")
                .annotate(left=Count("pk"))
                .values("left")
            ),
        )
        .first()
    )
    totp, left = found or (False, 0)
    passkeys = list(Passkey.objects.filter(user_id=user.pk).order_by("created_at", "id"))
    return MfaState(totp=bool(totp), recovery_codes_left=left or 0, passkeys=passkeys)
