"""Reads: session and user look-ups shared by the API, the admin and the commands."""

import uuid

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from .models import Session


def user_get_for_access_token(*, user_id: str, session_id: uuid.UUID):
    """The token's user if it may act now (active user, active session), else None.

    One indexed query: the session's primary key joined with its user.
    """
    session = (
        Session.objects.active()
        .select_related("user")
        .filter(pk=session_id, user_id=user_id, user__is_active=True)
        .first()
    )
    return session.user if session else None


def sessions_list_for_user(*, user) -> QuerySet[Session]:
    """A user's active sessions, newest first."""
    return Session.objects.for_user(user).active().order_by("-created_at")


def sessions_list(*, user=None, include_inactive: bool = False) -> QuerySet[Session]:
    """Sessions newest first with their users (one user's when given); active only unless
    ``include_inactive``. Ordered like the admin's indexes, so a large table streams cheaply."""
    sessions = Session.objects.select_related("user").order_by("-created_at", "-id")
    if user is not None:
        sessions = sessions.for_user(user)
    return sessions if include_inactive else sessions.active()


def user_get_by_username(*, username: str):
    """The user with this username (the user model's USERNAME_FIELD), or None."""
    return get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
