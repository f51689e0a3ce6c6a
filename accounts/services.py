"""Writes: the session rules. Plain keyword arguments in, domain objects or errors out; no HTTP.

The API views, the admin and the management commands all change sessions through these functions.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from django.utils import timezone

from .conf import app_settings
from .errors import InvalidCredentials, TokenExpired, TokenRevoked, WrongPassword
from .models import RevokeReason, Session
from .tokens import AccessToken, RefreshToken


@dataclass(frozen=True)
class IssuedTokens:
    """What a login or a refresh hands out: the body's access token and the cookie's refresh token."""

    session: Session
    access: AccessToken
    refresh: RefreshToken


def new_jti() -> str:
    """A fresh random token id (122 random bits)."""
    return uuid.uuid4().hex


def tokens_issue(*, session: Session) -> IssuedTokens:
    """The session's current refresh token and a new access token bound to the same session."""
    refresh = RefreshToken.for_session(session)
    return IssuedTokens(session=session, access=refresh.access_token, refresh=refresh)


def user_create(*, username: str, email: str, password: str):
    """A new active user; the password is hashed (Argon2 by default)."""
    return get_user_model().objects.create_user(username=username, email=email, password=password)


def session_create(*, user, ip: str | None, user_agent: str, now: datetime | None = None) -> Session:
    """A new session for a user who has just proved who they are."""
    now = now or timezone.now()
    absolute_expires_at = now + app_settings.SESSION_MAX_AGE
    return Session.objects.create(
        user=user,
        refresh_jti=new_jti(),
        created_at=now,
        last_used_at=now,
        idle_expires_at=min(now + app_settings.REFRESH_TOKEN_LIFETIME, absolute_expires_at),
        absolute_expires_at=absolute_expires_at,
        ip=ip,
        user_agent=user_agent[: Session._meta.get_field("user_agent").max_length],
    )


def session_login(*, username: str, password: str, ip: str | None, user_agent: str) -> IssuedTokens:
    """Check the credentials and open a session.

    Unknown user, wrong password and inactive user raise the same error; Django's ModelBackend
    also hashes the password for an unknown user, so the three take similar time.
    """
    user = authenticate(None, username=username, password=password)
    if user is None:
        raise InvalidCredentials()
    now = timezone.now()
    user.last_login = now
    user.save(update_fields=["last_login"])
    return tokens_issue(session=session_create(user=user, ip=ip, user_agent=user_agent, now=now))


def session_refresh(*, token: RefreshToken) -> IssuedTokens:
    """Exchange a verified refresh token for new tokens.

    In one transaction the session row is locked and checked. The current token rotates (the old
    one is dead from then on). The previous token, within the grace window, gets the session's
    current token back without rotating again (two tabs, or a lost response). Anything older, or
    the previous token after the window, is reuse: the whole session is revoked.
    """
    session_id, jti = token.session_id, token.jti
    with transaction.atomic():
        session = (
            Session.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=session_id, user_id=token.user_id)
            .first()
        )
        now = timezone.now()
        if session is None or session.revoked_at is not None or not session.user.is_active:
            raise TokenRevoked()
        if not session.is_active(now=now):
            raise TokenExpired("Session has expired.")
        if jti == session.refresh_jti:
            return tokens_issue(session=_session_rotate(session=session, now=now))
        if (
            session.rotated_at
            and jti == session.previous_jti
            and now - session.rotated_at <= app_settings.REFRESH_GRACE
        ):
            return tokens_issue(session=session)
        _session_mark_revoked(session=session, reason=RevokeReason.REUSE_DETECTED, now=now)
    # Raised outside the transaction so that the revocation above commits.
    raise TokenRevoked("Refresh token reuse detected; the session has been revoked.")


def _session_rotate(*, session: Session, now: datetime) -> Session:
    """Give the locked session a new current jti, keeping the old one as previous."""
    session.previous_jti = session.refresh_jti
    session.refresh_jti = new_jti()
    session.rotated_at = now
    session.last_used_at = now
    session.idle_expires_at = min(now + app_settings.REFRESH_TOKEN_LIFETIME, session.absolute_expires_at)
    session.save(
        update_fields=["previous_jti", "refresh_jti", "rotated_at", "last_used_at", "idle_expires_at"]
    )
    return session


def _session_mark_revoked(*, session: Session, reason: str, now: datetime) -> None:
    session.revoked_at = now
    session.revoke_reason = reason
    session.save(update_fields=["revoked_at", "revoke_reason"])


def session_revoke(*, session_id: uuid.UUID, reason: str, user_id=None) -> bool:
    """Revoke one session (of ``user_id`` when given). False if there was no such active row."""
    sessions = Session.objects.filter(pk=session_id, revoked_at__isnull=True)
    if user_id is not None:
        sessions = sessions.filter(user_id=user_id)
    return sessions.update(revoked_at=timezone.now(), revoke_reason=reason) > 0


def session_logout(*, token: RefreshToken) -> bool:
    """Revoke the session a refresh token belongs to (any token of its chain will do)."""
    return session_revoke(session_id=token.session_id, user_id=token.user_id, reason=RevokeReason.LOGOUT)


def sessions_revoke_for_user(*, user_id, reason: str, keep_session_id: uuid.UUID | None = None) -> int:
    """Revoke every unrevoked session of a user, except ``keep_session_id``; returns how many."""
    sessions = Session.objects.filter(user_id=user_id, revoked_at__isnull=True)
    if keep_session_id is not None:
        sessions = sessions.exclude(pk=keep_session_id)
    return sessions.update(revoked_at=timezone.now(), revoke_reason=reason)


@transaction.atomic
def user_change_password(
    *, user, old_password: str, new_password: str, keep_session_id: uuid.UUID | None
) -> int:
    """Set a new password and revoke all the user's other sessions; returns how many."""
    if not user.check_password(old_password):
        raise WrongPassword()
    user.set_password(new_password)
    user.save(update_fields=["password"])
    return sessions_revoke_for_user(
        user_id=user.pk, reason=RevokeReason.PASSWORD_CHANGED, keep_session_id=keep_session_id
    )
