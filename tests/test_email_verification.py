"""Verified addresses (accounts.email_verification): the link mailed at registration, verify,
resend, the address change, mandatory mode at login, and what the keys never touch.

Mail goes after the commit (``transaction=True``), to Django's local-memory outbox, except where a
test reads it from the real SMTP server (the ``smtp_server`` fixture)."""

import json
import logging
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.db import connection
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from accounts.email_verification import KEY_SALT, address_digest, verification_key_make
from accounts.models import AuditEvent, AuditEventType, EmailAddressState, Session

from .helpers import (
    PASSWORD,
    BrowserClient,
    NativeClient,
    assert_json_error,
    cache_clear_own_keys,
    cache_own_entries,
    links_in,
    mail_html,
    mail_text,
)

pytestmark = pytest.mark.django_db(transaction=True)

VERIFY, RESEND = "/api/auth/email/verify/", "/api/auth/email/verify/resend/"
CHANGE = "/api/auth/email/change/"
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def register(client=None, username="carol", email="carol@example.com"):
    client = client or BrowserClient()
    body = {"username": username, "email": email, "password": PASSWORD}
    response = client.post("/api/auth/register/", body, format="json")
    assert response.status_code == 201, response.content
    return get_user_model().objects.get(username=username)


def mails_to(address: str) -> list:
    return [m for m in mail.outbox if m.to == [address]]


def key_of(message) -> str:
    """The key in a mail's link (its text body holds the link on a line of its own)."""
    [link] = links_in(message.body)
    assert link.startswith("http://localhost:5173/#verify="), link
    return link.removeprefix("http://localhost:5173/#verify=")


def verify(key: str, client=None, **extra):
    return (client or NativeClient()).post(VERIFY, {"key": key}, format="json", **extra)


def me(user, password=PASSWORD) -> dict:
    native = NativeClient()
    access = native.sign_in(username=user.username, password=password).json()["access"]
    native.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return native.get("/api/users/me/").json()


def signed_in_as(user) -> NativeClient:
    native = NativeClient()
    response = native.sign_in(username=user.username)
    assert response.status_code == 200, response.content
    native.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return native


def events(type_: str) -> list[str]:
    return list(AuditEvent.objects.filter(type=type_).values_list("detail", flat=True))


# --- registration and verify --------------------------------------------------------------------
def test_registration_mails_a_link_that_verifies_the_address_once(settings):
    settings.ACCOUNTS_SITE_NAME = "Example Site"
    user = register()
    [message] = mails_to("carol@example.com")
    assert "Example Site" in message.subject and "Example Site" in message.body
    key = key_of(message)
    assert me(user)["email_verified"] is False

    response = verify(key)
    assert response.status_code == 200, response.content
    assert me(user)["email_verified"] is True
    assert_json_error(verify(key), 400, "invalid_key")  # used
    assert events(AuditEventType.EMAIL_VERIFICATION_SENT) == ["@example.com"]
    assert events(AuditEventType.EMAIL_VERIFIED) == ["@example.com"]


def test_no_mail_at_registration_when_verification_is_off(settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "none"
    user = register()
    assert mail.outbox == []
    assert me(user)["email_verified"] is False


def test_the_link_follows_email_verify_url(settings):
    settings.ACCOUNTS_EMAIL_VERIFY_URL = "https://app.example.com/verify?k={key}&lang=en"
    register()
    [link] = links_in(mail.outbox[0].body)
    assert link.startswith("https://app.example.com/verify?k=") and link.endswith("&lang=en")
    key = link.removeprefix("https://app.example.com/verify?k=").removesuffix("&lang=en")
    assert verify(key).status_code == 200


@pytest.mark.parametrize(
    "garble",
    [
        lambda key: key + "x",
        lambda key: key[:-2],
        lambda key: "x" + key,
        lambda key: key.replace(":", ".", 1),
        lambda key: "",
        lambda key: "not-a-key",
        lambda key: "\u00e9" * 40,
    ],
    ids=["appended", "cut", "prefixed", "separator", "empty", "junk", "unicode"],
)
def test_a_bad_key_is_invalid_key_or_invalid_input(garble):
    register()
    response = verify(garble(key_of(mail.outbox[0])))
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_key", "invalid")
    assert not EmailAddressState.objects.filter(verified_email="carol@example.com").exists()


def test_an_expired_key_is_invalid(settings):
    register()
    key = key_of(mail.outbox[0])
    settings.ACCOUNTS_EMAIL_VERIFY_TIMEOUT = timedelta(seconds=-1)
    assert_json_error(verify(key), 400, "invalid_key")
    settings.ACCOUNTS_EMAIL_VERIFY_TIMEOUT = timedelta(days=3)
    assert verify(key).status_code == 200


def test_a_key_signed_for_another_purpose_or_user_is_invalid(user_factory):
    victim = register()
    other = user_factory(username="mallory")
    # The same payload under another salt, and a good key of another account's address.
    forged = signing.dumps({"u": str(victim.pk), "a": address_digest("carol@example.com")}, salt="other")
    assert_json_error(verify(forged), 400, "invalid_key")
    foreign = verification_key_make(user_id=victim.pk, address=other.email)
    assert_json_error(verify(foreign), 400, "invalid_key")
    odd_ids = [signing.dumps({"u": uid, "a": "x"}, salt=KEY_SALT) for uid in ("abc", "99999", "1" * 40)]
    odd_ids.append(signing.dumps({"u": 5}, salt=KEY_SALT))
    odd_ids.append(signing.dumps(["u"], salt=KEY_SALT))
    for key in odd_ids:
        assert_json_error(verify(key), 400, "invalid_key")


def test_a_key_for_an_address_no_longer_the_users_is_invalid():
    user = register()
    key = key_of(mail.outbox[0])
    user.email = "carol@elsewhere.example"
    user.save()
    assert_json_error(verify(key), 400, "invalid_key")


def test_an_inactive_users_key_is_invalid():
    user = register()
    key = key_of(mail.outbox[0])
    user.is_active = False
    user.save()
    assert_json_error(verify(key), 400, "invalid_key")


def test_an_address_changed_by_other_means_is_unverified_again():
    user = register()
    verify(key_of(mail.outbox[0]))
    user.email = "carol@elsewhere.example"
    user.save()
    assert me(user)["email_verified"] is False


def test_key_tries_are_throttled_per_client_ip(settings):
    settings.ACCOUNTS_EMAIL_VERIFY_KEY_THROTTLE_RATE = "3/hour"
    answers = [verify("bad-key").status_code for _ in range(4)]
    assert answers == [400, 400, 400, 429]
    assert verify("bad-key", REMOTE_ADDR="198.51.100.9").status_code == 400  # another address


def test_verify_takes_4_statements_and_an_address_change_5(query_budget, user_factory):
    register()
    key = key_of(mail.outbox[0])
    # The user's row locked, the state read, the state written, the audit event.
    with query_budget(4):
        assert verify(key).status_code == 200
    user = get_user_model().objects.get(username="carol")
    signed_in_as(user).post(CHANGE, {"new_email": "carol@example.org", "password": PASSWORD}, format="json")
    key = key_of(mails_to("carol@example.org")[0])
    with query_budget(5):  # and the user's new address
        assert verify(key).status_code == 200


# --- mandatory ----------------------------------------------------------------------------------
def test_mandatory_refuses_the_right_password_for_an_unverified_address_and_opens_no_session(settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    user = register()
    browser = BrowserClient()
    refused = browser.sign_in(username="carol")
    assert_json_error(refused, 403, "email_unverified")
    assert "refresh_token" not in refused.cookies and "access" not in refused.json()
    assert not Session.objects.filter(user=user).exists()
    assert_json_error(browser.sign_in(username="carol", password="wrong"), 401, "invalid_credentials")
    assert_json_error(NativeClient().sign_in(username="carol"), 403, "email_unverified")

    verify(key_of(mail.outbox[0]))
    assert browser.sign_in(username="carol").status_code == 200
    assert Session.objects.filter(user=user).count() == 1


def test_mandatory_login_of_a_verified_user(settings, query_budget):
    """The verification is checked in the session's INSERT: login stays 4 statements."""
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    register()
    verify(key_of(mail.outbox[0]))
    with query_budget(4) as captured:
        assert BrowserClient().sign_in(username="carol").status_code == 200
    [insert] = [q["sql"] for q in captured.captured_queries if "accounts_session" in q["sql"]]
    assert insert.startswith('INSERT INTO "accounts_session"') and "WHERE EXISTS(" in insert


@pytest.mark.parametrize("mode", ["none", "optional"])
def test_unverified_addresses_sign_in_unless_mandatory(settings, mode):
    settings.ACCOUNTS_EMAIL_VERIFICATION = mode
    register()
    assert BrowserClient().sign_in(username="carol").status_code == 200


# --- resend -------------------------------------------------------------------------------------
def test_resend_with_a_token_mails_the_callers_unverified_address_a_new_link():
    user = register()
    mail.outbox.clear()
    response = signed_in_as(user).post(RESEND, {}, format="json")
    assert response.status_code == 202
    [message] = mails_to("carol@example.com")
    assert verify(key_of(message)).status_code == 200
    mail.outbox.clear()
    assert signed_in_as(user).post(RESEND, {}, format="json").status_code == 202
    assert mail.outbox == []  # verified: nothing to send


def test_resend_without_a_token_answers_alike_and_mails_only_an_unverified_account(user_factory):
    register()
    verified = register(username="dan", email="dan@example.com")
    verify(key_of(mails_to("dan@example.com")[0]))
    mail.outbox.clear()
    answers = [
        NativeClient().post(RESEND, {"email": address}, format="json")
        for address in ("CAROL@example.com", "dan@example.com", "nobody@example.com")
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert [m.to for m in mail.outbox] == [["carol@example.com"]]
    assert verify(key_of(mail.outbox[0])).status_code == 200
    assert verified.email == "dan@example.com"


def test_resend_without_a_token_does_the_same_work_whatever_the_address(settings, query_budget):
    """One queued task (its INSERT) in the request, for an account's address as for no one's."""
    register()
    settings.TASKS = DATABASE_BACKEND
    for address in ("carol@example.com", "nobody@example.com"):
        with query_budget(1) as captured:
            assert NativeClient().post(RESEND, {"email": address}, format="json").status_code == 202
        assert [q["sql"].split()[0] for q in captured.captured_queries if "INSERT" in q["sql"]] == ["INSERT"]
    stored = "".join(str(row) for row in DBTaskResult.objects.values_list("args_kwargs"))
    paths = DBTaskResult.objects.values_list("task_path", flat=True)
    assert set(paths) == {"accounts.email_verification.verification_resend_for_address"}
    assert "nobody@example.com" in stored  # the task looks the address up; no key is queued


def test_resend_with_a_token_takes_4_statements(settings, query_budget):
    user = register()
    client = signed_in_as(user)
    settings.TASKS = DATABASE_BACKEND
    with query_budget(4):  # the access check, the state, the audit event, the queued mail
        assert client.post(RESEND, {}, format="json").status_code == 202
    assert DBTaskResult.objects.count() == 1


def test_resend_without_a_token_needs_an_address():
    assert_json_error(NativeClient().post(RESEND, {}, format="json"), 400, "invalid")


def test_resend_is_throttled_per_address_and_per_ip_with_no_address_in_the_cache(settings):
    settings.ACCOUNTS_EMAIL_VERIFY_THROTTLE_RATE = "2/hour"
    register()
    answers = [
        NativeClient().post(RESEND, {"email": "carol@example.com"}, format="json", REMOTE_ADDR=ip).status_code
        for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3")
    ]
    assert answers == [202, 202, 429]  # per address, from any IP
    cache_clear_own_keys()
    answers = [
        NativeClient().post(RESEND, {"email": f"x{i}@example.com"}, format="json").status_code
        for i in range(3)
    ]
    assert answers == [202, 202, 429]  # per IP, whatever the address
    text = " ".join(str(key) for key, _ in cache_own_entries())
    assert "email_verify" in text and "example.com" not in text


# --- changing the address -----------------------------------------------------------------------
def test_an_address_change_mails_a_link_to_the_new_address_and_a_notice_to_the_old_one():
    user = register()
    verify(key_of(mail.outbox[0]))
    mail.outbox.clear()
    client = signed_in_as(user)
    response = client.post(
        CHANGE,
        {"new_email": "carol@example.org", "password": PASSWORD},
        format="json",
        HTTP_USER_AGENT="Firefox",
    )
    assert response.status_code == 202, response.content
    [notice] = mails_to("carol@example.com")
    assert "@example.org" in notice.body and "carol@example.org" not in notice.body
    assert "Firefox" in notice.body and links_in(notice.body) == []
    [link_mail] = mails_to("carol@example.org")
    user.refresh_from_db()
    assert user.email == "carol@example.com"  # not before the link is followed
    assert client.get("/api/users/me/").json()["email"] == "carol@example.com"

    assert verify(key_of(link_mail)).status_code == 200
    user.refresh_from_db()
    assert user.email == "carol@example.org"
    shown = client.get("/api/users/me/").json()
    assert (shown["email"], shown["email_verified"]) == ("carol@example.org", True)
    assert_json_error(verify(key_of(link_mail)), 400, "invalid_key")
    assert events(AuditEventType.EMAIL_CHANGE_REQUESTED) == ["to @example.org"]
    assert events(AuditEventType.EMAIL_CHANGED) == ["@example.com to @example.org"]
    state = EmailAddressState.objects.get(user=user)
    assert (state.verified_email, state.pending_email) == ("carol@example.org", "")


def test_an_address_change_with_the_wrong_password_is_a_400_and_changes_nothing():
    user = register()
    mail.outbox.clear()
    body = {"new_email": "carol@example.org", "password": "nope"}
    response = signed_in_as(user).post(CHANGE, body, format="json")
    body = assert_json_error(response, 400, "invalid")
    assert list(body["errors"]) == ["password"]
    assert mail.outbox == []
    assert not EmailAddressState.objects.filter(pending_email="carol@example.org").exists()


def test_address_changes_share_password_changes_limit(settings):
    settings.ACCOUNTS_PASSWORD_CHANGE_THROTTLE_RATE = "2/min"
    user = register()
    client = signed_in_as(user)
    body = {"new_email": "carol@example.org", "password": "nope"}
    assert [client.post(CHANGE, body, format="json").status_code for _ in range(2)] == [400, 400]
    assert_json_error(client.post(CHANGE, body, format="json"), 429, "throttled")
    password = {"old_password": "nope", "new_password": "another horse battery"}
    assert_json_error(client.post("/api/auth/password/change/", password, format="json"), 429, "throttled")


def test_an_address_change_needs_a_token():
    body = {"new_email": "carol@example.org", "password": PASSWORD}
    assert_json_error(NativeClient().post(CHANGE, body, format="json"), 401)


def test_the_link_of_the_first_address_still_verifies_it_while_a_change_waits():
    user = register()
    first = key_of(mail.outbox[0])
    signed_in_as(user).post(CHANGE, {"new_email": "carol@example.org", "password": PASSWORD}, format="json")
    assert verify(first).status_code == 200
    user.refresh_from_db()
    assert user.email == "carol@example.com"
    assert EmailAddressState.objects.get(user=user).pending_email == "carol@example.org"


# --- the real SMTP server, the admin, nothing logged ------------------------------------------
def test_the_link_read_from_a_mail_received_by_smtp_verifies_the_address(smtp_server, settings, caplog):
    caplog.set_level(logging.DEBUG)
    user = register(email="erin.secret@example.net", username="erin")
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "erin.secret@example.net"
    text = mail_text(message)
    [link] = links_in(text)
    assert f"\n{link}\n" in text  # a line of its own
    key = link.removeprefix("http://localhost:5173/#verify=")
    assert f'href="{link}"' in mail_html(message)  # the HTML part holds the same link
    assert verify(key).status_code == 200
    assert me(user)["email_verified"] is True
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert key not in logged and key.split(":")[-1] not in logged and "erin.secret" not in logged
    assert events(AuditEventType.MAIL_SENT) == ["email_verify to @example.net"]


def test_the_key_is_made_at_send_time_and_never_queued(settings):
    settings.TASKS = DATABASE_BACKEND
    register()
    assert mail.outbox == []
    stored = "".join(str(row) for row in DBTaskResult.objects.values_list("args_kwargs"))
    assert "email_verify" in stored and "carol@example.com" in stored
    assert "#verify=" not in stored and "http" not in stored  # the link is made when the task runs


def test_the_user_admin_shows_the_verification_state_read_only(admin_client):
    user = register()
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert "E-mail verification" in page and "not verified" in page
    verify(key_of(mail.outbox[0]))
    signed_in_as(user).post(CHANGE, {"new_email": "carol@example.org", "password": PASSWORD}, format="json")
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert "not verified" not in page and "verified on " in page
    assert "to carol@example.org, on " in page
    assert 'name="pending_email"' not in page and 'name="verified_email"' not in page  # read-only


def test_the_openapi_document_declares_every_answer_of_the_new_endpoints():
    paths = NativeClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    declared = {path: set(paths[path]["post"]["responses"]) for path in (VERIFY, RESEND, CHANGE)}
    assert declared[VERIFY] >= {"200", "400", "429", "503"}
    assert "invalid_key" in paths[VERIFY]["post"]["responses"]["400"]["description"]
    assert declared[RESEND] >= {"202", "400", "401", "429", "503"}
    assert {} in paths[RESEND]["post"]["security"]  # the token is optional there
    assert declared[CHANGE] >= {"202", "400", "401", "429", "503"}
    login = paths["/api/auth/login/"]["post"]["responses"]
    assert "email_unverified" in login["403"]["description"]
    me_fields = paths["/api/users/me/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert me_fields["$ref"].endswith("/Me")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent transactions need a server")
def test_one_key_used_by_many_at_once_verifies_once():
    """The user's row is locked before the state is read: of 8 concurrent uses of one key, one
    verifies (one audit event) and the others find the address verified already."""
    register()
    key = key_of(mail.outbox[0])
    barrier, answers = threading.Barrier(8), []

    def use():
        try:
            barrier.wait(timeout=30)
            answers.append(verify(key, REMOTE_ADDR=f"198.51.100.{len(answers) + 10}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [200] + [400] * 7
    assert events(AuditEventType.EMAIL_VERIFIED) == ["@example.com"]


@pytest.mark.parametrize(
    "body",
    [
        {"key": "\ud800"},
        {"key": "a\x00b"},
        {"key": "k" * 10_000},
        {"key": 12},
        {"key": None},
        {"key": ["a"]},
        {},
        [],
    ],
    ids=["surrogate", "nul", "long", "number", "null", "list", "missing", "not-an-object"],
)
def test_odd_verify_bodies_are_400_never_500(body):
    # As JSON text: json.dumps writes a lone surrogate as its \u escape, as a client would.
    response = NativeClient().post(VERIFY, json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("invalid", "invalid_key", "parse_error")


@pytest.mark.parametrize(
    "body", [{"email": "not-an-address"}, {"email": "\ud800@example.com"}, {"email": 5}, {"email": "a" * 300}]
)
def test_odd_resend_and_change_bodies_are_400_never_500(body, user_factory):
    raw = json.dumps(body)
    assert NativeClient().post(RESEND, raw, content_type="application/json").status_code == 400
    client = signed_in_as(user_factory(username="alice"))
    change = json.dumps({"new_email": body["email"], "password": PASSWORD})
    assert client.post(CHANGE, change, content_type="application/json").status_code == 400
