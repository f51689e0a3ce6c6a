"""Writes: the session rules. Plain keyword arguments in, domain objects or errors out; no HTTP.

The API views, the admin and the management commands all change sessions through these functions,
and these functions write the audit trail; ``origin`` says where a change came from (IP, user agent,
and the admin who made it, if one did).
"""

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.utils import timezone

from .audit import NOWHERE, Origin, audit_event_build, audit_event_record, audit_events_record
from .conf import app_settings
from .errors import InvalidCredentials, TokenExpired, TokenRevoked, WrongPassword
from .models import AuditEvent, AuditEventType, RevokeReason, Session
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


def session_login(*, username: str, password: str, origin: Origin) -> IssuedTokens:
    """Check the credentials and open a session; either way the attempt goes to the audit trail.

    Unknown user, wrong password and inactive user raise the same error; Django's ModelBackend
    also hashes the password for an unknown user, so the three take similar time.
    """
    user = authenticate(None, username=username, password=password)
    if user is None:
        audit_event_record(type=AuditEventType.LOGIN_FAILED, username=username, origin=origin)
        raise InvalidCredentials()
    now = timezone.now()
    user.last_login = now
    user.save(update_fields=["last_login"])
    session = session_create(user=user, ip=origin.ip, user_agent=origin.user_agent, now=now)
    audit_event_record(
        type=AuditEventType.LOGIN_SUCCEEDED, user_id=user.pk, session_id=session.pk, origin=origin
    )
    return tokens_issue(session=session)


def session_refresh(*, token: RefreshToken, origin: Origin = NOWHERE) -> IssuedTokens:
    """Exchange a verified refresh token for new tokens.

    In one transaction the session row is locked and checked. The current token rotates (the old
    one is dead from then on). The previous token, within the grace window, gets the session's
    current token back without rotating again (two tabs, or a lost response). Anything older, or
    the previous token after the window, is reuse: the whole session is revoked. Ordinary
    refreshes write no audit event (``last_used_at`` records them); reuse does.
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
    # Recorded and raised outside the transaction, so that the revocation commits whatever happens.
    audit_event_record(
        type=AuditEventType.REUSE_DETECTED,
        user_id=session.user_id,
        session_id=session.pk,
        origin=origin,
    )
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


def session_revoke(
    *, session_id: uuid.UUID, reason: str, user_id=None, origin: Origin = NOWHERE, detail: str = ""
) -> bool:
    """Revoke one session (only if it is ``user_id``'s, when given). False if there was no such
    unrevoked row. With ``user_id`` known it is one UPDATE and one audit INSERT."""
    if user_id is None:
        return sessions_revoke(session_ids=[session_id], reason=reason, origin=origin, detail=detail) > 0
    revoked = Session.objects.filter(pk=session_id, user_id=user_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoke_reason=reason
    )
    if revoked:
        audit_event_record(type=reason, user_id=user_id, session_id=session_id, origin=origin, detail=detail)
    return revoked > 0


def sessions_revoke(
    *, session_ids: Iterable[uuid.UUID], reason: str, origin: Origin = NOWHERE, detail: str = ""
) -> int:
    """Revoke the unrevoked sessions among ``session_ids`` (any users'); one audit event each.

    The rows are locked and read first, so that each event names the session's user.
    """
    with transaction.atomic():
        rows = list(
            Session.objects.select_for_update()
            .filter(pk__in=session_ids, revoked_at__isnull=True)
            .values_list("pk", "user_id")
        )
        if not rows:
            return 0
        Session.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            revoked_at=timezone.now(), revoke_reason=reason
        )
    audit_events_record(
        events=[
            audit_event_build(type=reason, user_id=user_id, session_id=pk, origin=origin, detail=detail)
            for pk, user_id in rows
        ]
    )
    return len(rows)


def session_logout(*, token: RefreshToken, origin: Origin = NOWHERE) -> bool:
    """Revoke the session a refresh token belongs to (any token of its chain will do)."""
    return session_revoke(
        session_id=token.session_id, user_id=token.user_id, reason=RevokeReason.LOGOUT, origin=origin
    )


def sessions_revoke_for_user(
    *,
    user_id,
    reason: str,
    keep_session_id: uuid.UUID | None = None,
    origin: Origin = NOWHERE,
    detail: str = "",
    audit_when_none: bool = True,
) -> int:
    """Revoke every unrevoked session of a user, except ``keep_session_id``; returns how many.

    One audit event records the count (skipped when nothing was revoked and ``audit_when_none``
    is False, as for the repeated saves of an already inactive user).
    """
    sessions = Session.objects.filter(user_id=user_id, revoked_at__isnull=True)
    if keep_session_id is not None:
        sessions = sessions.exclude(pk=keep_session_id)
    revoked = sessions.update(revoked_at=timezone.now(), revoke_reason=reason)
    if revoked or audit_when_none:
        counted = f"{revoked} session{pluralize(revoked)} revoked"
        audit_event_record(
            type=reason,
            user_id=user_id,
            session_id=keep_session_id,
            origin=origin,
            detail=f"{counted}; {detail}" if detail else counted,
        )
    return revoked


def sessions_revoke_all(
    *,
    reason: str,
    batch_size: int = 10_000,
    detail: str = "",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Revoke every unrevoked session of every user, in batches so no lock is held for long.

    Each window of ``batch_size`` rows is its own short UPDATE (see ``_key_windows``); one audit
    event records the total. ``progress`` is called with the running total after each batch.
    """
    total = 0
    for window in _key_windows(Session.objects.filter(revoked_at__isnull=True), batch_size=batch_size):
        revoked = window.update(revoked_at=timezone.now(), revoke_reason=reason)
        total += revoked
        if progress and revoked:
            progress(total)
    counted = f"all users: {total} sessions revoked"
    audit_event_record(type=reason, detail=f"{counted}; {detail}" if detail else counted)
    return total


@transaction.atomic
def user_change_password(
    *,
    user,
    old_password: str,
    new_password: str,
    keep_session_id: uuid.UUID | None,
    origin: Origin = NOWHERE,
) -> int:
    """Set a new password and revoke all the user's other sessions; returns how many."""
    if not user.check_password(old_password):
        raise WrongPassword()
    user.set_password(new_password)
    user.save(update_fields=["password"])
    return sessions_revoke_for_user(
        user_id=user.pk,
        reason=RevokeReason.PASSWORD_CHANGED,
        keep_session_id=keep_session_id,
        origin=origin,
    )


@dataclass(frozen=True)
class FlushResult:
    """What ``sessions_flush_expired`` deleted (or, in a dry run, would delete)."""

    sessions: int
    audit_events: int


def _key_windows(queryset, *, batch_size: int) -> Iterator:
    """The queryset cut into windows of the table's next ``batch_size`` rows in primary-key order.

    Only each window's upper bound is read, so memory holds one key; the key index is walked once
    however many rows went before (no rescanning of rows already deleted); and a statement on a
    window touches at most ``batch_size`` rows, visiting them in physical order, as its own short
    transaction. (``pk IN (SELECT ... LIMIT n)`` instead gets a hash join over the whole table
    from PostgreSQL, per batch.)
    """
    keys = queryset.model.objects.order_by("pk").values_list("pk", flat=True)
    last = None
    while True:
        bound = (keys if last is None else keys.filter(pk__gt=last))[batch_size - 1 : batch_size].first()
        window = queryset if last is None else queryset.filter(pk__gt=last)
        yield window if bound is None else window.filter(pk__lte=bound)
        if bound is None:
            return
        last = bound


def _delete_in_batches(
    queryset, *, batch_size: int, dry_run: bool, progress: Callable[[int], None] | None
) -> int:
    """Delete (or, in a dry run, count) the queryset's rows window by window; returns how many."""
    total = 0
    for window in _key_windows(queryset, batch_size=batch_size):
        done = window.count() if dry_run else window.delete()[0]
        total += done
        if progress and done:
            progress(total)
    return total


def sessions_flush_expired(
    *,
    older_than: timedelta | None = None,
    audit_older_than: timedelta | None = None,
    batch_size: int = 5_000,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> FlushResult:
    """Delete sessions that expired or were revoked more than ``older_than`` ago (default
    ``SESSION_RETENTION``), and audit events older than ``audit_older_than`` (default
    ``AUDIT_RETENTION``). Active sessions are never touched. ``dry_run`` counts without deleting.
    """
    now = timezone.now()
    cutoff = now - (app_settings.SESSION_RETENTION if older_than is None else older_than)
    audit_cutoff = now - (app_settings.AUDIT_RETENTION if audit_older_than is None else audit_older_than)
    dead = Session.objects.filter(
        Q(revoked_at__lt=cutoff) | Q(idle_expires_at__lt=cutoff) | Q(absolute_expires_at__lt=cutoff)
    )

    def reporter(kind):
        return (lambda done: progress(kind, done)) if progress else None

    sessions = _delete_in_batches(dead, batch_size=batch_size, dry_run=dry_run, progress=reporter("sessions"))
    events = _delete_in_batches(
        AuditEvent.objects.filter(created_at__lt=audit_cutoff),
        batch_size=batch_size,
        dry_run=dry_run,
        progress=reporter("audit events"),
    )
    return FlushResult(sessions=sessions, audit_events=events)
