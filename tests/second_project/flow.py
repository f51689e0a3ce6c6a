"""The proof that accounts drops into another project, run in a fresh process from the repo root:

    DJANGO_SETTINGS_MODULE=tests.second_project.settings python -m tests.second_project.flow

It runs the system checks, creates an empty database and migrates it (Django's test-database
creation runs ``migrate``), runs ``makemigrations --check`` against it, then drives the API
(password reset and verified addresses included) and the admin with Django's test client, CSRF checks
on, and sets the member's password three ways. Exit status 0 and "second project: all steps passed"
when every step passes; a traceback naming the step
otherwise. ``--checks-only`` stops
after the checks; ``--without-authproject`` first makes this repo's project package unimportable,
as it is in any other project. Not collected by pytest (the name does not match test_*.py):
tests/test_second_project.py runs it.
"""

import argparse
import os
import sys

import django
from django.core.management import call_command

PASSWORD = "correct horse battery staple"
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the flow hashes a dozen times


def step(name: str) -> None:
    """Say which step runs, so that a failure's output shows where it stopped."""
    print(f"--- {name}", flush=True)


def expect(response, status: int, code: str | None = None) -> dict:
    """The response's JSON body, after checking its status (and error code); shows it otherwise."""
    shown = f"{response.status_code} {response.get('Content-Type')}: {response.content[:500]!r}"
    assert response.status_code == status, f"expected {status}, got {shown}"
    assert response["Content-Type"] == "application/json", f"not JSON: {shown}"
    body = response.json()
    if code is not None:
        assert body.get("code") == code, f"expected code {code!r}, got {shown}"
    return body


def api_flow() -> None:
    """Register, log in by email, me, refresh with CSRF, logout; the errors in the app's one shape."""
    from django.test import Client

    from accounts.models import Session

    browser = Client(enforce_csrf_checks=True)

    def post(path, data=None, csrf=None):
        headers = {"X-CSRFToken": csrf} if csrf else {}
        return browser.post(path, data or {}, content_type="application/json", headers=headers)

    step("register: the project's user model, through its manager")
    registration = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    member = expect(post("/api/auth/register/", registration), 201)
    assert member["email"] == "ada@example.com", member

    step("login by email (USERNAME_FIELD): access token in the body, refresh token only in the cookie")
    body = expect(post("/api/auth/login/", {"email": "ada@example.com", "password": PASSWORD}), 200)
    assert body["user"]["id"] == member["id"] and "refresh" not in body, body
    access, refresh_cookie = body["access"], browser.cookies["refresh_token"].value
    assert refresh_cookie, "no refresh cookie"

    step("errors in the app's shape, with no EXCEPTION_HANDLER in this project")
    wrong = post("/api/auth/login/", {"email": "ada@example.com", "password": "wrong"})
    body = expect(wrong, 401, "invalid_credentials")
    assert set(body) == {"detail", "code"}, body
    body = expect(post("/api/auth/login/", {"username": "ada", "password": PASSWORD}), 400, "invalid")
    assert set(body) == {"detail", "code", "errors"} and "email" in body["errors"], body

    step("me with the Bearer access token")
    me = browser.get("/api/users/me/", headers={"Authorization": f"Bearer {access}"})
    assert expect(me, 200)["email"] == "ada@example.com"
    expect(browser.get("/api/users/me/"), 401, "not_authenticated")

    step("refresh: refused without the CSRF token, rotated with it")
    expect(post("/api/auth/refresh/"), 403, "csrf_failed")
    csrf = expect(browser.get("/api/auth/csrf/"), 200)["csrf_token"]
    assert browser.cookies["csrftoken"].value, "no csrftoken cookie"
    access = expect(post("/api/auth/refresh/", csrf=csrf), 200)["access"]
    assert browser.cookies["refresh_token"].value not in ("", refresh_cookie), "the cookie did not rotate"
    expect(browser.get("/api/users/me/", headers={"Authorization": f"Bearer {access}"}), 200)

    step("logout: the session is revoked, the cookie deleted, the old cookie refused")
    rotated_cookie = browser.cookies["refresh_token"].value
    expect(post("/api/auth/logout/", csrf=csrf), 200)
    assert browser.cookies["refresh_token"].value == "", "the cookie was not deleted"
    browser.cookies["refresh_token"] = rotated_cookie
    expect(post("/api/auth/refresh/", csrf=csrf), 401, "token_revoked")
    expect(browser.get("/api/users/me/", headers={"Authorization": f"Bearer {access}"}), 401, "token_revoked")
    assert not Session.objects.active().exists()

    step("login attempts are throttled per USERNAME_FIELD value (here the email)")
    for _ in range(5):
        expect(post("/api/auth/login/", {"email": "eve@example.com", "password": "guess"}), 401)
    expect(post("/api/auth/login/", {"email": "eve@example.com", "password": "guess"}), 429, "throttled")


def admin_flow() -> None:
    """The project's own Member admin gained the sessions inline, the revoke button and the e-mail
    verification at startup."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Session

    step("admin: the member's page lists the session and has the revoke button, which revokes")
    member = get_user_model().objects.get(email="ada@example.com")
    browser = Client(enforce_csrf_checks=True)
    body = expect(
        browser.post(
            "/api/auth/login/", {"email": member.email, "password": PASSWORD}, content_type="application/json"
        ),
        200,
    )
    admin = get_user_model().objects.create_superuser(
        username="root", email="root@example.com", password=PASSWORD
    )
    staff = Client()
    staff.force_login(admin)
    page = staff.get(reverse("admin:members_member_change", args=[member.pk]))
    assert page.status_code == 200, page.status_code
    revoke_url = reverse("admin:members_member_revoke_sessions", args=[member.pk])
    html = page.content.decode()
    assert f'action="{revoke_url}"' in html and "Revoke all sessions" in html, "no revoke button"
    assert "Active sessions" in html, "no sessions inline"
    assert "E-mail verification" in html and "not verified" in html, "no e-mail verification"
    changelist = staff.get(reverse("admin:accounts_session_changelist"), {"q": "ada@"})
    assert changelist.status_code == 200 and "ada@example.com" in changelist.content.decode()
    assert staff.post(revoke_url).status_code == 302
    assert not Session.objects.active().exists()
    browser_me = browser.get("/api/users/me/", headers={"Authorization": f"Bearer {body['access']}"})
    expect(browser_me, 401, "token_revoked")


def reset_flow() -> None:
    """Password reset by e-mail address with the project's user model: the mailed key sets a new
    password once, ends every session and signs nobody in."""
    from django.core import mail
    from django.test import Client

    from accounts.models import Session

    browser = Client(enforce_csrf_checks=True)

    def post(path, data):
        return browser.post(path, data, content_type="application/json")

    step("password reset: the same 202 for a member's address and another; only the member gets mail")
    login = {"email": "ada@example.com", "password": PASSWORD}
    access = expect(post("/api/auth/login/", login), 200)["access"]
    mail.outbox = []
    known = expect(post("/api/auth/password/reset/", {"email": "ADA@example.com"}), 202)
    assert expect(post("/api/auth/password/reset/", {"email": "nobody@example.com"}), 202) == known
    [message] = mail.outbox
    assert message.to == ["ada@example.com"], message.to
    [link] = [line for line in message.body.splitlines() if line.startswith("http://localhost:5173/#reset=")]
    key = link.partition("#reset=")[2]

    step("password reset confirm: the password is set, every session ends, the key works once")
    reset = {"key": key, "new_password": "a new staple for ada 7"}
    confirmed = post("/api/auth/password/reset/confirm/", reset)
    assert set(expect(confirmed, 200)) == {"detail"} and not confirmed.cookies, "it signed someone in"
    expect(browser.get("/api/users/me/", headers={"Authorization": f"Bearer {access}"}), 401, "token_revoked")
    assert not Session.objects.active().exists()
    assert mail.outbox[-1].subject.endswith("password was reset"), mail.outbox[-1].subject
    expect(post("/api/auth/password/reset/confirm/", reset), 400, "invalid_key")
    expect(post("/api/auth/login/", {"email": "ada@example.com", "password": "a new staple for ada 7"}), 200)


def email_flow() -> None:
    """Verified addresses with this project's user model: mandatory mode refuses an unverified
    member, the link mailed at registration verifies, and an address change (to the model's unique
    USERNAME_FIELD) takes effect once its link is followed."""
    from django.core import mail
    from django.test import Client, override_settings

    def post(path, data, **headers):
        return browser.post(path, data, content_type="application/json", headers=headers)

    def key_in(message) -> str:
        [link] = [line for line in message.body.splitlines() if line.startswith("http")]
        return link.removeprefix("http://localhost:5173/#verify=")

    browser = Client(enforce_csrf_checks=True)
    # No global login budget: the steps before signed in more than 10 times within the second.
    with override_settings(ACCOUNTS_EMAIL_VERIFICATION="mandatory", ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE=None):
        step("e-mail: registration mails a link; mandatory mode refuses the unverified member")
        mail.outbox = []
        registration = {"username": "bea", "email": "bea@example.com", "password": PASSWORD}
        expect(post("/api/auth/register/", registration), 201)
        [message] = mail.outbox
        assert message.to == ["bea@example.com"], message.to
        login = {"email": "bea@example.com", "password": PASSWORD}
        expect(post("/api/auth/login/", login), 403, "email_unverified")

        step("e-mail: the link verifies once; the member signs in; me says so")
        key = key_in(message)
        expect(post("/api/auth/email/verify/", {"key": key}), 200)
        expect(post("/api/auth/email/verify/", {"key": key}), 400, "invalid_key")
        access = expect(post("/api/auth/login/", login), 200)["access"]
        me = expect(browser.get("/api/users/me/", headers={"Authorization": f"Bearer {access}"}), 200)
        assert me["email_verified"] is True, me

        step("e-mail: a change mails the new address a link and the old one a notice; verified, it applies")
        mail.outbox = []
        change = {"new_email": "bea@example.org", "password": PASSWORD}
        expect(post("/api/auth/email/change/", change, Authorization=f"Bearer {access}"), 202)
        by_address = {m.to[0]: m for m in mail.outbox}
        assert sorted(by_address) == ["bea@example.com", "bea@example.org"], sorted(by_address)
        expect(post("/api/auth/login/", login), 200)  # the old address still signs in
        expect(post("/api/auth/email/verify/", {"key": key_in(by_address["bea@example.org"])}), 200)
        expect(post("/api/auth/login/", login), 401, "invalid_credentials")
        expect(post("/api/auth/login/", {**login, "email": "bea@example.org"}), 200)

        step("e-mail: a change to an address another member has (unique here) is an invalid link, not a 500")
        access = expect(post("/api/auth/login/", {**login, "email": "bea@example.org"}), 200)["access"]
        mail.outbox = []
        taken = {"new_email": "ada@example.com", "password": PASSWORD}
        expect(post("/api/auth/email/change/", taken, Authorization=f"Bearer {access}"), 202)
        [link_mail] = [m for m in mail.outbox if m.to == ["ada@example.com"]]
        expect(post("/api/auth/email/verify/", {"key": key_in(link_mail)}), 400, "invalid_key")
        expect(post("/api/auth/login/", {**login, "email": "bea@example.org"}), 200)


def password_flow() -> None:
    """A password set by the admin's form, by changepassword or in code ends the member's sessions."""
    import getpass
    import io

    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    from accounts.models import AuditEvent, RevokeReason, Session

    member = get_user_model().objects.get(email="ada@example.com")
    admin = get_user_model().objects.get(username="root")
    cache.clear()  # the login limits that api_flow() spent (this project's local-memory cache)

    def signed_in() -> tuple[Client, str]:
        browser = Client(enforce_csrf_checks=True)
        credentials = {"email": member.email, "password": PASSWORD}
        body = expect(browser.post("/api/auth/login/", credentials, content_type="application/json"), 200)
        return browser, body["access"]

    def assert_signed_out(browser: Client, access: str) -> None:
        me = browser.get("/api/users/me/", headers={"Authorization": f"Bearer {access}"})
        expect(me, 401, "token_revoked")
        assert not Session.objects.for_user(member).active().exists()

    step("the admin's password form ends the member's sessions, recorded as the admin's doing")
    browser, access = signed_in()
    staff = Client()
    staff.force_login(admin)
    form = {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"}
    # UserAdmin names its password URL auth_user_password_change whatever the user model.
    response = staff.post(reverse("admin:auth_user_password_change", args=[member.pk]), form)
    assert response.status_code == 302, response.content[:500]
    assert_signed_out(browser, access)
    event = AuditEvent.objects.filter(type=RevokeReason.PASSWORD_SET).latest("id")
    assert (event.user_id, event.actor_id) == (member.pk, admin.pk), event

    step("changepassword ends the member's sessions")
    browser, access = signed_in()
    terminal = getpass.getpass
    getpass.getpass = lambda prompt="": PASSWORD  # only the terminal input: the command asks twice
    try:
        call_command("changepassword", member.email, stdout=io.StringIO())
    finally:
        getpass.getpass = terminal
    assert_signed_out(browser, access)

    step("set_password() and save() in code end the member's sessions")
    browser, access = signed_in()
    member.set_password(PASSWORD)
    member.save()
    assert_signed_out(browser, access)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks-only", action="store_true")
    parser.add_argument("--without-authproject", action="store_true")
    args = parser.parse_args(argv)
    if args.without_authproject:
        sys.modules["authproject"] = None  # any `import authproject...` now fails
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.second_project.settings")
    django.setup()

    from django.conf import settings
    from django.test.utils import override_settings, setup_databases, teardown_databases

    step("check: the app's startup checks pass with this project's settings")
    call_command("check", fail_level="ERROR")
    if args.checks_only:
        return
    step(f"migrate a new database ({settings.DATABASES['default']['ENGINE']})")
    databases = setup_databases(verbosity=2, interactive=False, serialized_aliases=set())
    try:
        step("makemigrations --check: the app's migrations need nothing for this user model")
        call_command("makemigrations", check_changes=True, dry_run=True)
        with override_settings(PASSWORD_HASHERS=FAST_HASHERS):
            api_flow()
            admin_flow()
            # The steps above may have spent this second's load-shedding budget of password checks.
            with override_settings(ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE=None):
                password_flow()  # signs in with PASSWORD, and leaves it the member's password
                reset_flow()  # sets another
            email_flow()
    finally:
        teardown_databases(databases, verbosity=1)
    print("second project: all steps passed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
