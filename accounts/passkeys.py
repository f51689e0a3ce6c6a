"""Passkeys (WebAuthn, with py_webauthn): registering one, signing in with one alone (passwordless),
and one as the second factor after a password or to re-authenticate. No HTTP here.

Challenges are kept server-side as SHA-256 digests (``mfa.handed_out_digest`` of the challenge's
base64url form) with their purpose, their user (none for a passwordless sign-in) and their
expiry. A credential names its challenge in its clientDataJSON; that challenge is used up in one
conditional UPDATE before anything else is checked, so a challenge works once, even for
concurrent requests, and a failed ceremony burns it too.

The RP ID is WEBAUTHN_RP_ID; the allowed origins are every origin the project trusts: the CORS
allowlist, CSRF_TRUSTED_ORIGINS, NATIVE_APP_ORIGINS and WEBAUTHN_ORIGINS (``allowed_origins``;
accounts.E046 checks them against the RP ID at startup). The signature counter
is compared and stored in one conditional UPDATE (the stored one must be lower): a counter that
did not grow, when the stored one or the new one is not zero, is what a cloned authenticator shows,
and that assertion is refused, audited and the owner told.

Every failure of an assertion is InvalidCode, whatever failed: an answer must not tell a prober
which part was wrong.
"""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from . import email_verification, metrics, notices, services
from .audit import audit_event_record
from .conf import app_settings
from .errors import EmailUnverified, InvalidCode, MfaTokenInvalid, PasskeyExists, PasskeyNotFound
from .mfa import handed_out_digest, mfa_token_pending, recovery_codes_delete_without_factor
from .models import AuditEventType, MfaToken, Passkey, WebAuthnChallenge
from .origin import NOWHERE, Origin, origin_normalized

Purpose = WebAuthnChallenge.Purpose

# RFC 8176: a hardware-bound key ("hwk") that verified its user ("user"): a passkey's sign-in.
PASSKEY_AMR = ("hwk", "user")
# A passkey after the password, as the second factor (its user verification only preferred).
PASSWORD_AND_PASSKEY = ("pwd", "hwk")
# How an Android app's ceremonies name their origin: its signing certificate's SHA-256 follows.
ANDROID_ORIGIN = "android:apk-key-hash:"
# WebAuthn caps a credential id at 1023 bytes (the column holds its base64url form).
MAX_CREDENTIAL_ID_BYTES = 1023


@contextmanager
def _refused_unless_it_verifies() -> Iterator[None]:
    """Parsing and verifying a credential (py_webauthn) is pure computation over the client's
    input: whatever it raises (py_webauthn's own errors, and the ValueError, TypeError, KeyError or
    RecursionError of base64, JSON or CBOR that is not what it claims to be) means that the
    credential does not verify: InvalidCode, never a 500."""
    try:
        yield
    except Exception as e:  # see the docstring: nothing here touches a database
        raise InvalidCode() from e


# --- settings ------------------------------------------------------------------------------------
def allowed_origins() -> list[str]:
    """The origins a ceremony may come from: the CORS allowlist, CSRF_TRUSTED_ORIGINS,
    NATIVE_APP_ORIGINS and WEBAUTHN_ORIGINS, each once. A web origin as ``scheme://host[:port]``,
    as browsers write clientDataJSON's (py_webauthn compares it exactly); an Android app's
    (``android:apk-key-hash:...``, no URL) as it is listed; anything else (``*``, ``null``) never."""
    listed = [
        *getattr(settings, "CORS_ALLOWED_ORIGINS", []),
        *getattr(settings, "CSRF_TRUSTED_ORIGINS", []),
        *app_settings.NATIVE_APP_ORIGINS,
        *app_settings.WEBAUTHN_ORIGINS,
    ]
    web = filter(None, map(origin_normalized, listed))
    android = (o.strip() for o in app_settings.WEBAUTHN_ORIGINS if o.strip().startswith(ANDROID_ORIGIN))
    return list(dict.fromkeys([*web, *android]))


def _timeout_ms() -> int:
    return int(app_settings.WEBAUTHN_CHALLENGE_TIMEOUT.total_seconds() * 1000)


def user_handle(*, user) -> bytes:
    """The WebAuthn user handle of an account: a keyed hash of its primary key (HMAC-SHA256 under
    SECRET_KEY), so that it is the same for every passkey of the account (an authenticator keeps
    one discoverable credential per RP and handle) and tells nothing about the account, not even
    its number (WebAuthn 14.6.1). Nothing relies on it later: the credential id names the passkey,
    and so its owner; after a secret key rotation an authenticator may hold two entries for one
    account, both of which work."""
    return salted_hmac("accounts.webauthn.user_handle", str(user.pk), algorithm="sha256").digest()


# --- challenges ------------------------------------------------------------------------------------
def _challenge_issue(
    *, challenge: bytes, purpose: str, user=None, mfa_token: MfaToken | None = None
) -> WebAuthnChallenge:
    """Keep a digest of a challenge handed out, for its purpose, until WEBAUTHN_CHALLENGE_TIMEOUT."""
    now = timezone.now()
    return WebAuthnChallenge.objects.create(
        digest=handed_out_digest(bytes_to_base64url(challenge)),
        purpose=purpose,
        user=user,
        mfa_token=mfa_token,
        created_at=now,
        expires_at=now + app_settings.WEBAUTHN_CHALLENGE_TIMEOUT,
    )


def _challenge_of(client_data_json: bytes) -> bytes:
    """The challenge a credential's clientDataJSON answers; InvalidCode if it names none."""
    with _refused_unless_it_verifies():
        return parse_client_data_json(client_data_json).challenge


def _challenge_consume(
    *, challenge: bytes, purpose: str, user_id=None, mfa_token_id=None, now: datetime
) -> None:
    """Use up a challenge handed out for ``purpose`` (and that user, or none; that pending step, or
    none) in one conditional UPDATE: unused and unexpired, it is marked used; else InvalidCode. Of
    concurrent uses of one challenge, exactly one finds it unused."""
    used = WebAuthnChallenge.objects.filter(
        digest=handed_out_digest(bytes_to_base64url(challenge)),
        purpose=purpose,
        user_id=user_id,
        mfa_token_id=mfa_token_id,
        used_at__isnull=True,
        expires_at__gt=now,
    ).update(used_at=now)
    if not used:
        raise InvalidCode()


# --- registration ----------------------------------------------------------------------------------
def _descriptors(passkeys) -> list[PublicKeyCredentialDescriptor]:
    """Passkeys as the options name them (excludeCredentials, allowCredentials)."""
    descriptors = []
    for credential_id, transports in passkeys:
        known = []
        for name in filter(None, transports.split(",")):
            try:
                known.append(AuthenticatorTransport(name))
            except ValueError:  # a transport py_webauthn no longer knows: the hint is dropped
                continue
        descriptors.append(
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential_id), transports=known or None)
        )
    return descriptors


def _user_passkeys(*, user_id):
    """The user's passkeys as the options name them: ``(credential id, transports)``, oldest first."""
    return (
        Passkey.objects.filter(user_id=user_id)
        .order_by("created_at")
        .values_list("credential_id", "transports")
    )


def passkey_registration_options(*, user) -> dict:
    """The creation options (JSON form) for a new passkey of ``user``: a discoverable credential
    (resident key required, so that it can sign in without a username), user verification
    preferred, no attestation asked for, the user's passkeys excluded (an authenticator holding
    one of them says so instead of making a second)."""
    name = user.get_username()
    display = (user.get_full_name() if hasattr(user, "get_full_name") else "") or name
    options = generate_registration_options(
        rp_id=app_settings.WEBAUTHN_RP_ID,
        rp_name=app_settings.WEBAUTHN_RP_NAME,
        user_id=user_handle(user=user),
        user_name=name or str(user.pk),
        user_display_name=display or str(user.pk),
        timeout=_timeout_ms(),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(_user_passkeys(user_id=user.pk)),
    )
    _challenge_issue(challenge=options.challenge, purpose=Purpose.REGISTER, user=user)
    return json.loads(options_to_json(options))


def passkey_register(*, user, credential: dict, name: str, origin: Origin = NOWHERE) -> Passkey:
    """Verify a new credential (``navigator.credentials.create()``'s, JSON form) against the
    registration challenge handed to ``user`` and keep it as a passkey called ``name``.
    InvalidCode if it does not verify; PasskeyExists if that credential is registered already."""
    with _refused_unless_it_verifies():
        parsed = parse_registration_credential_json(credential)
    challenge = _challenge_of(parsed.response.client_data_json)
    _challenge_consume(challenge=challenge, purpose=Purpose.REGISTER, user_id=user.pk, now=timezone.now())
    rp_id, origins = app_settings.WEBAUTHN_RP_ID, allowed_origins()
    with _refused_unless_it_verifies():
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origins
        )
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise InvalidCode()
    transports = dict.fromkeys(t.value for t in parsed.response.transports or ())
    passkey = Passkey(
        user=user,
        name=name,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        transports=",".join(transports)[: Passkey._meta.get_field("transports").max_length],
        backed_up=verified.credential_backed_up,
    )
    try:
        with transaction.atomic():
            passkey.save(force_insert=True)
    except IntegrityError as e:  # the credential id is unique
        raise PasskeyExists() from e
    audit_event_record(
        type=AuditEventType.PASSKEY_ADDED, user_id=user.pk, origin=origin, detail=f"passkey {name!r}"
    )
    notices.notice_send(
        user=user,
        notice=notices.Notice.SECOND_FACTOR_ADDED,
        origin=origin,
        context={"factor": _factor(name)},
    )
    return passkey


def _factor(name: str) -> str:
    """A passkey as the notices name the factor added or removed."""
    return f'the passkey "{name}"'


def passkey_remove(*, user, passkey_id: uuid.UUID, origin: Origin = NOWHERE) -> None:
    """Remove one of ``user``'s passkeys; PasskeyNotFound if they have no such passkey. With no
    second factor left, the recovery codes go too, as when the authenticator app is turned off."""
    mine = Passkey.objects.filter(pk=passkey_id, user_id=user.pk)
    removed = mine.values_list("name", flat=True).first()
    with transaction.atomic():
        if removed is None or not mine.delete()[0]:  # none, or a concurrent removal took it
            raise PasskeyNotFound()
        recovery_codes_delete_without_factor(user_id=user.pk)
    audit_event_record(
        type=AuditEventType.PASSKEY_REMOVED, user_id=user.pk, origin=origin, detail=f"passkey {removed!r}"
    )
    notices.notice_send(
        user=user,
        notice=notices.Notice.SECOND_FACTOR_REMOVED,
        origin=origin,
        context={"factor": _factor(removed), "by_admin": origin.actor_id is not None},
    )


# --- assertions --------------------------------------------------------------------------------------
def _request_options(*, purpose: str, user=None, mfa_token: MfaToken | None = None, uv: str) -> dict:
    """Request options (JSON form) with a new challenge kept for ``purpose``; allowCredentials
    lists the user's passkeys when the user is known (none for a passwordless sign-in, where the
    authenticator offers its discoverable credentials)."""
    options = generate_authentication_options(
        rp_id=app_settings.WEBAUTHN_RP_ID,
        timeout=_timeout_ms(),
        allow_credentials=_descriptors(_user_passkeys(user_id=user.pk)) if user is not None else None,
        user_verification=UserVerificationRequirement(uv),
    )
    _challenge_issue(challenge=options.challenge, purpose=purpose, user=user, mfa_token=mfa_token)
    return json.loads(options_to_json(options))


def passkey_login_options() -> dict:
    """Request options for a passwordless sign-in: any passkey of this site, user verification
    required (the passkey is the only factor, so it must verify its user)."""
    return _request_options(purpose=Purpose.LOGIN, uv=UserVerificationRequirement.REQUIRED)


def passkey_second_factor_options(*, mfa_token: str) -> dict:
    """Request options for the second step of a login: the passkeys of the user whose pending step
    ``mfa_token`` names (MfaTokenInvalid if it names none that works); user verification
    preferred (the password was the first factor)."""
    pending = mfa_token_pending(token=mfa_token)
    if pending is None:
        raise MfaTokenInvalid()
    return _request_options(
        purpose=Purpose.MFA,
        user=pending.user,
        mfa_token=pending,
        uv=UserVerificationRequirement.PREFERRED,
    )


def passkey_reauthenticate_options(*, user) -> dict:
    """Request options to re-authenticate ``user`` with a passkey: theirs; user verification
    required, since it stands in for the password."""
    return _request_options(
        purpose=Purpose.REAUTHENTICATE, user=user, uv=UserVerificationRequirement.REQUIRED
    )


def _assertion_verify(
    *,
    credential: dict,
    purpose: str,
    user_id=None,
    mfa_token_id=None,
    user_verification: bool,
    origin: Origin,
) -> Passkey:
    """The passkey that signed ``credential`` (``navigator.credentials.get()``'s, JSON form) over
    a challenge handed out for ``purpose`` (and ``user_id`` and ``mfa_token_id``, or none), of an
    active user (that user, when given), with user verification if ``user_verification``, and a
    counter that grew; its counter and last use stored. InvalidCode otherwise."""
    with _refused_unless_it_verifies():
        parsed = parse_authentication_credential_json(credential)
    challenge = _challenge_of(parsed.response.client_data_json)
    now = timezone.now()
    _challenge_consume(
        challenge=challenge, purpose=purpose, user_id=user_id, mfa_token_id=mfa_token_id, now=now
    )
    passkeys = Passkey.objects.select_related("user").filter(
        credential_id=bytes_to_base64url(parsed.raw_id), user__is_active=True
    )
    if user_id is not None:
        passkeys = passkeys.filter(user_id=user_id)
    passkey = passkeys.first()
    if passkey is None:
        raise InvalidCode()
    rp_id, origins = app_settings.WEBAUTHN_RP_ID, allowed_origins()
    with _refused_unless_it_verifies():
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=bytes(passkey.public_key),
            # The counter is compared here, in the UPDATE that stores it (passkey_use_record):
            # py_webauthn's own comparison would refuse a clone without telling it apart.
            credential_current_sign_count=0,
            require_user_verification=user_verification,
        )
    passkey_use_record(
        passkey=passkey,
        sign_count=verified.new_sign_count,
        backed_up=verified.credential_backed_up,
        now=now,
        origin=origin,
    )
    return passkey


def passkey_use_record(
    *, passkey: Passkey, sign_count: int, backed_up: bool, now: datetime, origin: Origin
) -> None:
    """Store a verified assertion's counter and the passkey's last use in one conditional UPDATE:
    only if the stored counter is lower (or both are zero: an authenticator that does not count).
    Anything else is a counter that did not grow, a cloned authenticator's sign (WebAuthn 6.1.1):
    refused (InvalidCode), audited, the owner told. Of two concurrent assertions with one counter
    value, one is stored and the other is refused so."""
    rows = Passkey.objects.filter(pk=passkey.pk)
    if sign_count > 0:
        rows = rows.filter(sign_count__lt=sign_count)
    else:
        rows = rows.filter(sign_count=0)
    if rows.update(sign_count=sign_count, backed_up=backed_up, last_used_at=now):
        passkey.sign_count, passkey.backed_up, passkey.last_used_at = sign_count, backed_up, now
        return
    audit_event_record(
        type=AuditEventType.PASSKEY_CLONED,
        user_id=passkey.user_id,
        origin=origin,
        detail=f"passkey {passkey.name!r}: counter {sign_count}, stored {passkey.sign_count} or more",
    )
    notices.notice_send(
        user=passkey.user,
        notice=notices.Notice.PASSKEY_CLONED,
        origin=origin,
        context={"passkey": passkey.name},
    )
    raise InvalidCode()


def passkey_second_factor_verify(
    *, credential: dict, mfa_token: MfaToken, origin: Origin = NOWHERE
) -> Passkey:
    """The passkey of ``mfa_token``'s user that answered the challenge handed out for that pending
    step (``passkey_second_factor_options``); InvalidCode on any failure. The caller counts the
    failure against the pending step and opens the session."""
    return _assertion_verify(
        credential=credential,
        purpose=Purpose.MFA,
        user_id=mfa_token.user_id,
        mfa_token_id=mfa_token.pk,
        user_verification=False,
        origin=origin,
    )


def passkey_reauthenticate_verify(*, credential: dict, user, origin: Origin = NOWHERE) -> Passkey:
    """The passkey of ``user`` that answered the re-authentication challenge handed to them
    (``passkey_reauthenticate_options``), with user verification; InvalidCode on any failure."""
    return _assertion_verify(
        credential=credential,
        purpose=Purpose.REAUTHENTICATE,
        user_id=user.pk,
        user_verification=True,
        origin=origin,
    )


def passkey_second_step(*, pending: MfaToken, credential: dict, origin: Origin) -> services.IssuedTokens:
    """The login's second step with a passkey (``{mfa_token, passkey}``): the session the password
    alone did not open, its ``amr`` "pwd hwk" (services.session_second_step_open counts the attempt
    on the pending step, and a refused passkey as a wrong code)."""

    def passkey_proved(now: datetime) -> bool:
        return passkey_second_factor_verify(credential=credential, mfa_token=pending, origin=origin) is not None

    return services.session_second_step_open(
        pending=pending, check=passkey_proved, amr=PASSWORD_AND_PASSKEY, origin=origin
    )


def passkey_reauthenticate(*, user, session_id: uuid.UUID, credential: dict, origin: Origin) -> services.IssuedTokens:
    """Re-authentication with a passkey that verified its user (``{passkey}``): the session's
    ``auth_time`` now, its ``amr`` "hwk user"; a refused one is audited and InvalidCode."""
    try:
        passkey_reauthenticate_verify(credential=credential, user=user, origin=origin)
    except InvalidCode:
        services.session_reauthentication_failed(user=user, session_id=session_id, origin=origin, password=False)
        raise
    return services.session_reauthenticated(user=user, session_id=session_id, amr=PASSKEY_AMR, origin=origin)


def passkey_login(*, credential: dict, origin: Origin) -> services.IssuedTokens:
    """A passwordless sign-in: the passkey that answered a sign-in challenge, with user
    verification, opens a session for its owner (amr ``hwk user``: a passkey that verified its
    user is both factors). A failure is a failed login (metrics, audit) and InvalidCode; under
    EMAIL_VERIFICATION "mandatory" an unverified address opens no session (EmailUnverified)."""
    try:
        passkey = _assertion_verify(
            credential=credential, purpose=Purpose.LOGIN, user_verification=True, origin=origin
        )
    except InvalidCode:
        metrics.login_counted(result="failed", method="passkey")
        audit_event_record(type=AuditEventType.LOGIN_FAILED, origin=origin, detail="passkey refused")
        raise
    user = passkey.user
    session = None
    if app_settings.EMAIL_VERIFICATION == email_verification.MANDATORY:
        session = services.session_create_if(
            user=user,
            ip=origin.ip,
            user_agent=origin.user_agent,
            condition=email_verification.email_verified_states(user=user),
            amr=PASSKEY_AMR,
        )
        if session is None:
            metrics.login_counted(result="failed", method="passkey")
            audit_event_record(
                type=AuditEventType.LOGIN_FAILED,
                user_id=user.pk,
                origin=origin,
                detail="passkey; e-mail address unverified",
            )
            raise EmailUnverified()
    issued = services.session_open(user=user, origin=origin, session=session, amr=PASSKEY_AMR)
    metrics.login_counted(result="ok", method="passkey")
    return issued
