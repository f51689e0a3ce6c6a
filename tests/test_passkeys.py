"""Passkeys: registration, passwordless sign-in, a passkey as the second factor and to
re-authenticate, with a software authenticator (tests/webauthn_authenticator.py) whose real
signatures py_webauthn verifies.

Each refusal is proved against a ceremony that would otherwise succeed: the same authenticator,
the same options, one thing changed.
"""

import json
import secrets
from datetime import timedelta
from functools import partial

import pytest
from django.core import mail
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts import passkeys
from accounts.errors import InvalidCode
from accounts.mfa import handed_out_digest
from accounts.models import (
    AuditEvent,
    AuditEventType,
    EmailAddressState,
    MfaToken,
    Passkey,
    RecoveryCode,
    Session,
    WebAuthnChallenge,
)
from accounts.services import session_create, tokens_issue

from .helpers import (
    FUZZ_COUNTS,
    BrowserClient,
    MetricDeltas,
    NativeClient,
    assert_json_error,
    at_once,
    claims,
)
from .webauthn_authenticator import AAGUID, SoftAuthenticator, b64url, b64url_decode

pytestmark = pytest.mark.django_db

REGISTER_OPTIONS = "/api/auth/passkeys/register/options/"
REGISTER = "/api/auth/passkeys/register/"
LOGIN_OPTIONS = "/api/auth/passkeys/login/options/"
LOGIN = "/api/auth/passkeys/login/"
REAUTHENTICATE_OPTIONS = "/api/auth/passkeys/reauthenticate/options/"
THREADS = 16


def bearer_for(user, *, authenticated_ago: timedelta = timedelta(0)) -> BrowserClient:
    """A client with the access token of a new session of ``user``, who signed in that long ago."""
    now = timezone.now() - authenticated_ago
    session = session_create(user=user, ip=None, user_agent="Firefox", now=now)
    return BrowserClient().bearer(str(tokens_issue(session=session).access))


def register(client, authenticator: SoftAuthenticator, *, name="Laptop", **changed):
    """Creation options, the authenticator's credential for them (``changed``: what it does
    otherwise), sent to be registered; the response."""
    options = client.post(REGISTER_OPTIONS, format="json").json()
    credential = authenticator.create(options, **changed)
    return client.post(REGISTER, {"credential": credential, "name": name}, format="json")


def login_options(client=None, **body) -> dict:
    response = (client or NativeClient()).post(LOGIN_OPTIONS, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def sign_in(authenticator: SoftAuthenticator, client=None, *, transport="cookie", options=None, **changed):
    """A passwordless sign-in: options, the authenticator's assertion (``changed``: what it does
    otherwise), sent to sign in; the response."""
    client = client or BrowserClient()
    credential = authenticator.get(options or login_options(client), **changed)
    return client.post(LOGIN, {"credential": credential, "transport": transport}, format="json")


def pending_step(user) -> tuple[str, MfaToken]:
    """A login waiting for its second factor: the ``mfa_token`` handed out, and its row."""
    token = secrets.token_urlsafe(32)
    row = MfaToken.objects.create(
        digest=handed_out_digest(token),
        user=user,
        transport="cookie",
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    return token, row


def audited(type_) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(type=type_))


@pytest.fixture
def authenticator():
    return SoftAuthenticator()


@pytest.fixture
def passkey(user, authenticator) -> Passkey:
    """``user``'s passkey, registered through the API, held by ``authenticator``."""
    response = register(bearer_for(user), authenticator)
    assert response.status_code == 201, response.content
    mail.outbox.clear()
    return Passkey.objects.get(pk=response.json()["id"])


# --- registration ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # mail leaves after the commit
def test_a_registered_passkey_is_kept_with_its_public_key_audited_and_mailed(user, authenticator):
    response = register(bearer_for(user), authenticator, name="Work laptop")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "created_at"} and body["name"] == "Work laptop"
    passkey = Passkey.objects.get(pk=body["id"])
    [credential] = authenticator.credentials.values()
    assert passkey.user == user
    assert b64url_decode(passkey.credential_id) == credential.id
    assert bytes(passkey.public_key) == credential.cose_public_key()
    assert passkey.aaguid.replace("-", "") == AAGUID.hex()
    assert (passkey.transports, passkey.sign_count, passkey.backed_up) == ("internal,hybrid", 0, False)
    [event] = audited(AuditEventType.PASSKEY_ADDED)
    assert event.user_id == user.pk and "Work laptop" in event.detail
    [notice] = mail.outbox
    assert notice.to == [user.email] and 'the passkey "Work laptop"' in notice.body


def test_creation_options_ask_for_a_discoverable_credential_and_exclude_the_users_passkeys(
    user, passkey, settings
):
    settings.ACCOUNTS_WEBAUTHN_RP_NAME = "Example"
    options = bearer_for(user).post(REGISTER_OPTIONS, format="json").json()

    assert options["rp"] == {"id": "localhost", "name": "Example"}
    assert options["user"]["name"] == user.username
    assert b64url_decode(options["user"]["id"]) != str(user.pk).encode()  # opaque, not the key
    assert options["user"]["id"] == b64url(passkeys.user_handle(user=user))
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    assert [each["id"] for each in options["excludeCredentials"]] == [passkey.credential_id]
    assert options["timeout"] == 300_000
    challenge = WebAuthnChallenge.objects.get(purpose="register", used_at=None)
    assert challenge.user == user and challenge.digest == handed_out_digest(options["challenge"])
    assert challenge.expires_at - challenge.created_at == timedelta(minutes=5)


def test_registration_options_need_a_recent_authentication(user):
    response = bearer_for(user, authenticated_ago=timedelta(minutes=6)).post(REGISTER_OPTIONS, format="json")

    assert_json_error(response, 401, "reauthentication_required")
    assert not WebAuthnChallenge.objects.exists()


def test_a_credential_id_registered_already_is_a_conflict(user, user_factory, passkey):
    """A credential id is unique across accounts: another authenticator that claims one (a
    ``none`` attestation proves nothing about it) gets 409, and the passkey stays its owner's."""
    other = user_factory()
    response = register(
        bearer_for(other), SoftAuthenticator(), credential_id=b64url_decode(passkey.credential_id)
    )

    assert_json_error(response, 409, "passkey_exists")
    assert list(Passkey.objects.values_list("user", flat=True)) == [user.pk]


@pytest.mark.parametrize(
    ("changed", "what"),
    [
        ({"origin": "https://evil.example"}, "another origin"),
        ({"rp_id": "evil.example"}, "another RP ID"),
        ({"challenge": "bm90IHRoZSBjaGFsbGVuZ2U"}, "a challenge never handed out"),
    ],
)
def test_a_credential_that_does_not_verify_registers_nothing(user, authenticator, changed, what):
    response = register(bearer_for(user), authenticator, **changed)

    assert_json_error(response, 401, "invalid_code")
    assert not Passkey.objects.exists(), what


def test_a_registration_challenge_works_once_and_for_its_user_only(user, user_factory, authenticator):
    client = bearer_for(user)
    options = client.post(REGISTER_OPTIONS, format="json").json()
    first = authenticator.create(options)
    again = authenticator.create(options)
    other = bearer_for(user_factory())

    assert_json_error(
        other.post(REGISTER, {"credential": first, "name": "x"}, format="json"), 401, "invalid_code"
    )
    assert client.post(REGISTER, {"credential": first, "name": "x"}, format="json").status_code == 201
    assert_json_error(
        client.post(REGISTER, {"credential": again, "name": "y"}, format="json"), 401, "invalid_code"
    )
    assert Passkey.objects.count() == 1


def test_garbage_for_a_credential_is_invalid_code_not_an_error(user):
    client = bearer_for(user)
    client.post(REGISTER_OPTIONS, format="json")
    for credential in (
        {},
        {"id": "x", "rawId": "x", "type": "public-key", "response": {"clientDataJSON": "%%"}},
    ):
        response = client.post(REGISTER, {"credential": credential, "name": "x"}, format="json")
        assert_json_error(response, 401, "invalid_code")


# --- removal -------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # mail leaves after the commit
def test_removing_a_passkey_is_audited_and_mailed(user, passkey):
    response = bearer_for(user).delete(f"/api/auth/passkeys/{passkey.pk}/")

    assert response.status_code == 204
    assert not Passkey.objects.exists()
    [event] = audited(AuditEventType.PASSKEY_REMOVED)
    assert event.user_id == user.pk and "Laptop" in event.detail
    [notice] = mail.outbox
    assert 'the passkey "Laptop"' in notice.body and "An administrator" not in notice.body


def test_removing_the_last_second_factor_deletes_the_recovery_codes(user, passkey, authenticator):
    """Recovery codes stand in for a second factor: with the last one gone they go too (as when the
    authenticator app is turned off), and a later passkey does not bring the old set back."""
    client = bearer_for(user)
    second = register(client, authenticator, name="Phone")
    assert second.status_code == 201, second.content
    assert client.post("/api/auth/mfa/recovery-codes/", format="json").status_code == 200
    assert RecoveryCode.objects.filter(user=user).count() == 10

    assert client.delete(f"/api/auth/passkeys/{passkey.pk}/").status_code == 204
    assert RecoveryCode.objects.filter(user=user).count() == 10  # a passkey is left

    assert client.delete(f"/api/auth/passkeys/{second.json()['id']}/").status_code == 204
    assert not RecoveryCode.objects.filter(user=user).exists()


def test_another_users_passkey_cannot_be_removed(passkey, user_factory):
    response = bearer_for(user_factory()).delete(f"/api/auth/passkeys/{passkey.pk}/")

    assert_json_error(response, 404, "not_found")
    assert Passkey.objects.filter(pk=passkey.pk).exists()
    assert not audited(AuditEventType.PASSKEY_REMOVED)


def test_removing_a_passkey_needs_a_recent_authentication(user, passkey):
    response = bearer_for(user, authenticated_ago=timedelta(minutes=6)).delete(
        f"/api/auth/passkeys/{passkey.pk}/"
    )

    assert_json_error(response, 401, "reauthentication_required")
    assert Passkey.objects.filter(pk=passkey.pk).exists()


# --- passwordless sign-in -------------------------------------------------------------------------------
def test_login_options_ask_any_passkey_to_verify_its_user():
    options = login_options()

    assert options["rpId"] == "localhost"
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "required"
    challenge = WebAuthnChallenge.objects.get()
    assert (challenge.purpose, challenge.user, challenge.mfa_token) == ("login", None, None)
    assert challenge.digest == handed_out_digest(options["challenge"])


def test_a_passkey_signs_in_with_the_refresh_token_in_its_cookie(user, passkey, authenticator):
    browser = BrowserClient()
    response = sign_in(authenticator, browser)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "user"}
    assert body["user"]["username"] == user.username
    assert claims(body["access"])["amr"] == ["hwk", "user"]
    assert browser.refresh_cookie
    session = Session.objects.get(user=user, amr="hwk user")
    assert claims(body["access"])["sid"] == str(session.pk)
    passkey.refresh_from_db()
    assert passkey.sign_count == 1 and passkey.last_used_at is not None
    [event] = audited(AuditEventType.LOGIN_SUCCEEDED)
    assert event.user_id == user.pk
    assert browser.refresh().status_code == 200  # an ordinary session


def test_a_passkey_signs_in_with_the_refresh_token_in_the_body(user, passkey, authenticator):
    native = NativeClient()
    response = sign_in(authenticator, native, transport="body")

    assert response.status_code == 200, response.content
    body = response.json()
    assert {"access", "refresh", "refresh_expires_at", "user"} <= set(body)
    assert not native.cookies.get("refresh_token")
    assert native.refresh(body["refresh"]).status_code == 200


def test_a_browser_is_refused_the_body_transport_before_its_challenge_is_spent(passkey, authenticator):
    browser = BrowserClient()
    options = login_options(browser)
    credential = authenticator.get(options)
    body = {"credential": credential, "transport": "body"}

    assert_json_error(
        browser.post(LOGIN, body, format="json", HTTP_ORIGIN="http://localhost:5173"),
        400,
        "body_transport_forbidden",
    )
    assert browser.post(LOGIN, {"credential": credential}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("changed", "what"),
    [
        ({"origin": "https://evil.example"}, "another origin"),
        ({"origin": "http://localhost:8000"}, "an origin of this host that is not allowed"),
        ({"rp_id": "evil.example"}, "another RP ID"),
        ({"user_verified": False}, "no user verification"),
        ({"challenge": "bm90IHRoZSBjaGFsbGVuZ2U"}, "a challenge never handed out"),
    ],
)
def test_an_assertion_that_does_not_verify_signs_nobody_in(passkey, authenticator, changed, what):
    deltas = MetricDeltas()
    response = sign_in(authenticator, **changed)

    assert_json_error(response, 401, "invalid_code")
    assert not Session.objects.filter(amr="hwk user").exists(), what
    assert deltas("authproject_logins_total", result="failed", method="passkey") == 1
    [event] = audited(AuditEventType.LOGIN_FAILED)
    assert event.ip == "127.0.0.1"
    assert sign_in(authenticator).status_code == 200  # the same authenticator, nothing changed


def test_a_native_apps_origin_and_a_csrf_trusted_origin_are_allowed(passkey, authenticator, settings):
    settings.ACCOUNTS_NATIVE_APP_ORIGINS = ["capacitor://localhost"]
    settings.CSRF_TRUSTED_ORIGINS = [*settings.CSRF_TRUSTED_ORIGINS, "https://admin.localhost"]

    assert sign_in(authenticator, origin="capacitor://localhost").status_code == 200
    assert sign_in(authenticator, origin="https://admin.localhost").status_code == 200
    assert passkeys.allowed_origins() == [
        "http://localhost:5173",
        "http://localhost:3000",
        "https://admin.localhost",
        "capacitor://localhost",
    ]


def test_an_android_apps_origin_is_allowed_once_listed_in_webauthn_origins(passkey, authenticator, settings):
    android = "android:apk-key-hash:Sn7kWIk4r9zFyaHFAwYJhBX5nTkoZDzTYIjMX1u9Y8E"
    assert_json_error(sign_in(authenticator, origin=android), 401, "invalid_code")

    settings.ACCOUNTS_WEBAUTHN_ORIGINS = [android, "https://localhost", "*", "null"]

    assert sign_in(authenticator, origin=android).status_code == 200
    assert passkeys.allowed_origins()[-2:] == ["https://localhost", android]  # never "*" or "null"
    assert_json_error(sign_in(authenticator, origin="*"), 401, "invalid_code")


def test_a_login_challenge_works_once(passkey, authenticator):
    options = login_options()

    assert sign_in(authenticator, options=options).status_code == 200
    assert_json_error(sign_in(authenticator, options=options), 401, "invalid_code")


def test_an_expired_challenge_is_refused(passkey, authenticator):
    options = login_options()
    WebAuthnChallenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_json_error(sign_in(authenticator, options=options), 401, "invalid_code")


def test_a_challenge_handed_out_for_another_purpose_is_refused(user, passkey, authenticator):
    """A registration's or a second step's challenge does not sign anybody in."""
    registering = bearer_for(user).post(REGISTER_OPTIONS, format="json").json()
    token, _ = pending_step(user)
    second_step = login_options(mfa_token=token)
    reauthenticating = bearer_for(user).post(REAUTHENTICATE_OPTIONS, format="json").json()

    for options in (registering, second_step, reauthenticating):
        response = sign_in(authenticator, options={"challenge": options["challenge"]})
        assert_json_error(response, 401, "invalid_code")
    assert not Session.objects.filter(amr="hwk user").exists()


def test_an_inactive_users_passkey_signs_nobody_in(user, passkey, authenticator):
    user.is_active = False
    user.save()

    assert_json_error(sign_in(authenticator), 401, "invalid_code")


def test_a_removed_passkey_signs_nobody_in(user, passkey, authenticator):
    passkey.delete()

    assert_json_error(sign_in(authenticator), 401, "invalid_code")


def test_an_unverified_address_signs_in_under_mandatory_verification_only_once_verified(
    user, passkey, authenticator, settings
):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"

    assert_json_error(sign_in(authenticator), 403, "email_unverified")
    assert not Session.objects.filter(amr="hwk user").exists()
    EmailAddressState.objects.create(user=user, verified_email=user.email)
    assert sign_in(authenticator).status_code == 200


def test_passkey_sign_ins_are_limited_per_client_ip(passkey, authenticator, settings):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    options = [login_options() for _ in range(3)]
    assert_json_error(NativeClient().post(LOGIN_OPTIONS, {}, format="json"), 429, "throttled")
    client = NativeClient()
    for each in options:
        credential = authenticator.get(each, user_verified=False)
        assert client.post(LOGIN, {"credential": credential}, format="json").status_code == 401
    deltas = MetricDeltas()
    response = client.post(LOGIN, {"credential": authenticator.get(options[0])}, format="json")
    assert_json_error(response, 429, "throttled")
    assert deltas("authproject_logins_total", result="throttled", method="passkey") == 1
    other = NativeClient(REMOTE_ADDR="198.51.100.7")
    assert other.post(LOGIN_OPTIONS, {}, format="json").status_code == 200


@pytest.mark.parametrize("path", [REGISTER_OPTIONS, REAUTHENTICATE_OPTIONS])
def test_a_signed_in_users_passkey_options_are_limited_per_user(path, user, user_factory, settings):
    """Each answer keeps a challenge row: a user's own token cannot pile them up, from any address."""
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "3/min"
    for number in range(3):
        client = bearer_for(user)
        client.defaults["REMOTE_ADDR"] = f"198.51.100.{number + 1}"
        assert client.post(path, format="json").status_code == 200
    rows = WebAuthnChallenge.objects.count()

    assert_json_error(bearer_for(user).post(path, format="json"), 429, "throttled")
    assert WebAuthnChallenge.objects.count() == rows
    assert bearer_for(user_factory()).post(path, format="json").status_code == 200


# --- the signature counter ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # mail leaves after the commit
def test_a_counter_that_did_not_grow_is_a_cloned_authenticator_refused_audited_and_mailed(
    user, passkey, authenticator
):
    assert sign_in(authenticator).status_code == 200  # the counter is 1 now
    mail.outbox.clear()

    response = sign_in(authenticator, sign_count=1)

    assert_json_error(response, 401, "invalid_code")
    [event] = audited(AuditEventType.PASSKEY_CLONED)
    assert event.user_id == user.pk and "Laptop" in event.detail
    [notice] = mail.outbox
    assert notice.to == [user.email] and '"Laptop"' in notice.body
    passkey.refresh_from_db()
    assert passkey.sign_count == 1
    assert sign_in(authenticator, sign_count=2).status_code == 200


def test_a_counter_that_goes_back_to_zero_is_refused(passkey, authenticator):
    assert sign_in(authenticator).status_code == 200

    assert_json_error(sign_in(authenticator, sign_count=0), 401, "invalid_code")
    assert len(audited(AuditEventType.PASSKEY_CLONED)) == 1


def test_an_authenticator_that_never_counts_keeps_signing_in(user):
    authenticator = SoftAuthenticator(counts=False)
    assert register(bearer_for(user), authenticator).status_code == 201

    assert [sign_in(authenticator).status_code for _ in range(3)] == [200, 200, 200]
    assert Passkey.objects.get().sign_count == 0
    assert not audited(AuditEventType.PASSKEY_CLONED)


# --- second factor and re-authentication ------------------------------------------------------------------
def test_second_factor_options_name_that_users_passkeys(user, passkey, user_factory):
    register(bearer_for(user_factory()), SoftAuthenticator())  # another user's passkey
    token, step = pending_step(user)

    options = login_options(mfa_token=token)

    assert [each["id"] for each in options["allowCredentials"]] == [passkey.credential_id]
    assert options["allowCredentials"][0]["transports"] == ["internal", "hybrid"]
    assert options["userVerification"] == "preferred"
    challenge = WebAuthnChallenge.objects.get(purpose="mfa")
    assert (challenge.user, challenge.mfa_token) == (user, step)


@pytest.mark.parametrize("state", ["unknown", "used", "expired", "dead"])
def test_second_factor_options_need_a_pending_step_that_works(user, passkey, state):
    token, _ = pending_step(user)
    if state == "unknown":
        token = secrets.token_urlsafe(32)
    elif state == "used":
        MfaToken.objects.update(used_at=timezone.now())
    elif state == "expired":
        MfaToken.objects.update(expires_at=timezone.now())
    else:
        MfaToken.objects.update(failures=5)

    response = NativeClient().post(LOGIN_OPTIONS, {"mfa_token": token}, format="json")

    assert_json_error(response, 401, "mfa_token_invalid")
    assert not WebAuthnChallenge.objects.filter(purpose="mfa").exists()


def test_a_passkey_verifies_as_the_second_factor_of_its_pending_step(user, passkey, authenticator):
    token, step = pending_step(user)
    credential = authenticator.get(login_options(mfa_token=token), user_verified=False)  # preferred only

    verified = passkeys.passkey_second_factor_verify(credential=credential, mfa_token=step)

    assert verified == passkey
    assert Passkey.objects.get().sign_count == 1
    with pytest.raises(InvalidCode):  # its challenge worked once
        passkeys.passkey_second_factor_verify(credential=credential, mfa_token=step)


def test_a_second_factor_challenge_is_its_pending_steps_alone(user, user_factory, passkey, authenticator):
    token, step = pending_step(user)
    _, other_step_of_the_same_user = pending_step(user)
    mallory = user_factory()
    mallorys_authenticator = SoftAuthenticator()
    register(bearer_for(mallory), mallorys_authenticator)
    _, mallorys_step = pending_step(mallory)
    options = login_options(mfa_token=token)

    with pytest.raises(InvalidCode):  # another pending step of the same user
        passkeys.passkey_second_factor_verify(
            credential=authenticator.get(options), mfa_token=other_step_of_the_same_user
        )
    options = login_options(mfa_token=token)
    with pytest.raises(InvalidCode):  # another user's passkey over this step's challenge
        passkeys.passkey_second_factor_verify(
            credential=mallorys_authenticator.get({"challenge": options["challenge"]}),
            mfa_token=mallorys_step,
        )
    options = login_options(mfa_token=token)
    with pytest.raises(InvalidCode):  # a passwordless sign-in's challenge
        passkeys.passkey_second_factor_verify(
            credential=authenticator.get({"challenge": login_options()["challenge"]}), mfa_token=step
        )
    assert (
        passkeys.passkey_second_factor_verify(credential=authenticator.get(options), mfa_token=step)
        == passkey
    )


def test_a_passkey_re_authenticates_its_user_with_user_verification(user, passkey, authenticator):
    client = bearer_for(user, authenticated_ago=timedelta(hours=1))  # re-authentication needs no recent one
    response = client.post(REAUTHENTICATE_OPTIONS, format="json")
    assert response.status_code == 200, response.content
    options = response.json()
    assert [each["id"] for each in options["allowCredentials"]] == [passkey.credential_id]
    assert options["userVerification"] == "required"

    with pytest.raises(InvalidCode):
        passkeys.passkey_reauthenticate_verify(
            credential=authenticator.get(options, user_verified=False), user=user
        )
    options = client.post(REAUTHENTICATE_OPTIONS, format="json").json()
    assert passkeys.passkey_reauthenticate_verify(credential=authenticator.get(options), user=user) == passkey


def test_a_re_authentication_challenge_is_its_users_alone(user, user_factory, passkey, authenticator):
    mallory = user_factory()
    mallorys_authenticator = SoftAuthenticator()
    register(bearer_for(mallory), mallorys_authenticator)
    options = bearer_for(user).post(REAUTHENTICATE_OPTIONS, format="json").json()

    with pytest.raises(InvalidCode):
        passkeys.passkey_reauthenticate_verify(
            credential=mallorys_authenticator.get({"challenge": options["challenge"]}), user=mallory
        )
    with pytest.raises(InvalidCode):  # this user's passkey, over another user's challenge
        mallorys = bearer_for(mallory).post(REAUTHENTICATE_OPTIONS, format="json").json()
        credential = authenticator.get({"challenge": mallorys["challenge"]})
        passkeys.passkey_reauthenticate_verify(credential=credential, user=user)


def test_re_authentication_options_need_a_bearer_token():
    assert_json_error(NativeClient().post(REAUTHENTICATE_OPTIONS, format="json"), 401)


# --- at once ----------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_sixteen_uses_of_one_challenge_at_once_sign_in_once(user, authenticator):
    register(bearer_for(user), authenticator)
    options = login_options()
    credentials = [authenticator.get(options) for _ in range(THREADS)]  # counters 1 to 16: all would do

    def use(credential):
        return NativeClient().post(LOGIN, {"credential": credential}, format="json").status_code

    statuses = at_once([partial(use, credential) for credential in credentials])

    assert sorted(statuses) == [200] + [401] * (THREADS - 1), statuses
    assert Session.objects.filter(amr="hwk user").count() == 1


@pytest.mark.django_db(transaction=True)
def test_sixteen_assertions_with_one_counter_at_once_sign_in_once(user, authenticator):
    """Each with a challenge of its own and the same counter, as clones of one authenticator would
    send: the counter's conditional UPDATE lets one through."""
    register(bearer_for(user), authenticator)
    credentials = [authenticator.get(login_options(), sign_count=7) for _ in range(THREADS)]

    def use(credential):
        return NativeClient().post(LOGIN, {"credential": credential}, format="json").status_code

    statuses = at_once([partial(use, credential) for credential in credentials])

    assert sorted(statuses) == [200] + [401] * (THREADS - 1), statuses
    assert Passkey.objects.get().sign_count == 7
    assert len(audited(AuditEventType.PASSKEY_CLONED)) == THREADS - 1


# --- credentials of any shape -------------------------------------------------------------------------
FUZZ = hypothesis_settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
CLIENT_DATA_KEYS = ("type", "challenge", "origin", "crossOrigin", "tokenBinding")


@st.composite
def garbled(draw, credential: dict, byte_fields: tuple[str, ...]) -> dict:
    """A real credential with some parts replaced: any JSON value, other bytes (base64url, cut,
    flipped or random), or its clientDataJSON decoded, edited and encoded again (its challenge
    kept, so that the checks after the challenge's are reached)."""
    credential = json.loads(json.dumps(credential))
    response = credential["response"]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["top", "bytes", "client_data", "drop"]))
        if kind == "top":
            credential[draw(st.sampled_from(["id", "rawId", "type", "response"]))] = draw(JSON_VALUES)
            return credential
        if kind == "drop":
            response.pop(draw(st.sampled_from(byte_fields)), None)
        elif kind == "bytes":
            name = draw(st.sampled_from(byte_fields))
            raw = decoded(response.get(name))
            edit = draw(st.sampled_from(["cut", "flip", "random", "text"]))
            if edit == "cut":
                raw = raw[: draw(st.integers(0, 4095)) % (len(raw) + 1)]  # lengths differ by run
            elif edit == "flip" and raw:
                at = draw(st.integers(0, 4095)) % len(raw)
                raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
            elif edit == "random":
                raw = draw(st.binary(max_size=300))
            response[name] = b64url(raw) if edit != "text" else draw(st.text(max_size=60))
        elif isinstance(data := client_data(response), dict):
            data[draw(st.sampled_from([k for k in CLIENT_DATA_KEYS if k != "challenge"]))] = draw(JSON_VALUES)
            response["clientDataJSON"] = b64url(json.dumps(data).encode())
    return credential


def decoded(value) -> bytes:
    """The bytes a base64url field holds, or none if an earlier edit left it undecodable."""
    try:
        return b64url_decode(value)
    except (TypeError, ValueError):
        return b""


def client_data(response: dict):
    """The clientDataJSON decoded, or None if an earlier edit left it undecodable."""
    try:
        return json.loads(decoded(response.get("clientDataJSON")))
    except ValueError:
        return None


def assert_refused_in_the_error_shape(response) -> None:
    FUZZ_COUNTS["hypothesis passkey credentials"] += 1
    assert response.status_code in (200, 201, 400, 401), response.content
    if response.status_code >= 400:
        assert_json_error(response, response.status_code)


@given(data=st.data())
@FUZZ
def test_sign_in_credentials_of_any_shape_get_a_4xx_never_a_500(passkey, authenticator, settings, data):
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "1000000/min"
    options = login_options()
    credential = data.draw(
        garbled(
            authenticator.get(options), ("clientDataJSON", "authenticatorData", "signature", "userHandle")
        )
    )

    response = NativeClient().post(LOGIN, {"credential": credential, "transport": "body"}, format="json")

    assert_refused_in_the_error_shape(response)


@given(data=st.data())
@FUZZ
def test_registration_credentials_of_any_shape_get_a_4xx_never_a_500(user_factory, data):
    client = bearer_for(user_factory())  # a user of its own each time: options are limited per user
    options = client.post(REGISTER_OPTIONS, format="json").json()
    credential = data.draw(
        garbled(SoftAuthenticator().create(options), ("clientDataJSON", "attestationObject"))
    )

    response = client.post(REGISTER, {"credential": credential, "name": "fuzz"}, format="json")

    assert_refused_in_the_error_shape(response)


def test_the_openapi_document_declares_every_answer_of_the_passkey_endpoints():
    paths = NativeClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    def declared(path, method="post") -> dict:
        return paths[path][method]["responses"]

    assert set(declared(REGISTER_OPTIONS)) == {"200", "401", "429", "503"}
    assert "reauthentication_required" in declared(REGISTER_OPTIONS)["401"]["description"]
    assert set(declared(REGISTER)) == {"201", "400", "401", "409", "413", "415", "503"}
    assert "passkey_exists" in declared(REGISTER)["409"]["description"]
    assert set(declared("/api/auth/passkeys/{passkey_id}/", "delete")) == {"204", "401", "404", "503"}
    assert set(declared(LOGIN_OPTIONS)) == {"200", "400", "401", "413", "415", "429", "503"}
    assert "mfa_token_invalid" in declared(LOGIN_OPTIONS)["401"]["description"]
    assert set(declared(LOGIN)) == {"200", "400", "401", "403", "413", "415", "429", "503"}
    assert "body_transport_forbidden" in declared(LOGIN)["400"]["description"]
    assert "invalid_code" in declared(LOGIN)["401"]["description"]
    assert declared(LOGIN)["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PasskeyLoginAnswer"
    )
    assert set(declared(REAUTHENTICATE_OPTIONS)) == {"200", "401", "429", "503"}


# --- wired into the login's second step and re-authentication ------------------------------------
def test_after_the_password_a_passkey_opens_the_session_as_the_second_step(user, passkey, authenticator):
    """Login names the passkey among the methods; its options and assertion, sent to mfa/verify,
    answer as login would (the cookie transport kept), the session's amr "pwd hwk"."""
    browser = BrowserClient()
    login = browser.sign_in().json()
    assert login["mfa_required"] is True and "passkey" in login["methods"]
    options = login_options(mfa_token=login["mfa_token"])
    credential = authenticator.get(options, user_verified=False)  # preferred, not required, here
    body = {"mfa_token": login["mfa_token"], "passkey": credential}
    response = browser.post("/api/auth/mfa/verify/", body, format="json")
    assert response.status_code == 200, response.content
    assert claims(response.json()["access"])["amr"] == ["pwd", "hwk"]
    assert "refresh_token" in response.cookies
    again = BrowserClient().post("/api/auth/mfa/verify/", body, format="json")  # the step worked once
    assert_json_error(again, 401, "mfa_token_invalid")


def test_a_refused_passkey_at_the_second_step_counts_as_a_wrong_code(user, passkey, authenticator):
    login = BrowserClient().sign_in().json()
    options = login_options(mfa_token=login["mfa_token"])
    refused = authenticator.get(options, origin="https://phishing.example")
    body = {"mfa_token": login["mfa_token"], "passkey": refused}
    assert_json_error(BrowserClient().post("/api/auth/mfa/verify/", body, format="json"), 401, "invalid_code")
    assert MfaToken.objects.get().failures == 1
    assert len(audited(AuditEventType.MFA_FAILED)) == 1
    good = authenticator.get(login_options(mfa_token=login["mfa_token"]))
    body["passkey"] = good
    assert BrowserClient().post("/api/auth/mfa/verify/", body, format="json").status_code == 200


def test_a_passkey_re_authenticates_through_the_api_and_refreshes_keep_it(user, passkey, authenticator):
    client = bearer_for(user, authenticated_ago=timedelta(hours=1))
    assert_json_error(client.post(REGISTER_OPTIONS, format="json"), 401, "reauthentication_required")
    options = client.post(REAUTHENTICATE_OPTIONS, format="json").json()
    refused = authenticator.get(options, user_verified=False)
    response = client.post("/api/auth/reauthenticate/", {"passkey": refused}, format="json")
    assert_json_error(response, 401, "invalid_code")
    options = client.post(REAUTHENTICATE_OPTIONS, format="json").json()
    response = client.post("/api/auth/reauthenticate/", {"passkey": authenticator.get(options)}, format="json")
    assert response.status_code == 200, response.content
    fresh = claims(response.json()["access"])
    assert fresh["amr"] == ["hwk", "user"] and fresh["auth_time"] >= int(timezone.now().timestamp()) - 5
    recent = BrowserClient().bearer(response.json()["access"])
    assert recent.post(REGISTER_OPTIONS, format="json").status_code == 200
    assert [e.detail for e in audited(AuditEventType.REAUTHENTICATED)] == ["hwk user"]


def test_re_authentication_takes_exactly_one_of_password_code_and_passkey(user, passkey):
    client = bearer_for(user)
    for body in ({}, {"password": "x", "passkey": {}}, {"code": "123456", "passkey": {}}):
        assert_json_error(client.post("/api/auth/reauthenticate/", body, format="json"), 400, "invalid")
