"""The admin: sessions listed active-first and revoked through the services, the user page's active
sessions, the read-only audit trail, and changelists whose cost does not grow with the table."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.templatetags.admin_list import result_headers, results
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from accounts.admin.scale import CappedCountPaginator, planned_as_an_index_walk
from accounts.audit import typed_name_hashed
from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session

from .helpers import MAC_CHROME, data_queries

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


def short(value) -> str:
    """How the list writes a moment: "Nov 28, 14:07", with the year if it is not this one."""
    value = timezone.localtime(value)
    return value.strftime("%b %-d, %H:%M" if value.year == timezone.localtime().year else "%b %-d %Y, %H:%M")


def cells(response) -> list[dict[str, str]]:
    """The changelist's rows as {column header: cell text}."""
    assert response.status_code == 200, response.content[:500]
    changelist = response.context["cl"]
    headers = [capfirst(h["text"]) for h in result_headers(changelist)]
    rows = []
    for row in results(changelist):
        texts = [re.sub(r"<[^>]+>", "", str(cell)).strip() for cell in row]
        rows.append(dict(zip(headers, texts, strict=True)))
    return rows


def test_the_list_names_the_device_and_never_shows_a_jti_or_the_raw_agent(admin_client, make_session):
    session = make_session(user_agent=MAC_CHROME)
    response = admin_client.get(SESSIONS_URL)
    [row] = cells(response)
    assert row["Session"] == str(session.pk)[:8]
    assert (row["Device"], row["Status"]) == ("Chrome 131 on macOS", "active")
    assert row["Created"] == short(session.created_at)
    assert row["Ends / ended"] == short(session.expires_at)
    content = response.content.decode()
    assert MAC_CHROME not in content and session.refresh_jti not in content


def test_a_revoked_session_shows_its_reason_and_when_it_ended_not_a_future_expiry(admin_client, make_session):
    session = make_session()
    Session.objects.filter(pk=session.pk).revoke(reason=RevokeReason.REVOKED_BY_ADMIN)
    logged_out = make_session(state="revoked")  # reason: logout
    session.refresh_from_db()
    rows = {row["Session"]: row for row in cells(admin_client.get(SESSIONS_URL, {"status": "revoked"}))}
    assert rows[str(session.pk)[:8]]["Status"] == "revoked by an admin"
    assert rows[str(logged_out.pk)[:8]]["Status"] == "revoked: logout"
    ended = rows[str(session.pk)[:8]]["Ends / ended"]
    assert ended == short(session.revoked_at)


def test_an_expired_session_shows_when_it_expired(admin_client, make_session):
    session = make_session(state="expired")
    [row] = cells(admin_client.get(SESSIONS_URL, {"status": "expired"}))
    assert row["Status"] == "expired"
    assert row["Ends / ended"] == short(session.expires_at)
    assert session.expires_at < timezone.now()


def test_the_status_filter_links_each_status_and_all_really_means_all(admin_client, make_session):
    make_session()
    make_session(state="revoked")
    content = admin_client.get(SESSIONS_URL).content.decode()
    for status in ("active", "expired", "revoked", "all"):
        assert f'href="?status={status}"' in content
    assert len(listed(admin_client.get(SESSIONS_URL, {"status": "all"}))) == 2


def test_show_all_after_a_search_shows_every_status(admin_client, make_session, user_factory):
    make_session(user=user_factory(username="bob"))
    content = admin_client.get(SESSIONS_URL, {"q": "bob"}).content.decode()
    assert "1 result" in content
    assert '(<a href="?status=all">Show all</a>)' in content


def test_sessions_can_be_found_by_the_start_of_their_id(admin_client, make_session):
    wanted, other = make_session(), make_session()
    for term in (
        str(wanted.pk)[:8],
        str(wanted.pk)[:13],
        str(wanted.pk).upper(),
        str(wanted.pk).replace("-", ""),
    ):
        assert listed(admin_client.get(SESSIONS_URL, {"q": term})) == {wanted.pk}, term
    # Fewer than 8 characters are not taken for an id (nor do they match a name, email or IP here).
    assert listed(admin_client.get(SESSIONS_URL, {"q": str(wanted.pk)[:7]})) == set()
    assert other.pk not in listed(admin_client.get(SESSIONS_URL, {"q": str(wanted.pk)[:8]}))


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
    assert "Revoked 1 session of alice." in response.content.decode()
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
    assert "Revoked 3 sessions of alice." in response.content.decode()
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
    names = sorted(s.user.username for s in (first, second))
    assert f"Revoked 2 sessions of {names[0]} and {names[1]}." in response.content.decode()
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


def test_searching_the_audit_list_for_a_name_that_is_no_accounts_finds_its_hashed_events(
    admin_client, browser, user
):
    for name in ("mallory", "Mallory ", "trudy"):
        browser.sign_in(username=name, password="wrong")
    found = admin_client.get(AUDIT_URL, {"q": "MALLORY"}).context["cl"].result_list
    assert len(found) == 2 and {event.username for event in found} == {typed_name_hashed("mallory")}
    assert "mallory" not in admin_client.get(AUDIT_URL).content.decode().casefold()


def test_the_audit_trail_is_read_only_in_the_admin(admin_client, signed_in):
    event = AuditEvent.objects.get()
    assert admin_client.get(reverse("admin:accounts_auditevent_add")).status_code == 403
    url = reverse("admin:accounts_auditevent_change", args=[event.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"type": "logout"}).status_code == 403
    assert admin_client.get(reverse("admin:accounts_auditevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.type == AuditEventType.LOGIN_SUCCEEDED


# --- one session's page -------------------------------------------------------------------------
def session_url(session, view="change") -> str:
    return reverse(f"admin:accounts_session_{view}", args=[session.pk])


def test_an_active_sessions_page_has_a_revoke_button_that_posts_with_csrf(admin_client, make_session):
    session = make_session()
    content = admin_client.get(session_url(session)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>\s*<input[^>]+csrfmiddlewaretoken', content)
    assert form and form.group(1) == session_url(session, "revoke")
    assert ">Revoke</button>" in content


def test_a_revoked_sessions_page_has_no_revoke_button(admin_client, make_session):
    session = make_session(state="revoked")
    content = admin_client.get(session_url(session)).content.decode()
    assert session_url(session, "revoke") not in content


def test_the_revoke_button_revokes_records_history_and_audit_and_says_so(admin_client, admin_user, api, user):
    session = Session.objects.get(user=user)
    response = admin_client.post(session_url(session, "revoke"), follow=True)
    assert response.redirect_chain == [(session_url(session), 302)]
    assert "Revoked 1 session of alice." in response.content.decode()
    session.refresh_from_db()
    assert session.revoke_reason == RevokeReason.REVOKED_BY_ADMIN
    assert api.get("/api/users/me/").status_code == 401  # its access token stopped at once
    [entry] = LogEntry.objects.filter(object_id=str(session.pk))
    assert (entry.user, entry.action_flag, entry.get_change_message()) == (admin_user, CHANGE, "Revoked.")
    history = admin_client.get(session_url(session, "history")).content.decode()
    assert "Revoked." in history and "has no change history" not in history
    [event] = AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_ADMIN)
    assert (event.session_id, event.actor, event.detail) == (session.pk, admin_user, "session revoked")


def test_revoking_an_already_revoked_session_changes_nothing_and_says_so(admin_client, make_session):
    session = make_session(state="revoked")
    response = admin_client.post(session_url(session, "revoke"), follow=True)
    assert "No session revoked: they had all been revoked already." in response.content.decode()
    assert not LogEntry.objects.exists()
    assert not AuditEvent.objects.filter(type=AuditEventType.REVOKED_BY_ADMIN).exists()


def test_the_revoke_view_takes_only_a_post_from_an_admin_who_may_change_sessions(
    admin_client, client, user_factory, make_session
):
    session = make_session()
    assert admin_client.get(session_url(session, "revoke")).status_code == 405
    viewer = user_factory(is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="accounts")
    )
    client.force_login(viewer)
    assert session_url(session, "revoke") not in client.get(session_url(session)).content.decode()
    assert client.post(session_url(session, "revoke")).status_code == 403
    session.refresh_from_db()
    assert session.revoked_at is None


def test_the_revoke_view_goes_back_to_a_local_next_page_only(admin_client, make_session):
    first, second = make_session(), make_session()
    user_page = reverse("admin:auth_user_change", args=[first.user_id])
    response = admin_client.post(f"{session_url(first, 'revoke')}?next={user_page}")
    assert response.url == user_page
    response = admin_client.post(f"{session_url(second, 'revoke')}?next=https://evil.example/")
    assert response.url == session_url(second)


def test_the_revoke_view_refuses_a_post_without_the_csrf_token(make_session, admin_user):

    session = make_session()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.post(session_url(session, "revoke")).status_code == 403
    session.refresh_from_db()
    assert session.revoked_at is None


def test_the_list_actions_record_each_session_in_its_history(admin_client, make_session):
    sessions = [make_session(), make_session()]
    run_action(admin_client, "revoke_selected_sessions", sessions)
    assert {entry.object_id for entry in LogEntry.objects.all()} == {str(s.pk) for s in sessions}


# --- the user page ------------------------------------------------------------------------------
def test_the_users_sessions_come_right_after_name_and_password_each_with_a_revoke_button(
    admin_client, user_factory, make_session
):
    bob = user_factory(username="bob")
    sessions = [make_session(user=bob, user_agent=MAC_CHROME) for _ in range(2)]
    content = admin_client.get(reverse("admin:auth_user_change", args=[bob.pk])).content.decode()
    assert content.index("Active sessions") < content.index("Personal info") < content.index("Permissions")
    assert content.count("Chrome 131 on macOS") == 2
    user_page = reverse("admin:auth_user_change", args=[bob.pk])
    for session in sessions:
        assert (
            f'formaction="{session_url(session, "revoke")}?next={user_page.replace("/", "%2F")}"' in content
        )


def test_a_rows_revoke_button_posts_the_user_form_and_comes_back_to_the_user(
    admin_client, user_factory, make_session
):
    bob = user_factory(username="bob")
    doomed, kept = make_session(user=bob), make_session(user=bob)
    user_page = reverse("admin:auth_user_change", args=[bob.pk])
    # What the browser sends: the whole user form (formaction only changes where it goes).
    response = admin_client.post(
        f"{session_url(doomed, 'revoke')}?next={user_page}", {"username": "bob", "_save": "Save"}, follow=True
    )
    assert response.redirect_chain == [(user_page, 302)]
    assert "Revoked 1 session of bob." in response.content.decode()
    assert set(Session.objects.active().values_list("pk", flat=True)) == {kept.pk}
    bob.refresh_from_db()
    assert bob.username == "bob"


def test_the_user_page_has_no_revoke_buttons_for_an_admin_who_may_not_revoke(
    client, user_factory, make_session
):
    viewer = user_factory(is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "view_session"]))
    client.force_login(viewer)
    bob = user_factory()
    session = make_session(user=bob)
    content = client.get(reverse("admin:auth_user_change", args=[bob.pk])).content.decode()
    assert "Active sessions" in content
    assert session_url(session, "revoke") not in content
    assert "Revoke all sessions" not in content


def test_revoking_all_of_a_users_sessions_is_in_the_users_history(admin_client, admin_user, make_session):
    session = make_session()
    make_session(user=session.user)
    admin_client.post(reverse("admin:auth_user_revoke_sessions", args=[session.user_id]))
    entry = LogEntry.objects.get(object_id=str(session.user_id), content_type__model="user")
    assert (entry.user, entry.get_change_message()) == (admin_user, "Revoked 2 sessions.")
    assert LogEntry.objects.filter(content_type__model="session").count() == 2


# --- the audit list -----------------------------------------------------------------------------
def test_an_audit_event_links_to_its_session_and_its_user(admin_client, make_session):
    session = make_session()
    admin_client.post(session_url(session, "revoke"))
    [row] = cells(admin_client.get(AUDIT_URL, {"type__exact": "revoked_by_admin"}))
    assert row["Session"] == str(session.pk)[:8]
    content = admin_client.get(AUDIT_URL, {"type__exact": "revoked_by_admin"}).content.decode()
    assert f'<a href="{session_url(session)}" title="{session.pk}">{str(session.pk)[:8]}</a>' in content
    assert f'<a href="{reverse("admin:auth_user_change", args=[session.user_id])}">' in content


def test_audit_events_can_be_found_by_the_start_of_a_session_id(admin_client, make_session):
    wanted, other = make_session(), make_session()
    for session in (wanted, other):
        admin_client.post(session_url(session, "revoke"))
    found = admin_client.get(AUDIT_URL, {"q": str(wanted.pk)[:8]}).context["cl"].result_list
    assert [event.session_id for event in found] == [wanted.pk]


def test_the_capped_count_has_no_order_by(admin_client, make_session):
    make_session()
    [count] = [q for q in changelist_queries(admin_client) if "COUNT(" in q.upper()]
    assert "ORDER BY" not in count.upper(), count


def test_an_ipv6_address_may_wrap_after_its_colons_instead_of_widening_the_table(admin_client, make_session):
    make_session(ip="2001:db8::1")
    content = admin_client.get(SESSIONS_URL).content.decode()
    assert "2001:<wbr>db8:<wbr>:<wbr>1" in content


def plan_of(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner and pg_statistic are PostgreSQL's")
def test_without_statistics_the_list_is_read_from_its_index_not_sorted(admin_client, user_factory):
    """A table filled in bulk and never analyzed: PostgreSQL would sort the active sessions (all of
    them) for one page; the list's queries are planned so that they read the index instead."""
    users = [user_factory() for _ in range(3)]
    now = timezone.now()
    Session.objects.bulk_create(
        Session(
            user=users[n % 3],
            refresh_jti=str(n),
            created_at=now - timedelta(seconds=n),
            idle_expires_at=now + timedelta(days=1),
            absolute_expires_at=now + timedelta(days=2),
        )
        for n in range(5000)
    )
    with connection.cursor() as cursor:  # as if no ANALYZE had ever run
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = 'accounts_session'::regclass")
        cursor.execute(
            "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = 'accounts_session'::regclass"
        )
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(SESSIONS_URL)
    assert len(response.context["cl"].result_list) == 100
    sql = [q["sql"] for q in captured.captured_queries]
    [switch] = [i for i, q in enumerate(sql) if "set_config('enable_sort', 'off', true)" in q]
    [restore] = [i for i, q in enumerate(sql) if "set_config('enable_sort', '" in q and "off" not in q]
    [count] = [i for i, q in enumerate(sql) if "COUNT(" in q.upper() and "accounts_session" in q]
    [page] = [i for i, q in enumerate(sql) if re.search(r"LIMIT 100\b", q.upper())]
    assert switch < count < restore and switch < page < restore
    # The premise: left to itself, the planner sorts. Switched, it walks the index.
    assert "Sort" in plan_of(sql[page])
    with planned_as_an_index_walk("default"):
        for query in (sql[count], sql[page]):
            planned = plan_of(query)
            assert "Sort" not in planned and "Bitmap" not in planned, planned
    assert "session_unrevoked_newest_idx" in planned
    with connection.cursor() as cursor:  # and the switches are back to what they were
        cursor.execute("SELECT current_setting('enable_sort'), current_setting('enable_bitmapscan')")
        assert cursor.fetchone() == ("on", "on")


@pytest.mark.parametrize("reason", list(RevokeReason))
def test_every_revoke_reason_reads_as_a_short_status(make_session, reason):
    session = make_session()
    Session.objects.filter(pk=session.pk).revoke(reason=reason)
    session.refresh_from_db()
    text = session.status_display()
    assert text.startswith("revoked") and len(text) <= 26, text
