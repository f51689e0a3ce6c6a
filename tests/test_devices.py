"""Device names: parsed from the user agent once, when a session begins, and stored for every reader."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from accounts.devices import device_family, device_name
from accounts.models import Session

from .helpers import IPHONE_SAFARI, MAC_CHROME

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        (MAC_CHROME, "Chrome 131 on macOS"),
        (IPHONE_SAFARI, "Safari 18 on iPhone"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148",
            "Safari on iPhone",
        ),
        ("curl/8.1.2", "curl 8.1"),
        ("python-requests/2.32.3", "Python Requests 2.32"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
            "Firefox 140 on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome 131 on Android",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
            "Edge 131 on Windows",
        ),
        ("MyApp/1.2 (iOS; build 7)", "MyApp/1.2 on iOS"),  # no rule knows the app: its first token
        ("MyApp/1.2", "MyApp/1.2"),
        ("Mozilla/5.0 (X11; Linux x86_64) Unheard/1", "Unknown browser on Linux"),
        ("", ""),
        ("   ", ""),
        ("x" * 600, "x" * 64),
    ],
)
def test_a_user_agent_gets_a_name_people_recognise(user_agent, name):
    assert device_name(user_agent) == name


def test_a_login_stores_the_device_name_beside_the_user_agent(browser, user):
    browser.sign_in(HTTP_USER_AGENT=IPHONE_SAFARI)
    session = Session.objects.get()
    assert (session.device, session.user_agent) == ("Safari 18 on iPhone", IPHONE_SAFARI)


def test_refresh_and_the_access_token_check_never_parse_a_user_agent(api, monkeypatch):
    def refuse(user_agent):
        raise AssertionError("parsed a user agent on a hot path")

    monkeypatch.setattr("accounts.services.device_name", refuse)
    assert api.refresh().status_code == 200
    assert api.get("/api/users/me/").status_code == 200
    assert api.get("/api/auth/sessions/").status_code == 200


def test_the_migration_names_the_devices_of_sessions_made_before_it(make_session, monkeypatch):
    sessions = [make_session(user_agent=agent) for agent in (MAC_CHROME, IPHONE_SAFARI, MAC_CHROME, "")]
    Session.objects.update(device="")
    migration = importlib.import_module("accounts.migrations.0002_session_device")
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches
    migration.name_existing_devices(apps, SimpleNamespace(connection=connection))
    names = dict(Session.objects.values_list("pk", "device"))
    assert [names[s.pk] for s in sessions] == [
        "Chrome 131 on macOS",
        "Safari 18 on iPhone",
        "Chrome 131 on macOS",
        "",
    ]


@pytest.mark.parametrize(
    "name, family",
    [
        ("Chrome 131 on macOS", "Chrome on macOS"),
        ("Safari 18 on iPhone", "Safari on iPhone"),
        ("curl 8.1", "curl"),
        ("MyApp/1.2", "MyApp"),
        ("Unknown browser", "Unknown browser"),
    ],
)
def test_a_device_family_is_its_name_without_versions(name, family):
    assert device_family(name) == family
