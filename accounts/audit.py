"""The audit trail's only writer.

Recording an event must never break the request or command that caused it: the insert runs in its
own savepoint, and a database error there is logged (without tokens or passwords) and swallowed,
leaving the caller's transaction usable.
"""

import logging
import uuid

from django.db import DatabaseError, transaction

from .models import AuditEvent
from .origin import NOWHERE, Origin

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
    """An unsaved event, its text fields cut to their column sizes."""
    return AuditEvent(
        type=type,
        user_id=user_id,
        username=_clip(username, "username"),
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
