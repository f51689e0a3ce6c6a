"""A password set by any path ends the user's sessions (accounts.password_validation), like Django's
session auth hash: the admin's password form, changepassword, set_password() and save() in code;
the API's password change keeps the caller's own session; each is audited once."""

import getpass
import io

import pytest
from django.contrib.auth import password_validation
from django.core.management import call_command
from django.urls import reverse

from accounts import checks, services
from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session
from accounts.password_validation import PasswordSetEndsSessions

from .helpers import PASSWORD, BrowserClient

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an entirely new passphrase 42"
VALIDATOR = {"NAME": "accounts.password_validation.PasswordSetEndsSessions"}


def password_url(user) -> str:
    return reverse("admin:auth_user_password_change", args=[user.pk])


def events(type: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(type=type))


def revoke_reasons(user) -> list[str]:
    return sorted(Session.objects.for_user(user).values_list("revoke_reason", flat=True))


@pytest.fixture
def two_devices(signed_in):
    """The user signed in twice: ``signed_in`` (a browser) and a second browser."""
    other = BrowserClient()
    response = other.sign_in()
    assert response.status_code == 200
    other.access = response.json()["access"]
    return signed_in, other


def assert_signed_out(*browsers) -> None:
    for browser in browsers:
        assert browser.bearer(browser.access).get("/api/users/me/").json()["code"] == "token_revoked"
        assert browser.refresh().status_code == 401


def test_the_admins_password_form_ends_every_session_and_names_the_admin(
    admin_client, admin_user, user, two_devices
):
    browser, other = two_devices
    response = admin_client.post(
        password_url(user), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    )

    assert response.status_code == 302, response.content[:500]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not Session.objects.for_user(user).active().exists()
    assert set(revoke_reasons(user)) == {RevokeReason.PASSWORD_SET}
    assert_signed_out(browser, other)
    [event] = events(AuditEventType.PASSWORD_SET)
    assert (event.user, event.actor) == (user, admin_user)
    assert event.detail == "2 sessions revoked; set in the admin"


def test_disabling_password_sign_in_in_the_admin_ends_every_session(
    admin_client, admin_user, user, signed_in
):
    response = admin_client.post(password_url(user), {"usable_password": "false", "unset-password": "1"})

    assert response.status_code == 302, response.content[:500]
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert_signed_out(signed_in)
    [event] = events(AuditEventType.PASSWORD_SET)
    assert (event.user, event.actor, event.detail) == (
        user,
        admin_user,
        "session revoked; password sign-in disabled in the admin",
    )


def test_a_refused_admin_password_form_ends_nothing(admin_client, user, signed_in):
    response = admin_client.post(
        password_url(user), {"password1": NEW_PASSWORD, "password2": "another", "usable_password": "true"}
    )
    assert response.status_code == 200
    assert Session.objects.for_user(user).active().count() == 1
    assert not events(AuditEventType.PASSWORD_SET)


def test_changepassword_ends_every_session(user, signed_in, monkeypatch):
    # Only the terminal input is replaced: the command asks twice, through getpass.
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": NEW_PASSWORD)

    call_command("changepassword", "alice", stdout=io.StringIO())

    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert_signed_out(signed_in)
    assert revoke_reasons(user) == [RevokeReason.PASSWORD_SET]
    [event] = events(AuditEventType.PASSWORD_SET)
    assert (event.user, event.actor, event.detail) == (user, None, "session revoked")


def test_set_password_and_save_in_code_ends_every_session(user, two_devices):
    browser, other = two_devices
    user.set_password(NEW_PASSWORD)
    user.save()

    assert_signed_out(browser, other)
    assert revoke_reasons(user) == [RevokeReason.PASSWORD_SET] * 2
    [event] = events(AuditEventType.PASSWORD_SET)
    assert event.detail == "2 sessions revoked"


def test_set_password_without_save_ends_nothing_yet(user, signed_in):
    user.set_password(NEW_PASSWORD)
    assert Session.objects.for_user(user).active().count() == 1


def test_other_users_sessions_are_left_alone(user, signed_in, user_factory):
    bob = user_factory(username="bob")
    bob.set_password(NEW_PASSWORD)
    bob.save()
    assert signed_in.refresh().status_code == 200


def test_saving_a_user_without_a_new_password_ends_nothing(user, signed_in):
    user.first_name = "Alice"
    user.save()
    assert signed_in.refresh().status_code == 200
    assert not events(AuditEventType.PASSWORD_SET)


def test_a_hash_upgraded_at_login_is_no_new_password(user, signed_in, settings):
    """Django rehashes with the preferred hasher when a login checks an older hash; it says so by
    not calling password_changed, and the user's other sessions stay."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.ScryptPasswordHasher",  # preferred: the login upgrades to it
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    old_hash = user.password
    assert BrowserClient().sign_in().status_code == 200
    user.refresh_from_db()
    assert user.password != old_hash and user.password.startswith("scrypt$")
    assert signed_in.refresh().status_code == 200
    assert not events(AuditEventType.PASSWORD_SET)


def test_a_new_user_records_no_revocation(user_factory):
    user_factory(username="carol")
    assert not AuditEvent.objects.filter(type__in=[AuditEventType.PASSWORD_SET]).exists()


def test_the_api_password_change_keeps_the_callers_session_and_records_one_event(api, user, two_devices):
    _, other = two_devices
    response = api.post(
        "/api/auth/password/change/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )

    assert response.status_code == 200, response.content
    assert api.get("/api/users/me/").status_code == 200
    assert api.refresh().status_code == 200
    assert other.refresh().status_code == 401
    assert revoke_reasons(user) == ["", RevokeReason.PASSWORD_CHANGED]
    [event] = events(AuditEventType.PASSWORD_CHANGED)
    assert event.detail == "session revoked"
    assert not events(AuditEventType.PASSWORD_SET)


def test_the_api_password_change_still_ends_the_other_sessions_without_the_validator(
    api, user, two_devices, settings
):
    settings.AUTH_PASSWORD_VALIDATORS = []
    _, other = two_devices
    ended = services.user_change_password(
        user=user,
        old_password=PASSWORD,
        new_password=NEW_PASSWORD,
        keep_session_id=Session.objects.for_user(user).earliest("created_at").pk,
    )
    assert ended == 1
    assert revoke_reasons(user) == ["", RevokeReason.PASSWORD_CHANGED]


def test_password_set_as_names_the_reason_and_keeps_a_session(user, two_devices):
    kept = Session.objects.for_user(user).earliest("created_at")
    reason = RevokeReason.REVOKED_BY_COMMAND
    with services.password_set_as(reason=reason, keep_session_id=kept.pk) as password_set:
        user.set_password(NEW_PASSWORD)
        user.save()
    assert password_set.revoked == 1
    assert revoke_reasons(user) == ["", RevokeReason.REVOKED_BY_COMMAND]


# --- accounts.E044 --------------------------------------------------------------------------------
def test_the_validator_refuses_no_password():
    password_validation.validate_password("1", password_validators=[PasswordSetEndsSessions()])


def test_without_the_validator_the_configuration_is_e040(settings):
    assert checks.check_password_set_ends_sessions() == []
    settings.AUTH_PASSWORD_VALIDATORS = [
        v for v in settings.AUTH_PASSWORD_VALIDATORS if v["NAME"] != VALIDATOR["NAME"]
    ]
    [error] = checks.check_password_set_ends_sessions()
    assert error.id == "accounts.E044" and "AUTH_PASSWORD_VALIDATORS" in error.msg


def test_a_subclass_of_the_validator_is_enough(settings):
    settings.AUTH_PASSWORD_VALIDATORS = [{"NAME": "tests.test_password_set.QuietValidator"}]
    assert checks.check_password_set_ends_sessions() == []


class QuietValidator(PasswordSetEndsSessions):
    """A project's own subclass (another help text)."""

    def get_help_text(self) -> str:
        return ""
