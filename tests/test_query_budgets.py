"""SQL queries per endpoint (BEGIN/COMMIT and savepoints not counted): deterministic, so tested.

Login, logout, logout-all and revoking a session each include one INSERT into the audit trail;
an ordinary refresh writes no audit event. A returning user's login also reads whether the device
is a known one (security notices).

For scale: dj-rest-auth with simplejwt's blacklist takes 6 (login), 9 (refresh), 1 (me) and 9
(logout) on this machine, and loads the user three times per refresh.
"""

import re

import pytest
from django.utils import timezone

from accounts.models import EmailAddressState
from accounts.services import session_create

from .helpers import PASSWORD, BrowserClient, NativeClient, data_queries
from .test_mfa import code_of, turn_on_totp
from .webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("verification", ["none", "optional", "mandatory"])
def test_login_takes_at_most_4_queries(browser, user, query_budget, settings, verification):
    """Under EMAIL_VERIFICATION=mandatory the session's INSERT itself checks the address."""
    settings.ACCOUNTS_EMAIL_VERIFICATION = verification
    EmailAddressState.objects.create(user=user, verified_email=user.email)
    with query_budget(4):
        response = browser.sign_in()
    assert response.status_code == 200


def test_a_returning_users_login_reads_the_known_devices_once_more(browser, user, query_budget, settings):
    """Every sign-in after the first reads the audit trail's sign-ins once (accounts.notices: is it
    a new device?); with SECURITY_NOTICES off it reads nothing more."""
    assert browser.sign_in().status_code == 200
    with query_budget(5) as on:
        assert BrowserClient().sign_in().status_code == 200
    reads_on = [q for q in data_queries(on) if "accounts_auditevent" in q and q.startswith("SELECT")]
    settings.ACCOUNTS_SECURITY_NOTICES = False
    with query_budget(4) as off:
        assert BrowserClient().sign_in().status_code == 200
    reads_off = [q for q in data_queries(off) if "accounts_auditevent" in q and q.startswith("SELECT")]
    assert (len(reads_on), len(reads_off)) == (1, 0)  # the known-device read, and only with notices


def test_a_refresh_is_one_statement_and_no_transaction(signed_in, query_budget):
    signed_in.fetch_csrf()
    with query_budget(1) as captured:
        response = signed_in.refresh()
    assert response.status_code == 200
    # Nothing else goes to the database: no savepoint (this test runs inside a transaction, where
    # an atomic block would take one), so no BEGIN/COMMIT round trips outside tests either.
    [statement] = [q["sql"] for q in captured.captured_queries]
    assert statement.startswith("UPDATE") and "RETURNING" in statement


def test_a_body_refresh_takes_the_same_statement_as_a_cookie_refresh(signed_in, user, query_budget):
    def shape(captured) -> list[str]:  # the statements without their values (ids, jtis, times differ)
        return [re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"]) for q in captured.captured_queries]

    signed_in.fetch_csrf()
    with query_budget(1) as captured:
        assert signed_in.refresh().status_code == 200
    by_cookie = shape(captured)  # read now: the next request resets the connection's query log
    native = NativeClient()
    token = native.sign_in().json()["refresh"]
    with query_budget(1) as captured:
        assert native.refresh(token).status_code == 200
    assert shape(captured) == by_cookie


def test_refresh_inside_the_grace_window_takes_2_queries_with_the_row_locked(signed_in, query_budget):
    old = signed_in.refresh_cookie
    signed_in.refresh()
    signed_in.set_refresh_cookie(old)
    with query_budget(2) as captured:  # the UPDATE that finds the token is not current, the lock
        response = signed_in.refresh()
    assert response.status_code == 200
    assert (
        any("FOR UPDATE" in q["sql"] for q in captured.captured_queries)
        or captured.connection.vendor == "sqlite"
    )


def test_a_body_refresh_inside_the_grace_window_takes_2_queries(user, query_budget):
    native = NativeClient()
    old = native.sign_in().json()["refresh"]
    native.refresh(old)
    with query_budget(2):
        response = native.refresh(old)
    assert response.status_code == 200


def test_me_takes_1_statement_and_no_transaction(api, query_budget):
    with query_budget(1) as captured:
        response = api.get("/api/users/me/")
    assert response.status_code == 200
    assert len(captured.captured_queries) == 1


def test_logout_takes_at_most_2_queries(signed_in, query_budget):
    signed_in.fetch_csrf()
    with query_budget(2):
        response = signed_in.sign_out()
    assert response.status_code == 200


def test_sessions_list_takes_2_queries_however_many_sessions(api, user, query_budget):
    for _ in range(20):
        session_create(user=user, ip="198.51.100.1", user_agent="Other")
    with query_budget(2):
        response = api.get("/api/auth/sessions/")
    assert len(response.json()) == 21


def test_logout_all_takes_3_queries(api, query_budget):
    BrowserClient().sign_in()
    with query_budget(3):
        response = api.post("/api/auth/logout-all/", {}, format="json")
    assert response.json() == {"revoked": 2}


def test_revoking_one_of_my_sessions_takes_3_queries(api, user, query_budget):
    other = session_create(user=user, ip=None, user_agent="Other")
    with query_budget(3):  # the access token's session check, the UPDATE, the audit INSERT
        response = api.delete(f"/api/auth/sessions/{other.pk}/")
    assert response.status_code == 204


# --- second factors ---------------------------------------------------------------------------
def test_a_login_that_asks_for_a_second_factor_takes_5_queries(user, query_budget):
    """The user, the session INSERT whose condition finds a factor (so it writes nothing), which
    factors, the audit event (mfa_required) and the mfa_token. A login without a second factor
    pays nothing for the check: it is the INSERT's own condition (4, above)."""
    turn_on_totp(user)
    with query_budget(5):
        response = BrowserClient().sign_in()
    assert response.json()["mfa_required"] is True


def test_the_second_step_with_a_code_takes_at_most_8_queries(user, query_budget, settings):
    """The mfa_token with its user and authenticator app, the attempt counted, the code's step
    stored, the token used, then what a login takes: the known-device read (a returning user), the
    session, its audit event and last_login."""
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "100/min"
    totp = turn_on_totp(user)
    type(user).objects.filter(pk=user.pk).update(last_login=timezone.now())  # a returning user
    mfa_token = BrowserClient().sign_in().json()["mfa_token"]
    with query_budget(8):
        response = BrowserClient().post(
            "/api/auth/mfa/verify/", {"mfa_token": mfa_token, "code": code_of(totp.secret)}, format="json"
        )
    assert response.status_code == 200, response.content


def test_reauthenticating_with_the_password_takes_4_queries(api, query_budget):
    """The access token's check, authenticate()'s user, the session's one UPDATE, the audit event."""
    with query_budget(4):
        response = api.post("/api/auth/reauthenticate/", {"password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content


def test_the_second_factors_state_takes_3_queries(api, user, query_budget):
    """The access token's check, then second_factors_summary: the app's state with the unused
    recovery codes counted, and the passkeys (however many)."""
    turn_on_totp(user)
    with query_budget(3):
        response = api.get("/api/auth/mfa/")
    assert response.status_code == 200, response.content
    assert response.json() == {"totp": True, "recovery_codes_left": 10, "passkeys": []}


def test_an_unknown_mfa_token_takes_1_query(user, query_budget):
    with query_budget(1):
        response = BrowserClient().post(
            "/api/auth/mfa/verify/", {"mfa_token": "x" * 43, "code": "123456"}, format="json"
        )
    assert response.status_code == 401


def test_a_passkey_sign_in_takes_1_statement_for_its_options_and_at_most_8_for_itself(
    api, user, query_budget
):
    """Options: the challenge's INSERT. The sign-in: the challenge used up (one UPDATE), the passkey
    and its user read, its counter stored (one UPDATE), then what a password login writes (the
    known-device read of a returning user, the session, the audit event, last_login)."""
    authenticator = SoftAuthenticator()
    options = api.post("/api/auth/passkeys/register/options/", format="json").json()
    credential = authenticator.create(options)
    body = {"credential": credential, "name": "Laptop"}
    assert api.post("/api/auth/passkeys/register/", body, format="json").status_code == 201
    client = NativeClient()
    with query_budget(1):
        options = client.post("/api/auth/passkeys/login/options/", {}, format="json").json()
    body = {"credential": authenticator.get(options), "transport": "body"}
    with query_budget(8) as captured:
        response = client.post("/api/auth/passkeys/login/", body, format="json")
    assert response.status_code == 200, response.content
    writes = [q.split(" ", 3)[:3] for q in data_queries(captured) if not q.startswith("SELECT")]
    assert [w[0] for w in writes] == ["UPDATE", "UPDATE", "INSERT", "INSERT", "UPDATE"]
