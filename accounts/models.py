"""The user and the server-side session behind each login.

The database holds jtis (random token ids), never tokens: a jti alone cannot be replayed, because
a refresh token is only accepted with a valid signature from the server's key.
"""

import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone


class User(AbstractUser):
    """Django's user, swappable from day one so the project can grow without a data migration."""


class RevokeReason(models.TextChoices):
    LOGOUT = "logout", "logout"
    LOGOUT_ALL = "logout_all", "logout everywhere"
    REVOKED_BY_USER = "revoked_by_user", "revoked by the user"
    REVOKED_BY_ADMIN = "revoked_by_admin", "revoked by an admin"
    REVOKED_BY_COMMAND = "revoked_by_command", "revoked by a command"
    PASSWORD_CHANGED = "password_changed", "password changed"
    USER_DEACTIVATED = "user_deactivated", "user deactivated"
    REUSE_DETECTED = "reuse_detected", "refresh token reuse detected"


class SessionQuerySet(models.QuerySet):
    """Named filters for the states a session can be in."""

    def active(self, *, now: datetime | None = None):
        """Not revoked and within both its idle and its absolute expiry."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, idle_expires_at__gt=now, absolute_expires_at__gt=now)

    def expired(self, *, now: datetime | None = None):
        """Not revoked, but past its idle or absolute expiry."""
        now = now or timezone.now()
        return self.filter(
            Q(idle_expires_at__lte=now) | Q(absolute_expires_at__lte=now), revoked_at__isnull=True
        )

    def revoked(self):
        """Revoked for any reason."""
        return self.filter(revoked_at__isnull=False)

    def for_user(self, user):
        """The sessions of one user."""
        return self.filter(user=user)


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
    def refresh_issued_at(self) -> datetime:
        """When the current refresh token was issued."""
        return self.rotated_at or self.created_at

    def is_active(self, *, now: datetime | None = None) -> bool:
        """Same rule as ``SessionQuerySet.active``, for a row already loaded."""
        now = now or timezone.now()
        return self.revoked_at is None and self.idle_expires_at > now and self.absolute_expires_at > now

    def status(self, *, now: datetime | None = None) -> str:
        """ "active", "expired" or "revoked": the states the admin filter and the commands name."""
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.is_active(now=now) else "expired"

    @property
    def expires_at(self) -> datetime:
        """When the session ends unless it is used or revoked: the earlier of its two expiries."""
        return min(self.idle_expires_at, self.absolute_expires_at)


class AuditEventType(models.TextChoices):
    """What happened. Each revoke reason has the event of the same value."""

    LOGIN_SUCCEEDED = "login_succeeded", "login succeeded"
    LOGIN_FAILED = "login_failed", "login failed"
    THROTTLED = "throttled", "login throttled"
    REUSE_DETECTED = "reuse_detected", "refresh token reuse detected"
    LOGOUT = "logout", "logout"
    LOGOUT_ALL = "logout_all", "logout everywhere"
    REVOKED_BY_USER = "revoked_by_user", "session revoked by the user"
    REVOKED_BY_ADMIN = "revoked_by_admin", "sessions revoked by an admin"
    REVOKED_BY_COMMAND = "revoked_by_command", "sessions revoked by a command"
    PASSWORD_CHANGED = "password_changed", "password changed"
    USER_DEACTIVATED = "user_deactivated", "user deactivated"


class AuditEvent(models.Model):
    """One security event: who, which session, from where, when. Never a token or a password.

    ``session_id`` is a plain value, not a foreign key, so flushing old sessions leaves the trail
    intact; events have their own retention (``AUDIT_RETENTION``). ``username`` is the name that
    was typed at a failed login (there may be no such user). ``actor`` is the admin who acted.
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
        ]

    def __str__(self):
        return f"{self.get_type_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"
