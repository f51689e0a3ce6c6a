"""Mail leaves through accounts/mail.py, after the commit, to a real SMTP server (aiosmtpd, started on
a free port by the ``smtp_server`` fixture); the tests read what it received. Failures: nothing
listening (connection refused) and a server that never answers (EMAIL_TIMEOUT)."""

import logging
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django_tasks_db.models import DBTaskResult

from accounts.mail import mail_build, mail_send_later
from accounts.models import AuditEvent, AuditEventType

from .helpers import MetricDeltas, free_port, links_in, mail_html, mail_text, run_worker, silent_smtp_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.mail_urls")]

KEY = "k3y-Only-In-The-Link_0123456789"  # what context_from adds: it must reach the mail and nothing else
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def key_link(context: dict) -> dict | None:
    """A ``context_from`` function: the link with a key, made at send time (None: send nothing)."""
    if context.get("link") == "none":
        return None
    return {"link": f"https://app.example.com/#reset={KEY}&lang=en"}


@pytest.fixture
def mail_templates(settings, tmp_path):
    """The project's templates directory, ahead of the app's, holding a ``hello`` mail (text, HTML)
    as a project's own mail would be; write more files under it to override the app's."""
    mails = tmp_path / "accounts" / "email"
    mails.mkdir(parents=True)
    (mails / "hello_subject.txt").write_text("Hello from {{ site_name }} & friends\n")
    (mails / "hello.txt").write_text(
        '{% extends "accounts/email/base.txt" %}{% block body %}Open this link:\n{{ link }}\n{% endblock %}'
    )
    (mails / "hello.html").write_text(
        '{% extends "accounts/email/base.html" %}{% block body %}<a href="{{ link }}">Open</a>{% endblock %}'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    settings.ACCOUNTS_SITE_NAME = "Example Site"
    settings.DEFAULT_FROM_EMAIL = "Example Site <no-reply@example.com>"
    return mails


def send_hello(to="alice@example.com", link="https://app.example.com/#verify=abc", query="", **fields):
    """POST to the test view, which sends ``hello`` from inside its transaction."""
    client = Client(raise_request_exception=False)
    return client.post("/hello/", {"to": to, "link": link, **fields}, QUERY_STRING=query)


def audit(type_: str) -> list[str]:
    return list(AuditEvent.objects.filter(type=type_).values_list("detail", flat=True))


# --- Sent, after the commit, by real SMTP ---------------------------------------------------------
def test_a_mail_sent_in_a_request_arrives_by_smtp_with_the_site_name_text_and_html(
    mail_templates, smtp_server
):
    deltas = MetricDeltas()
    assert send_hello(link="https://app.example.com/#verify=abc&lang=en").status_code == 202

    [message] = smtp_server.wait_for(1)
    assert deltas("authproject_mails_total", result="sent") == 1
    assert message["Subject"] == "Hello from Example Site & friends"
    assert message["From"] == "Example Site <no-reply@example.com>"
    assert message["To"] == "alice@example.com"
    assert smtp_server.envelopes == [("no-reply@example.com", ["alice@example.com"])]
    text = mail_text(message)
    assert links_in(text) == ["https://app.example.com/#verify=abc&lang=en"]  # unescaped, a line of its own
    assert text.rstrip().endswith("-- \nExample Site")
    html = mail_html(message)
    assert 'href="https://app.example.com/#verify=abc&amp;lang=en"' in html and "Example Site" in html
    assert audit(AuditEventType.MAIL_SENT) == ["hello to @example.com"]


def test_a_mail_without_an_html_template_is_plain_text(mail_templates, smtp_server):
    (mail_templates / "hello.html").unlink()
    send_hello()
    [message] = smtp_server.wait_for(1)
    assert not message.is_multipart()
    assert mail_html(message) is None
    assert "Example Site" in mail_text(message)


def test_a_rolled_back_request_sends_nothing(mail_templates, smtp_server):
    assert send_hello(query="then=fail").status_code == 500
    time.sleep(0.5)  # an immediate backend would have sent by now
    assert smtp_server.messages == []
    assert AuditEvent.objects.count() == 0


def test_nothing_is_sent_before_the_transaction_commits(mail_templates, smtp_server):
    with transaction.atomic():
        mail_send_later(to="bob@example.org", template="hello", context={"link": "https://x.example/"})
        time.sleep(0.3)
        assert smtp_server.messages == []
    assert smtp_server.wait_for(1)[0]["To"] == "bob@example.org"


def test_a_project_template_overrides_the_apps_mail_layout(mail_templates, smtp_server):
    (mail_templates / "base.txt").write_text(
        "{% block body %}{% endblock %}\nQuestions? Write to the {{ site_name }} team.\n"
    )
    send_hello()
    text = mail_text(smtp_server.wait_for(1)[0])
    assert "Questions? Write to the Example Site team." in text
    assert "-- " not in text  # the app's layout is not used


def test_the_site_name_defaults_to_authproject(mail_templates, settings):
    del settings.ACCOUNTS_SITE_NAME
    message = mail_build(to="a@example.com", template="hello", context={"link": "https://x.example/"})
    assert message.subject == "Hello from authproject & friends"
    assert message.body.rstrip().endswith("-- \nauthproject")


def test_a_context_that_is_not_json_is_refused_when_enqueued(mail_templates):
    with pytest.raises(TypeError), transaction.atomic():
        mail_send_later(to="a@example.com", template="hello", context={"when": timedelta(1)})


# --- Keys: made in the task, never queued, never logged -------------------------------------------
def test_a_key_made_at_send_time_reaches_the_mail_but_not_the_queue_or_the_logs(
    mail_templates, smtp_server, settings, caplog
):
    settings.TASKS = DATABASE_BACKEND
    caplog.set_level(logging.DEBUG)
    assert send_hello(to="carol.secret@example.net", context_from=f"{__name__}.key_link").status_code == 202
    assert smtp_server.messages == []  # queued, not sent
    run_worker(until=time.monotonic() + 30)

    [message] = smtp_server.wait_for(1)
    assert links_in(mail_text(message)) == [f"https://app.example.com/#reset={KEY}&lang=en"]
    stored = "".join(str(row) for row in DBTaskResult.objects.values_list("args_kwargs", "return_value"))
    assert KEY not in stored
    assert AuditEvent.objects.get(type=AuditEventType.MAIL_SENT).detail == "hello to @example.net"
    # Every logger but the test's SMTP server's own (aiosmtpd's mail.log).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert KEY not in logged and "carol.secret" not in logged


def test_context_from_answering_none_sends_nothing(mail_templates, smtp_server):
    send_hello(link="none", context_from=f"{__name__}.key_link")
    time.sleep(0.3)
    assert smtp_server.messages == []
    assert AuditEvent.objects.count() == 0


# --- Failures: retried with backoff, then logged and audited; never raised into the request -------
def test_smtp_down_is_retried_with_backoff_then_logged_and_audited(mail_templates, settings, caplog):
    settings.TASKS = DATABASE_BACKEND
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
    settings.ACCOUNTS_MAIL_MAX_ATTEMPTS = 3
    settings.ACCOUNTS_MAIL_RETRY_BACKOFF = [timedelta(seconds=0.4), timedelta(seconds=0.8)]
    caplog.set_level(logging.INFO, logger="accounts.mail")

    started = time.monotonic()
    assert send_hello(to="dave@example.com").status_code == 202
    run_worker(until=started + 30)

    attempts = list(DBTaskResult.objects.order_by("enqueued_at").values_list("run_after", "enqueued_at"))
    assert len(attempts) == 3
    # Each retry is queued to run its backoff after the failure that queued it.
    waits = [(run_after - enqueued_at).total_seconds() for run_after, enqueued_at in attempts[1:]]
    assert waits == pytest.approx([0.4, 0.8], abs=0.1)
    assert time.monotonic() - started >= 1.2
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert audit(AuditEventType.MAIL_FAILED) == ["hello to @example.com: ConnectionRefusedError at attempt 3"]
    assert audit(AuditEventType.MAIL_SENT) == []
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "accounts.mail"]
    assert lines == [
        ("WARNING", "Mail hello to @example.com: ConnectionRefusedError at attempt 1; retrying in 0.4s"),
        ("WARNING", "Mail hello to @example.com: ConnectionRefusedError at attempt 2; retrying in 0.8s"),
        ("ERROR", "Mail hello to @example.com given up: ConnectionRefusedError at attempt 3"),
    ]


def test_smtp_down_under_the_immediate_backend_fails_at_once_and_the_request_still_answers(
    mail_templates, settings, caplog
):
    """No retry there: a retry's wait would hold the request that committed."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    deltas = MetricDeltas()
    assert send_hello(to="erin@example.com").status_code == 202
    failed = "hello to @example.com: ConnectionRefusedError at attempt 1"
    assert audit(AuditEventType.MAIL_FAILED) == [failed]
    assert deltas("authproject_mails_total", result="failed") == 1
    assert deltas("authproject_mails_total", result="sent") == 0
    assert [r.getMessage() for r in caplog.records if r.name == "accounts.mail"] == [
        "Mail hello to @example.com given up: ConnectionRefusedError at attempt 1"
    ]


def test_a_mail_that_cannot_be_rendered_is_given_up_at_once_and_the_request_still_answers(
    mail_templates,
):
    (mail_templates / "hello.txt").unlink()
    assert send_hello(to="gina@example.com").status_code == 202
    given_up = ["hello to @example.com: TemplateDoesNotExist while rendering"]
    assert audit(AuditEventType.MAIL_FAILED) == given_up


def test_a_hung_smtp_server_is_given_up_after_email_timeout(mail_templates, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_TIMEOUT = 1
    with silent_smtp_server() as port:
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        started = time.monotonic()
        assert send_hello(to="frank@example.com").status_code == 202
        took = time.monotonic() - started
    assert 1 <= took < 3, took
    assert audit(AuditEventType.MAIL_FAILED) == [
        "hello to @example.com: SMTPServerDisconnected (TimeoutError) at attempt 1"
    ]
