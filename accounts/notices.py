"""Security notices: a mail to an account's own address when something happened to it that its owner
should know of (SECURITY_NOTICES, on by default).

Each notice names the device, the IP and the time of what happened, and says what to do if it was
not them. The templates are ``accounts/email/notice_<kind>_subject.txt`` and ``.txt`` (an ``.html``
may follow), which a project overrides the Django way. Mail leaves through ``accounts.mail``: after
the transaction commits, off the request path, retried and audited.

The new-device notice is decided at sign-in, before the session opens: one statement reads the
account's earlier sign-ins in the audit trail (kept AUDIT_RETENTION, 180 days by default) within
NEW_DEVICE_MEMORY, since sessions themselves are deleted SESSION_RETENTION after they end. A device
is its name without versions ("Chrome on macOS"), so a browser's monthly update is not a new device.
A notice is queued only when it is sent: a sign-in from a known device queues nothing.
"""

from datetime import UTC, datetime, timedelta

from django.db import models
from django.utils import timezone

from .conf import app_settings
from .devices import device_family, device_name
from .mail import mail_send_later
from .models import AuditEvent, AuditEventType
from .origin import Origin

NEW_DEVICE_MEMORY = timedelta(days=90)


class Notice(models.TextChoices):
    """What a notice is about: its template is ``accounts/email/notice_<value>``."""

    PASSWORD_CHANGED = "password_changed", "password changed"
    PASSWORD_RESET = "password_reset", "password reset"
    EMAIL_CHANGE_REQUESTED = "email_change_requested", "e-mail change requested (to the old address)"
    REUSE_DETECTED = "reuse_detected", "a session ended by refresh-token reuse"
    NEW_DEVICE = "new_device", "a sign-in from a new device"
    # Second factors (context: ``factor``, e.g. "an authenticator app", 'the passkey "Laptop"').
    SECOND_FACTOR_ADDED = "second_factor_added", "a second factor added"
    SECOND_FACTOR_REMOVED = "second_factor_removed", "a second factor removed (``by_admin``: by an admin)"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated", "new recovery codes"
    PASSKEY_CLONED = "passkey_cloned", "a cloned passkey refused (context: ``passkey``, its name)"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _address(user) -> str:
    return getattr(user, user.get_email_field_name(), "") or ""


def _wanted(user) -> bool:
    """Notices are on, and the user has an address to send them to."""
    return bool(app_settings.SECURITY_NOTICES and _address(user))


def notice_send(
    *,
    user,
    notice: Notice,
    origin: Origin,
    context: dict | None = None,
) -> bool:
    """Mail ``notice`` to the user's address once the transaction commits; False when notices are
    off or the user has no address. ``origin`` is where it happened (the device and IP named)."""
    if not _wanted(user):
        return False
    mail_send_later(
        to=_address(user),
        template=f"notice_{notice.value}",
        context={
            "device": device_name(origin.user_agent) or "an unnamed device",
            "ip": origin.ip or "an unknown address",
            "time": _when(timezone.now()),
            **(context or {}),
        },
        user_id=user.pk,
    )
    return True


def device_known(*, user, user_agent: str) -> bool:
    """Whether the account signed in from this device (its name without versions) within
    NEW_DEVICE_MEMORY: one statement over the audit trail's sign-ins, whose user agents are
    compared as they are first, and parsed only if none is the same text."""
    earlier = set(
        AuditEvent.objects.filter(
            user_id=user.pk,
            type=AuditEventType.LOGIN_SUCCEEDED,
            created_at__gte=timezone.now() - NEW_DEVICE_MEMORY,
        )
        .values_list("user_agent", flat=True)
        .distinct()
    )
    if user_agent in earlier:
        return True
    family = device_family(device_name(user_agent))
    return any(device_family(device_name(each)) == family for each in earlier)


def notice_new_device_maybe(*, user, origin: Origin, first_sign_in: bool) -> bool:
    """Before a sign-in opens its session: a new-device notice if the account has not signed in
    from this device within NEW_DEVICE_MEMORY. An account's first sign-in ever is not news (there
    is nothing to compare it with), and nothing is read for it."""
    if first_sign_in or not _wanted(user):
        return False
    if device_known(user=user, user_agent=origin.user_agent):
        return False
    return notice_send(user=user, notice=Notice.NEW_DEVICE, origin=origin)
