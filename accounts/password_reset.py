"""Password reset (OWASP's Forgot Password cheat sheet): a link by mail, then a new password.

Asking (``password_reset_request``) does the same work whatever the address: it enqueues one task
(``password_reset_mail``) and answers. The task looks the address up, records the request and mails
each active account that uses the address its link; an address that names no account gets one
audit event holding a keyed hash of it. So the answer, and what the request costs, tell nothing.

Keys are Django's PasswordResetTokenGenerator's tokens, with the account's id in front: stateless
(nothing is stored), signed with SECRET_KEY (SECRET_KEY_FALLBACKS still verify), and derived from
the password's hash, the last login and the address, so that a key dies when any of them changes;
the confirmation changes the password, so a key works once. It is made in the mail task at send
time (``password_reset_link``), never queued, stored or logged.

Confirming (``password_reset_confirm``) locks the account's row, so two confirmations of one key
cannot both pass; ends every session of the account (reason ``password_reset``) before the new
password is saved, records it, and mails a notice. It signs nobody in.
"""

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import base36_to_int, urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.timesince import timesince

from . import email_verification, notices, selectors
from .audit import audit_event_build, audit_event_record, audit_events_record, typed_name_hashed
from .conf import app_settings
from .errors import InvalidKey, PasswordRejected
from .mail import json_id, mail_send_later, task
from .models import AuditEventType, RevokeReason
from .origin import NOWHERE, Origin
from .services import password_set_as, sessions_end_for_password_set

KEY_SEPARATOR = "."  # in no base64url id and no Django token: the key splits at its first one


class PasswordResetKeys(PasswordResetTokenGenerator):
    """Django's reset tokens under a salt of this app's (a key made for Django's own reset views does
    not work here, nor the other way round), refused after PASSWORD_RESET_TIMEOUT."""

    key_salt = "accounts.password_reset.PasswordResetKeys"

    def check_token(self, user, token) -> bool:
        """Django's check (signature, password, last login, address, Django's own timeout), then
        the app's timeout."""
        if not super().check_token(user, token):
            return False
        return self.age(user, token) <= app_settings.PASSWORD_RESET_TIMEOUT.total_seconds()

    def age(self, user, token: str) -> int:
        """Seconds since ``token`` was made: Django's tokens start with the time they were made (in
        base 36), which a token made now gives in the same units (canary: tests/test_canaries.py::
        test_django_reset_tokens_start_with_their_time_in_seconds)."""
        made = base36_to_int(token.split("-")[0])
        return base36_to_int(self.make_token(user).split("-")[0]) - made


KEYS = PasswordResetKeys()


def password_reset_key(user) -> str:
    """A new key for ``user``: their id (URL-safe base64) and a token, in one URL-safe string."""
    return f"{urlsafe_base64_encode(force_bytes(user.pk))}{KEY_SEPARATOR}{KEYS.make_token(user)}"


def _user_for_key(key: str):
    """The active user a valid key was made for, their row locked until the transaction ends;
    InvalidKey for anything else."""
    uid, separator, token = key.partition(KEY_SEPARATOR)
    if not (separator and token):
        raise InvalidKey()
    model = get_user_model()
    try:
        pk = model._meta.pk.to_python(force_str(urlsafe_base64_decode(uid)))
    except (ValueError, TypeError, OverflowError, ValidationError):
        raise InvalidKey() from None
    user = model._default_manager.select_for_update().filter(pk=pk, is_active=True).first()
    if user is None or not KEYS.check_token(user, token):
        raise InvalidKey()
    return user


# --- asking -------------------------------------------------------------------------------------
def password_reset_request(*, email: str, origin: Origin = NOWHERE) -> None:
    """Ask for reset links for ``email``: one task is enqueued when the transaction commits,
    whatever the address; the task finds out who, if anyone, gets a mail."""
    arguments = {"email": email, "ip": origin.ip, "user_agent": origin.user_agent[:512]}
    transaction.on_commit(lambda: password_reset_mail.enqueue(**arguments))


@task()
def password_reset_mail(*, email: str, ip: str | None, user_agent: str) -> int:
    """Record the request and mail each active account using ``email`` (case-insensitive) its link;
    returns how many. An address that names no active account (under EMAIL_VERIFICATION mandatory,
    none whose address is verified) is recorded once, as a keyed hash."""
    origin = Origin(ip=ip, user_agent=user_agent)
    users = selectors.users_active_with_email(email=email)
    if app_settings.EMAIL_VERIFICATION == email_verification.MANDATORY:
        # Only a verified address may reset: an unverified one may not be its owner's.
        users = [user for user in users if email_verification.email_is_verified(user=user)]
    if not users:
        event = audit_event_build(
            type=AuditEventType.PASSWORD_RESET_REQUESTED, origin=origin, detail="no active account"
        )
        event.username = typed_name_hashed(email)  # as the admin's search finds a name it is given
        audit_events_record(events=[event])
        return 0
    audit_events_record(
        events=[
            audit_event_build(type=AuditEventType.PASSWORD_RESET_REQUESTED, user_id=user.pk, origin=origin)
            for user in users
        ]
    )
    valid_for = timesince(timezone.now() - app_settings.PASSWORD_RESET_TIMEOUT, depth=2)
    for user in users:
        address = getattr(user, user.get_email_field_name())
        mail_send_later(
            to=address,
            template="password_reset",
            context={
                "user_id": json_id(user.pk),
                "address": address,
                "username": user.get_username(),
                "valid_for": valid_for.replace("\xa0", " "),
            },
            context_from="accounts.password_reset.password_reset_link",
            user_id=json_id(user.pk),
        )
    return len(users)


def password_reset_link(context: dict) -> dict | None:
    """The mail's link, with a key made now (``mail.mail_deliver`` calls it at send time, so the
    key is never queued); None, and no mail, if the account is no longer active or no longer uses
    the address the mail goes to (a key made now would work for its new address's owner)."""
    model = get_user_model()
    user = model._default_manager.filter(pk=context["user_id"], is_active=True).first()
    if user is None or getattr(user, user.get_email_field_name()) != context["address"]:
        return None
    return {"link": app_settings.PASSWORD_RESET_URL.replace("{key}", password_reset_key(user))}


# --- confirming ---------------------------------------------------------------------------------
def password_reset_confirm(*, key: str, new_password: str, origin: Origin = NOWHERE):
    """Set the password of the account ``key`` was made for; returns the user.

    InvalidKey for a bad, used or expired key; PasswordRejected (nothing changed) for a password the
    validators refuse. Every session of the account ends (reason ``password_reset``) as the new
    password is saved (``services.password_set_as``: the hook on every password set, told the
    reason); the reset is recorded and a notice mailed to the account's address after the commit."""
    with transaction.atomic():
        user = _user_for_key(key)
        try:
            password_validation.validate_password(new_password, user)
        except ValidationError as e:
            raise PasswordRejected(list(e.messages)) from e
        with password_set_as(reason=RevokeReason.PASSWORD_RESET, origin=origin) as password_set:
            user.set_password(new_password)
            user.save(update_fields=["password"])
            if password_set.revoked is None:  # the project dropped the hook (accounts.E044)
                sessions_end_for_password_set(user=user)
        audit_event_record(type=AuditEventType.PASSWORD_RESET_COMPLETED, user_id=user.pk, origin=origin)
        notices.notice_send(user=user, notice=notices.Notice.PASSWORD_RESET, origin=origin)
    return user
