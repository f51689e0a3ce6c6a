"""The one place mail leaves: off the request path, through Django's Tasks API, retried, audited.

``mail_send_later`` enqueues ``mail_deliver`` once the current transaction commits (a rolled-back
request sends nothing). The task renders the template set ``accounts/email/<template>_subject.txt``,
``<template>.txt`` and, if it exists, ``<template>.html``, which a project overrides the Django way
(the same path in its own templates), with ``site_name`` in every context, and hands the message to
Django's mail backend (EMAIL_BACKEND; EMAIL_TIMEOUT bounds each wait on the server).

A send that fails (the server refuses, is not there, or does not answer within EMAIL_TIMEOUT) is
enqueued again to run after the next MAIL_RETRY_BACKOFF delay, up to MAIL_MAX_ATTEMPTS; the last
failure is logged and audited (``mail_failed``), as is each mail sent (``mail_sent``). A backend that
cannot defer a task (``immediate``: development, tests) has no retry: its first failure is the last,
logged and audited at once, since waiting would hold the request that committed. A mail that cannot
be rendered (a missing template) is given up at once too, and its error raised for the task's record.

The database backend keeps a task's arguments in its table, so a context holds no key: a link with a
key in it is made in the task, at send time, by the function that ``context_from`` names. Log lines
and audit details name the template and the recipient's domain, never an address, a link or a body.
"""

import json
import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template import Context, Engine, TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone
from django.utils.module_loading import import_string

from . import metrics
from .audit import audit_event_record
from .conf import app_settings
from .models import AuditEventType

try:  # Django 6 has the Tasks API itself; django-tasks backports it to Django 5.2.
    from django.tasks import task
except ImportError:
    from django_tasks import task

logger = logging.getLogger(__name__)

# What a failed send raises: the server's refusals (smtplib), and no server, a reset connection or no
# answer within EMAIL_TIMEOUT (OSError: ConnectionRefusedError, TimeoutError, ssl.SSLError ...).
SEND_ERRORS = (smtplib.SMTPException, OSError)


def json_id(pk):
    """A primary key as a task's JSON arguments hold it: an integer, else its text (a UUID)."""
    return pk if isinstance(pk, int) or pk is None else str(pk)


def recipient_domain(address: str) -> str:
    """What a log line may say about a recipient: ``@example.com``."""
    return "@" + address.rpartition("@")[2]


def render_text(name: str, context: dict) -> str:
    """A plain-text template, without HTML escaping: a link's ``&`` stays ``&``. Django's template
    engine (the first configured), so that a project's templates override the app's as usual."""
    return Engine.get_default().get_template(name).render(Context(context, autoescape=False))


def mail_build(*, to: str, template: str, context: dict) -> EmailMultiAlternatives:
    """The message of one template set, rendered with ``site_name`` added to ``context``."""
    context = {"site_name": app_settings.SITE_NAME, **context}
    # One line: a header holds no line breaks (Django refuses them), and a template may end with one.
    subject = " ".join(render_text(f"accounts/email/{template}_subject.txt", context).split())
    body = render_text(f"accounts/email/{template}.txt", context)
    message = EmailMultiAlternatives(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    try:
        html = get_template(f"accounts/email/{template}.html")
    except TemplateDoesNotExist:
        return message
    message.attach_alternative(html.render(context), "text/html")
    return message


def mail_send_later(
    *,
    to: str,
    template: str,
    context: dict | None = None,
    context_from: str | None = None,
    user_id: int | str | None = None,
) -> None:
    """Send a mail of ``template`` to ``to`` after the current transaction commits, off the request.

    ``context`` must be JSON (the task's arguments may be stored) and holds no key. ``context_from``
    is the dotted path of a function called in the task with ``context``; what it returns is added
    (a link with a key), or it returns None and nothing is sent. ``user_id`` ties the audit events to
    an account.
    """
    # As JSON, as a queue stores them: a TypeError here rather than in a worker later.
    arguments = json.loads(
        json.dumps(
            {
                "to": to,
                "template": template,
                "context": context or {},
                "context_from": context_from,
                "user_id": json_id(user_id),
                "attempt": 1,
            }
        )
    )

    def enqueue() -> None:
        try:
            mail_deliver.enqueue(**arguments)
        except Exception as e:  # noqa: BLE001 - the request has committed; its answer stands
            _mail_given_up(arguments, reason=f"not queued: {type(e).__name__}")

    transaction.on_commit(enqueue)


@task()
def mail_deliver(
    *,
    to: str,
    template: str,
    context: dict,
    context_from: str | None,
    user_id: int | str | None,
    attempt: int,
) -> str:
    """Render and send one mail; on a failed send, enqueue the next attempt or give up. Returns
    "sent", "retrying", "failed" or "skipped" (``context_from`` returned None)."""
    arguments = {
        "to": to,
        "template": template,
        "context": context,
        "context_from": context_from,
        "user_id": user_id,
        "attempt": attempt,
    }
    try:
        if context_from:
            made = import_string(context_from)(context)
            if made is None:
                return "skipped"
            context = {**context, **made}
        message = mail_build(to=to, template=template, context=context)
    except Exception as e:
        # A bug (a missing template, a failing context_from): no retry can help. Given up, and
        # raised for the task's own record and traceback.
        _mail_given_up(arguments, reason=f"{type(e).__name__} while rendering")
        raise
    try:
        message.send()
    except SEND_ERRORS as e:
        return _mail_retry(arguments, error=e)
    metrics.mail_counted(result="sent")
    audit_event_record(type=AuditEventType.MAIL_SENT, user_id=user_id, detail=_describe(arguments))
    return "sent"


def retry_delay(*, attempt: int) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1 for the first)."""
    backoff = app_settings.MAIL_RETRY_BACKOFF
    return backoff[min(attempt, len(backoff)) - 1]


def _mail_retry(arguments: dict, *, error: BaseException) -> str:
    attempt = arguments["attempt"]
    reason = f"{_error_name(error)} at attempt {attempt}"
    if attempt >= app_settings.MAIL_MAX_ATTEMPTS or not mail_deliver.get_backend().supports_defer:
        _mail_given_up(arguments, reason=reason)
        return "failed"
    delay = retry_delay(attempt=attempt)
    logger.warning("Mail %s: %s; retrying in %ss", _describe(arguments), reason, delay.total_seconds())
    mail_deliver.using(run_after=timezone.now() + delay).enqueue(**{**arguments, "attempt": attempt + 1})
    return "retrying"


def _mail_given_up(arguments: dict, *, reason: str) -> None:
    description = _describe(arguments)
    metrics.mail_counted(result="failed")
    logger.error("Mail %s given up: %s", description, reason)
    audit_event_record(
        type=AuditEventType.MAIL_FAILED, user_id=arguments["user_id"], detail=f"{description}: {reason}"
    )


def _error_name(error: BaseException) -> str:
    """The error's class, and the one behind it (smtplib reports a timeout as a disconnection):
    never its message, which may quote the server's answer and the recipient's address."""
    behind = error.__cause__ or error.__context__
    return f"{type(error).__name__} ({type(behind).__name__})" if behind else type(error).__name__


def _describe(arguments: dict) -> str:
    """The template and the recipient's domain: all a log line or an audit event says of a mail."""
    return f"{arguments['template']} to {recipient_domain(arguments['to'])}"
