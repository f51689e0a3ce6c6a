"""The mail worker's metrics (`make worker`, manage.py accounts_worker): served on a port of its own to
METRICS_TOKEN only, answered by the app's /metrics view; no port without a token; never in gunicorn's
PROMETHEUS_MULTIPROC_DIR. Here in this process, on a real socket; tests/deploy/test_prometheus.py
has a real Prometheus scrape a real `make worker`."""

import http.client
import logging
import socket
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from accounts.mail import mail_send_later
from accounts.metrics import mail_counted, metrics_serve

from .helpers import MetricDeltas, free_port, signal_handlers_kept

METRICS_TOKEN = "worker-metrics-token-for-tests-0123456789"
DATABASE_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def scrape(port: int, authorization: str | None = None, path: str = "/metrics", method: str = "GET"):
    """One request to the metrics server: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Authorization": authorization} if authorization else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def sample(text: str, line_start: str) -> float:
    """The value of the one exposition line that starts with ``line_start``."""
    [line] = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.rpartition(" ")[2])


@pytest.fixture
def served(settings):
    """The worker's metrics server on a free loopback port, METRICS_TOKEN set; its port."""
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    port = free_port()
    server = metrics_serve(host="127.0.0.1", port=port)
    yield port
    server.shutdown()
    server.server_close()


def test_the_worker_serves_the_mail_counters_to_the_metrics_token(served):
    status, headers, body = scrape(served, f"Bearer {METRICS_TOKEN}")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    assert "no-store" in headers["Cache-Control"]
    sent = sample(body, 'authproject_mails_total{result="sent"}')
    failed = sample(body, 'authproject_mails_total{result="failed"}')

    mail_counted(result="sent")
    mail_counted(result="sent")

    _, _, body = scrape(served, f"Bearer {METRICS_TOKEN}")
    assert sample(body, 'authproject_mails_total{result="sent"}') == sent + 2
    assert sample(body, 'authproject_mails_total{result="failed"}') == failed


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong", f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}", METRICS_TOKEN],
)
def test_the_worker_answers_401_without_the_right_token_as_the_app_does(served, client, authorization):
    status, headers, body = scrape(served, authorization)
    headers_given = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    app = client.get("/metrics", **headers_given)  # the app's own /metrics, for comparison

    assert (status, body) == (app.status_code, app.content.decode())
    assert status == 401 and "authproject_mails_total" not in body
    assert headers["WWW-Authenticate"] == app["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_the_worker_answers_only_get_metrics(served):
    assert scrape(served, f"Bearer {METRICS_TOKEN}", path="/")[0] == 404
    assert scrape(served, f"Bearer {METRICS_TOKEN}", path="/metrics/x")[0] == 404
    assert scrape(served, f"Bearer {METRICS_TOKEN}", method="POST")[0] == 405


# --- manage.py accounts_worker ----------------------------------------------------------------------
def accounts_worker(**options) -> None:
    """`make worker`'s command in this process, once through the queue (--batch)."""
    with signal_handlers_kept():
        call_command("accounts_worker", batch=True, interval=0, startup_delay=False, reload=False, **options)


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_command_serves_while_it_sends_and_closes_the_port_when_it_stops(settings, caplog):
    settings.TASKS = DATABASE_BACKEND
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    settings.ACCOUNTS_WORKER_METRICS_PORT = port = free_port()
    with transaction.atomic():
        for i in range(3):
            mail_send_later(to=f"user{i}@example.com", template="test_mail")
    deltas = MetricDeltas()
    caplog.set_level(logging.INFO, logger="accounts.worker")

    accounts_worker()

    assert f"Serving the worker's metrics on http://127.0.0.1:{port}/metrics" in caplog.text
    assert deltas("authproject_mails_total", result="sent") == 3
    assert not DBTaskResult.objects.filter(status="READY").exists()
    assert refused(port)  # stopped with the worker


@pytest.mark.django_db(transaction=True)
def test_without_a_metrics_token_the_worker_opens_no_port(settings, caplog):
    settings.TASKS = DATABASE_BACKEND
    settings.ACCOUNTS_WORKER_METRICS_PORT = port = free_port()
    caplog.set_level(logging.INFO, logger="accounts.worker")
    with socket.socket() as listener:  # the port taken: a server trying it would fail the command
        listener.bind(("127.0.0.1", port))
        listener.listen()
        accounts_worker()
    assert "METRICS_TOKEN is unset: the worker's metrics are not served." in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_port_in_use_stops_the_worker_at_start_naming_the_variable(settings):
    settings.TASKS = DATABASE_BACKEND
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    settings.ACCOUNTS_WORKER_METRICS_PORT = port = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        started = time.monotonic()
        with pytest.raises(CommandError, match=f"127.0.0.1:{port} .*WORKER_METRICS_PORT"):
            accounts_worker()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("variable", ["PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"])
def test_the_worker_refuses_gunicorns_multiprocess_directory(settings, monkeypatch, tmp_path, variable):
    """prometheus-client entered multiprocess mode on import if either was set (even empty): the
    worker's counts would land among gunicorn's files. `make worker` unsets both."""
    settings.TASKS = DATABASE_BACKEND
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    monkeypatch.setenv(variable, str(tmp_path))
    with pytest.raises(CommandError, match=f"{variable} is set"):
        accounts_worker()
    assert list(tmp_path.iterdir()) == []
