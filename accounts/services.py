"""Writes: the session rules. Plain keyword arguments in, domain objects or errors out; no HTTP.

The API views, the admin and the management commands all change sessions through these functions,
and these functions write the audit trail; ``origin`` says where a change came from (IP, user agent,
and the admin who made it, if one did).

Login and logout also tell the rest of the project as Django's own ``login()`` and ``logout()`` do,
through ``user_logged_in``, ``user_logged_out`` and (from ``authenticate()``) ``user_login_failed``,
so that packages listening to them (django-axes, audit apps, Django's own ``update_last_login``)
see API sign-ins. Those signals carry the request, which ``origin.request`` brings along unread.
"""

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Least
from django.template.defaultfilters import pluralize
from django.utils import timezone

from . import email_verification, metrics, mfa, notices
from .audit import audit_event_build, audit_event_record, audit_events_record
from .conf import app_settings
from .devices import device_name
from .errors import (
    EmailUnverified,
    InvalidCode,
    InvalidCredentials,
    MfaTokenInvalid,
    PasswordChecksBusy,
    TokenExpired,
    TokenRevoked,
    UsernameTaken,
    WrongPassword,
)
from .models import AuditEvent, AuditEventType, MfaToken, RevokeReason, Session
from .origin import NOWHERE, Origin
from .password_checks import password_check_slot
from .statements import Param, Statement, insert_if, update_returning
from .tokens import AccessToken, RefreshToken


@dataclass(frozen=True)
class IssuedTokens:
    """What a login or a refresh hands out: the body's access token and the cookie's refresh token."""

    session: Session
    access: AccessToken
    refresh: RefreshToken


@dataclass(frozen=True)
class SecondFactorRequired:
    """What a login with the right password answers for a user with a second factor: no session
    yet, but an ``mfa_token`` for the second step, and the factors the user may give."""

    mfa_token: str
    methods: list[str]
    mfa_required: bool = True


# RFC 8176 values of a session's ``amr``: how its user signed in or last re-authenticated.
PASSWORD = ("pwd",)
PASSWORD_AND_OTP = ("pwd", mfa.OTP)


def new_jti() -> str:
    """A fresh random token id (122 random bits)."""
    return uuid.uuid4().hex


def tokens_issue(*, session: Session) -> IssuedTokens:
    """The session's current refresh token and a new access token bound to the same session."""
    refresh = RefreshToken.for_session(session)
    return IssuedTokens(session=session, access=refresh.access_token.authenticated_as(session), refresh=refresh)


def user_create(*, username: str, email: str, password: str, origin: Origin = NOWHERE):
    """A new active user; the password is hashed (Argon2 by default). A username taken meanwhile
    (a concurrent registration won the unique index) is UsernameTaken, not a database error.
    Unless EMAIL_VERIFICATION is "none", the address is mailed a link that verifies it."""
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=username, email=email, password=password)
    except IntegrityError as e:
        raise UsernameTaken() from e
    email_verification.verification_send_after_registration(user=user, origin=origin)
    return user


def session_create(
    *, user, ip: str | None, user_agent: str, now: datetime | None = None, amr: Collection[str] = PASSWORD
) -> Session:
    """A new session for a user who has just proved who they are (``amr``: how, RFC 8176 values);
    the device is named here, once."""
    session = session_build(user=user, ip=ip, user_agent=user_agent, now=now, amr=amr)
    session.save(force_insert=True)
    return session


def session_create_if(
    *, user, ip: str | None, user_agent: str, condition: QuerySet, amr: Collection[str] = PASSWORD
) -> Session | None:
    """``session_create`` only if ``condition`` has a row, checked in the INSERT itself (one
    statement); else None and nothing is written."""
    session = session_build(user=user, ip=ip, user_agent=user_agent, amr=amr)
    return session if insert_if(session, condition) else None


def session_build(
    *, user, ip: str | None, user_agent: str, now: datetime | None = None, amr: Collection[str] = PASSWORD
) -> Session:
    """An unsaved session, as ``session_create`` saves it."""
    now = now or timezone.now()
    absolute_expires_at = now + app_settings.SESSION_MAX_AGE
    user_agent = user_agent[: Session._meta.get_field("user_agent").max_length]
    return Session(
        user=user,
        refresh_jti=new_jti(),
        created_at=now,
        last_used_at=now,
        idle_expires_at=min(now + app_settings.REFRESH_TOKEN_LIFETIME, absolute_expires_at),
        absolute_expires_at=absolute_expires_at,
        ip=ip,
        user_agent=user_agent,
        device=device_name(user_agent),
        auth_time=now,
        amr=" ".join(amr),
    )


def session_open(
    *, user, origin: Origin, session: Session | None = None, amr: Collection[str] = PASSWORD
) -> IssuedTokens:
    """Open a session for a user whose credentials were checked, record the login, issue tokens.
    ``session``: one created already (``session_create_if``), else a new one, signed in by ``amr``.

    A sign-in over HTTP (``origin.request`` set) sends ``user_logged_in`` as Django's ``login()``
    does, last of all; Django's own receiver ``update_last_login`` keeps ``last_login`` then (so a
    project that disconnects it, as Django allows, gets no write). A session opened from code
    (``RefreshToken.for_user``) has no request for the receivers, which expect one: nothing is sent
    and ``last_login`` stays as it was.
    """
    if origin.request is not None:
        # Before this sign-in is recorded, and before user_logged_in, whose receiver sets
        # last_login (None: the account never signed in before).
        notices.notice_new_device_maybe(user=user, origin=origin, first_sign_in=user.last_login is None)
    if session is None:
        session = session_create(user=user, ip=origin.ip, user_agent=origin.user_agent, amr=amr)
    audit_event_record(
        type=AuditEventType.LOGIN_SUCCEEDED, user_id=user.pk, session_id=session.pk, origin=origin
    )
    if origin.request is not None:
        user_logged_in.send(sender=user.__class__, request=origin.request, user=user)
    return tokens_issue(session=session)


def session_login(
    *, username: str, password: str, origin: Origin, transport: str = "cookie"
) -> IssuedTokens | SecondFactorRequired:
    """Check the credentials and open a session; either way the attempt goes to the audit trail.

    ``username`` is the value of the user model's USERNAME_FIELD. Unknown user, wrong password and
    inactive user raise the same error; Django's ModelBackend also hashes the password for an
    unknown user, so the three take similar time. ``authenticate()`` gets the request, so that its
    ``user_login_failed`` carries it (django-axes counts failures by it) and request-aware backends
    work. Under EMAIL_VERIFICATION "mandatory" an unverified address opens no session
    (EmailUnverified), after the password was found right. A user with a second factor gets no
    session either, but a SecondFactorRequired whose ``mfa_token`` keeps ``transport`` (the refresh
    token's, asked for now) for the second step (``session_login_second_step``).
    """
    try:
        with password_check_slot():
            user = authenticate(origin.request, username=username, password=password)
    except PasswordChecksBusy:
        metrics.login_counted(result="throttled")
        raise
    if user is None:
        metrics.login_counted(result="failed")
        audit_event_record(type=AuditEventType.LOGIN_FAILED, username=username, origin=origin)
        raise InvalidCredentials()
    mandatory = app_settings.EMAIL_VERIFICATION == email_verification.MANDATORY
    # The session row is written only if the password is all it takes (no second factor; under
    # "mandatory", a verified address), in the same statement: such a login takes no statement
    # more than before second factors. The others find out why nothing was written.
    session = session_create_if(
        user=user,
        ip=origin.ip,
        user_agent=origin.user_agent,
        condition=_password_suffices(user=user, mandatory=mandatory),
    )
    if session is None:
        if mandatory and not email_verification.email_is_verified(user=user):
            # The right password: the answer may say so (403), but no session opens.
            metrics.login_counted(result="failed")
            audit_event_record(
                type=AuditEventType.LOGIN_FAILED,
                user_id=user.pk,
                username=username,
                origin=origin,
                detail="e-mail address unverified",
            )
            raise EmailUnverified()
        methods = mfa.second_factor_methods(user=user)
        if {mfa.TOTP, mfa.PASSKEY} & set(methods):
            metrics.login_counted(result="mfa_required")
            audit_event_record(type=AuditEventType.MFA_REQUIRED, user_id=user.pk, origin=origin)
            mfa_token = mfa.mfa_token_issue(user=user, transport=transport)
            return SecondFactorRequired(mfa_token=mfa_token, methods=methods)
        # The last factor went between the two statements: the password is all it takes now.
    issued = session_open(user=user, origin=origin, session=session)
    metrics.login_counted(result="ok")
    return issued


def _password_suffices(*, user, mandatory: bool) -> QuerySet:
    """A row if the right password alone opens a session for ``user``: they have no second factor
    and, under EMAIL_VERIFICATION "mandatory", their address is verified."""
    users = get_user_model().objects.filter(mfa.no_second_factor(user.pk), pk=user.pk)
    if mandatory:
        users = users.filter(Exists(email_verification.email_verified_states(user=user)))
    return users


def session_login_second_step(*, pending: MfaToken, code: str, origin: Origin) -> IssuedTokens:
    """The login's second step: a code (authenticator app or recovery code) for a pending
    ``mfa_token`` (``mfa.mfa_token_pending``) opens the session the password alone did not, its
    ``amr`` "pwd otp".

    In one transaction: the attempt is counted on the pending step first (MfaTokenInvalid if it
    was used, expired or died meanwhile; the row stays locked), then the code is used (once, in its
    own conditional statement), then the step is marked used and the session opened. A wrong code
    commits only the count (the step dies at MAX_FAILURES), is audited, and is InvalidCode.
    """
    user, now = pending.user, timezone.now()
    with transaction.atomic():
        if not mfa.mfa_token_attempt(pending=pending, now=now):
            raise MfaTokenInvalid()
        if mfa.second_factor_code_use(user=user, code=code, origin=origin, now=now):
            if not mfa.mfa_token_use(pending=pending, now=now):  # held by the row lock: never
                raise MfaTokenInvalid()
            issued = session_open(user=user, origin=origin, amr=PASSWORD_AND_OTP)
            metrics.login_counted(result="ok")
            return issued
    metrics.login_counted(result="failed")
    audit_event_record(type=AuditEventType.MFA_FAILED, user_id=user.pk, origin=origin)
    raise InvalidCode()


def session_reauthenticate(
    *, user, session_id: uuid.UUID, password: str | None = None, code: str | None = None, origin: Origin
) -> IssuedTokens:
    """Prove again who one is in a session (``password``, or ``code`` of a second factor): the
    session's ``auth_time`` becomes now and its ``amr`` the method used (one UPDATE), so that the
    access tokens it issues from now on, refreshes included, count as recently authenticated.

    The password is checked as a login checks it (``authenticate()``, in a password-check slot);
    a wrong one is InvalidCredentials, a wrong code InvalidCode, both audited. A session that
    ended meanwhile is TokenRevoked.
    """
    if password is not None:
        with password_check_slot():
            found = authenticate(origin.request, username=user.get_username(), password=password)
        right, amr = found is not None and found.pk == user.pk, PASSWORD
    else:
        right, amr = mfa.second_factor_code_use(user=user, code=code or "", origin=origin), (mfa.OTP,)
    if not right:
        failed = AuditEventType.LOGIN_FAILED if password is not None else AuditEventType.MFA_FAILED
        audit_event_record(
            type=failed, user_id=user.pk, session_id=session_id, origin=origin, detail="re-authentication"
        )
        raise InvalidCredentials() if password is not None else InvalidCode()
    now = timezone.now()
    mine = Session.objects.active(now=now).filter(pk=session_id, user_id=user.pk)
    updated = update_returning(mine, auth_time=now, amr=" ".join(amr))
    if not updated:
        raise TokenRevoked()
    audit_event_record(
        type=AuditEventType.REAUTHENTICATED,
        user_id=user.pk,
        session_id=session_id,
        origin=origin,
        detail=" ".join(amr),
    )
    return tokens_issue(session=updated[0])


def session_refresh(*, token: RefreshToken, origin: Origin = NOWHERE) -> IssuedTokens:
    """Exchange a verified refresh token for new tokens.

    The session's current token rotates (the old one is dead from then on): one statement, which
    rotates the row only if the session and its user are active and the token is the current one.
    Anything else takes ``_session_refresh_locked``, which finds out what it is.
    """
    session = _session_rotate(token=token, now=timezone.now())
    if session is None:
        return _session_refresh_locked(token=token, origin=origin)
    metrics.refresh_counted(result="rotated")
    return tokens_issue(session=session)


def _session_refresh_locked(*, token: RefreshToken, origin: Origin) -> IssuedTokens:
    """A refresh that is not the common case, decided with the session row locked.

    The previous token, within the grace window, gets the session's current token back without
    rotating again (two tabs, or a lost response; also the loser of a race with another refresh of
    the same token). Anything older, or the previous token after the window, is reuse: the whole
    session is revoked. Ordinary refreshes write no audit event (``last_used_at`` records them);
    reuse does.
    """
    session_id, jti = token.session_id, token.jti
    with transaction.atomic():
        session = (
            Session.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=session_id, user_id=token.user_id)
            .first()
        )
        now = timezone.now()  # after the lock: never before the rotation that a racer waited for
        if session is None or session.revoked_at is not None or not session.user.is_active:
            metrics.refresh_counted(result="refused")
            raise TokenRevoked()
        if not session.is_active(now=now):
            metrics.refresh_counted(result="refused")
            raise TokenExpired("Session has expired.")
        if jti == session.refresh_jti:  # missed by the one statement only in a race; locked now
            if (rotated := _session_rotate(token=token, now=now)) is None:
                metrics.refresh_counted(result="refused")
                raise TokenRevoked()
            metrics.refresh_counted(result="rotated")
            return tokens_issue(session=rotated)
        if (
            session.rotated_at
            and jti == session.previous_jti
            and now - session.rotated_at <= app_settings.REFRESH_GRACE
        ):
            metrics.refresh_counted(result="grace")
            return tokens_issue(session=session)
        sessions_revoke(
            sessions=Session.objects.filter(pk=session.pk), reason=RevokeReason.REUSE_DETECTED, origin=origin
        )
        notices.notice_send(user=session.user, notice=notices.Notice.REUSE_DETECTED, origin=origin)
    # Raised outside the transaction, so that the revocation commits.
    metrics.refresh_counted(result="reuse_detected")
    raise TokenRevoked("Refresh token reuse detected; the session has been revoked.")


def _sessions_refreshable() -> QuerySet[Session]:
    """The token's session, if it is active, its user is active, and the token is its current one."""
    field = Session._meta.get_field
    return (
        Session.objects.active(now=Param("now", field("idle_expires_at")))
        .filter(
            pk=Param("session_id", field("id")),
            user_id=Param("user_id", field("user")),
            refresh_jti=Param("jti", field("refresh_jti")),
        )
        .filter(Exists(get_user_model().objects.filter(pk=OuterRef("user_id"), is_active=True)))
    )


def _rotation() -> dict:
    """What rotating sets: a new current jti, the old one kept as previous, and the idle expiry
    pushed back (never past the absolute one)."""
    field = Session._meta.get_field
    now = Param("now", field("rotated_at"))
    return {
        "previous_jti": F("refresh_jti"),
        "refresh_jti": Param("new_jti", field("refresh_jti")),
        "rotated_at": now,
        "last_used_at": now,
        "idle_expires_at": Least(Param("idle_until", field("idle_expires_at")), F("absolute_expires_at")),
    }


# Every refresh runs it: compiled once; it rotates the session and returns what issuing its tokens
# reads (tokens_issue), or returns nothing. Its refresh_issued_at is rotated_at, which the rotation
# set to ``now``: that one is not read back.
_SESSION_ROTATE = Statement(
    _sessions_refreshable,
    update=_rotation,
    returning=("id", "user", "refresh_jti", "idle_expires_at", "auth_time", "amr"),
)


def _session_rotate(*, token: RefreshToken, now: datetime) -> Session | None:
    """The token's session, rotated, if the token was its current one (and both it and its user
    are active); else None and nothing changed."""
    session = _SESSION_ROTATE.first(
        session_id=token.session_id,
        user_id=token.user_id,
        jti=token.jti,
        now=now,
        new_jti=new_jti(),
        idle_until=now + app_settings.REFRESH_TOKEN_LIFETIME,
    )
    if session is not None:
        session.rotated_at = now
    return session


# --- Revocation ----------------------------------------------------------------------------------
def _revoked_detail(counted: str, detail: str) -> str:
    return f"{counted}; {detail}" if detail else counted


def _sessions_counted(count: int) -> str:
    return f"{count} session{pluralize(count)} revoked"


def sessions_revoke_each(
    *, sessions: QuerySet[Session], reason: RevokeReason, origin: Origin = NOWHERE, detail: str = ""
) -> list[tuple[uuid.UUID, Any]]:
    """End sessions early: the one way every revocation happens. ``(session id, user id)`` of each
    session it ended.

    Every unrevoked session in ``sessions`` is revoked in one statement, so its refresh and access
    tokens stop at once; each user whose sessions ended gets one audit event of the reason's type,
    counting them (and naming the session when it was one). Nothing revoked, nothing recorded.
    """
    ended = sessions.revoke(reason=reason)
    by_user: dict = defaultdict(list)
    for session_id, user_id in ended:
        by_user[user_id].append(session_id)
    audit_events_record(
        events=[
            audit_event_build(
                type=reason,
                user_id=user_id,
                session_id=session_ids[0] if len(session_ids) == 1 else None,
                origin=origin,
                # One session is named by the event itself: "session revoked", never "1 sessions".
                detail=_revoked_detail(
                    "session revoked" if len(session_ids) == 1 else _sessions_counted(len(session_ids)),
                    detail,
                ),
            )
            for user_id, session_ids in by_user.items()
        ]
    )
    return ended


def sessions_revoke(
    *, sessions: QuerySet[Session], reason: RevokeReason, origin: Origin = NOWHERE, detail: str = ""
) -> int:
    """``sessions_revoke_each``, counted: how many sessions ended."""
    return len(sessions_revoke_each(sessions=sessions, reason=reason, origin=origin, detail=detail))


def session_revoke(*, session_id: uuid.UUID, user_id, reason: RevokeReason, origin: Origin = NOWHERE) -> bool:
    """Revoke one session of ``user_id``; False if that user has no such unrevoked session."""
    mine = Session.objects.filter(pk=session_id, user_id=user_id)
    return sessions_revoke(sessions=mine, reason=reason, origin=origin) > 0


def session_logout(*, token: RefreshToken, origin: Origin = NOWHERE) -> bool:
    """Revoke the session a refresh token belongs to (any token of its chain will do); a session
    ended sends ``user_logged_out``."""
    ended = session_revoke(
        session_id=token.session_id, user_id=token.user_id, reason=RevokeReason.LOGOUT, origin=origin
    )
    if ended:
        _user_logged_out(user_id=token.user_id, origin=origin)
    return ended


def sessions_logout_all(*, user, origin: Origin = NOWHERE) -> int:
    """Revoke every session of a user who asked to be signed out everywhere; returns how many. Any
    session ended sends ``user_logged_out`` once."""
    revoked = sessions_revoke_for_users(user_ids=[user.pk], reason=RevokeReason.LOGOUT_ALL, origin=origin)
    if revoked:
        _user_logged_out(user_id=user.pk, user=user, origin=origin)
    return revoked


def _user_logged_out(*, user_id, origin: Origin, user=None) -> None:
    """Django's ``user_logged_out`` for a logout over HTTP that ended a session.

    Unlike Django's ``logout()``, which sends it with ``user=None`` when nobody was signed in, a
    logout that ended nothing (no token, a dead or foreign one) sends nothing: it signed nobody out,
    and a token that no longer verifies says nothing reliable about whose it was. A body-transport
    logout has only the token's user id: the user is loaded (one query) only when someone listens.
    """
    model = get_user_model()
    if origin.request is None or not user_logged_out.has_listeners(model):
        return
    if user is None and (user := model._default_manager.filter(pk=user_id).first()) is None:
        return
    user_logged_out.send(sender=user.__class__, request=origin.request, user=user)


def sessions_revoke_for_users(
    *,
    user_ids: Collection,
    reason: RevokeReason,
    keep_session_id: uuid.UUID | None = None,
    origin: Origin = NOWHERE,
    detail: str = "",
) -> int:
    """Revoke every session of these users, except ``keep_session_id``; one statement for all."""
    sessions = Session.objects.filter(user_id__in=user_ids)
    if keep_session_id is not None:
        sessions = sessions.exclude(pk=keep_session_id)
    return sessions_revoke(sessions=sessions, reason=reason, origin=origin, detail=detail)


def sessions_revoke_all(
    *,
    reason: RevokeReason,
    batch_size: int = 10_000,
    detail: str = "",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Revoke every unrevoked session of every user, in batches so no lock is held for long.

    Each window of ``batch_size`` rows is its own short statement (see ``_key_windows``); one audit
    event records the total (not one per user: there may be millions), and none is written when
    nothing was revoked. ``progress`` is called with the running total after each batch.
    """
    total = 0
    for window in _key_windows(Session.objects.unrevoked(), batch_size=batch_size):
        revoked = len(window.revoke(reason=reason))
        total += revoked
        if progress and revoked:
            progress(total)
    if total:
        audit_event_record(
            type=reason, detail=_revoked_detail(f"all users: {_sessions_counted(total)}", detail)
        )
    return total


# --- A password set by any path ---------------------------------------------------------------
@dataclass
class PasswordSet:
    """How the sessions of a user whose password is set end: the reason and origin recorded, the
    session kept (the caller's own, on the API's password change), and, once done, how many ended."""

    reason: RevokeReason = RevokeReason.PASSWORD_SET
    origin: Origin = NOWHERE
    keep_session_id: uuid.UUID | None = None
    detail: str = ""
    revoked: int | None = None


# The code setting a password may say how its sessions end (password_set_as); Django's hook, which
# ends them, has only the user. A context variable, so each thread and each async task has its own.
_password_set: ContextVar[PasswordSet | None] = ContextVar("accounts_password_set", default=None)


@contextmanager
def password_set_as(
    *,
    reason: RevokeReason = RevokeReason.PASSWORD_SET,
    origin: Origin = NOWHERE,
    keep_session_id: uuid.UUID | None = None,
    detail: str = "",
) -> Iterator[PasswordSet]:
    """Within this block, a password set (``set_password()`` then ``save()``) ends the user's
    sessions for ``reason``, recorded from ``origin`` (the admin acting), keeping ``keep_session_id``.
    The ``PasswordSet`` yielded tells afterwards how many sessions ended (None: none was set)."""
    password_set = PasswordSet(reason=reason, origin=origin, keep_session_id=keep_session_id, detail=detail)
    token = _password_set.set(password_set)
    try:
        yield password_set
    finally:
        _password_set.reset(token)


def sessions_end_for_password_set(*, user) -> int:
    """End every session of a user whose password was just set, as the innermost ``password_set_as``
    block says (else reason ``password_set``, from nowhere); how many ended.

    Django's session auth hash ends a user's Django sessions when the password changes;
    ``accounts.password_validation.PasswordSetEndsSessions`` calls this for the same reason, from
    the hook Django calls on every path that sets a password (``AbstractBaseUser.save`` after
    ``set_password``): the admin's password form, ``changepassword``, password reset, code."""
    password_set = _password_set.get() or PasswordSet()
    revoked = sessions_revoke_for_users(
        user_ids=[user.pk],
        reason=password_set.reason,
        keep_session_id=password_set.keep_session_id,
        origin=password_set.origin,
        detail=password_set.detail,
    )
    password_set.revoked = (password_set.revoked or 0) + revoked
    if password_set.reason == RevokeReason.PASSWORD_SET and user.last_login is not None:
        # Set outside the API's change and reset (which send their own): by an admin, a command,
        # code. An account never signed in to (a new one) has nothing to be told of.
        notices.notice_send(user=user, notice=notices.Notice.PASSWORD_CHANGED, origin=password_set.origin)
    return revoked


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
    with password_set_as(
        reason=RevokeReason.PASSWORD_CHANGED, origin=origin, keep_session_id=keep_session_id
    ) as password_set:
        user.set_password(new_password)
        user.save(update_fields=["password"])
        if password_set.revoked is None:  # the project dropped the hook (accounts.E044): end them here
            sessions_end_for_password_set(user=user)
    notices.notice_send(user=user, notice=notices.Notice.PASSWORD_CHANGED, origin=origin)
    return password_set.revoked


@dataclass(frozen=True)
class FlushResult:
    """What ``sessions_flush_expired`` deleted (or, in a dry run, would delete)."""

    sessions: int
    audit_events: int
    analyzed: tuple[str, ...] = ()  # the tables given a fresh ANALYZE (PostgreSQL)


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


# A flush that deletes this fraction of a table or more ANALYZEs it (PostgreSQL) at once. Autovacuum
# would too, but only at its next round: until then the planner plans for the rows that are gone
# (or, after a bulk insert, ignores the ones that came), and picks sorts and scans sized wrongly.
ANALYZE_AFTER_DELETING = 0.2


def _analyze_if_shrunk(model, *, deleted: int) -> bool:
    """ANALYZE the model's table if ``deleted`` rows are a large part of it; True if it ran."""
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql" or not deleted:
        return False
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        estimated = cursor.fetchone()[0]  # as of the last ANALYZE; -1 if there was none
        if deleted < ANALYZE_AFTER_DELETING * max(estimated, deleted):
            return False
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return True


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
    A table shrunk by ``ANALYZE_AFTER_DELETING`` or more is analyzed afterwards (PostgreSQL).
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
    shrunk = [] if dry_run else [(Session, sessions), (AuditEvent, events)]
    analyzed = tuple(
        model._meta.db_table for model, deleted in shrunk if _analyze_if_shrunk(model, deleted=deleted)
    )
    return FlushResult(sessions=sessions, audit_events=events, analyzed=analyzed)
