"""Security notices (accounts/notices.py): mailed to the account's own address, through a real SMTP
server, naming the device, the IP and the time; a known device is no news."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, AuditEventType, RevokeReason, Session
from accounts.notices import NEW_DEVICE_MEMORY

from .helpers import IPHONE_SAFARI, MAC_CHROME, PASSWORD, BrowserClient, claims, mail_text

pytestmark = pytest.mark.django_db(transaction=True)

MAC_CHROME_NEXT_MONTH = MAC_CHROME.replace("Chrome/131.0.0.0", "Chrome/132.0.0.0")
TIME = re.compile(r"^Time: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", re.MULTILINE)


def sign_in(user_agent: str, ip: str = "198.51.100.7") -> BrowserClient:
    """A browser on that device and address, signed in (``.access`` holds its access token)."""
    client = BrowserClient(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    response = client.sign_in()
    assert response.status_code == 200, response.content
    client.access = response.json()["access"]
    return client


def assert_names_device_ip_and_time(text: str, device: str, ip: str) -> None:
    assert f"Device: {device}" in text or f"Device that used it: {device}" in text, text
    assert f"IP address: {ip}" in text, text
    assert TIME.search(text), text
    assert "not you" in text or "do not\nrecognise" in text, text


def test_a_password_change_mails_a_notice_naming_device_ip_and_time(user, smtp_server):
    sign_in(MAC_CHROME)
    client = sign_in(MAC_CHROME)  # a second sign-in from a known device: no notice
    assert smtp_server.messages == []

    response = client.bearer(client.access).post(
        "/api/auth/password/change/",
        {"old_password": PASSWORD, "new_password": "a new passphrase 2"},
        format="json",
    )

    assert response.status_code == 200, response.content
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Your authproject password was changed"
    assert_names_device_ip_and_time(mail_text(message), "Chrome 131 on macOS", "198.51.100.7")


def test_refresh_token_reuse_mails_a_notice_naming_the_device_that_replayed_it(user, smtp_server, settings):
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)
    client = sign_in(MAC_CHROME)
    replayed = client.refresh_cookie
    assert client.refresh().status_code == 200
    smtp_server.messages.clear()

    thief = BrowserClient(HTTP_USER_AGENT=IPHONE_SAFARI, REMOTE_ADDR="203.0.113.9")
    thief.set_refresh_cookie(replayed)
    assert thief.refresh().status_code == 401

    assert Session.objects.get(pk=claims(replayed)["sid"]).revoke_reason == RevokeReason.REUSE_DETECTED
    [message] = smtp_server.wait_for(1)
    assert message["Subject"] == "A authproject session was ended to protect your account"
    assert_names_device_ip_and_time(mail_text(message), "Safari 18 on iPhone", "203.0.113.9")


def test_a_new_device_is_news_and_a_known_one_is_not(user, smtp_server):
    sign_in(MAC_CHROME)  # the account's first sign-in: nothing to compare it with
    sign_in(MAC_CHROME)  # the same device
    sign_in(MAC_CHROME_NEXT_MONTH, ip="192.0.2.44")  # the same device, its browser updated
    assert smtp_server.messages == []

    sign_in(IPHONE_SAFARI, ip="203.0.113.20")

    [message] = smtp_server.wait_for(1)
    assert message["Subject"] == "New sign-in to authproject from Safari 18 on iPhone"
    assert_names_device_ip_and_time(mail_text(message), "Safari 18 on iPhone", "203.0.113.20")
    sign_in(IPHONE_SAFARI, ip="203.0.113.21")  # known now
    assert len(smtp_server.messages) == 1


def test_a_device_last_seen_more_than_90_days_ago_is_new_again(user, smtp_server):
    sign_in(MAC_CHROME)
    sign_in(IPHONE_SAFARI)
    smtp_server.messages.clear()
    long_ago = timezone.now() - NEW_DEVICE_MEMORY - timedelta(days=1)
    AuditEvent.objects.filter(type=AuditEventType.LOGIN_SUCCEEDED, user_agent=IPHONE_SAFARI).update(
        created_at=long_ago
    )

    sign_in(IPHONE_SAFARI)

    [message] = smtp_server.wait_for(1)
    assert "Safari 18 on iPhone" in message["Subject"]


def test_no_notice_is_sent_with_security_notices_off_or_without_an_address(
    user_factory, smtp_server, settings
):
    user_factory(username="alice")
    user_factory(username="noaddress", email="")
    for username in ("alice", "noaddress"):
        for agent in (MAC_CHROME, MAC_CHROME):
            assert BrowserClient(HTTP_USER_AGENT=agent).sign_in(username=username).status_code == 200
    assert BrowserClient(HTTP_USER_AGENT=IPHONE_SAFARI).sign_in(username="noaddress").status_code == 200
    settings.ACCOUNTS_SECURITY_NOTICES = False
    assert BrowserClient(HTTP_USER_AGENT=IPHONE_SAFARI).sign_in(username="alice").status_code == 200

    assert smtp_server.messages == []


def test_a_password_set_by_code_or_an_admin_mails_the_notice_unless_never_signed_in(
    user, user_factory, smtp_server
):
    sign_in(MAC_CHROME)  # alice has signed in before
    user.refresh_from_db()

    user.set_password("set in a shell 1")
    user.save()
    newcomer = user_factory(username="newcomer")  # a password set on a new account: no news
    newcomer.set_password("set in a shell 2")
    newcomer.save()

    [message] = smtp_server.wait_for(1)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Your authproject password was changed"
    assert_names_device_ip_and_time(mail_text(message), "an unnamed device", "an unknown address")
    assert len(smtp_server.messages) == 1
