"""No token and no password is ever stored or logged: a general check after every flow.

Each flow runs with every log record captured (all loggers, DEBUG and up, tracebacks included), and
with the lines the project's log handler writes in JSON (LOG_FORMAT=json, with each request's id,
user and session prefix); then every row of every table is read back raw. None may contain the
text of any token the flows handed out (whole, or its signature) nor any password that was typed.
A password typed into the username field is looked for in the shared cache too, with its bare
SHA-256.
"""

import hashlib
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from accounts.tokens import RefreshToken

from .helpers import PASSWORD, BrowserClient, NativeClient, cache_own_entries, links_in

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new horse battery"
WRONG_PASSWORD = "wrong-password-never-stored"
RESET_PASSWORD = "a password set by reset 42"
TYPED_PASSWORDS = (PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, RESET_PASSWORD)
WINDOW = 16


class Tokens:
    """Every token the flows saw, from bodies and cookies alike."""

    def __init__(self):
        self.seen: set[str] = set()
        self.signatures: set[str] = set()

    def take(self, response):
        """Keep the tokens of a response; return the response."""
        if response.get("Content-Type", "").startswith("application/json") and response.content:
            body = response.json()
            if isinstance(body, dict):
                self.seen.update(v for k, v in body.items() if k in ("access", "refresh") and v)
        morsel = response.cookies.get("refresh_token")
        if morsel is not None and morsel.value:
            self.seen.add(morsel.value)
        return response

    def take_key(self, key: str) -> str:
        """Keep a verification key (``payload:timestamp:signature``), and its signature alone."""
        self.seen.add(key)
        self.signatures.add(key.rpartition(":")[2])
        return key

    def fragments(self) -> set[str]:
        """Each token, and every 16 characters of its claims and signature (at steps of 8, so any
        24 characters in a row are caught): a cut-off token, or its signature alone, is still a
        leak."""
        pieces = set(self.seen) | self.signatures
        for token in (t for t in self.seen if "." in t):
            for segment in token.split(".")[1:]:
                pieces.update(segment[i : i + WINDOW] for i in range(0, max(len(segment) - WINDOW, 0) + 1, 8))
        return pieces


def all_rows_as_text() -> str:
    """Every row of every table, raw, as one text."""
    texts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            texts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(texts)


def all_log_text(records: list[logging.LogRecord]) -> str:
    """Each record as any handler could write it: message, arguments, traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) + repr(record.args) for record in records)


def run_every_flow(tokens: Tokens, user, settings) -> None:
    """Browser and native sign-in, refresh (current, within grace, reuse), Bearer calls, logout,
    logout everywhere, password change, failed and throttled logins, the admin's login form,
    password reset (asked for a known and an unknown address, confirmed, the key tried again)."""
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "100/min"
    browser = BrowserClient()
    tokens.take(browser.sign_in(HTTP_USER_AGENT="Firefox"))
    old_cookie = browser.refresh_cookie
    tokens.take(browser.refresh())
    access = tokens.take(browser.refresh()).json()["access"]
    browser.bearer(access).get("/api/users/me/")
    browser.get("/api/auth/sessions/")
    # The previous token within the grace window, then an older one: reuse, the session revoked.
    replay = BrowserClient()
    replay.set_refresh_cookie(old_cookie)
    tokens.take(replay.refresh())

    native = NativeClient()
    issued = tokens.take(native.sign_in()).json()
    rotated = tokens.take(native.refresh(issued["refresh"])).json()
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)
    tokens.take(native.refresh(issued["refresh"]))  # reuse after the window: revoked
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(seconds=10)
    tokens.take(native.sign_out(rotated["refresh"]))

    third = BrowserClient()
    access = tokens.take(third.sign_in()).json()["access"]
    tokens.take(third.sign_out())
    third.bearer(access).get("/api/users/me/")  # a revoked session's access token

    fourth = BrowserClient()
    access = tokens.take(fourth.sign_in()).json()["access"]
    fourth.bearer(access).post(
        "/api/auth/password/change/",
        {"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        format="json",
    )
    fourth.post("/api/auth/logout-all/", {}, format="json")
    user.set_password(PASSWORD)
    user.save()

    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    for _ in range(3):
        BrowserClient().sign_in(password=WRONG_PASSWORD)
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "100/min"

    # Garbage and foreign tokens everywhere a token is read.
    for raw in [str(RefreshToken.for_session(third_session(user))) + "x", "not.a.token"]:
        junk = BrowserClient()
        junk.set_refresh_cookie(raw)
        junk.refresh()
        junk.bearer(raw).get("/api/users/me/")
        NativeClient().refresh(raw)

    # Verified addresses: a key verified, tried again, garbled; resend both ways; an address change
    # verified by its key.
    from accounts.email_verification import verification_key_make

    verifier = NativeClient()
    key = tokens.take_key(verification_key_make(user_id=user.pk, address=user.email))
    verifier.post("/api/auth/email/verify/", {"key": key}, format="json")
    verifier.post("/api/auth/email/verify/", {"key": key}, format="json")
    verifier.post("/api/auth/email/verify/", {"key": key[:-1]}, format="json")
    verifier.post("/api/auth/email/verify/resend/", {"email": user.email}, format="json")
    fifth = BrowserClient()
    access = tokens.take(fifth.sign_in()).json()["access"]
    fifth.bearer(access).post("/api/auth/email/verify/resend/", {}, format="json")
    for password in (WRONG_PASSWORD, PASSWORD):
        change = {"new_email": "alice@example.org", "password": password}
        fifth.post("/api/auth/email/change/", change, format="json")
    key = tokens.take_key(verification_key_make(user_id=user.pk, address="alice@example.org"))
    verifier.post("/api/auth/email/verify/", {"key": key}, format="json")
    assert type(user).objects.get(pk=user.pk).email == "alice@example.org"

    admin = Client()
    user.is_staff = True
    user.save()
    admin.post(reverse("admin:login"), {"username": "alice", "password": WRONG_PASSWORD})
    admin.post(reverse("admin:login"), {"username": "alice", "password": PASSWORD})

    with TestCase.captureOnCommitCallbacks(execute=True):  # the mail task runs after the commit
        for address in ("alice@example.com", "nobody@example.com"):
            BrowserClient().post("/api/auth/password/reset/", {"email": address}, format="json")
    [link] = links_in(mail.outbox[-1].body)
    key = link.partition("#reset=")[2]
    tokens.seen.add(key)
    for password in (WRONG_PASSWORD[:3], RESET_PASSWORD, RESET_PASSWORD):  # refused, set, used key
        with TestCase.captureOnCommitCallbacks(execute=True):
            BrowserClient().post(
                "/api/auth/password/reset/confirm/", {"key": key, "new_password": password}, format="json"
            )
    assert user.__class__.objects.get(pk=user.pk).check_password(RESET_PASSWORD)


def third_session(user):
    """A live session of the user (for a token to garble)."""
    from accounts.services import session_create

    return session_create(user=user, ip=None, user_agent="garbled")


def test_no_token_or_password_is_stored_or_logged_after_every_flow(user, settings, caplog, json_log_lines):
    caplog.set_level(logging.DEBUG)
    tokens = Tokens()

    run_every_flow(tokens, user, settings)

    assert len(tokens.seen) >= 10  # the flows did hand out tokens
    stored, logged, written = all_rows_as_text(), all_log_text(caplog.records), json_log_lines.text()
    assert "reuse_detected" in stored and "login_failed" in stored  # the trail was written
    assert "password_reset_completed" in stored
    assert "email_verified" in stored and "email_changed" in stored
    assert caplog.records  # and so were log lines
    lines = json_log_lines()  # each one JSON
    assert lines and all(line["request_id"] for line in lines if line["logger"] == "django.request")
    for secret in tokens.fragments() | set(TYPED_PASSWORDS):
        assert secret not in stored, f"stored: {secret[:12]}..."
        assert secret not in logged, f"logged: {secret[:12]}..."
        assert secret not in written, f"written to the log: {secret[:12]}..."


def test_the_json_log_of_a_login_refresh_logout_and_failed_login_holds_no_secret(user, json_log_lines):
    """The lines the production log format writes for the common flow, cookies and CSRF token
    included among the secrets."""
    browser, tokens = BrowserClient(), Tokens()
    tokens.take(browser.sign_in())
    tokens.take(browser.refresh())
    tokens.take(browser.sign_out())
    tokens.take(BrowserClient().sign_in(password=WRONG_PASSWORD))
    browser.set_refresh_cookie(next(iter(tokens.seen - {browser.refresh_cookie})))
    tokens.take(browser.refresh())  # a dead token: refused, and Django logs the 401

    lines, written = json_log_lines(), json_log_lines.text()
    assert {line["message"] for line in lines} >= {"Unauthorized: /api/auth/login/"}
    assert all(line["request_id"] for line in lines if line["logger"] == "django.request")
    secrets = tokens.fragments() | {PASSWORD, WRONG_PASSWORD, browser.csrf_token}
    secrets |= {morsel.value for morsel in browser.cookies.values() if morsel.value}
    for secret in secrets:
        assert secret not in written, f"written to the log: {secret[:12]}..."


# --- a password typed into the username field -----------------------------------------------
PASSWORD_AS_NAME = "Tr0ub4dor&3 typed as a name"


def all_cache_text() -> str:
    """Every key and value the tests have in the cache, raw (cache_own_entries)."""
    entries = cache_own_entries()
    return "\n".join(f"{key!r} {value!r} {bytes(value).decode('latin-1') if isinstance(value, bytes) else ''}"
                     for key, value in entries)


def plain_forms(text: str) -> set[str]:
    """The text, the forms a throttle or a record might fold it to, and the bare SHA-256 of each
    (which a guess at the text could be checked against)."""
    forms = {text, text.strip(), text.casefold(), text.strip().casefold(), text.lower()}
    return forms | {hashlib.sha256(form.encode()).hexdigest() for form in forms}


def test_a_password_typed_as_the_username_is_not_stored_cached_or_logged(user, settings, caplog):
    """The API's login and the admin's form, failed, then throttled (which writes its own event and
    counts in the cache): the typed text names no account, so neither it nor its bare SHA-256 is
    in any row, any cache key or value, or any log line."""
    caplog.set_level(logging.DEBUG)
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    answers = [BrowserClient().sign_in(username=PASSWORD_AS_NAME, password="x").status_code for _ in range(4)]
    assert answers == [401, 401, 429, 429]
    user.is_staff = True
    user.save()
    for ip in ("198.51.100.1", "198.51.100.2"):
        Client().post(reverse("admin:login"), {"username": PASSWORD_AS_NAME, "password": "x"}, REMOTE_ADDR=ip)

    stored, cached, logged = all_rows_as_text(), all_cache_text(), all_log_text(caplog.records)
    assert "login_failed" in stored and "throttled" in stored  # the trail was written
    assert "login_username" in cached  # and the throttles counted
    for form in plain_forms(PASSWORD_AS_NAME):
        assert form not in stored, f"stored: {form[:12]}..."
        assert form not in cached, f"cached: {form[:12]}..."
        assert form not in logged, f"logged: {form[:12]}..."


# --- second factors -------------------------------------------------------------------------
def code_forms(code: str) -> set[str]:
    """A recovery code as shown, as it may be typed, and the bare SHA-256 of each form."""
    bare = code.replace("-", "")
    return plain_forms(code) | plain_forms(bare) | plain_forms(bare.upper()) | plain_forms(code.upper())


def test_no_totp_secret_recovery_code_or_mfa_token_is_stored_cached_or_logged(
    user, settings, caplog, json_log_lines
):
    """Every second-factor flow: the app set up (twice, the first secret replaced), confirmed, the
    login's second step with a wrong code, a recovery code and the app's code, re-authentication
    with a code, new recovery codes, the app turned off. Neither a secret (nor its otpauth URI),
    nor a recovery code (in any form it is shown or typed, nor its bare SHA-256), nor an mfa_token
    is in any row, any cache key or value, or any log line."""
    import pyotp
    from django.utils import timezone

    from accounts import mfa

    caplog.set_level(logging.DEBUG)
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "100/min"
    secrets: set[str] = set()

    def code_of(secret: str, steps: int = 0) -> str:
        return pyotp.TOTP(secret).generate_otp(mfa.totp_step(timezone.now()) + steps)

    browser = BrowserClient()
    api = browser.bearer(browser.sign_in().json()["access"])
    for _ in range(2):
        enrolment = api.post("/api/auth/mfa/totp/").json()
        secrets |= {enrolment["secret"], enrolment["otpauth_uri"], enrolment["qr_svg"]}
    secret = enrolment["secret"]
    secrets |= plain_forms(secret)
    with TestCase.captureOnCommitCallbacks(execute=True):
        codes = api.post("/api/auth/mfa/totp/confirm/", {"code": code_of(secret, -1)}, format="json").json()[
            "recovery_codes"
        ]

    def second_step(code: str) -> int:
        login = BrowserClient().sign_in().json()
        secrets.add(login["mfa_token"])
        return BrowserClient().post(
            "/api/auth/mfa/verify/", {"mfa_token": login["mfa_token"], "code": code}, format="json"
        ).status_code

    assert [second_step("000000"), second_step(codes[0]), second_step(code_of(secret))] == [401, 200, 200]
    assert api.post("/api/auth/reauthenticate/", {"code": codes[1].upper()}, format="json").status_code == 200
    with TestCase.captureOnCommitCallbacks(execute=True):
        new_codes = api.post("/api/auth/mfa/recovery-codes/").json()["recovery_codes"]
        assert api.delete("/api/auth/mfa/totp/").status_code == 204
    for code in [*codes, *new_codes]:
        secrets |= code_forms(code)

    stored, cached = all_rows_as_text(), all_cache_text()
    logged, written = all_log_text(caplog.records), json_log_lines.text()
    assert "totp_enabled" in stored and "recovery_code_used" in stored and "mfa_failed" in stored
    assert "mfa" in cached  # the per-user limit counted
    for value in secrets:
        assert value not in stored, f"stored: {value[:12]}..."
        assert value not in cached, f"cached: {value[:12]}..."
        assert value not in logged, f"logged: {value[:12]}..."
        assert value not in written, f"written to the log: {value[:12]}..."


# --- passkeys -------------------------------------------------------------------------------
def test_no_webauthn_challenge_or_token_of_the_passkey_flows_is_stored_or_logged(
    user, api, caplog, json_log_lines
):
    """Registration, passwordless sign-in in both transports, a refused assertion, the second
    step's and re-authentication's options: each challenge handed out is kept only as a digest."""
    from .webauthn_authenticator import SoftAuthenticator

    caplog.set_level(logging.DEBUG)
    authenticator, tokens, challenges = SoftAuthenticator(), Tokens(), set()

    def options(client, path, body=None) -> dict:
        handed_out = client.post(path, body or {}, format="json").json()
        challenges.add(handed_out["challenge"])
        return handed_out

    credential = authenticator.create(options(api, "/api/auth/passkeys/register/options/"))
    api.post("/api/auth/passkeys/register/", {"credential": credential, "name": "Laptop"}, format="json")
    for client, transport in ((BrowserClient(), "cookie"), (NativeClient(), "body")):
        assertion = authenticator.get(options(client, "/api/auth/passkeys/login/options/"))
        body = {"credential": assertion, "transport": transport}
        tokens.take(client.post("/api/auth/passkeys/login/", body, format="json"))
    native = NativeClient()
    refused = authenticator.get(options(native, "/api/auth/passkeys/login/options/"), user_verified=False)
    assert native.post("/api/auth/passkeys/login/", {"credential": refused}, format="json").status_code == 401
    options(api, "/api/auth/passkeys/reauthenticate/options/")

    assert len(tokens.seen) == 4 and len(challenges) == 5  # two sign-ins' access and refresh tokens
    stored, logged, written = all_rows_as_text(), all_log_text(caplog.records), json_log_lines.text()
    assert "passkey_added" in stored and "login_failed" in stored
    for secret in tokens.fragments() | challenges:
        assert secret not in stored, f"stored: {secret[:12]}..."
        assert secret not in logged, f"logged: {secret[:12]}..."
        assert secret not in written, f"written to the log: {secret[:12]}..."
