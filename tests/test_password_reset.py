"""Password reset: POST /api/auth/password/reset/ mails each active account using the address a link,
answering alike whatever the address; POST /api/auth/password/reset/confirm/ sets the password with
the link's key, once, ends every session and mails a notice.

Mail goes to Django's locmem outbox here (``mailoutbox``), through the immediate task backend, and
through a real SMTP server (aiosmtpd) in the end-to-end test."""

import logging
import time
from datetime import timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils import timezone
from django.utils.http import urlsafe_base64_encode
from django_tasks_db.models import DBTaskResult

from accounts.audit import typed_name_hashed
from accounts.models import AuditEvent, AuditEventType, EmailAddressState, RevokeReason, Session
from accounts.password_reset import password_reset_key, password_reset_mail

from .helpers import (
    IPHONE_SAFARI,
    PASSWORD,
    BrowserClient,
    NativeClient,
    assert_json_error,
    at_once,
    data_queries,
    links_in,
    mail_text,
    run_worker,
)

pytestmark = pytest.mark.django_db(transaction=True)  # mail leaves after the commit

RESET = "/api/auth/password/reset/"
CONFIRM = "/api/auth/password/reset/confirm/"
NEW_PASSWORD = "a brand new horse battery"
ANSWER = {"detail": "If an account uses that address, a link to reset its password is on its way."}
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def ask(email: str, ip: str = "203.0.113.7", **extra):
    return BrowserClient().post(RESET, {"email": email}, format="json", REMOTE_ADDR=ip, **extra)


def confirm(key: str, password: str = NEW_PASSWORD, ip: str = "203.0.113.7", **extra):
    body = {"key": key, "new_password": password}
    return BrowserClient().post(CONFIRM, body, format="json", REMOTE_ADDR=ip, **extra)


def key_in(message) -> str:
    """The key of the one link in a mail's text (a locmem message or a received one)."""
    text = message.body if hasattr(message, "body") else mail_text(message)
    [link] = links_in(text)
    assert link.startswith("http://localhost:5173/#reset="), link
    return link.removeprefix("http://localhost:5173/#reset=")


def uid(pk) -> str:
    """The first part of a key: an account's id, as URL-safe base64."""
    return urlsafe_base64_encode(force_bytes(pk))


def events(type_) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(type=type_).order_by("id"))


# --- asking ---------------------------------------------------------------------------------------
def test_a_known_and_an_unknown_address_get_the_same_answer_and_only_the_account_a_mail(user, mailoutbox):
    known, unknown = ask("alice@example.com"), ask("nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json() == ANSWER
    assert sorted(known.headers) == sorted(unknown.headers)
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"]
    assert mail.subject == "Reset your authproject password"
    assert "authproject" in mail.body and "alice" in mail.body and "within 1 hour" in mail.body
    assert confirm(key_in(mail)).status_code == 200


def test_every_active_account_using_the_address_gets_its_own_link_whatever_its_case(
    user_factory, mailoutbox, settings
):
    settings.ACCOUNTS_PASSWORD_RESET_URL = "myapp://reset/{key}?from=mail"
    settings.ACCOUNTS_SITE_NAME = "Example Site"
    first = user_factory(username="first", email="Shared@Example.com")
    second = user_factory(username="second", email="shared@example.com")
    user_factory(username="gone", email="shared@example.com", is_active=False)

    assert ask("SHARED@example.COM").status_code == 202

    assert sorted(m.to[0] for m in mailoutbox) == ["Shared@example.com", "shared@example.com"]
    for mail, account in zip(sorted(mailoutbox, key=lambda m: m.to[0]), (first, second), strict=True):
        assert "Example Site" in mail.subject and mail.body.rstrip().endswith("Example Site")
        [line] = [line for line in mail.body.splitlines() if line.startswith("myapp://")]
        key = line.removeprefix("myapp://reset/").removesuffix("?from=mail")
        assert key.startswith(urlsafe_base64_encode(force_bytes(account.pk)) + ".")
        assert confirm(key).status_code == 200


def test_under_mandatory_verification_only_a_verified_address_gets_a_link(
    user_factory, mailoutbox, settings
):
    """An unverified address may not be its account's owner's: it is answered alike and mailed
    nothing; verified, it gets its link."""
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    unverified = user_factory(username="una", email="una@example.com")
    verified = user_factory(username="vera", email="vera@example.com")
    EmailAddressState.objects.create(
        user=verified, verified_email="vera@example.com", verified_at=timezone.now()
    )

    answers = [ask("una@example.com"), ask("vera@example.com")]

    assert [a.status_code for a in answers] == [202, 202] and answers[0].json() == answers[1].json()
    assert [m.to for m in mailoutbox] == [["vera@example.com"]]
    requested = events(AuditEventType.PASSWORD_RESET_REQUESTED)
    assert [(e.user_id, e.detail) for e in requested] == [(None, "no active account"), (verified.pk, "")]
    assert unverified.pk not in [e.user_id for e in requested]


@pytest.mark.parametrize("change", ["address", "deactivated"])
def test_a_queued_link_is_not_sent_once_the_account_changed_its_address_or_was_deactivated(
    user, settings, mailoutbox, change
):
    settings.TASKS = DATABASE_BACKEND
    password_reset_mail.call(email="alice@example.com", ip=None, user_agent="")  # queues alice's mail
    assert DBTaskResult.objects.count() == 1
    if change == "address":
        user.email = "alice@new.example.com"
    else:
        user.is_active = False
    user.save()
    run_worker(until=time.monotonic() + 30)  # the mail's task: no link, no mail
    assert mailoutbox == []
    assert DBTaskResult.objects.filter(return_value="skipped").count() == 1


def test_an_inactive_account_gets_no_mail(user_factory, mailoutbox):
    user_factory(username="gone", email="gone@example.com", is_active=False)
    assert ask("gone@example.com").json() == ANSWER
    assert mailoutbox == []


def test_the_request_is_recorded_per_account_and_an_unknown_address_as_its_keyed_hash(user, mailoutbox):
    ask("ALICE@example.com", HTTP_USER_AGENT=IPHONE_SAFARI)
    ask("Nobody@Example.com")
    known, unknown = events(AuditEventType.PASSWORD_RESET_REQUESTED)
    assert (known.user_id, known.ip, known.user_agent) == (user.pk, "203.0.113.7", IPHONE_SAFARI)
    assert unknown.user_id is None and unknown.detail == "no active account"
    assert unknown.username == typed_name_hashed("nobody@example.com")
    assert "nobody" not in str(AuditEvent.objects.values_list())


def test_an_address_that_is_not_one_is_400(db):
    for body in ({}, {"email": "not an address"}, {"email": ["a@example.com"]}):
        assert_json_error(BrowserClient().post(RESET, body, format="json"), 400, "invalid")


# --- confirming -----------------------------------------------------------------------------------
def test_confirm_sets_the_password_ends_every_session_signs_nobody_in_and_mails_a_notice(
    user, make_session, mailoutbox
):
    sessions = [make_session(user), make_session(user)]
    browser = BrowserClient()
    assert browser.sign_in().status_code == 200
    ask("alice@example.com")
    key = key_in(mailoutbox[0])

    response = confirm(key, HTTP_USER_AGENT=IPHONE_SAFARI)

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"detail"} and not response.cookies
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not Session.objects.active().exists()
    assert set(Session.objects.values_list("revoke_reason", flat=True)) == {RevokeReason.PASSWORD_RESET}
    assert browser.refresh().status_code == 401
    [revoked] = events(RevokeReason.PASSWORD_RESET)
    assert revoked.user_id == user.pk and revoked.detail == "3 sessions revoked"
    [completed] = events(AuditEventType.PASSWORD_RESET_COMPLETED)
    assert (completed.user_id, completed.ip) == (user.pk, "203.0.113.7")
    notice = mailoutbox[1]
    assert notice.to == ["alice@example.com"] and notice.subject == "Your authproject password was reset"
    assert "Safari 18 on iPhone" in notice.body and "203.0.113.7" in notice.body and "UTC" in notice.body
    assert "If this was not you" in notice.body
    assert not [s for s in sessions if Session.objects.get(pk=s.pk).revoked_at is None]
    assert BrowserClient().sign_in(password=NEW_PASSWORD).status_code == 200


def test_a_used_key_is_refused(user, mailoutbox):
    key = password_reset_key(user)
    assert confirm(key).status_code == 200
    assert_json_error(confirm(key, "yet another horse battery"), 400, "invalid_key")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


@pytest.mark.parametrize("how", ["set_password", "api", "another_key"])
def test_a_key_dies_when_the_password_changes_by_any_means(user, signed_in, how):
    user.refresh_from_db()  # as signing in left it (its last login is part of the key)
    key = password_reset_key(user)
    assert confirm(key, "alice").status_code == 400  # a working key (the password is refused)
    time.sleep(1)  # a second key from the same second would be the same key
    if how == "set_password":
        user.set_password("changed in code 12345")
        user.save()
    elif how == "api":
        body = {"old_password": PASSWORD, "new_password": "changed by the api 12345"}
        signed_in.bearer(signed_in.access)
        assert signed_in.post("/api/auth/password/change/", body, format="json").status_code == 200
    else:
        assert confirm(password_reset_key(user)).status_code == 200
    assert_json_error(confirm(key), 400, "invalid_key")


def test_an_expired_key_is_refused(user, settings):
    settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT = timedelta(seconds=1)
    key = password_reset_key(user)
    time.sleep(2.1)
    assert_json_error(confirm(key), 400, "invalid_key")
    settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT = timedelta(seconds=10)
    assert confirm(key).status_code == 200


@pytest.mark.parametrize(
    "make_key",
    [
        lambda user: "",
        lambda user: "garbage",
        lambda user: "MQ.",
        lambda user: ".abc-def",
        lambda user: "%%%." + password_reset_key(user).partition(".")[2],
        lambda user: urlsafe_base64_encode(b"abc") + "." + password_reset_key(user).partition(".")[2],
        lambda user: urlsafe_base64_encode(b"1\x00") + ".x-y",
        lambda user: urlsafe_base64_encode(b"99999999999999999999999") + ".x-y",
        lambda user: uid(user.pk + 1) + "." + password_reset_key(user).partition(".")[2],
        lambda user: password_reset_key(user)[:-1],
        lambda user: password_reset_key(user) + "0",
        lambda user: password_reset_key(user).replace("-", "--"),
        # Django's own reset token for the same account: another salt.
        lambda user: uid(user.pk) + "." + default_token_generator.make_token(user),
    ],
)
def test_a_bad_key_is_400_invalid_key_and_changes_nothing(user, user_factory, make_key, make_session):
    user_factory()  # an account whose id follows the user's
    session = make_session(user)
    key = make_key(user)
    answer = confirm(key)
    if answer.json().get("code") == "invalid":  # what the serializer refuses before the key is read
        assert "key" in answer.json()["errors"]
    else:
        assert_json_error(answer, 400, "invalid_key")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert Session.objects.get(pk=session.pk).revoked_at is None


def test_a_key_with_a_lone_surrogate_or_too_long_is_400(user):
    for raw in ('"\\ud800.x-y"', '"' + "x" * 257 + '"'):
        body = '{"key": %s, "new_password": "%s"}' % (raw, NEW_PASSWORD)
        response = BrowserClient().post(CONFIRM, body, content_type="application/json")
        assert_json_error(response, 400)  # parse_error (the surrogate), invalid (the length)


def test_a_key_of_an_account_made_inactive_is_refused(user):
    key = password_reset_key(user)
    user.is_active = False
    user.save()
    assert_json_error(confirm(key), 400, "invalid_key")


def test_the_password_validators_apply_and_the_key_still_works_after_a_refusal(user, make_session):
    session = make_session(user)
    key = password_reset_key(user)
    body = assert_json_error(confirm(key, "alice"), 400, "invalid")
    assert body["errors"]["new_password"]  # the validators' messages
    assert Session.objects.get(pk=session.pk).revoked_at is None
    assert not AuditEvent.objects.filter(type=AuditEventType.PASSWORD_RESET_COMPLETED).exists()
    assert confirm(key).status_code == 200


# --- limits ---------------------------------------------------------------------------------------
def test_requests_are_throttled_per_client_ip(user, settings, mailoutbox):
    settings.ACCOUNTS_PASSWORD_RESET_THROTTLE_RATE = "2/hour"
    answers = [ask(f"someone{i}@example.com", ip="198.51.100.1").status_code for i in range(3)]
    assert answers == [202, 202, 429]
    refused = assert_json_error(ask("alice@example.com", ip="198.51.100.1"), 429, "throttled")
    assert refused and mailoutbox == []
    assert ask("alice@example.com", ip="198.51.100.2").status_code == 202


def test_requests_are_throttled_per_address_from_every_ip_whatever_its_case(user, settings, mailoutbox):
    settings.ACCOUNTS_PASSWORD_RESET_THROTTLE_RATE = "2/hour"
    answers = [ask(name, ip=f"198.51.100.{i}").status_code for i, name in enumerate(
        ["alice@example.com", "ALICE@example.com", " Alice@Example.com"]
    )]
    assert answers == [202, 202, 429]
    response = ask("alice@example.com", ip="198.51.100.9")
    assert_json_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert len(mailoutbox) == 2  # each mail has a link that works: the user is not locked out
    assert confirm(key_in(mailoutbox[-1])).status_code == 200


def test_an_ip_refused_already_does_not_spend_the_addresss_budget(user, settings):
    settings.ACCOUNTS_PASSWORD_RESET_THROTTLE_RATE = "2/hour"
    for _ in range(2):
        ask("someone@example.com", ip="198.51.100.1")
    for _ in range(5):
        assert ask("alice@example.com", ip="198.51.100.1").status_code == 429
    assert [ask("alice@example.com", ip=f"198.51.100.{i}").status_code for i in (2, 3)] == [202, 202]


def test_the_cache_holds_no_address(user, settings):
    from .test_secrets_at_rest import all_cache_text, plain_forms

    ask("Alice@Example.com")
    ask("Nobody.Secret@Example.org")
    cached = all_cache_text()
    assert "password_reset_address" in cached
    for address in ("Alice@Example.com", "Nobody.Secret@Example.org"):
        for form in plain_forms(address):
            assert form not in cached, form


def test_confirmations_are_throttled_per_client_ip(user, settings):
    settings.ACCOUNTS_PASSWORD_RESET_CONFIRM_THROTTLE_RATE = "3/hour"
    key = password_reset_key(user)
    answers = [confirm("bad." + str(i), ip="198.51.100.1").status_code for i in range(3)]
    assert answers == [400, 400, 400]
    assert_json_error(confirm(key, ip="198.51.100.1"), 429, "throttled")
    assert confirm(key, ip="198.51.100.2").status_code == 200


# --- cost: the same work whatever the address -----------------------------------------------------
def test_a_request_costs_one_insert_into_the_queue_whatever_the_address(
    user, settings, django_assert_num_queries
):
    settings.TASKS = DATABASE_BACKEND
    for address in ("alice@example.com", "nobody@example.com"):
        with django_assert_num_queries(1) as captured:
            assert ask(address).status_code == 202
        [insert] = captured.captured_queries
        assert insert["sql"].startswith('INSERT INTO "django_tasks_database_dbtaskresult"')


def transactions(count: int) -> int:
    """The statements ``count`` transactions add to a count: BEGIN (SQLite's BEGIN IMMEDIATE) and
    COMMIT."""
    return 2 * count


def test_the_task_queries_per_address(user, django_assert_num_queries, mailoutbox):
    # Known: the look-up, the request's event, then the mail: the link's look-up and its mail_sent
    # event. Unknown: the look-up and one event. Each event is its own transaction here.
    with django_assert_num_queries(4 + transactions(2)) as captured:
        password_reset_mail.call(email="alice@example.com", ip=None, user_agent="")
    assert len(data_queries(captured)) == 4
    with django_assert_num_queries(2 + transactions(1)) as captured:
        password_reset_mail.call(email="nobody@example.com", ip=None, user_agent="")
    assert len(data_queries(captured)) == 2
    assert len(mailoutbox) == 1


def test_a_confirmation_queries(user, make_session, django_assert_num_queries, mailoutbox):
    make_session(user)
    key = password_reset_key(user)
    # One transaction: the locked look-up, the revocation and its event, the password, the completed
    # event (a savepoint around each event); after the commit, the notice's mail_sent event.
    with django_assert_num_queries(6 + 4 + transactions(2)) as captured:
        assert confirm(key).status_code == 200
    assert len(data_queries(captured)) == 6


# --- end to end: real SMTP, the queue, concurrency ------------------------------------------------
def test_through_a_real_smtp_server_the_mailed_link_resets_the_password_and_ends_the_old_sessions(
    user, smtp_server
):
    old = BrowserClient()
    assert old.sign_in().status_code == 200
    native_session = make_native_session()

    assert ask("Alice@Example.com").status_code == 202
    [mail] = smtp_server.wait_for(1)
    assert mail["To"] == "alice@example.com" and mail["Subject"] == "Reset your authproject password"
    response = confirm(key_in(mail), HTTP_USER_AGENT=IPHONE_SAFARI)
    assert response.status_code == 200, response.content

    notice = smtp_server.wait_for(2)[1]
    assert notice["Subject"] == "Your authproject password was reset"
    assert "Safari 18 on iPhone" in mail_text(notice) and "203.0.113.7" in mail_text(notice)
    assert_json_error(old.refresh(), 401, "token_revoked")
    assert_json_error(NativeClient().refresh(native_session), 401, "token_revoked")
    assert_json_error(BrowserClient().sign_in(), 401, "invalid_credentials")
    fresh = BrowserClient()
    assert fresh.sign_in(password=NEW_PASSWORD).status_code == 200
    assert fresh.refresh().status_code == 200
    assert_json_error(confirm(key_in(mail), "and once more 12345"), 400, "invalid_key")


def make_native_session() -> str:
    """A second session of alice's, by body transport: its refresh token."""
    return NativeClient().sign_in().json()["refresh"]


def test_the_queue_holds_neither_the_key_nor_the_link(user, settings, caplog, mailoutbox):
    settings.TASKS = DATABASE_BACKEND
    caplog.set_level(logging.DEBUG)
    assert ask("alice@example.com").status_code == 202
    assert ask("nobody@example.com").status_code == 202
    assert DBTaskResult.objects.count() == 2  # one task per request, whatever the address
    assert mailoutbox == []  # queued, not sent

    run_worker(until=time.monotonic() + 30)  # `make worker`: the look-ups, then the mail
    [message] = mailoutbox
    key = key_in(message)
    stored = "".join(str(row) for row in DBTaskResult.objects.values_list("args_kwargs", "return_value"))
    assert key.partition(".")[2] not in stored and "#reset=" not in stored
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert key.partition(".")[2] not in logged
    assert confirm(key).status_code == 200


def test_two_confirmations_of_one_key_at_once_set_one_password(user, make_session):
    make_session(user)
    key = password_reset_key(user)
    passwords = ["first horse battery 111", "second horse battery 222"]
    answers = at_once([lambda p=p: confirm(key, p) for p in passwords])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 400], answers
    winner = passwords[[a.status_code for a in answers].index(200)]
    user.refresh_from_db()
    assert user.check_password(winner)
    assert AuditEvent.objects.filter(type=AuditEventType.PASSWORD_RESET_COMPLETED).count() == 1
