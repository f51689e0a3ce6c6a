"""Reads: session and user look-ups shared by the API, the admin and the commands."""

import uuid

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from .models import Session


def user_get_for_access_token(*, user_id: str, session_id: uuid.UUID):
    """The token's user if it may act now (active user, active session), else None.

    One indexed query: the session's primary key joined with its user.
    """
    now = timezone.now()
    try:
        return get_user_model().objects.get(
            pk=user_id,
            is_active=True,
            auth_sessions__pk=session_id,
            auth_sessions__revoked_at__isnull=True,
            auth_sessions__idle_expires_at__gt=now,
            auth_sessions__absolute_expires_at__gt=now,
        )
    except get_user_model().DoesNotExist:
        return None


def sessions_list_for_user(*, user) -> QuerySet[Session]:
    """A user's active sessions, newest first."""
    return Session.objects.for_user(user).active().order_by("-created_at")
