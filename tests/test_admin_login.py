"""The Django admin's login form: under the API's login limits, its outcomes in the audit trail."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.audit import typed_name_record
from accounts.models import AuditEvent, AuditEventType

from .helpers import PASSWORD, BrowserClient

pytestmark = pytest.mark.django_db

LOGIN_URL = reverse("admin:login")
WRONG = "not the password"


@pytest.fixture
def staff(user_factory):
    return user_factory(username="root", is_staff=True, is_superuser=True)


def admin_login(client, username="root", password=PASSWORD, ip="203.0.113.1"):
    return client.post(
        LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip
    )


def signed_in(response) -> bool:
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


def test_an_admin_login_is_recorded_in_the_audit_trail(client, staff):
    assert signed_in(admin_login(client))
    event = AuditEvent.objects.get(type=AuditEventType.LOGIN_SUCCEEDED)
    assert event.user == staff and event.ip == "203.0.113.1" and event.detail == "Django admin"


@pytest.mark.parametrize("who", ["wrong password", "unknown user", "not staff"])
def test_a_failed_admin_login_is_recorded_with_the_typed_name_if_it_names_an_account(
    client, staff, user_factory, who
):
    user_factory(username="plain")
    username, password = {
        "wrong password": ("root", WRONG),
        "unknown user": ("nobody", PASSWORD),
        "not staff": ("plain", PASSWORD),
    }[who]
    response = admin_login(client, username, password)
    assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
    event = AuditEvent.objects.get(type=AuditEventType.LOGIN_FAILED)
    recorded = username if who != "unknown user" else typed_name_record(username)
    assert event.username == recorded and event.detail == "Django admin"
    assert (event.username == username) == (who != "unknown user")  # no account: a keyed hash
    assert not AuditEvent.objects.filter(type=AuditEventType.LOGIN_SUCCEEDED).exists()


def test_past_the_limit_the_admin_form_refuses_without_trying_the_password(
    client, staff, settings, password_tries
):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    for _ in range(3):
        assert admin_login(client, password=WRONG).status_code == 200
    assert len(password_tries) == 3

    response = admin_login(client)  # the right password, one attempt too many

    assert not signed_in(response)
    assert "Too many login attempts" in response.content.decode()
    assert len(password_tries) == 3  # authenticate() never ran
    assert not AuditEvent.objects.filter(type=AuditEventType.LOGIN_SUCCEEDED).exists()
    assert AuditEvent.objects.filter(type=AuditEventType.THROTTLED, username="root").count() == 1


def test_the_api_and_the_admin_form_share_the_login_limits(client, staff, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "3/min"
    api = BrowserClient()
    for _ in range(3):
        assert api.sign_in(username="root", password=WRONG, REMOTE_ADDR="203.0.113.1").status_code == 401
    assert not signed_in(admin_login(client))
    # Another address is not held by this one's budget.
    assert signed_in(admin_login(client, ip="198.51.100.2"))


def test_the_admin_form_is_under_the_per_ip_limit_too(client, staff, settings):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    for i in range(3):
        admin_login(client, username=f"nobody{i}", password=WRONG)
    assert not signed_in(admin_login(client))


def test_200_wrong_admin_logins_from_one_address_do_not_lock_the_superuser_out(client, staff, password_tries):
    """Only the attempts the narrow limits let through (five) count toward the per-username
    ceiling: the superuser signs in from another address, through the form and the API."""
    stranger = Client()
    for _ in range(200):
        assert not signed_in(admin_login(stranger, password=WRONG, ip="203.0.113.66"))
    assert 5 <= len(password_tries) <= 10  # five a minute: ten if a window ended meanwhile
    assert signed_in(admin_login(client, ip="198.51.100.20"))
    assert BrowserClient().sign_in(username="root", REMOTE_ADDR="198.51.100.21").status_code == 200
