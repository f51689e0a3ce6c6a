"""The audit trail's only writer.

Recording an event must never break the request or command that caused it: the insert runs in its
own savepoint, and a database error there is logged (without tokens or passwords) and swallowed,
leaving the caller's transaction usable.

A name typed at a login is kept only when it names an account: otherwise it may be a password typed
into the wrong field (a common slip), and the trail keeps a keyed hash of it instead
(``typed_name_record``), which still tells attempts at one name apart from attempts at another.
"""

import logging
import uuid

from django.db import DatabaseError, transaction
from django.utils.crypto import salted_hmac

from . import selectors
from .models import AuditEvent
from .origin import NOWHERE, Origin

UNKNOWN_NAME_PREFIX = "hmac:"


def typed_name_digest(name: str, *, purpose: str, secret: str | None = None) -> str:
    """A typed name as a keyed hash: HMAC-SHA256 under SECRET_KEY (Django's ``salted_hmac``, one
    key per ``purpose``), case-folded and stripped first so that " Alice" and "alice" meet. Without
    the server's secret, a guess at the text cannot be checked against it (a bare SHA-256 can).
    Lone surrogates, which cannot be UTF-8, are kept as they are rather than failing. ``secret``:
    another secret key than SECRET_KEY (one of its fallbacks, for digests kept across a rotation)."""
    value = name.strip().casefold().encode("utf-8", "surrogatepass")
    return salted_hmac(f"accounts.{purpose}", value, secret=secret, algorithm="sha256").hexdigest()


def typed_name_record(name: str) -> str:
    """What the trail keeps of a name typed at a login: the name if it names an account (as the
    user model's USERNAME_FIELD, exactly as authenticate() looks it up), else ``hmac:`` and 32 hex
    digits of its keyed hash. One query, made only for a failed or refused login."""
    if not name:
        return ""
    try:
        with transaction.atomic():  # a failing look-up leaves the caller's transaction usable
            if selectors.user_get_by_username(username=name) is not None:
                return name
    except (ValueError, DatabaseError):  # a name the column cannot hold (a NUL, on PostgreSQL)
        logger.warning("Audit: a typed name could not be looked up; kept as its keyed hash.")
    return typed_name_hashed(name)


def typed_name_hashed(name: str) -> str:
    """``hmac:`` and 32 hex digits: how the trail keeps a typed name that names no account (and
    how the admin's search finds the events of a name it is given)."""
    return UNKNOWN_NAME_PREFIX + typed_name_digest(name, purpose="audit.username")[:32]

logger = logging.getLogger(__name__)


def _clip(value: str, field: str) -> str:
    return (value or "")[: AuditEvent._meta.get_field(field).max_length]


def audit_event_build(
    *,
    type: str,
    origin: Origin = NOWHERE,
    user_id=None,
    username: str = "",
    session_id: uuid.UUID | None = None,
    detail: str = "",
) -> AuditEvent:
    """An unsaved event, its text fields cut to their column sizes. ``username`` is a typed name
    as ``typed_name_record`` gives it, never the raw text of a name that may be no one's."""
    return AuditEvent(
        type=type,
        user_id=user_id,
        username=_clip(typed_name_record(username), "username"),
        session_id=session_id,
        actor_id=origin.actor_id,
        ip=origin.ip,
        user_agent=_clip(origin.user_agent, "user_agent"),
        detail=_clip(detail, "detail"),
    )


def audit_events_record(*, events: list[AuditEvent]) -> bool:
    """Save events in one insert; False (and a log line) if the database refused them."""
    if not events:
        return True
    try:
        with transaction.atomic():
            AuditEvent.objects.bulk_create(events)
    except DatabaseError:
        logger.exception("Audit events not recorded: %s", ", ".join(sorted({e.type for e in events})))
        return False
    return True


def audit_event_record(**fields) -> bool:
    """Save one event (the keyword arguments of ``audit_event_build``); never raises a database error."""
    return audit_events_record(events=[audit_event_build(**fields)])
