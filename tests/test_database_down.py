"""A database that does not answer: a real failure, not a mock.

The app runs in a fresh process whose DATABASE_URL names a database that cannot be reached: a
PostgreSQL port nothing listens on, or an SQLite file in a folder that does not exist. Health names
the database, the API answers 503 JSON, and the admin answers an HTML 503 rather than a 500.
"""

import json
import subprocess
import sys

import pytest

from .helpers import BASE_DIR, free_port

PROBE = """
import json, django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.test import Client
client = Client(raise_request_exception=False)
out = {}
for name, method, path, body in [
    ("health", "get", "/api/health/", None),
    ("login", "post", "/api/auth/login/", {"username": "alice", "password": "x"}),
    ("admin", "get", "/admin/", None),  # with a session cookie: the session is looked up
    ("admin_login", "post", "/admin/login/", "username=root&password=x"),
]:
    if name == "admin":
        client.cookies["sessionid"] = "a" * 32
    if isinstance(body, dict):
        kwargs = {"data": json.dumps(body), "content_type": "application/json"}
    elif body:
        kwargs = {"data": body, "content_type": "application/x-www-form-urlencoded"}
    else:
        kwargs = {}
    response = getattr(client, method)(path, **kwargs)
    out[name] = {"status": response.status_code, "type": response.get("Content-Type", ""),
                 "body": response.content.decode(errors="replace")}
from prometheus_client import REGISTRY
out["database_errors"] = REGISTRY.get_sample_value("authproject_database_errors_total")
print(json.dumps(out))
"""

UNREACHABLE = {
    "postgresql-closed-port": lambda: f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
    "sqlite-missing-folder": lambda: f"sqlite:///{BASE_DIR / 'no-such-folder' / 'db.sqlite3'}",
}


@pytest.fixture(scope="module", params=UNREACHABLE, ids=list(UNREACHABLE))
def answers(request) -> dict:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "authproject.settings",
        "DATABASE_URL": UNREACHABLE[request.param](),
        "CACHE_URL": "locmemcache://",
        "LOG_LEVEL": "CRITICAL",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=False,
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_health_answers_503_naming_the_database(answers):
    health = answers["health"]
    assert health["status"] == 503, health
    body = json.loads(health["body"])
    assert body["code"] == "service_unavailable"
    assert body["database"] == "error" and body["cache"] == "ok"


def test_the_api_answers_503_json(answers):
    login = answers["login"]
    assert login["status"] == 503, login
    assert json.loads(login["body"])["code"] == "service_unavailable"


def test_each_answer_that_found_the_database_down_is_counted(answers):
    assert answers["database_errors"] == 4  # health, the API's login, the admin's two pages


@pytest.mark.parametrize("page", ["admin", "admin_login"])
def test_the_admin_answers_an_html_503_not_a_500(answers, page):
    answer = answers[page]
    assert answer["status"] == 503, answer
    assert answer["type"].startswith("text/html")
    assert "Service unavailable" in answer["body"]
