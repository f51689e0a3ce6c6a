"""The admin: sessions listed active-first and revoked through the services, the user page's active
sessions, the read-only audit trail, and changelists whose cost does not grow with the table."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.admin import CappedCountPaginator
from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session

from .helpers import data_queries

pytestmark = pytest.mark.django_db

SESSIONS_URL = reverse("admin:accounts_session_changelist")
AUDIT_URL = reverse("admin:accounts_auditevent_changelist")


def listed(response) -> set:
    assert response.status_code == 200, response.content[:500]
    return {session.pk for session in response.context["cl"].result_list}


def run_action(admin_client, action: str, sessions):
    return admin_client.post(
        SESSIONS_URL, {"action": action, "_selected_action": [str(s.pk) for s in sessions]}, follow=True
    )


# --- the list -------------------------------------------------------------------------------
def test_the_sessions_list_shows_only_active_sessions_by_default(admin_client, make_session):
    active = make_session()
    make_session(state="expired")
    make_session(state="revoked")
    assert listed(admin_client.get(SESSIONS_URL)) == {active.pk}


@pytest.mark.parametrize("status", ["active", "expired", "revoked", "all"])
def test_the_status_filter_shows_sessions_in_that_state(admin_client, make_session, status):
    sessions = {state: make_session(state=state) for state in ("active", "expired", "revoked")}
    expected = {s.pk for state, s in sessions.items() if status in (state, "all")}
    assert listed(admin_client.get(SESSIONS_URL, {"status": status})) == expected


def test_an_unknown_status_falls_back_to_active(admin_client, make_session):
    active = make_session()
    make_session(state="revoked")
    assert listed(admin_client.get(SESSIONS_URL, {"status": "bogus"})) == {active.pk}


@pytest.mark.parametrize("term", ["bob", "bob@example.org", "203.0.113"])
def test_sessions_can_be_searched_by_username_email_and_ip(admin_client, make_session, user_factory, term):
    bob = user_factory(username="bob", email="bob@example.org")
    wanted = make_session(user=bob, ip="203.0.113.9")
    make_session(ip="198.51.100.2")
    assert listed(admin_client.get(SESSIONS_URL, {"q": term})) == {wanted.pk}


def test_the_list_shows_the_columns_and_never_a_jti(admin_client, make_session):
    session = make_session(user_agent="Mozilla/5.0 (X11; Linux x86_64) Chromium/156")
    content = admin_client.get(SESSIONS_URL).content.decode()
    for text in (
        "Created at",
        "Last used at",
        "Expires",
        "Ip",
        "User agent",
        "Status",
        "Chromium/156",
        "active",
    ):
        assert text.lower() in content.lower()
    assert session.refresh_jti not in content


def test_the_session_page_is_read_only_and_never_shows_a_jti(admin_client, make_session):
    session = make_session()
    session.refresh_jti, session.previous_jti = "a" * 32, "b" * 32
    session.save()
    url = reverse("admin:accounts_session_change", args=[session.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert "a" * 32 not in content and "b" * 32 not in content
    assert 'name="_save"' not in content
    assert admin_client.post(url, {"ip": "192.0.2.1"}).status_code == 403
    session.refresh_from_db()
    assert session.ip == "198.51.100.1"


def test_sessions_cannot_be_added_or_deleted_in_the_admin(admin_client, make_session):
    session = make_session()
    assert admin_client.get(reverse("admin:accounts_session_add")).status_code == 403
    assert admin_client.get(reverse("admin:accounts_session_delete", args=[session.pk])).status_code == 403
    actions = dict(admin_client.get(SESSIONS_URL).context["action_form"].fields["action"].choices)
    assert set(actions) == {"", "revoke_selected_sessions", "revoke_all_sessions_of_these_users"}


# --- cost -------------------------------------------------------------------------------------
def changelist_queries(admin_client, url=SESSIONS_URL, params=None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(url, params or {})
    assert response.status_code == 200
    return data_queries(captured)


@pytest.mark.parametrize("url", [SESSIONS_URL, AUDIT_URL])
def test_a_changelist_runs_the_same_few_queries_for_3_rows_and_for_60(admin_client, make_session, url):
    for _ in range(3):
        make_session()
    few = changelist_queries(admin_client, url)
    for _ in range(57):
        make_session()
    many = changelist_queries(admin_client, url)
    assert len(many) == len(few) <= 10, "\n".join(many)


@pytest.mark.parametrize("params", [{"status": "all"}, {"status": "all", "_facets": "1"}])
def test_the_sessions_changelist_never_counts_the_whole_table(admin_client, make_session, params):
    make_session()
    queries = changelist_queries(admin_client, params=params)
    counts = [q for q in queries if "COUNT(" in q.upper()]
    assert len(counts) == 1, counts  # the page's own count, not a second full-table one
    assert "LIMIT" in counts[0].upper(), counts[0]  # ... and capped


def test_past_the_count_cap_the_list_says_more_than_the_cap(admin_client, make_session, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    for _ in range(5):
        make_session()
    response = admin_client.get(SESSIONS_URL)
    assert "More than 3 sign-in sessions" in response.content.decode()
    assert len(listed(response)) == 5


# --- actions ----------------------------------------------------------------------------------
def test_revoking_selected_sessions_stops_their_refresh_and_access_tokens(
    admin_client, admin_user, api, make_session
):
    [alice_session] = Session.objects.filter(user__username="alice")
    other = make_session()
    response = run_action(admin_client, "revoke_selected_sessions", [alice_session])
    assert "Revoked 1 session." in response.content.decode()
    alice_session.refresh_from_db()
    assert alice_session.revoke_reason == RevokeReason.REVOKED_BY_ADMIN
    assert api.get("/api/users/me/").status_code == 401
    assert api.refresh().status_code == 401
    other.refresh_from_db()
    assert other.revoked_at is None
    [event] = AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_ADMIN)
    assert (event.actor, event.session_id, event.user_id) == (
        admin_user,
        alice_session.pk,
        alice_session.user_id,
    )


def test_revoking_all_sessions_of_these_users_ends_their_other_sessions_and_tokens_too(
    admin_client, admin_user, api, user, user_factory, make_session
):
    alice_sessions = [Session.objects.get(user=user), *(make_session(user=user) for _ in range(2))]
    carols = make_session(user=user_factory())
    response = run_action(admin_client, "revoke_all_sessions_of_these_users", alice_sessions[-1:])
    assert "Revoked 3 sessions." in response.content.decode()
    assert not Session.objects.filter(user=user).active().exists()
    assert Session.objects.filter(pk=carols.pk).active().exists()
    assert api.get("/api/users/me/").status_code == 401
    assert api.refresh().status_code == 401
    [event] = AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_ADMIN)
    assert (event.user, event.actor, event.detail) == (user, admin_user, "3 sessions revoked")


def test_a_staff_member_without_change_permission_cannot_revoke(client, user_factory, make_session):
    viewer = user_factory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="accounts")
    )
    client.force_login(viewer)
    session = make_session()
    response = client.get(SESSIONS_URL)
    assert response.status_code == 200
    assert response.context["action_form"] is None or "revoke_selected_sessions" not in dict(
        response.context["action_form"].fields["action"].choices
    )
    run_action(client, "revoke_selected_sessions", [session])
    session.refresh_from_db()
    assert session.revoked_at is None


# --- the user page ----------------------------------------------------------------------------
def test_the_user_page_lists_only_the_users_active_sessions(admin_client, user_factory, make_session):
    bob = user_factory()
    active = make_session(user=bob, user_agent="ActiveBrowser/1")
    make_session(user=bob, state="revoked", user_agent="RevokedBrowser/1")
    make_session(user=bob, state="expired", user_agent="ExpiredBrowser/1")
    make_session(user_agent="SomeoneElse/1")
    content = admin_client.get(reverse("admin:auth_user_change", args=[bob.pk])).content.decode()
    assert "Active sessions" in content and "ActiveBrowser/1" in content
    for other in ("RevokedBrowser/1", "ExpiredBrowser/1", "SomeoneElse/1"):
        assert other not in content
    assert reverse("admin:auth_user_revoke_sessions", args=[bob.pk]) in content
    assert active.refresh_jti not in content


def test_the_revoke_all_sessions_button_revokes_and_records_the_admin(admin_client, admin_user, make_session):
    session = make_session()
    url = reverse("admin:auth_user_revoke_sessions", args=[session.user_id])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:auth_user_change", args=[session.user_id])
    assert "Revoked 1 session of" in response.content.decode()
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.REVOKED_BY_ADMIN
    assert AuditEvent.objects.get(type=AuditEventType.REVOKED_BY_ADMIN).actor == admin_user


def test_the_user_list_action_revokes_all_sessions_of_selected_users(admin_client, make_session):
    first, second = make_session(), make_session()
    response = admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "revoke_all_sessions", "_selected_action": [first.user_id, second.user_id]},
        follow=True,
    )
    assert "Revoked 2 sessions." in response.content.decode()
    assert not Session.objects.active().exists()


# --- the audit trail ----------------------------------------------------------------------------
def test_the_audit_list_filters_by_type_and_date(admin_client, signed_in):
    signed_in.sign_in(password="wrong")
    old = AuditEvent.objects.create(
        type=AuditEventType.LOGOUT, created_at=timezone.now() - timedelta(days=30)
    )
    by_type = admin_client.get(AUDIT_URL, {"type__exact": "login_failed"}).context["cl"].result_list
    assert [event.type for event in by_type] == ["login_failed"]
    recent = admin_client.get(AUDIT_URL, {"created_at__gte": str(timezone.now() - timedelta(days=7))})
    assert old not in recent.context["cl"].result_list
    assert len(recent.context["cl"].result_list) == 2


def test_the_audit_trail_is_read_only_in_the_admin(admin_client, signed_in):
    event = AuditEvent.objects.get()
    assert admin_client.get(reverse("admin:accounts_auditevent_add")).status_code == 403
    url = reverse("admin:accounts_auditevent_change", args=[event.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"type": "logout"}).status_code == 403
    assert admin_client.get(reverse("admin:accounts_auditevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.type == AuditEventType.LOGIN_SUCCEEDED
