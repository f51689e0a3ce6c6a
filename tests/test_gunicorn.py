"""The service as deployed: gunicorn worker processes sharing the test database over real HTTP.

Several worker processes stand in for several app servers: a refresh race between them must still
leave exactly one usable chain, and an unsafe configuration must stop gunicorn from serving.
"""

import json
import os
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import Session

from .helpers import PASSWORD, at_once, gunicorn_serving, jti, served_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DATABASE_URL=served_database_url(),
        DJANGO_SETTINGS_MODULE="authproject.settings",
        EMAIL_URL="consolemail://",  # DEBUG off needs a mail server (accounts.E018); mail is not tested here
        **extra,
    )
    return env


class Browserless:
    """A tiny HTTP client that keeps cookies itself (urllib would not send Secure ones over http)."""

    def __init__(self, base: str):
        self.base = base
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw_headers, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, raw_headers, content = error.code, error.headers, error.read()
        for header in raw_headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return status, json.loads(content) if content else None

    def refresh(self):
        return self.request("POST", "/api/auth/refresh/", {}, {"X-CSRFToken": self.csrf})

    def sign_in(self, username: str):
        self.csrf = self.request("GET", "/api/auth/csrf/")[1]["csrf_token"]
        return self.request("POST", "/api/auth/login/", {"username": username, "password": PASSWORD})


@pytest.fixture
def gunicorn():
    """Two gunicorn workers on a free loopback port, serving the test database."""
    with gunicorn_serving(workers=2) as base:
        yield base


def test_refresh_race_across_worker_processes_leaves_one_chain(gunicorn):
    first = Browserless(gunicorn)
    account = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert first.request("POST", "/api/auth/register/", account)[0] == 201  # hashed by the server
    status, _ = first.sign_in("alice")
    assert status == 200
    cookies, csrf = dict(first.cookies), first.csrf
    barrier = threading.Barrier(16)
    results: list[tuple[int, str | None]] = []

    def race():
        client = Browserless(gunicorn)
        client.cookies, client.csrf = dict(cookies), csrf
        barrier.wait()
        status, _ = client.refresh()
        results.append((status, client.cookies.get("refresh_token")))

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(status for status, _ in results) == [200] * 16
    assert len({token for _, token in results}) == 1, "every racer must hold the same current token"
    session = Session.objects.get(user__username="alice")
    assert session.revoked_at is None
    assert jti(cookies["refresh_token"]) == session.previous_jti  # rotated exactly once...
    assert jti(results[0][1]) == session.refresh_jti  # ...and everyone holds the result
    survivor = Browserless(gunicorn)
    survivor.cookies, survivor.csrf = {**cookies, "refresh_token": results[0][1]}, csrf
    assert survivor.refresh()[0] == 200


def test_gunicorn_refuses_to_serve_with_the_development_key():
    result = subprocess.run(
        [sys.executable, "-c", "import authproject.wsgi"],
        check=False,
        cwd=BASE_DIR,
        env=_env(DJANGO_DEBUG="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "accounts.E004" in result.stderr


def test_the_wsgi_application_loads_with_a_real_secret():
    result = subprocess.run(
        [sys.executable, "-c", "import authproject.wsgi"],
        check=False,
        cwd=BASE_DIR,
        env=_env(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=secrets.token_urlsafe(50)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert settings.ROOT_URLCONF == "authproject.urls"


# --- Metrics and logs as `make serve` runs them (gunicorn.conf.py) -------------------------------
def _get(base: str, path: str, headers: dict | None = None) -> tuple[int, str, dict]:
    request = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def _failed_login(base: str, username: str) -> int:
    body = json.dumps({"username": username, "password": "wrong"}).encode()
    request = urllib.request.Request(
        base + "/api/auth/login/", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def _sample(families, name: str, **labels) -> float:
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_are_summed_across_worker_processes(tmp_path):
    """16 failed logins at once, served by both workers: /metrics (whichever worker answers it)
    counts all 16, and each worker's own file holds a part of them."""
    token, directory = secrets.token_urlsafe(32), tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"stale")  # an earlier run's: emptied at start
    with gunicorn_serving(
        workers=2,
        config=True,
        output=tmp_path / "gunicorn.log",
        METRICS_TOKEN=token,
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        LOGIN_GLOBAL_THROTTLE_RATE="off",
        PASSWORD_CHECK_SLOTS="0",  # 16 at once, each counted
    ) as base:
        statuses = at_once([lambda i=i: _failed_login(base, f"nobody{i}") for i in range(16)])
        assert statuses == [401] * 16
        assert _get(base, "/metrics")[0] == 401
        status, text, _ = _get(base, "/metrics", {"Authorization": f"Bearer {token}"})

    assert status == 200
    families = list(text_string_to_metric_families(text))
    assert _sample(families, "authproject_logins_total", result="failed", method="password") == 16
    count = "authproject_request_duration_seconds_count"
    assert _sample(families, count, route="accounts:login", method="POST", status="401") == 16
    per_worker = []
    for path in directory.glob("counter_*.db"):
        merged = multiprocess.MultiProcessCollector.merge([str(path)], accumulate=False)
        per_worker.append(_sample(merged, "authproject_logins_total", result="failed"))
    assert sorted(per_worker)[-2] > 0, f"one worker served every login: {per_worker}"
    assert sum(per_worker) == 16


def test_gunicorn_logs_json_lines_and_access_lines_that_share_the_request_id(tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn_serving(workers=1, config=True, output=log) as base:
        status, _, headers = _get(base, "/api/users/me/")  # 401, which Django logs
    request_id = headers["X-Request-ID"]

    assert status == 401
    lines = log.read_text().splitlines()
    [app] = [json.loads(line) for line in lines if line.startswith("{") and request_id in line]
    assert (app["logger"], app["message"]) == ("django.request", "Unauthorized: /api/users/me/")
    assert app["request_id"] == request_id and app["timestamp"].endswith("Z")
    [access] = [line for line in lines if '"GET /api/users/me/ HTTP/1.1" 401' in line]
    assert access.endswith(f" {request_id}")
    assert access.startswith("[")  # the time, as gunicorn writes it: [04/Dec/2026:13:51:54 +0000]
