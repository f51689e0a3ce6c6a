"""Session rules called directly, as the admin and the commands will call them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import selectors, services
from accounts.audit import Origin
from accounts.errors import InvalidCredentials
from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session

from .helpers import PASSWORD

pytestmark = pytest.mark.django_db


def test_session_create_caps_the_idle_expiry_at_the_absolute_one(user, settings):
    settings.ACCOUNTS_SESSION_MAX_AGE = timedelta(hours=1)
    now = timezone.now()
    session = services.session_create(user=user, ip=None, user_agent="x" * 2000, now=now)
    assert session.absolute_expires_at == now + timedelta(hours=1)
    assert session.idle_expires_at == session.absolute_expires_at
    assert len(session.user_agent) == 512


def test_session_login_issues_tokens_bound_to_the_new_session(user):
    issued = services.session_login(
        username="alice", password=PASSWORD, origin=Origin(ip="192.0.2.1", user_agent="ua")
    )
    assert issued.access.session_id == issued.session.pk == issued.refresh.session_id
    assert issued.refresh.jti == issued.session.refresh_jti
    assert issued.access.user_id == issued.refresh.user_id == str(user.pk)


def test_session_login_refuses_a_wrong_password(user):
    with pytest.raises(InvalidCredentials):
        services.session_login(username="alice", password="nope", origin=Origin())


def test_session_revoke_only_touches_an_active_session_of_that_user(user, user_factory):
    session = services.session_create(user=user, ip=None, user_agent="")
    bob = user_factory(username="bob")
    assert not services.session_revoke(
        session_id=session.pk, user_id=bob.pk, reason=RevokeReason.REVOKED_BY_USER
    )
    assert services.session_revoke(
        session_id=session.pk, user_id=user.pk, reason=RevokeReason.REVOKED_BY_USER
    )
    assert not services.sessions_revoke(
        sessions=Session.objects.filter(pk=session.pk), reason=RevokeReason.REVOKED_BY_ADMIN
    )
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.REVOKED_BY_USER  # the first reason stays


def test_sessions_revoke_for_users_keeps_the_named_session(user):
    kept, *_ = [services.session_create(user=user, ip=None, user_agent="") for _ in range(3)]
    revoked = services.sessions_revoke_for_users(
        user_ids=[user.pk], reason=RevokeReason.PASSWORD_CHANGED, keep_session_id=kept.pk
    )
    assert revoked == 2
    assert list(Session.objects.active()) == [kept]


def test_session_states_are_named_by_the_queryset(user):
    now = timezone.now()
    active = services.session_create(user=user, ip=None, user_agent="", now=now)
    expired = services.session_create(user=user, ip=None, user_agent="", now=now - timedelta(days=60))
    revoked = services.session_create(user=user, ip=None, user_agent="", now=now)
    services.session_revoke(session_id=revoked.pk, user_id=user.pk, reason=RevokeReason.LOGOUT)
    assert list(Session.objects.active()) == [active]
    assert list(Session.objects.expired()) == [expired]
    assert list(Session.objects.revoked()) == [revoked]
    assert active.is_active() and not expired.is_active()


def test_access_check_refuses_an_expired_session_and_an_inactive_user(user):
    session = services.session_create(user=user, ip=None, user_agent="")
    assert selectors.user_get_for_access_token(user_id=str(user.pk), session_id=session.pk) == user
    Session.objects.filter(pk=session.pk).update(absolute_expires_at=timezone.now())
    assert selectors.user_get_for_access_token(user_id=str(user.pk), session_id=session.pk) is None
    other = services.session_create(user=user, ip=None, user_agent="")
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # bypasses the signal on purpose
    assert selectors.user_get_for_access_token(user_id=str(user.pk), session_id=other.pk) is None


def test_stateless_access_tokens_skip_the_session_check(signed_in, settings, query_budget):
    settings.ACCOUNTS_ACCESS_TOKEN_CHECKS_SESSION = False
    Session.objects.update(revoked_at=timezone.now(), revoke_reason=RevokeReason.LOGOUT)
    # simplejwt's own user look-up, and me's email_verified (which the session check's statement
    # carries when it runs).
    with query_budget(2):
        response = signed_in.bearer(signed_in.access).get("/api/users/me/")
    assert response.status_code == 200


def test_revoking_sessions_of_many_users_is_one_statement_and_one_event_per_user(user_factory, query_budget):
    users = [user_factory() for _ in range(3)]
    for owner in users:
        for _ in range(2):
            services.session_create(user=owner, ip=None, user_agent="")
    with query_budget(2):  # the UPDATE ... RETURNING, the audit INSERT
        revoked = services.sessions_revoke_for_users(
            user_ids=[u.pk for u in users], reason=RevokeReason.REVOKED_BY_ADMIN
        )
    assert revoked == 6 and not Session.objects.active().exists()
    events = AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_ADMIN)
    assert sorted((e.user_id, e.detail, e.session_id) for e in events) == sorted(
        (u.pk, "2 sessions revoked", None) for u in users
    )


def test_revoking_nothing_records_nothing(user):
    assert services.sessions_revoke_for_users(user_ids=[user.pk], reason=RevokeReason.LOGOUT_ALL) == 0
    assert not AuditEvent.objects.exists()


def test_a_revoked_session_keeps_its_first_reason_and_time(user):
    session = services.session_create(user=user, ip=None, user_agent="")
    sessions = Session.objects.filter(pk=session.pk)
    assert services.sessions_revoke(sessions=sessions, reason=RevokeReason.LOGOUT) == 1
    first = Session.objects.get(pk=session.pk).revoked_at
    assert services.sessions_revoke(sessions=sessions, reason=RevokeReason.REVOKED_BY_ADMIN) == 0
    session.refresh_from_db()
    assert (session.revoke_reason, session.revoked_at) == (RevokeReason.LOGOUT, first)


def test_active_and_is_active_agree_on_every_edge(user):
    now = timezone.now()
    session = services.session_create(user=user, ip=None, user_agent="", now=now - timedelta(hours=1))
    cases = {
        "idle expiry reached": {"idle_expires_at": now},
        "absolute expiry reached": {"absolute_expires_at": now},
        "both ahead": {
            "idle_expires_at": now + timedelta(seconds=1),
            "absolute_expires_at": now + timedelta(seconds=1),
        },
        "revoked": {"revoked_at": now},
    }
    for name, change in cases.items():
        Session.objects.filter(pk=session.pk).update(
            revoked_at=None,
            idle_expires_at=now + timedelta(days=1),
            absolute_expires_at=now + timedelta(days=2),
        )
        Session.objects.filter(pk=session.pk).update(**change)
        loaded = Session.objects.get(pk=session.pk)
        in_sql = Session.objects.active(now=now).filter(pk=session.pk).exists()
        assert loaded.is_active(now=now) == in_sql, name
        assert in_sql == (name == "both ahead"), name
