"""The server-side session behind each login, and the audit trail.

Sessions belong to the project's user model (AUTH_USER_MODEL), whichever it is.

The database holds jtis (random token ids), never tokens: a jti alone cannot be replayed, because
a refresh token is only accepted with a valid signature from the server's key.
"""

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from . import metrics
from .statements import update_returning


class RevokeReason(models.TextChoices):
    """Why a session ended early; also the audit event type that records it."""

    LOGOUT = "logout", "logout"
    LOGOUT_ALL = "logout_all", "logout everywhere"
    REVOKED_BY_USER = "revoked_by_user", "revoked by the user"
    REVOKED_BY_ADMIN = "revoked_by_admin", "revoked by an admin"
    REVOKED_BY_COMMAND = "revoked_by_command", "revoked by a command"
    PASSWORD_CHANGED = "password_changed", "password changed"
    # Set by any other path: the admin's password form, changepassword, set_password() in code.
    PASSWORD_SET = "password_set", "password set"
    USER_DEACTIVATED = "user_deactivated", "user deactivated"
    REUSE_DETECTED = "reuse_detected", "refresh token reuse detected"
    PASSWORD_RESET = "password_reset", "password reset"


# RFC 8176 "amr" values as people read them ("signed in with" in the admin and list_sessions): one
# name a method; a value not listed is shown as it is.
AMR_NAMES = {
    "pwd": "password",
    "otp": "authenticator code",
    "hwk": "passkey",  # a key in hardware (a security key, a platform authenticator)
    "swk": "passkey",  # a key in software (a synced passkey)
}
# Values that qualify the others rather than name a way of signing in: "user" (the authenticator
# verified its user: a PIN or a biometric), "mfa" (more than one factor, already plain from the rest).
AMR_QUALIFIERS = frozenset({"user", "pin", "mfa"})

# The states the admin filter, the commands and ``Session.status`` name; "all" is every session.
SESSION_STATUSES = ("active", "expired", "revoked", "all")


def _unexpired(now: datetime) -> Q:
    """Within both expiries: ``Session.expires_at > now``, said in SQL."""
    return Q(idle_expires_at__gt=now, absolute_expires_at__gt=now)


class SessionQuerySet(models.QuerySet):
    """Named filters for the states a session can be in, and the one statement that revokes."""

    def unrevoked(self):
        """Not revoked (active, or expired but not yet flushed)."""
        return self.filter(revoked_at__isnull=True)

    def active(self, *, now: datetime | None = None):
        """Not revoked and not expired: the sessions whose tokens work."""
        return self.unrevoked().filter(_unexpired(now or timezone.now()))

    def expired(self, *, now: datetime | None = None):
        """Not revoked, but past its idle or absolute expiry."""
        return self.unrevoked().exclude(_unexpired(now or timezone.now()))

    def revoked(self):
        """Revoked for any reason."""
        return self.filter(revoked_at__isnull=False)

    def in_status(self, status: str):
        """The sessions in one of ``SESSION_STATUSES`` ("all": every one)."""
        match status:
            case "active":
                return self.active()
            case "expired":
                return self.expired()
            case "revoked":
                return self.revoked()
            case "all":
                return self.all()
        raise ValueError(f"unknown session status {status!r}")

    def for_user(self, user):
        """The sessions of one user."""
        return self.filter(user=user)

    def revoke(self, *, reason: "RevokeReason", now: datetime | None = None) -> list[tuple[uuid.UUID, Any]]:
        """Mark every unrevoked session here revoked, in one statement; ``(id, user_id)`` of each.

        A session already revoked keeps its first reason. Use ``services.sessions_revoke``, which
        also writes the audit trail, rather than this.
        """
        revoked = update_returning(
            self.unrevoked(), returning=("id", "user"), revoked_at=now or timezone.now(), revoke_reason=reason
        )
        metrics.sessions_revoked_counted(reason=str(reason), count=len(revoked))
        return [(session.pk, session.user_id) for session in revoked]


class Session(models.Model):
    """One login: the chain of refresh tokens it issues shares this row.

    ``refresh_jti`` names the only refresh token that may rotate. ``previous_jti`` names the token
    it replaced at ``rotated_at``; within the grace window that one is answered with the current
    token, after it any use of it is reuse. The current token's ``iat`` is ``rotated_at`` (or
    ``created_at`` before the first rotation) and its ``exp`` is ``idle_expires_at``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_sessions")
    refresh_jti = models.CharField(max_length=64, editable=False)
    previous_jti = models.CharField(max_length=64, blank=True, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(default=timezone.now)
    idle_expires_at = models.DateTimeField()
    absolute_expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=32, choices=RevokeReason.choices, blank=True)
    ip = models.GenericIPAddressField("IP", null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # A name for people ("Chrome 131 on macOS"), from user_agent once, when the session is created.
    device = models.CharField(max_length=64, blank=True)
    # Recent authentication: when the user last proved who they are in this session (the login, or
    # the last re-authentication), and how (RFC 8176 "amr" values, space-separated: "pwd otp",
    # "hwk user"). Every access token the session issues carries both (``auth_time``, ``amr``).
    auth_time = models.DateTimeField(default=timezone.now, editable=False)
    amr = models.CharField("signed in with", max_length=64, blank=True, editable=False)

    objects = SessionQuerySet.as_manager()

    class Meta:
        verbose_name = "sign-in session"
        indexes = [
            # A user's sessions (list, logout-all, revoke): only unrevoked ones are ever asked for.
            models.Index(
                fields=["user", "-created_at"],
                name="session_user_active_idx",
                condition=Q(revoked_at__isnull=True),
            ),
            # The admin's default page (unrevoked, newest first) reads the first rows of this index
            # and stops: no sort and no scan of revoked rows, however many there are.
            models.Index(
                fields=["-created_at", "-id"],
                name="session_unrevoked_newest_idx",
                condition=Q(revoked_at__isnull=True),
            ),
            # The other admin filters (revoked, expired, all) in the same order.
            models.Index(fields=["-created_at", "-id"], name="session_newest_idx"),
        ]

    def __str__(self):
        # Only the row's own fields: the admin prints this for every inline row.
        return f"session {str(self.pk)[:8]} from {self.ip or 'unknown IP'}, {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def amr_values(self) -> list[str]:
        """The RFC 8176 methods of ``amr``, as the tokens' ``amr`` claim lists them."""
        return self.amr.split()

    @property
    def amr_display(self) -> str:
        """How the user signed in, in words: "password", "password + authenticator code", "passkey";
        "-" when the session does not say (``AMR_NAMES``)."""
        names = [AMR_NAMES.get(value, value) for value in self.amr_values if value not in AMR_QUALIFIERS]
        return " + ".join(dict.fromkeys(names)) or "-"

    @property
    def refresh_issued_at(self) -> datetime:
        """When the current refresh token was issued."""
        return self.rotated_at or self.created_at

    def is_active(self, *, now: datetime | None = None) -> bool:
        """``SessionQuerySet.active``, for a row already loaded."""
        return self.revoked_at is None and self.expires_at > (now or timezone.now())

    def status(self, *, now: datetime | None = None) -> str:
        """ "active", "expired" or "revoked": the states the admin filter and the commands name."""
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.is_active(now=now) else "expired"

    def status_display(self, *, now: datetime | None = None) -> str:
        """The status with the reason, short enough for a table cell (26 characters at most):
        "active", "expired", "revoked by an admin", "revoked: logout", "revoked: reuse detected"."""
        if self.revoked_at is None:
            return self.status(now=now)
        reason = self.get_revoke_reason_display().removeprefix("refresh token ")
        return reason if reason.startswith("revoked ") else f"revoked: {reason or 'unknown'}"

    @property
    def ends_at(self) -> datetime:
        """When the session ends, or ended: its expiry, or its revocation if that came first."""
        return min(self.expires_at, self.revoked_at or self.expires_at)

    @property
    def expires_at(self) -> datetime:
        """When the session ends unless it is used or revoked: the earlier of its two expiries
        (``_unexpired`` is the same rule in SQL)."""
        return min(self.idle_expires_at, self.absolute_expires_at)


# What happened. A revocation is recorded as the event of its reason's own value, so every revoke
# reason is an event type: derived here, never kept equal by hand.
AuditEventType = models.TextChoices(
    "AuditEventType",
    [
        ("LOGIN_SUCCEEDED", ("login_succeeded", "login succeeded")),
        ("LOGIN_FAILED", ("login_failed", "login failed")),
        ("THROTTLED", ("throttled", "login throttled")),
        # accounts.mail: a mail handed to the mail server, or given up after its last attempt.
        ("MAIL_SENT", ("mail_sent", "mail sent")),
        ("MAIL_FAILED", ("mail_failed", "mail failed")),
        # accounts.password_reset: a reset asked for (per account, or once for an address that names
        # none) and done. The sessions it ends are recorded as their reason, password_reset.
        ("PASSWORD_RESET_REQUESTED", ("password_reset_requested", "password reset requested")),
        ("PASSWORD_RESET_COMPLETED", ("password_reset_completed", "password reset completed")),
        # accounts.email_verification: a link mailed, an address verified, a change asked for and done.
        ("EMAIL_VERIFICATION_SENT", ("email_verification_sent", "e-mail verification sent")),
        ("EMAIL_VERIFIED", ("email_verified", "e-mail address verified")),
        ("EMAIL_CHANGE_REQUESTED", ("email_change_requested", "e-mail change requested")),
        ("EMAIL_CHANGED", ("email_changed", "e-mail address changed")),
        # Second factors (accounts.mfa, accounts.passkeys).
        ("MFA_REQUIRED", ("mfa_required", "password right, second factor asked for")),
        ("MFA_FAILED", ("mfa_failed", "second factor failed")),
        ("REAUTHENTICATED", ("reauthenticated", "re-authenticated")),
        ("TOTP_ENABLED", ("totp_enabled", "authenticator app turned on")),
        ("TOTP_DISABLED", ("totp_disabled", "authenticator app turned off")),
        ("RECOVERY_CODES_GENERATED", ("recovery_codes_generated", "recovery codes generated")),
        ("RECOVERY_CODE_USED", ("recovery_code_used", "recovery code used")),
        ("PASSKEY_ADDED", ("passkey_added", "passkey added")),
        ("PASSKEY_REMOVED", ("passkey_removed", "passkey removed")),
        ("PASSKEY_CLONED", ("passkey_cloned", "cloned passkey refused")),
        ("MFA_RESET", ("mfa_reset", "second factors removed")),
        *((reason.name, (reason.value, reason.label)) for reason in RevokeReason),
    ],
)


class AuditEvent(models.Model):
    """One security event: who, which session, from where, when. Never a token or a password.

    ``session_id`` is a plain value, not a foreign key, so flushing old sessions leaves the trail
    intact; events have their own retention (``AUDIT_RETENTION``). ``username`` is the name that
    was typed at a failed or throttled login if it names an account, else ``hmac:`` and a keyed
    hash of it (``audit.typed_name_record``: it may be a password typed into the wrong field).
    ``actor`` is the admin who acted.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=32, choices=AuditEventType.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    session_id = models.UUIDField("session", null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField("IP", null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="auditevent_newest_idx"),
            models.Index(fields=["type", "-created_at"], name="auditevent_type_idx"),
            # The admin's search by session id (a prefix, as a range of this index).
            models.Index(fields=["session_id"], name="auditevent_session_idx"),
        ]

    def __str__(self):
        return f"{self.get_type_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class EmailAddressStateQuerySet(models.QuerySet):
    """The one rule of a verified address, in SQL: the user's current address is the one verified."""

    def verifying(self, *, user_id, address):
        """The states that make ``address`` (a value or an ``OuterRef``) verified for ``user_id``."""
        return self.filter(user_id=user_id, verified_email=address).exclude(verified_email="")


class EmailAddressState(models.Model):
    """A user's verified address and the address they asked to change to, kept by this app beside
    the project's user model (whichever it is), so that no user model needs a field for it.

    The user's address counts as verified while it equals ``verified_email`` (``is_verified``;
    ``EmailAddressStateQuerySet.verifying`` says it in SQL): changing the address by any other
    means (the admin, code) leaves it unverified. ``pending_email`` becomes the user's address only
    when the link mailed to it is followed. No key is stored: keys are signed, not kept.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="email_address_state",
    )
    verified_email = models.EmailField("verified address", max_length=254, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    pending_email = models.EmailField("address asked for", max_length=254, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)

    objects = EmailAddressStateQuerySet.as_manager()

    class Meta:
        verbose_name = "e-mail verification"

    def __str__(self):
        return f"e-mail verification of user {self.user_id}"

    def is_verified(self, address: str) -> bool:
        """``EmailAddressStateQuerySet.verifying``, for a row already loaded."""
        return bool(self.verified_email) and self.verified_email == address


# --- Second factors (accounts.mfa, accounts.passkeys) ---------------------------------------------
class TotpDevice(models.Model):
    """A user's authenticator app (RFC 6238 TOTP). Pending until a code confirms it
    (``confirmed_at``); only a confirmed one is a second factor.

    ``secret`` is the base32 secret encrypted with the key ring (``accounts.encryption``), never the
    secret itself. ``last_step`` is the last time step (30 s) a code was accepted for: a code is
    accepted only for a later step, compared and stored in one statement, so each code works once.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="totp_device"
    )
    secret = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_step = models.BigIntegerField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "authenticator app"

    def __str__(self):
        return f"authenticator app of user {self.user_id}"


class RecoveryCode(models.Model):
    """One single-use recovery code, as a keyed hash (``accounts.mfa``); a used one keeps its row
    (``used_at``) until a new set replaces the whole set."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "digest"], name="recoverycode_user_digest_uniq")]

    def __str__(self):
        return f"recovery code {self.pk} of user {self.user_id}"


class Passkey(models.Model):
    """A WebAuthn credential (``accounts.passkeys``). Its public key is public; the signature
    counter is kept to refuse a cloned authenticator."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=64)
    # The credential id, base64url without padding (at most 1023 bytes: 1364 characters).
    credential_id = models.CharField(max_length=1400, unique=True, editable=False)
    public_key = models.BinaryField(editable=False)  # COSE_Key
    sign_count = models.BigIntegerField(default=0, editable=False)
    aaguid = models.CharField(max_length=36, blank=True, editable=False)
    transports = models.CharField(max_length=128, blank=True, editable=False)  # comma list
    backed_up = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self):
        return f"passkey {self.name!r} of user {self.user_id}"


class WebAuthnChallenge(models.Model):
    """A WebAuthn challenge handed out: a SHA-256 digest of it, its purpose, its user (none for a
    passwordless sign-in), its expiry; used once (``used_at`` set in one conditional statement)."""

    class Purpose(models.TextChoices):
        REGISTER = "register", "register a passkey"
        LOGIN = "login", "passwordless sign-in"
        MFA = "mfa", "second factor"
        REAUTHENTICATE = "reauthenticate", "re-authentication"

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    mfa_token = models.ForeignKey("MfaToken", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="webauthnchallenge_expiry_idx")]

    def __str__(self):
        return f"{self.get_purpose_display()} challenge {self.pk}"


class MfaToken(models.Model):
    """The pending second step of a login: the password was right, a second factor is asked for.

    Only a SHA-256 digest of the token is kept. It remembers the refresh token's transport asked
    for at login. It works once (``used_at``), until ``expires_at``, and dies after
    ``mfa.MAX_FAILURES`` wrong codes (``failures``, counted in one statement each).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    transport = models.CharField(max_length=8)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    failures = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "pending second step"
        indexes = [models.Index(fields=["expires_at"], name="mfatoken_expiry_idx")]

    def __str__(self):
        return f"pending second step {str(self.pk)[:8]} of user {self.user_id}"
