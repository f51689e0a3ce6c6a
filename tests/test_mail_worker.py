"""Two real `make worker` processes on one PostgreSQL database send every queued mail exactly once:
each claims a task with SELECT ... FOR UPDATE SKIP LOCKED and marks it running in the same
transaction, so the other never sees it as ready. The second test holds a claim open and shows
another worker's query passing over it (it fails without the row lock, and hangs into
lock_timeout without SKIP LOCKED). The last: `make worker` serves the mails it sent on its own
metrics port, outside gunicorn's PROMETHEUS_MULTIPROC_DIR even when the environment names it."""

import http.client
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from django_tasks_db.models import DBTaskResult

from accounts.mail import mail_send_later
from accounts.models import AuditEvent, AuditEventType

from .helpers import BASE_DIR, SmtpServer, free_port, process_group_stop, served_database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks that skip (SKIP LOCKED) are PostgreSQL's"
    ),
]

MAILS = 40
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def make_worker(log: Path, **environment: str) -> subprocess.Popen:
    """`make worker` on the test database, DEBUG off as in production, in a process group of its own
    (so that SIGTERM reaches the worker, not only make); its output goes to ``log``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "PYTEST_", "MAKE", "MFLAGS", "EMAIL_", "TASKS_"))
    }
    with log.open("w") as output:
        return subprocess.Popen(
            ["make", "--no-print-directory", "worker"],
            cwd=BASE_DIR,
            env={
                **inherited,
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DATABASE_URL": served_database_url(),
                "LOG_LEVEL": "INFO",
                **environment,
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def test_two_make_worker_processes_send_every_queued_mail_exactly_once(settings, tmp_path):
    settings.TASKS = DATABASE_BACKEND
    # A server that takes a while over each mail, so that both workers are busy at once.
    server = SmtpServer(delay=0.1).start()
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [make_worker(log, EMAIL_URL=f"smtp://127.0.0.1:{server.port}") for log in logs]
    try:
        for log, worker in zip(logs, workers, strict=True):
            wait_for_line(log, "Starting worker", worker)
        with transaction.atomic():  # all queued at the commit, together
            for i in range(MAILS):
                mail_send_later(to=f"user{i}@example.com", template="test_mail")

        server.wait_for(MAILS, timeout=120)
        time.sleep(3)  # time for a second copy of any mail to arrive
    finally:
        for worker in workers:
            process_group_stop(worker)
        server.stop()

    recipients = sorted(rcpt for _, rcpts in server.envelopes for rcpt in rcpts)
    assert recipients == sorted(f"user{i}@example.com" for i in range(MAILS))  # each exactly once
    assert all(m["Subject"] == "Test mail from authproject" for m in server.messages)
    tasks = list(DBTaskResult.objects.values_list("status", "worker_ids"))
    assert {status for status, _ in tasks} == {"SUCCESSFUL"}
    assert all(len(worker_ids) == 1 for _, worker_ids in tasks)  # each task claimed once
    assert len({worker_ids[0] for _, worker_ids in tasks}) == 2, "one worker did all the work"
    assert AuditEvent.objects.filter(type=AuditEventType.MAIL_SENT).count() == MAILS


def test_a_task_being_claimed_is_skipped_by_another_worker_not_waited_for_or_taken_twice(settings):
    """The claim itself, which the test above cannot always catch (the race lasts milliseconds):
    while one worker's claiming transaction holds the first ready task, another's query for a
    ready task (the worker's own, ``get_locked``) answers the next one at once."""
    settings.TASKS = DATABASE_BACKEND
    with transaction.atomic():
        for i in range(2):
            mail_send_later(to=f"user{i}@example.com", template="test_mail")
    held, done = threading.Event(), threading.Event()
    claimed = {}

    def first_worker():
        try:
            with transaction.atomic():
                claimed["first"] = DBTaskResult.objects.ready().get_locked().pk
                held.set()
                done.wait(timeout=30)
        finally:
            held.set()
            connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    try:
        assert held.wait(timeout=30)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '5s'")  # a wait for the lock fails, not hangs
            claimed["second"] = DBTaskResult.objects.ready().get_locked().pk
    finally:
        done.set()
        thread.join(timeout=30)
    assert claimed["first"] != claimed["second"]


def test_make_worker_serves_the_mails_it_sent_on_its_own_port_outside_gunicorns_directory(
    settings, tmp_path
):
    settings.TASKS = DATABASE_BACKEND
    token, port = secrets.token_urlsafe(32), free_port()
    gunicorns = tmp_path / "gunicorn-metrics"  # as /etc/authproject.env might name it for make serve
    gunicorns.mkdir()
    log = tmp_path / "worker.log"
    worker = make_worker(
        log,
        EMAIL_URL="consolemail://",
        METRICS_TOKEN=token,
        WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(gunicorns),
    )
    try:
        wait_for_line(log, f"Serving the worker's metrics on http://127.0.0.1:{port}/metrics", worker)
        with transaction.atomic():
            for i in range(3):
                mail_send_later(to=f"user{i}@example.com", template="test_mail")
        deadline = time.monotonic() + 60
        while DBTaskResult.objects.exclude(status="SUCCESSFUL").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        body = answer.read().decode()
        connection.close()
    finally:
        process_group_stop(worker)

    assert answer.status == 200, body
    assert 'authproject_mails_total{result="sent"} 3.0' in body.splitlines()
    assert 'authproject_mails_total{result="failed"} 0.0' in body.splitlines()
    assert list(gunicorns.iterdir()) == []  # nothing written among gunicorn's files
