"""Verified addresses: the rules of mailing a link, verifying it, and changing the address.

Reads and writes of this flow, with plain keyword arguments and no HTTP, like ``services`` and
``selectors``. The state lives in this app's ``EmailAddressState`` (the project's user model needs
no field for it); the user's address counts as verified while it equals the verified one.

Keys are not stored anywhere: a key is ``django.core.signing.dumps`` of the user's id and a keyed
digest of the address being verified, under a salt of its own, timestamped, so it expires after
EMAIL_VERIFY_TIMEOUT. It is single use because it is only good for an address still waiting:
once that address is verified (or is no longer the user's, nor the one they asked for), the same
key is ``invalid_key``. A key never reaches the task queue or a log line: the mail's task makes it
at send time (``verify_link_context``), from the user id and the address.
"""

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import notices
from .audit import audit_event_record, typed_name_digest
from .conf import app_settings
from .errors import InvalidKey, WrongPasswordForEmailChange
from .mail import mail_send_later, recipient_domain
from .models import AuditEventType, EmailAddressState
from .origin import NOWHERE, Origin

try:  # Django 6 has the Tasks API itself; django-tasks backports it to Django 5.2.
    from django.tasks import task
except ImportError:
    from django_tasks import task

NONE, OPTIONAL, MANDATORY = "none", "optional", "mandatory"
MODES = (NONE, OPTIONAL, MANDATORY)
KEY_SALT = "accounts.email_verification"


def _email_field() -> str:
    return get_user_model().get_email_field_name()


def _address_of(user) -> str:
    return getattr(user, _email_field(), "") or ""


def address_digest(address: str) -> str:
    """What a key carries of the address it verifies: a keyed hash, so a link shows no address."""
    return typed_name_digest(address, purpose="email_verification")[:32]


# --- keys ------------------------------------------------------------------------------------------
def verification_key_make(*, user_id, address: str) -> str:
    """A signed, timestamped, URL-safe key for verifying ``address`` as ``user_id``'s."""
    return signing.dumps({"u": str(user_id), "a": address_digest(address)}, salt=KEY_SALT)


def verification_key_read(*, key: str) -> tuple[str, str]:
    """The user id and address digest a key carries; InvalidKey if it is bad or expired."""
    try:
        payload = signing.loads(key, salt=KEY_SALT, max_age=app_settings.EMAIL_VERIFY_TIMEOUT)
        user_id, digest = payload["u"], payload["a"]
    except (signing.BadSignature, KeyError, TypeError, ValueError, UnicodeError) as e:
        raise InvalidKey() from e
    if not isinstance(user_id, str) or not isinstance(digest, str):
        raise InvalidKey()
    return user_id, digest


def verify_link(*, user_id, address: str) -> str:
    """The EMAIL_VERIFY_URL with a new key in place of ``{key}``."""
    key = verification_key_make(user_id=user_id, address=address)
    return app_settings.EMAIL_VERIFY_URL.replace("{key}", key)


# --- reads -----------------------------------------------------------------------------------------
def email_state_get(*, user) -> EmailAddressState | None:
    """The user's verification state, or None (nothing verified or asked for yet)."""
    return EmailAddressState.objects.filter(user_id=user.pk).first()


def email_verified_states(*, user) -> QuerySet[EmailAddressState]:
    """The user's state if it makes their current address verified (none for no address)."""
    address = _address_of(user)
    if not address:
        return EmailAddressState.objects.none()
    return EmailAddressState.objects.verifying(user_id=user.pk, address=address)


def email_is_verified(*, user) -> bool:
    """Whether the user's current address is verified (one query)."""
    return email_verified_states(user=user).exists()


def email_state_summary(*, user) -> dict:
    """What the admin shows of a user's verification: whether the current address is verified,
    since when, and the address asked for, if any (one query)."""
    state = email_state_get(user=user)
    verified = state is not None and state.is_verified(_address_of(user))
    return {
        "verified": verified,
        "verified_at": state.verified_at if verified else None,
        "pending_email": state.pending_email if state is not None else "",
        "pending_since": state.pending_since if state is not None else None,
    }


def _address_waiting(*, user, state: EmailAddressState | None) -> str:
    """The address a link would verify now: the one asked for, else the current one if unverified."""
    if state is not None and state.pending_email:
        return state.pending_email
    address = _address_of(user)
    if address and not (state is not None and state.is_verified(address)):
        return address
    return ""


def _address_awaits(*, user, state: EmailAddressState | None, address: str) -> bool:
    """Whether a link for ``address`` would work now: the address asked for, or the current one
    while unverified."""
    if not address:
        return False
    if state is not None and address == state.pending_email:
        return True
    return address == _address_of(user) and not (state is not None and state.is_verified(address))


def verify_link_context(context: dict) -> dict | None:
    """``mail_send_later``'s ``context_from``: the link, made at send time; None (nothing sent) if
    the address no longer waits for verification."""
    user = get_user_model()._default_manager.filter(pk=context["user_id"], is_active=True).first()
    if user is None:
        return None
    address = context["address"]
    if not _address_awaits(user=user, state=email_state_get(user=user), address=address):
        return None
    return {"link": verify_link(user_id=user.pk, address=address)}


# --- writes ----------------------------------------------------------------------------------------
def verification_send(*, user, address: str, origin: Origin = NOWHERE) -> None:
    """Mail ``address`` a link that verifies it as the user's (after the transaction commits)."""
    audit_event_record(
        type=AuditEventType.EMAIL_VERIFICATION_SENT,
        user_id=user.pk,
        origin=origin,
        detail=recipient_domain(address),
    )
    mail_send_later(
        to=address,
        template="email_verify",
        context={"user_id": str(user.pk), "address": address, "timeout_hours": _timeout_hours()},
        context_from=f"{__name__}.verify_link_context",
        user_id=str(user.pk),  # JSON, as a queue stores it, whatever the primary key's type
    )


def _timeout_hours() -> int:
    return max(int(app_settings.EMAIL_VERIFY_TIMEOUT.total_seconds() // 3600), 1)


def verification_send_after_registration(*, user, origin: Origin = NOWHERE) -> None:
    """Unless EMAIL_VERIFICATION is "none", mail the new user's address a link."""
    if app_settings.EMAIL_VERIFICATION != NONE and _address_of(user):
        verification_send(user=user, address=_address_of(user), origin=origin)


def verification_resend(*, user, origin: Origin = NOWHERE) -> bool:
    """Mail the signed-in user's waiting address (asked for, else current unverified) a link
    again; False if none waits."""
    address = _address_waiting(user=user, state=email_state_get(user=user))
    if not address:
        return False
    verification_send(user=user, address=address, origin=origin)
    return True


def verification_resend_for_address_later(*, email: str) -> None:
    """After the commit, one task that looks ``email`` up: the request does the same work whether
    or not an unverified account uses it."""
    transaction.on_commit(lambda: verification_resend_for_address.enqueue(email=email))


@task()
def verification_resend_for_address(*, email: str) -> int:
    """Mail a link to each active account whose current, unverified address is ``email``
    (case-insensitively); returns how many."""
    lookup = {f"{_email_field()}__iexact": email, "is_active": True}
    users = get_user_model()._default_manager.filter(**lookup)
    sent = 0
    for user in users:
        state = email_state_get(user=user)
        address = _address_of(user)
        if state is not None and state.is_verified(address):
            continue
        verification_send(user=user, address=address)
        sent += 1
    return sent


@transaction.atomic
def email_verify(*, key: str, origin: Origin = NOWHERE):
    """Verify the address a key was made for, and return the user.

    The user's row is locked first, so two uses of one key are one after the other: the second
    finds the address verified, and the key invalid. A key for the address the user asked to
    change to makes it their address.
    """
    user_id, digest = verification_key_read(key=key)
    try:
        users = get_user_model()._default_manager.select_for_update()
        user = users.filter(pk=user_id, is_active=True).first()
    except (ValueError, TypeError, ValidationError) as e:  # an id the primary key cannot hold
        raise InvalidKey() from e
    if user is None:
        raise InvalidKey()
    state = email_state_get(user=user)
    first = state is None  # nothing verified or asked for yet: the row is new
    state = state or EmailAddressState(user=user)
    now, current = timezone.now(), _address_of(user)
    if state.pending_email and address_digest(state.pending_email) == digest:
        _email_change_apply(user=user, state=state, now=now, origin=origin)
        return user
    if not current or address_digest(current) != digest or state.is_verified(current):
        raise InvalidKey()
    state.verified_email, state.verified_at = current, now
    state.save(force_insert=first)
    audit_event_record(
        type=AuditEventType.EMAIL_VERIFIED, user_id=user.pk, origin=origin, detail=recipient_domain(current)
    )
    return user


def _email_change_apply(*, user, state: EmailAddressState, now, origin: Origin) -> None:
    """The address asked for becomes the user's, verified. An address another account took
    meanwhile (where the user model keeps addresses unique) makes the key invalid."""
    old, new = _address_of(user), state.pending_email
    setattr(user, _email_field(), new)
    try:
        with transaction.atomic():
            user.save(update_fields=[_email_field()])
    except IntegrityError as e:
        raise InvalidKey() from e
    state.verified_email, state.verified_at = new, now
    state.pending_email, state.pending_since = "", None
    state.save()
    audit_event_record(
        type=AuditEventType.EMAIL_CHANGED,
        user_id=user.pk,
        origin=origin,
        detail=f"{recipient_domain(old) if old else 'no address'} to {recipient_domain(new)}",
    )


@transaction.atomic
def email_change_request(*, user, new_email: str, password: str, origin: Origin = NOWHERE) -> None:
    """Ask to change the user's address: checked by their password, a link to the new address and
    a notice to the old one. The address changes only when the link is followed (``email_verify``)."""
    if not user.check_password(password):
        raise WrongPasswordForEmailChange()
    now, old = timezone.now(), _address_of(user)
    EmailAddressState.objects.update_or_create(
        user_id=user.pk, defaults={"pending_email": new_email, "pending_since": now}
    )
    audit_event_record(
        type=AuditEventType.EMAIL_CHANGE_REQUESTED,
        user_id=user.pk,
        origin=origin,
        detail=f"to {recipient_domain(new_email)}",
    )
    verification_send(user=user, address=new_email, origin=origin)
    if old:  # to the address the account still has: it changes only when the link is followed
        notices.notice_send(
            user=user,
            notice=notices.Notice.EMAIL_CHANGE_REQUESTED,
            origin=origin,
            context={"new_domain": recipient_domain(new_email)},
        )
