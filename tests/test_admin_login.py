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


# --- an account with a second factor -----------------------------------------------------------
def admin_login_with_code(client, code, username="root", password=PASSWORD):
    return client.post(
        LOGIN_URL,
        {"username": username, "password": password, "code": code, "next": "/admin/"},
        REMOTE_ADDR="203.0.113.1",
    )


@pytest.fixture
def staff_with_totp(staff, settings):
    from .test_mfa import turn_on_totp

    settings.ACCOUNTS_MFA_THROTTLE_RATE = "1000/min"
    return turn_on_totp(staff)


def test_the_admin_login_page_asks_for_a_code_beside_the_password(client):
    page = client.get(LOGIN_URL).content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    assert 'name="code"' in page and 'autocomplete="one-time-code"' in page


def test_the_right_password_alone_never_signs_in_an_account_with_a_second_factor(client, staff_with_totp):
    response = admin_login(client)
    assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
    assert "This account has a second factor" in response.content.decode()
    event = AuditEvent.objects.get(type=AuditEventType.LOGIN_FAILED)
    assert event.user_id is not None and "second factor needed" in event.detail
    assert not AuditEvent.objects.filter(type=AuditEventType.LOGIN_SUCCEEDED).exists()


def test_the_authenticator_code_signs_in_once(client, staff_with_totp):
    from .test_mfa import code_of

    code = code_of(staff_with_totp.secret)
    assert signed_in(admin_login_with_code(client, code))
    again = admin_login_with_code(Client(), code)  # the same code, replayed
    assert again.status_code == 200 and "The code is not correct." in again.content.decode()
    assert AuditEvent.objects.filter(type=AuditEventType.MFA_FAILED, detail="Django admin").count() == 1


def test_a_recovery_code_signs_in_once(client, staff_with_totp):
    code = staff_with_totp.recovery_codes[0]
    assert signed_in(admin_login_with_code(client, code.upper()))
    assert not signed_in(admin_login_with_code(Client(), code))
    assert AuditEvent.objects.filter(type=AuditEventType.RECOVERY_CODE_USED).count() == 1


def test_a_wrong_password_with_a_right_code_spends_no_code(client, staff_with_totp):
    from .test_mfa import code_of

    code = code_of(staff_with_totp.secret)
    assert not signed_in(admin_login_with_code(client, code, password=WRONG))
    assert signed_in(admin_login_with_code(Client(), code))


def test_codes_at_the_admin_login_are_under_the_per_user_second_factor_limit(client, staff_with_totp, settings):
    from .test_mfa import code_of

    settings.ACCOUNTS_MFA_THROTTLE_RATE = "2/min"
    for _ in range(2):
        assert "The code is not correct." in admin_login_with_code(Client(), "000000").content.decode()
    right = admin_login_with_code(client, code_of(staff_with_totp.secret))
    assert not right.wsgi_request.user.is_authenticated and "Too many login attempts" in right.content.decode()


def test_an_account_whose_only_second_factor_is_a_passkey_is_told_the_page_cannot_take_it(client, staff):
    from .helpers import second_factors_give

    second_factors_give(staff, totp="off", recovery_codes=0, passkeys=("Laptop",))
    response = admin_login_with_code(client, "123456")
    assert not response.wsgi_request.user.is_authenticated
    assert "second factor is a passkey" in response.content.decode()


def test_an_account_without_a_second_factor_ignores_the_code_field(client, staff):
    assert signed_in(admin_login_with_code(client, "anything"))
