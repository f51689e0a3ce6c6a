"""Removing every second factor of a user who lost theirs: the service (accounts.mfa.second_factors_remove),
and the admin's window on it: the user's factors on their page (never a secret), a "Remove second
factors" button and list action behind a confirmation page, permission-checked, audited, a notice
mailed. Sessions show how they signed in. (The command, reset_mfa, is in test_commands.py.)"""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import mfa
from accounts.mfa import second_factors_remove, second_factors_summary
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

from .helpers import second_factors_give

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
    assert [name for name, _, _ in removed.passkeys] == ["Laptop", "Phone"]
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
    [(name, created_at, last_used_at)] = summary.passkeys
    assert (name, last_used_at) == ("Laptop", None)
    stored = TotpDevice.objects.get(user=user).secret
    assert secret not in repr(summary) and stored not in repr(summary)
