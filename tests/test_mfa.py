"""Second factors (accounts/mfa.py): an authenticator app (TOTP) set up and confirmed, recovery
codes, the login's second step with its mfa_token, and turning the app off."""

import hashlib
import re
from datetime import timedelta
from types import SimpleNamespace

import pyotp
import pytest
from django.core import mail
from django.utils import timezone

from accounts import mfa
from accounts.encryption import secret_decrypt
from accounts.models import AuditEvent, AuditEventType, MfaToken, Passkey, RecoveryCode, Session, TotpDevice

from .helpers import BrowserClient, NativeClient, assert_json_error, claims

pytestmark = pytest.mark.django_db

RECOVERY_CODE = re.compile(r"[a-z2-7]{5}-[a-z2-7]{5}")


def code_of(secret: str, steps_from_now: int = 0) -> str:
    """The authenticator app's code ``steps_from_now`` time steps from now."""
    return pyotp.TOTP(secret).generate_otp(mfa.totp_step(timezone.now()) + steps_from_now)


def turn_on_totp(user) -> SimpleNamespace:
    """An authenticator app on for ``user``, confirmed with the previous step's code, so that the
    current code still works once: its secret and the recovery codes shown."""
    enrolment = mfa.totp_enrol(user=user)
    codes = mfa.totp_confirm(user=user, code=code_of(enrolment.secret, -1))
    return SimpleNamespace(secret=enrolment.secret, recovery_codes=codes)


@pytest.fixture
def totp(user):
    return turn_on_totp(user)


@pytest.fixture(autouse=True)
def _generous_mfa_limit(settings):
    """Tests of the limit itself set it lower."""
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "1000/min"


def events(user, kind) -> int:
    return AuditEvent.objects.filter(user_id=user.pk, type=kind).count()


def second_step(client, mfa_token: str, **fields):
    secure = getattr(client, "secure", False)
    body = {"mfa_token": mfa_token, **fields}
    return client.post("/api/auth/mfa/verify/", body, format="json", secure=secure)


def sign_in_with(code: str):
    """The password, then ``code`` at the second step, each from a new browser."""
    return second_step(BrowserClient(), mfa_token_of(BrowserClient().sign_in()), code=code)


def mfa_token_of(response) -> str:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mfa_required"] is True, body
    return body["mfa_token"]


# --- setting up the authenticator app ----------------------------------------------------------
def test_setting_up_answers_a_secret_its_otpauth_uri_and_a_qr_code_and_keeps_it_pending(api, user):
    response = api.post("/api/auth/mfa/totp/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
    assert body["otpauth_uri"].startswith("otpauth://totp/authproject:alice?")
    assert f"secret={body['secret']}" in body["otpauth_uri"] and "issuer=authproject" in body["otpauth_uri"]
    assert body["qr_svg"].startswith('<svg xmlns="http://www.w3.org/2000/svg"') and "<path" in body["qr_svg"]
    assert "no-store" in response["Cache-Control"]
    device = TotpDevice.objects.get(user=user)
    assert body["secret"] not in device.secret and secret_decrypt(device.secret) == body["secret"]
    assert device.confirmed_at is None
    assert api.get("/api/auth/mfa/").json() == {"totp": False, "recovery_codes_left": 0, "passkeys": []}


def test_a_new_set_up_replaces_a_pending_one(api, user):
    first = api.post("/api/auth/mfa/totp/").json()["secret"]
    second = api.post("/api/auth/mfa/totp/").json()["secret"]
    assert first != second

    stale = api.post("/api/auth/mfa/totp/confirm/", {"code": code_of(first)}, format="json")
    assert_json_error(stale, 401, "invalid_code")
    response = api.post("/api/auth/mfa/totp/confirm/", {"code": code_of(second)}, format="json")
    assert response.status_code == 200, response.content


def test_a_code_confirms_it_shows_ten_recovery_codes_once_audits_and_mails_a_notice(
    api, user, django_capture_on_commit_callbacks
):
    secret = api.post("/api/auth/mfa/totp/").json()["secret"]

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/auth/mfa/totp/confirm/", {"code": code_of(secret)}, format="json")

    assert response.status_code == 200, response.content
    codes = response.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10 and all(RECOVERY_CODE.fullmatch(code) for code in codes)
    assert "no-store" in response["Cache-Control"]
    assert api.get("/api/auth/mfa/").json() == {"totp": True, "recovery_codes_left": 10, "passkeys": []}
    assert events(user, AuditEventType.TOTP_ENABLED) == 1
    assert events(user, AuditEventType.RECOVERY_CODES_GENERATED) == 1
    [notice] = mail.outbox
    assert notice.subject == "A second factor was added to your authproject account"
    assert "an authenticator app" in notice.body


def test_a_wrong_code_confirms_nothing(api, user):
    secret = api.post("/api/auth/mfa/totp/").json()["secret"]
    wrong = str((int(code_of(secret)) + 1) % 1_000_000).zfill(6)

    response = api.post("/api/auth/mfa/totp/confirm/", {"code": wrong}, format="json")

    assert_json_error(response, 401, "invalid_code")
    assert TotpDevice.objects.get(user=user).confirmed_at is None
    assert not RecoveryCode.objects.filter(user=user).exists()
    assert events(user, AuditEventType.MFA_FAILED) == 1


def test_setting_up_or_confirming_again_while_it_is_on_is_409_totp_already_enabled(api, user, totp):
    assert_json_error(api.post("/api/auth/mfa/totp/"), 409, "totp_already_enabled")
    confirm = api.post("/api/auth/mfa/totp/confirm/", {"code": code_of(totp.secret)}, format="json")
    assert_json_error(confirm, 409, "totp_already_enabled")
    assert secret_decrypt(TotpDevice.objects.get(user=user).secret) == totp.secret  # unchanged


def test_confirming_without_a_set_up_is_409_totp_not_pending(api):
    response = api.post("/api/auth/mfa/totp/confirm/", {"code": "123456"}, format="json")
    assert_json_error(response, 409, "totp_not_pending")


def test_the_totp_secret_is_stored_encrypted(user, totp):
    stored = TotpDevice.objects.get(user=user).secret
    assert totp.secret not in stored and totp.secret.lower() not in stored
    assert secret_decrypt(stored) == totp.secret


# --- turning it off ---------------------------------------------------------------------------
def test_turning_it_off_audits_mails_a_notice_and_drops_the_recovery_codes_with_no_factor_left(
    api, user, totp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete("/api/auth/mfa/totp/")

    assert response.status_code == 204, response.content
    assert not TotpDevice.objects.filter(user=user).exists()
    assert not RecoveryCode.objects.filter(user=user).exists()  # they would stand in for nothing
    assert events(user, AuditEventType.TOTP_DISABLED) == 1
    [notice] = mail.outbox
    assert notice.subject == "A second factor was removed from your authproject account"
    assert "an authenticator app" in notice.body
    assert "access" in BrowserClient().sign_in().json()  # the password alone signs in again


def test_turning_it_off_keeps_the_recovery_codes_while_a_passkey_is_left(api, user, totp):
    Passkey.objects.create(user=user, name="Laptop", credential_id="cred-1", public_key=b"k")

    assert api.delete("/api/auth/mfa/totp/").status_code == 204

    assert RecoveryCode.objects.filter(user=user).count() == 10


def test_turning_off_what_is_not_on_is_204_and_records_nothing(api, user):
    assert api.delete("/api/auth/mfa/totp/").status_code == 204
    assert events(user, AuditEventType.TOTP_DISABLED) == 0


def test_the_state_lists_passkeys_without_their_keys(api, user, totp):
    passkey = Passkey.objects.create(user=user, name="Laptop", credential_id="cred-1", public_key=b"k")
    RecoveryCode.objects.filter(user=user).order_by("pk").first().delete()

    body = api.get("/api/auth/mfa/").json()

    assert body["totp"] is True and body["recovery_codes_left"] == 9
    [listed] = body["passkeys"]
    assert set(listed) == {"id", "name", "created_at", "last_used_at"}
    assert (listed["id"], listed["name"], listed["last_used_at"]) == (str(passkey.pk), "Laptop", None)


# --- recovery codes -------------------------------------------------------------------------
def test_new_recovery_codes_kill_the_old_set_and_mail_a_notice(
    api, user, totp, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/auth/mfa/recovery-codes/")

    assert response.status_code == 200, response.content
    new = response.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(totp.recovery_codes)
    assert mfa.recovery_code_use(user_id=user.pk, code=totp.recovery_codes[0], now=timezone.now()) is False
    assert mfa.recovery_code_use(user_id=user.pk, code=new[0], now=timezone.now()) is True
    assert events(user, AuditEventType.RECOVERY_CODES_GENERATED) == 2
    [notice] = mail.outbox
    assert notice.subject == "New recovery codes for your authproject account"


def test_new_recovery_codes_without_a_second_factor_are_409_no_second_factor(api, user):
    assert_json_error(api.post("/api/auth/mfa/recovery-codes/"), 409, "no_second_factor")
    assert not RecoveryCode.objects.filter(user=user).exists()


def test_recovery_codes_are_stored_as_keyed_hashes_only(user, totp):
    stored = set(RecoveryCode.objects.filter(user=user).values_list("digest", flat=True))
    for code in totp.recovery_codes:
        plain = {code, code.replace("-", ""), code.upper(), code.replace("-", "").upper()}
        assert not plain & stored
        assert not {hashlib.sha256(form.encode()).hexdigest() for form in plain} & stored
    assert mfa.recovery_code_digests(totp.recovery_codes[0])[0] in stored


@pytest.mark.parametrize("typed", ["{code}", "{upper}", " {a} {b} ", "{a}{b}", "{a} - {b}"])
def test_a_recovery_code_is_taken_whatever_its_case_spaces_and_dashes(user, totp, typed):
    code = totp.recovery_codes[3]
    a, b = code.split("-")
    entered = typed.format(code=code, upper=code.upper(), a=a, b=b)
    assert mfa.recovery_code_use(user_id=user.pk, code=entered, now=timezone.now()) is True
    assert mfa.recovery_code_use(user_id=user.pk, code=code, now=timezone.now()) is False  # once


def test_codes_and_secrets_keep_working_after_the_secret_key_rotates(user, totp, settings):
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new secret key " * 4, [old]

    login = BrowserClient().sign_in()
    response = second_step(BrowserClient(), mfa_token_of(login), code=totp.recovery_codes[0])
    assert response.status_code == 200, response.content
    again = sign_in_with(code=code_of(totp.secret))
    assert again.status_code == 200, again.content


# --- the login's second step ----------------------------------------------------------------
def test_the_right_password_with_a_second_factor_opens_no_session_and_sets_no_cookie(user, totp):
    response = BrowserClient().sign_in()

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"mfa_required", "mfa_token", "methods"}
    assert body["methods"] == ["totp", "recovery_code"]
    assert "refresh_token" not in response.cookies
    assert not Session.objects.filter(user=user).exists()
    pending = MfaToken.objects.get(user=user)
    assert pending.digest == mfa.handed_out_digest(body["mfa_token"])
    assert body["mfa_token"] not in pending.digest
    assert pending.transport == "cookie"
    assert pending.expires_at - pending.created_at == timedelta(seconds=300)
    assert events(user, AuditEventType.MFA_REQUIRED) == 1
    assert events(user, AuditEventType.LOGIN_SUCCEEDED) == 0


def test_a_passkey_alone_asks_for_a_second_factor_too(user):
    Passkey.objects.create(user=user, name="Laptop", credential_id="cred-1", public_key=b"k")
    assert BrowserClient().sign_in().json()["methods"] == ["passkey"]


def test_the_second_step_answers_as_login_with_the_refresh_cookie(user, totp):
    browser = BrowserClient()
    mfa_token = mfa_token_of(browser.sign_in())

    response = second_step(browser, mfa_token, code=code_of(totp.secret))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "user"} and body["user"]["username"] == "alice"
    assert browser.refresh_cookie and "no-store" in response["Cache-Control"]
    assert claims(body["access"])["amr"] == ["pwd", "otp"]
    session = Session.objects.get(user=user)
    assert session.amr == "pwd otp" and claims(browser.refresh_cookie)["sid"] == str(session.pk)
    assert events(user, AuditEventType.LOGIN_SUCCEEDED) == 1
    assert browser.refresh().status_code == 200  # an ordinary session from here


def test_the_second_step_keeps_the_body_transport_asked_for_at_login(user, totp):
    native = NativeClient()
    mfa_token = mfa_token_of(native.sign_in())
    assert MfaToken.objects.get(user=user).transport == "body"

    response = second_step(native, mfa_token, code=code_of(totp.secret))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "refresh", "refresh_expires_at", "user"}
    assert "refresh_token" not in response.cookies
    assert native.refresh(body["refresh"]).status_code == 200


def test_a_browser_cannot_take_the_body_transport_a_native_login_asked_for(user, totp):
    mfa_token = mfa_token_of(NativeClient().sign_in())
    browser = BrowserClient(HTTP_ORIGIN="http://localhost:5173")

    response = second_step(browser, mfa_token, code=code_of(totp.secret))

    assert_json_error(response, 400, "body_transport_forbidden")
    assert not Session.objects.filter(user=user).exists()


def test_a_recovery_code_signs_in_once_and_is_audited(user, totp):
    code = totp.recovery_codes[0]
    response = sign_in_with(code=code.upper())
    assert response.status_code == 200, response.content
    assert events(user, AuditEventType.RECOVERY_CODE_USED) == 1

    again = sign_in_with(code=code)
    assert_json_error(again, 401, "invalid_code")


def test_a_totp_code_signs_in_once(user, totp):
    code = code_of(totp.secret)
    assert sign_in_with(code=code).status_code == 200

    again = sign_in_with(code=code)

    assert_json_error(again, 401, "invalid_code")


def test_an_earlier_code_dies_with_a_later_one_and_drift_is_one_step(user, totp):
    later = sign_in_with(code_of(totp.secret, 1))
    assert later.status_code == 200, later.content
    for steps in (0, 2, -2):  # the current one now came before the stored step; two away is too far
        assert_json_error(sign_in_with(code_of(totp.secret, steps)), 401, "invalid_code")


def test_an_mfa_token_works_once(user, totp):
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    assert second_step(BrowserClient(), mfa_token, code=code_of(totp.secret)).status_code == 200

    again = second_step(BrowserClient(), mfa_token, code=totp.recovery_codes[0])

    assert_json_error(again, 401, "mfa_token_invalid")
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=True).count() == 10  # not spent


def test_an_mfa_token_expires(user, totp, settings):
    settings.ACCOUNTS_MFA_TOKEN_TIMEOUT = timedelta(seconds=60)
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    pending = MfaToken.objects.get(user=user)
    assert pending.expires_at - pending.created_at == timedelta(seconds=60)
    MfaToken.objects.filter(pk=pending.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = second_step(BrowserClient(), mfa_token, code=code_of(totp.secret))

    assert_json_error(response, 401, "mfa_token_invalid")


def test_five_wrong_codes_kill_the_mfa_token(user, totp):
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    for _ in range(mfa.MAX_FAILURES):
        assert_json_error(second_step(BrowserClient(), mfa_token, code="000000"), 401, "invalid_code")
    assert events(user, AuditEventType.MFA_FAILED) == mfa.MAX_FAILURES

    response = second_step(BrowserClient(), mfa_token, code=code_of(totp.secret))

    assert_json_error(response, 401, "mfa_token_invalid")
    assert not Session.objects.filter(user=user).exists()


@pytest.mark.parametrize("mfa_token", ["", "x", "a" * 43, "a" * 128])
def test_an_unknown_mfa_token_is_401_mfa_token_invalid(user, totp, mfa_token):
    response = second_step(BrowserClient(), mfa_token, code=code_of(totp.secret))
    if mfa_token:
        assert_json_error(response, 401, "mfa_token_invalid")
    else:
        assert_json_error(response, 400, "invalid")


def test_an_inactive_users_mfa_token_dies(user, totp):
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    user.is_active = False
    user.save()
    response = second_step(BrowserClient(), mfa_token, code=code_of(totp.secret))
    assert_json_error(response, 401, "mfa_token_invalid")


@pytest.mark.parametrize("fields", [{}, {"code": "123456", "passkey": {}}])
def test_the_second_step_takes_a_code_or_a_passkey(user, totp, fields):
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    assert_json_error(second_step(BrowserClient(), mfa_token, **fields), 400, "invalid")


def test_a_passkey_is_400_while_passkeys_are_not_there(user, totp):
    import importlib.util

    if importlib.util.find_spec("accounts.passkeys") is not None:
        pytest.skip("accounts.passkeys is there: its own tests cover the passkey branch")
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    response = second_step(BrowserClient(), mfa_token, passkey={"id": "x"})
    body = assert_json_error(response, 400, "invalid")
    assert "passkey" in body["errors"]


def test_an_invalid_mfa_token_spends_nothing_of_the_users_limit(user, totp, settings):
    """Only someone who proved the password can spend the user's budget of guesses."""
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "2/min"
    for _ in range(5):
        response = second_step(BrowserClient(), "not a token", code="000000")
        assert_json_error(response, 401, "mfa_token_invalid")
    mfa_token = mfa_token_of(BrowserClient().sign_in())
    assert second_step(BrowserClient(), mfa_token, code=code_of(totp.secret)).status_code == 200


def test_codes_are_limited_per_user_across_mfa_tokens(user, totp, settings):
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "2/min"
    for _ in range(2):
        wrong = sign_in_with(code="000000")
        assert_json_error(wrong, 401, "invalid_code")

    refused = sign_in_with(code=code_of(totp.secret))

    assert_json_error(refused, 429, "throttled")
    assert int(refused["Retry-After"]) >= 1
    assert not Session.objects.filter(user=user).exists()


def test_an_unverified_address_is_refused_before_a_second_factor_is_asked_for(user, totp, settings):
    settings.ACCOUNTS_EMAIL_VERIFICATION = "mandatory"
    assert_json_error(BrowserClient().sign_in(), 403, "email_unverified")
    assert not MfaToken.objects.exists()


def test_a_wrong_password_never_reaches_the_second_factor(user, totp):
    assert_json_error(BrowserClient().sign_in(password="wrong"), 401, "invalid_credentials")
    assert not MfaToken.objects.exists()


def test_a_password_reset_never_bypasses_the_second_factor(user, totp, django_capture_on_commit_callbacks):
    from accounts.password_reset import password_reset_key

    with django_capture_on_commit_callbacks(execute=True):
        reset = BrowserClient().post(
            "/api/auth/password/reset/confirm/",
            {"key": password_reset_key(user), "new_password": "a new passphrase after reset"},
            format="json",
        )
    assert reset.status_code == 200, reset.content

    response = BrowserClient().sign_in(password="a new passphrase after reset")

    assert mfa_token_of(response)  # still asked for
    assert TotpDevice.objects.get(user=user).confirmed_at is not None
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=True).count() == 10
    assert not Session.objects.filter(user=user, revoked_at__isnull=True).exists()


def test_login_without_a_second_factor_is_unchanged(user):
    response = BrowserClient().sign_in()
    assert set(response.json()) == {"access", "access_expires_at", "user"}
    assert claims(response.json()["access"])["amr"] == ["pwd"]
    assert not MfaToken.objects.exists()
