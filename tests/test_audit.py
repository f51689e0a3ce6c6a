"""The audit trail: which events each action writes, what they hold, and that a failed write never
breaks the request that caused it."""

import hashlib
import logging
from datetime import timedelta

import pytest
from django.db import connection

from accounts.audit import typed_name_record
from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session

from .helpers import PASSWORD, BrowserClient

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (audit test)"


def events(type=None):
    qs = AuditEvent.objects.order_by("id")
    return list(qs.filter(type=type) if type else qs)


def test_a_successful_login_records_user_session_ip_and_user_agent(browser, user):
    response = browser.sign_in(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT=UA)
    assert response.status_code == 200
    [event] = events()
    session = Session.objects.get()
    assert (event.type, event.user, event.session_id) == (AuditEventType.LOGIN_SUCCEEDED, user, session.pk)
    assert (event.ip, event.user_agent) == ("198.51.100.7", UA)


def test_a_failed_login_records_a_username_that_names_an_account_and_never_the_password(browser, user):
    browser.sign_in(username="mallory", password="hunter2-secret", REMOTE_ADDR="203.0.113.5")
    browser.sign_in(password="wrong-secret-guess")
    first, second = events()
    assert first.type == second.type == AuditEventType.LOGIN_FAILED
    assert (first.username, first.user, first.ip) == (typed_name_record("mallory"), None, "203.0.113.5")
    assert second.username == "alice"
    stored = " ".join(str(value) for value in AuditEvent.objects.values_list())
    assert "hunter2-secret" not in stored and "wrong-secret-guess" not in stored


def test_a_typed_name_that_names_no_account_is_kept_as_a_keyed_hash_that_correlates(browser, user):
    """No account "mallory": the trail keeps HMAC-SHA256 under the server's secret, the same for
    the same name (case and surrounding space aside) and another for another name; a name that
    is an account's is kept as typed."""
    for name in ("mallory", " MALLORY ", "trudy", "alice"):
        browser.sign_in(username=name, password="wrong")
    mallory, mallory_again, trudy, alice = (event.username for event in events())
    assert mallory == mallory_again != trudy
    assert mallory.startswith("hmac:") and len(mallory) == len("hmac:") + 32
    assert "mallory" not in mallory and hashlib.sha256(b"mallory").hexdigest()[:32] not in mallory
    assert alice == "alice"


def test_throttling_records_one_event_per_key_and_window_not_one_per_request(browser, user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    statuses = [browser.sign_in(password="nope").status_code for _ in range(6)]
    assert statuses == [401, 401, 429, 429, 429, 429]
    [throttled] = events(AuditEventType.THROTTLED)
    assert throttled.username == "alice"
    assert throttled.detail == "login_username_ip 2/min"


def test_an_ordinary_refresh_writes_no_event(signed_in):
    before = AuditEvent.objects.count()
    assert signed_in.refresh().status_code == 200
    assert signed_in.refresh().status_code == 200
    assert AuditEvent.objects.count() == before


def test_refresh_token_reuse_is_recorded_with_the_revoked_session(signed_in, settings):
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)
    stolen = signed_in.refresh_cookie
    signed_in.refresh()
    signed_in.set_refresh_cookie(stolen)
    assert signed_in.refresh(REMOTE_ADDR="203.0.113.66").status_code == 401
    [event] = events(AuditEventType.REUSE_DETECTED)
    session = Session.objects.get()
    assert (event.session_id, event.user_id, event.ip) == (session.pk, session.user_id, "203.0.113.66")


def test_logout_is_recorded_once(signed_in):
    signed_in.sign_out()
    signed_in.sign_out()
    [event] = events(AuditEventType.LOGOUT)
    assert event.session_id == Session.objects.get().pk


def test_logout_everywhere_records_how_many_sessions_ended(api):
    BrowserClient().sign_in()
    api.post("/api/auth/logout-all/", {}, format="json")
    [event] = events(AuditEventType.LOGOUT_ALL)
    assert event.detail == "2 sessions revoked"


def test_revoking_one_of_my_sessions_records_which(api, user):
    other = BrowserClient()
    other.sign_in()
    other_session = Session.objects.latest("created_at")
    assert api.delete(f"/api/auth/sessions/{other_session.pk}/").status_code == 204
    [event] = events(AuditEventType.REVOKED_BY_USER)
    assert (event.session_id, event.user, event.actor) == (other_session.pk, user, None)


def test_a_password_change_is_recorded_with_the_sessions_it_ended(api):
    BrowserClient().sign_in()
    response = api.post(
        "/api/auth/password/change/",
        {"old_password": PASSWORD, "new_password": "a whole new passphrase 42"},
        format="json",
    )
    assert response.status_code == 200, response.content
    [event] = events(AuditEventType.PASSWORD_CHANGED)
    assert event.detail == "session revoked"


def test_deactivating_a_user_is_recorded_once_not_on_every_later_save(signed_in, user):
    user.is_active = False
    user.save()
    user.first_name = "Al"
    user.save()
    [event] = events(AuditEventType.USER_DEACTIVATED)
    assert event.detail == "session revoked"


def test_a_failing_audit_write_does_not_break_the_login(browser, user, caplog):
    # A real database error: the table is gone (the test's transaction puts it back afterwards).
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE accounts_auditevent RENAME TO accounts_auditevent_away")
    with caplog.at_level(logging.ERROR, logger="accounts.audit"):
        response = browser.sign_in()
    assert response.status_code == 200, response.content
    assert Session.objects.filter(user=user).count() == 1
    assert "Audit events not recorded: login_succeeded" in caplog.text
    assert PASSWORD not in caplog.text


def test_every_revoke_reason_is_also_an_audit_event_type():
    # Services record a revocation as an event of the reason's own value (type=reason).
    assert {reason.value for reason in RevokeReason} <= {event.value for event in AuditEventType}
