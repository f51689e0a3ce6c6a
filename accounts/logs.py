"""Log lines a machine can read, each tied to the request it came from.

``RequestIdMiddleware`` gives every request an id: the ``X-Request-ID`` a trusted proxy sent (only
behind ``NUM_PROXIES`` proxies, and only a short id of safe characters), else a new one. The answer
carries it back as ``X-Request-ID``, and it stays in a context variable until Django has finished
with the request (``request_finished``), so that Django's own lines about the answer ("Unauthorized:
/api/auth/refresh/", written after the middleware has returned) carry it too.

``RequestContextFilter`` (on a handler) copies the request id, the signed-in user's id and the first
characters of the session id, where known, onto every record; ``JsonFormatter`` writes a record as
one JSON object a line (``LOG_FORMAT=json``), ``TextFormatter`` as a line for people.

The project opts in through MIDDLEWARE and LOGGING (see authproject/settings.py); nothing here
touches a logger or a handler it was not given.
"""

import contextvars
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.signals import request_finished
from django.dispatch import receiver
from django.utils.functional import SimpleLazyObject

REQUEST_ID_HEADER = "X-Request-ID"
# What an id from a proxy may be: nginx's $request_id (32 hex digits), a UUID, a load balancer's
# trace id; never long, never a character a log line or a header would have to escape.
TRUSTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# How much of a session id a log line shows: the prefix the admin, the commands and the audit list
# use (8 characters), which tells sessions apart and is no credential.
SESSION_ID_PREFIX = 8


@dataclass
class RequestContext:
    """What a log line may say about the request it was written during."""

    request_id: str
    request: Any = None
    user_id: Any = None
    session_id: Any = None


_context: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "accounts_log_context", default=None
)


def request_id_new() -> str:
    """A new request id: 32 hex digits of a random UUID."""
    return uuid.uuid4().hex


def request_id_for(request) -> str:
    """The id a trusted proxy sent in ``X-Request-ID``, if there is a trusted proxy (NUM_PROXIES,
    DRF's setting that also decides whose X-Forwarded-For is believed) and the id looks like one;
    else a new id. A client that reached the app directly cannot choose its own."""
    from rest_framework.settings import api_settings  # DRF's settings follow setting_changed

    sent = request.META.get("HTTP_X_REQUEST_ID", "")
    if sent and (api_settings.NUM_PROXIES or 0) > 0 and TRUSTED_REQUEST_ID.fullmatch(sent):
        return sent
    return request_id_new()


def log_context_bind(*, user_id=None, session_id=None) -> None:
    """Name the user and the session of the current request for its later log lines (a login or a
    refresh, before which the request named no one); outside a request, nothing."""
    context = _context.get()
    if context is not None:
        context.user_id, context.session_id = user_id, session_id


class RequestIdMiddleware:
    """Sets the request's id (``request.request_id``, the log context) and answers with it in
    ``X-Request-ID``. First in MIDDLEWARE, so that every answer carries it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request)
        _context.set(RequestContext(request_id=request.request_id, request=request))
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


@receiver(request_finished, dispatch_uid="accounts.logs.request_context_end")
def request_context_end(**kwargs) -> None:
    """The request is over: lines logged from now on belong to no request."""
    _context.set(None)


def _user_id(context: RequestContext):
    """The user's id if known without work: bound by a login or a refresh, or set on the request by
    DRF's authentication. Django's lazy ``request.user`` is never evaluated here (that could cost a
    query, from inside a log call)."""
    if context.user_id is not None:
        return context.user_id
    user = context.request.__dict__.get("user") if context.request is not None else None
    if user is None or isinstance(user, SimpleLazyObject) or not user.is_authenticated:
        return None
    return user.pk


def _session_id(context: RequestContext):
    """The session's id if known: bound by a login or a refresh, or the access token's ``sid``."""
    if context.session_id is not None:
        return context.session_id
    token = context.request.__dict__.get("auth") if context.request is not None else None
    return getattr(token, "session_id", None)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id``, ``user_id`` and ``session`` (the session id's first characters) to every
    record, None outside a request or where unknown. Put it on a handler, so that it sees the
    records of every logger that handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        if context is None:
            record.request_id = record.user_id = record.session = None
            return True
        record.request_id = context.request_id
        record.user_id = _user_id(context)
        session_id = _session_id(context)
        record.session = str(session_id)[:SESSION_ID_PREFIX] if session_id is not None else None
        return True


CONTEXT_FIELDS = ("request_id", "user_id", "session")


def _utc_timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC, to the millisecond: ``2026-12-04T13:44:20.123Z``."""
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``timestamp`` (UTC), ``level``, ``logger``, ``message``, then
    ``request_id``, ``user_id`` and ``session`` where known, and ``exception`` (the traceback as
    text) when there is one. Non-ASCII text is escaped, so a line is always one line of ASCII."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": _utc_timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """A line for people (``LOG_FORMAT=text``, development): UTC time, level, logger, message, and
    the request's context where known."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_utc_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        known = [f"{name}={value}" for name in CONTEXT_FIELDS if (value := getattr(record, name, None))]
        if known:
            text += " [" + " ".join(known) + "]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text
