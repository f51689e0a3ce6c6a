"""Removing every second factor of a user who lost theirs: the service (accounts.mfa.second_factors_remove),
and the admin's window on it: the user's factors on their page (never a secret), a "Remove second
factors" button and list action behind a confirmation page, permission-checked, audited, a notice
mailed. Sessions show how they signed in. (The command, reset_mfa, is in test_commands.py.)"""

import base64
import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import mfa
from accounts.mfa import second_factors_remove
from accounts.selectors import second_factors_summary
from accounts.models import (
    AuditEvent,
    AuditEventType,
    MfaToken,
    Passkey,
    RecoveryCode,
    Session,
    TotpDevice,
    WebAuthnChallenge,
)
from accounts.origin import Origin
from accounts.services import session_create

from .helpers import second_factors_give
from .test_admin import cells

pytestmark = pytest.mark.django_db

USERS_URL = reverse("admin:auth_user_changelist")


def user_page(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


def remove_url(user) -> str:
    return reverse("admin:auth_user_remove_second_factors", args=[user.pk])


def factor_rows(user) -> dict[str, int]:
    """How many rows of each second-factor table the user has."""
    return {
        model.__name__: model.objects.filter(user=user).count()
        for model in (TotpDevice, RecoveryCode, Passkey, MfaToken, WebAuthnChallenge)
    }


NONE_LEFT = {"TotpDevice": 0, "RecoveryCode": 0, "Passkey": 0, "MfaToken": 0, "WebAuthnChallenge": 0}


def pending_steps(user) -> None:
    """A second step waiting for a code, and a WebAuthn challenge handed out for the user's passkeys."""
    later = timezone.now() + timedelta(minutes=5)
    step = MfaToken.objects.create(
        digest=mfa.handed_out_digest("t" * 43), user=user, transport="cookie", expires_at=later
    )
    WebAuthnChallenge.objects.create(
        digest=mfa.handed_out_digest("c" * 43), purpose="mfa", user=user, mfa_token=step, expires_at=later
    )


# --- the service --------------------------------------------------------------------------------
@pytest.mark.parametrize("totp", ["on", "pending"])
def test_removing_second_factors_deletes_every_factor_and_pending_step_and_says_what_went(
    user, user_factory, totp, django_capture_on_commit_callbacks, mailoutbox
):
    second_factors_give(user, totp=totp, recovery_codes=10, used_codes=2, passkeys=("Laptop", "Phone"))
    pending_steps(user)
    bob = user_factory(username="bob")
    second_factors_give(bob)
    admin = user_factory(username="root", is_staff=True)

    with django_capture_on_commit_callbacks(execute=True):
        removed = second_factors_remove(user=user, origin=Origin(ip="192.0.2.9", actor_id=admin.pk))

    assert factor_rows(user) == NONE_LEFT
    assert factor_rows(bob)["TotpDevice"] == factor_rows(bob)["Passkey"] == 1  # nobody else's
    assert (removed.totp, removed.recovery_codes_left) == (totp, 8)
    assert [passkey.name for passkey in removed.passkeys] == ["Laptop", "Phone"]
    app = "the authenticator app" + (" (not yet confirmed)" if totp == "pending" else "")
    assert removed.described() == f"{app}, 8 recovery codes and 2 passkeys"
    [event] = AuditEvent.objects.filter(type=AuditEventType.MFA_RESET)
    assert (event.user, event.actor_id, event.ip) == (user, admin.pk, "192.0.2.9")
    assert event.detail == f"removed {app}, 8 recovery codes and 2 passkeys"
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"]
    assert mail.subject == "A second factor was removed from your authproject account"
    assert "An administrator of authproject removed every second factor from your account" in mail.body
    assert "192.0.2.9" not in mail.body  # the admin's address is not the user's business


def test_removing_second_factors_keeps_the_users_sessions(user, make_session):
    second_factors_give(user)
    session = make_session(user=user)
    second_factors_remove(user=user, origin=Origin())
    assert Session.objects.active().filter(pk=session.pk).exists()


def test_removing_nothing_records_and_mails_nothing(
    user, django_capture_on_commit_callbacks, mailoutbox
):
    second_factors_give(user, totp="off", recovery_codes=3, used_codes=3, passkeys=())  # only used codes
    with django_capture_on_commit_callbacks(execute=True):
        removed = second_factors_remove(user=user, origin=Origin())
    assert not removed and removed.described() == "nothing"
    assert factor_rows(user)["RecoveryCode"] == 0  # the used codes went all the same
    assert not AuditEvent.objects.filter(type=AuditEventType.MFA_RESET).exists()
    assert mailoutbox == []


def test_the_summary_shows_each_factor_without_a_secret_or_digest(user):
    assert not second_factors_summary(user=user)
    secret = second_factors_give(user, recovery_codes=10, used_codes=1, passkeys=("Laptop",))
    TotpDevice.objects.filter(user=user).update(last_used_at=timezone.now())
    summary = second_factors_summary(user=user)
    assert (summary.totp, summary.recovery_codes_left) == ("on", 9)
    assert summary.totp_confirmed_at is not None and summary.totp_last_used_at is not None
    [passkey] = summary.passkeys
    assert (passkey.name, passkey.last_used_at) == ("Laptop", None)
    assert passkey.get_deferred_fields() >= {"public_key", "credential_id"}  # never loaded
    stored = TotpDevice.objects.get(user=user).secret
    assert secret not in repr(summary) and stored not in repr(summary)


# --- the user's page ------------------------------------------------------------------------------
def factors_fieldset(content: str) -> str:
    """The text of the "Second factors" fieldset of a user's page."""
    pattern = r'<fieldset class="module aligned second-factors">(.*?)</fieldset>'
    [fieldset] = re.findall(pattern, content, re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", fieldset).split())


def test_the_user_page_shows_each_factor_and_never_a_secret_digest_or_public_key(admin_client, user):
    secret = second_factors_give(user, recovery_codes=10, used_codes=3, passkeys=("Laptop", "Phone"))
    used = timezone.now() - timedelta(days=1)
    TotpDevice.objects.filter(user=user).update(last_used_at=used)
    Passkey.objects.filter(name="Phone").update(last_used_at=used)
    device = TotpDevice.objects.get(user=user)

    content = admin_client.get(user_page(user)).content.decode()

    shown = factors_fieldset(content)
    local = timezone.localtime
    confirmed, last_used = f"{local(device.confirmed_at):%Y-%m-%d %H:%M}", f"{local(used):%Y-%m-%d %H:%M}"
    assert f"Authenticator app: on, confirmed {confirmed}, last used {last_used}" in shown
    assert "Recovery codes left: 7" in shown
    laptop, phone = Passkey.objects.order_by("created_at", "pk")
    assert f"Laptop: added {local(laptop.created_at):%Y-%m-%d %H:%M}, last used never" in shown
    assert f"Phone: added {local(phone.created_at):%Y-%m-%d %H:%M}, last used {last_used}" in shown
    never_shown = [secret, device.secret, *RecoveryCode.objects.values_list("digest", flat=True)]
    for passkey in (laptop, phone):
        key = bytes(passkey.public_key)
        never_shown += [key.hex(), base64.b64encode(key).decode(), passkey.credential_id]
    assert not [value for value in never_shown if value in content]
    assert f'href="{remove_url(user)}"' in content


@pytest.mark.parametrize(
    ("totp", "expected"),
    [
        ("off", "Authenticator app: off"),
        ("pending", "Authenticator app: pending: enrolled, not yet confirmed"),
    ],
)
def test_the_user_page_says_when_the_app_is_off_or_pending(admin_client, user, totp, expected):
    second_factors_give(user, totp=totp, recovery_codes=0, passkeys=())
    content = admin_client.get(user_page(user)).content.decode()
    shown = factors_fieldset(content)
    assert expected in shown and "Recovery codes left: 0" in shown and "Passkeys: none" in shown
    # Nothing to remove but a pending enrolment: the button is there only while there is something.
    assert (f'href="{remove_url(user)}"' in content) is (totp == "pending")


# --- removing from the user's page ----------------------------------------------------------------
def test_the_remove_button_asks_first_then_removes_audits_mails_and_comes_back(
    admin_client, admin_user, user, make_session, django_capture_on_commit_callbacks, mailoutbox
):
    second_factors_give(user, recovery_codes=10, passkeys=("Laptop",))
    session = make_session(user=user)

    confirmation = admin_client.get(remove_url(user))

    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "Are you sure you want to remove every second factor of this user?" in page
    assert "alice: the authenticator app, 10 recovery codes and 1 passkey" in page
    assert 'name="csrfmiddlewaretoken"' in page and 'name="post" value="yes"' in page
    assert factor_rows(user)["TotpDevice"] == 1  # asking removes nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(remove_url(user), {"post": "yes"}, follow=True)

    assert response.redirect_chain == [(user_page(user), 302)]
    said = "Removed the authenticator app, 10 recovery codes and 1 passkey of alice."
    assert said in response.content.decode()
    assert factor_rows(user) == NONE_LEFT
    assert "Authenticator app: off" in factors_fieldset(response.content.decode())
    [event] = AuditEvent.objects.filter(type=AuditEventType.MFA_RESET)
    assert (event.user, event.actor) == (user, admin_user)
    assert event.detail == "removed the authenticator app, 10 recovery codes and 1 passkey; Django admin"
    [entry] = LogEntry.objects.filter(object_id=str(user.pk))
    assert entry.user == admin_user
    assert entry.change_message == (
        "Removed second factors: the authenticator app, 10 recovery codes and 1 passkey."
    )
    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"] and "An administrator of authproject removed" in mail.body
    assert Session.objects.active().filter(pk=session.pk).exists()


def test_removing_from_a_user_with_no_factor_says_so_and_records_nothing(admin_client, user):
    response = admin_client.post(remove_url(user), {"post": "yes"}, follow=True)
    assert "Nothing removed from alice: no second factor." in response.content.decode()
    assert not AuditEvent.objects.filter(type=AuditEventType.MFA_RESET).exists()
    assert not LogEntry.objects.exists()


def test_the_remove_view_refuses_a_post_without_the_csrf_token(admin_user, user):
    second_factors_give(user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.post(remove_url(user), {"post": "yes"}).status_code == 403
    assert factor_rows(user)["TotpDevice"] == 1


def test_a_missing_user_is_the_admins_own_redirect(admin_client):
    response = admin_client.get(reverse("admin:auth_user_remove_second_factors", args=[987654]))
    assert response.status_code == 302 and response.url == reverse("admin:index")


# --- the list action ------------------------------------------------------------------------------
def test_the_list_action_asks_first_then_removes_the_selected_users_factors(
    admin_client, admin_user, user, user_factory, django_capture_on_commit_callbacks, mailoutbox
):
    bob, carol = user_factory(username="bob"), user_factory(username="carol")
    for each in (user, bob, carol):
        second_factors_give(each)
    chosen = {"action": "remove_second_factors", "_selected_action": [user.pk, bob.pk]}

    confirmation = admin_client.post(USERS_URL, chosen)

    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert "Are you sure you want to remove every second factor of these users?" in page
    assert "alice: the authenticator app, 10 recovery codes and 1 passkey" in page and "bob:" in page
    assert "carol" not in page
    assert 'name="action" value="remove_second_factors"' in page
    assert AuditEvent.objects.filter(type=AuditEventType.MFA_RESET).count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(USERS_URL, {**chosen, "post": "yes"}, follow=True)

    assert "Removed the second factors of alice and bob." in response.content.decode()
    assert factor_rows(user) == factor_rows(bob) == NONE_LEFT
    assert factor_rows(carol)["TotpDevice"] == 1
    events = AuditEvent.objects.filter(type=AuditEventType.MFA_RESET)
    assert {event.user_id for event in events} == {user.pk, bob.pk}
    assert {event.actor_id for event in events} == {admin_user.pk}
    assert sorted(mail.to[0] for mail in mailoutbox) == ["alice@example.com", "bob@example.com"]


# --- permission -----------------------------------------------------------------------------------
def test_a_staff_member_who_may_not_change_users_cannot_remove_factors(client, user, user_factory):
    viewer = user_factory(username="viewer", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "view_session"]))
    client.force_login(viewer)
    second_factors_give(user)

    content = client.get(user_page(user)).content.decode()
    assert "Authenticator app: on" in factors_fieldset(content)  # they may see the factors ...
    assert remove_url(user) not in content  # ... not remove them
    listing = client.get(USERS_URL)
    action_form = listing.context["action_form"]  # None: no action at all
    assert action_form is None or "remove_second_factors" not in dict(action_form.fields["action"].choices)
    assert client.get(remove_url(user)).status_code == 403
    assert client.post(remove_url(user), {"post": "yes"}).status_code == 403
    client.post(USERS_URL, {"action": "remove_second_factors", "_selected_action": [user.pk], "post": "yes"})
    assert factor_rows(user)["TotpDevice"] == 1
    assert not AuditEvent.objects.filter(type=AuditEventType.MFA_RESET).exists()


# --- sessions say how they signed in --------------------------------------------------------------
@pytest.mark.parametrize(
    ("amr", "words"),
    [
        (("pwd",), "password"),
        (("pwd", "otp"), "password + authenticator code"),
        (("hwk", "user"), "passkey"),
        (("pwd", "hwk", "user"), "password + passkey"),
        (("pwd", "sms"), "password + sms"),  # a value with no name is shown as it is
        ((), "-"),
    ],
)
def test_a_session_says_how_its_user_signed_in_in_words(user, amr, words):
    session = session_create(user=user, ip=None, user_agent="", amr=amr)
    assert session.amr_display == words


def test_the_sessions_list_page_and_user_page_say_how_each_session_signed_in(admin_client, user):
    session = session_create(user=user, ip="192.0.2.5", user_agent="Firefox", amr=("pwd", "otp"))
    session_create(user=user, ip="192.0.2.6", user_agent="Firefox", amr=("hwk", "user"))

    rows = cells(admin_client.get(reverse("admin:accounts_session_changelist")))
    assert sorted(row["Signed in with"] for row in rows) == ["passkey", "password + authenticator code"]

    page = admin_client.get(reverse("admin:accounts_session_change", args=[session.pk])).content.decode()
    assert 'title="amr: pwd otp">password + authenticator code</span>' in page
    assert "Last proved who they are" in page

    inline = admin_client.get(user_page(user)).content.decode()
    assert inline.count("password + authenticator code") == 1 and "Signed in with" in inline
