"""Production settings: the proxy variables, DATABASE_TIMEOUT, `check --deploy` with the README's
environment, the ASGI refusal, the admin's HTML errors, and `make superuser`. The deployment itself,
behind nginx, is proved in tests/deploy."""

import ipaddress
import os
import re
import secrets
import subprocess
import sys

import pytest

from authproject.postgresql.base import DatabaseWrapper

from .helpers import BASE_DIR, assert_json_error, manage_py
from .test_settings import load_settings

README = BASE_DIR / "README.md"


def readme_production_environment() -> dict[str, str]:
    """The variables the README's Deployment section exports, as the shell reads them; the secret key
    is left to the reader there ("..."), so a generated one stands in."""
    text = README.read_text()
    block = re.search(r"```sh\n(.*?)```", text[text.index("## Deployment") :], re.DOTALL).group(1)
    exports = "\n".join(line for line in block.splitlines() if line.startswith("export "))
    names = re.findall(r"(?:^export |\s)(\w+)=", exports, re.MULTILINE)
    printed = subprocess.run(
        ["bash", "-c", exports + "\n" + "".join(f'printf "%s\\0" "${name}";' for name in names)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    ).stdout
    environment = dict(zip(names, printed.split("\0")[:-1], strict=True))
    assert environment["DJANGO_SECRET_KEY"] == "..."
    return {**environment, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


def test_check_deploy_passes_with_the_readmes_production_environment():
    environment = readme_production_environment()
    assert {"TRUST_X_FORWARDED_PROTO", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"} <= set(environment)
    inherited = [name for name in os.environ if name in environment or name.startswith("DJANGO_")]
    result = manage_py("check", "--deploy", "--fail-level", "WARNING", unset=inherited, **environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_the_proxy_variables():
    """The test above can fail: the same environment without HSTS and the redirect warns."""
    environment = readme_production_environment()
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        environment.pop(name)
    inherited = [name for name in os.environ if name.startswith(("DJANGO_", "SECURE_"))]
    result = manage_py("check", "--deploy", "--fail-level", "WARNING", unset=inherited, **environment)
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_the_readmes_app_server_binds_a_private_address():
    assert ipaddress.ip_address(readme_production_environment()["HOST"]).is_private


def test_check_warns_when_the_readmes_environment_binds_every_interface():
    """The README's environment with HOST=0.0.0.0: proxy headers trusted on a public bind (W030),
    from manage.py check and from the app server's own import of the WSGI application."""
    environment = {**readme_production_environment(), "HOST": "0.0.0.0"}
    inherited = [name for name in os.environ if name in environment or name.startswith("DJANGO_")]
    result = manage_py("check", "--deploy", "--fail-level", "WARNING", unset=inherited, **environment)
    assert result.returncode != 0
    assert "accounts.W030" in result.stderr
    served = subprocess.run(
        [sys.executable, "-c", "import authproject.wsgi"],
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k not in inherited},
            **environment,
            "DATABASE_URL": "sqlite:///:memory:",
            "CACHE_URL": "locmemcache://",
            "EMAIL_URL": "consolemail://",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 0, served.stderr  # a warning: the server still starts
    assert "accounts.W030" in served.stderr


@pytest.mark.parametrize("entry_point", ["authproject.asgi", "authproject.wsgi"])
def test_app_server_entry_points_refuse_unsafe_settings(entry_point):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    refused = subprocess.run(
        [sys.executable, "-c", f"import {entry_point}"],
        cwd=BASE_DIR,
        env={**environment, "DJANGO_DEBUG": "0"},  # with the development key
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "accounts.E004" in refused.stderr
    served = subprocess.run(
        [sys.executable, "-c", f"import {entry_point}"],
        cwd=BASE_DIR,
        env={
            **environment,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "EMAIL_URL": "consolemail://",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert served.returncode == 0, served.stderr


@pytest.mark.parametrize("entry_point", ["authproject.asgi", "authproject.wsgi"])
def test_app_server_entry_points_refuse_debug_off_without_a_mail_server(entry_point):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EMAIL_"))}
    refused = subprocess.run(
        [sys.executable, "-c", f"import {entry_point}"],
        cwd=BASE_DIR,
        env={**environment, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "accounts.E018" in refused.stderr


def test_csrf_trusted_origins_adds_to_the_cors_allowlist(monkeypatch):
    found = load_settings(
        monkeypatch,
        CORS_ALLOWED_ORIGINS="https://app.example.com",
        CSRF_TRUSTED_ORIGINS="https://api.example.com",
    )
    assert found["CORS_ALLOWED_ORIGINS"] == ["https://app.example.com"]
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://app.example.com", "https://api.example.com"]


def test_database_timeout_bounds_connecting_statements_and_every_wait_on_postgresql(monkeypatch):
    database = load_settings(
        monkeypatch, DATABASE_URL="postgres://app@db.internal:5432/app", DATABASE_TIMEOUT="3"
    )["DATABASES"]["default"]
    assert database["ENGINE"] == "authproject.postgresql"
    assert database["OPTIONS"] == {
        "connect_timeout": 3,
        "options": "-c statement_timeout=3000",
        "deadline": 3,
        "server_side_binding": True,
        "prepare_threshold": 5,
    }


def test_database_timeout_defaults_to_5_seconds_and_0_leaves_djangos_backend(monkeypatch):
    monkeypatch.delenv("DATABASE_TIMEOUT", raising=False)
    url = "postgres://app@db.internal:5432/app"
    assert load_settings(monkeypatch, DATABASE_URL=url)["DATABASES"]["default"]["OPTIONS"]["deadline"] == 5
    unbounded = load_settings(monkeypatch, DATABASE_URL=url, DATABASE_TIMEOUT="0")["DATABASES"]["default"]
    assert unbounded["ENGINE"] == "django.db.backends.postgresql"
    assert "deadline" not in unbounded["OPTIONS"] and "options" not in unbounded["OPTIONS"]


def test_prepared_statements_are_on_for_postgresql_unless_turned_off(monkeypatch):
    url = "postgres://app@db.internal:5432/app"
    options = load_settings(monkeypatch, DATABASE_URL=url)["DATABASES"]["default"]["OPTIONS"]
    assert (options["server_side_binding"], options["prepare_threshold"]) == (True, 5)
    database = load_settings(monkeypatch, DATABASE_URL=url, DATABASE_PREPARED_STATEMENTS="0")["DATABASES"][
        "default"
    ]
    assert "server_side_binding" not in database["OPTIONS"] and "prepare_threshold" not in database["OPTIONS"]


def test_database_timeout_is_sqlites_busy_timeout(monkeypatch):
    database = load_settings(monkeypatch, DATABASE_URL="sqlite:///x.sqlite3", DATABASE_TIMEOUT="2")[
        "DATABASES"
    ]
    assert database["default"]["OPTIONS"]["timeout"] == 2


def test_the_deadline_option_never_reaches_libpq():
    settings = {
        "NAME": "app", "USER": "app", "PASSWORD": "", "HOST": "db", "PORT": "", "CONN_MAX_AGE": 0,
        "OPTIONS": {"deadline": 3, "connect_timeout": 3}, "TIME_ZONE": None, "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False, "CONN_HEALTH_CHECKS": True,
    }  # fmt: skip
    params = DatabaseWrapper(settings).get_connection_params()
    assert "deadline" not in params
    assert params["connect_timeout"] == 3


@pytest.mark.django_db
def test_the_admins_404_is_an_html_page_and_the_apis_stays_json(admin_client):
    page = admin_client.get("/admin/nowhere/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
    assert_json_error(admin_client.get("/api/nowhere/"), 404, "not_found")
    assert_json_error(admin_client.get("/nowhere/"), 404, "not_found")


def test_make_superuser_makes_the_first_admin_without_questions(checkout_env_file, tmp_path):
    # checkout_env_file: the .env that make superuser writes when missing, removed afterwards.
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MAKE", "MFLAGS"))}
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = subprocess.run(
        ["make", "--no-print-directory", "superuser"],
        cwd=BASE_DIR,
        env={
            **environment,
            "DATABASE_URL": database,
            "DJANGO_SUPERUSER_USERNAME": "root",
            "DJANGO_SUPERUSER_EMAIL": "root@example.com",
            "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = manage_py(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.contrib.auth.models import User; print(list(User.objects.values_list("
        "'username', 'is_superuser')))",
        unset=["DJANGO_DEBUG"],
        DATABASE_URL=database,
        DJANGO_DEBUG="1",
    )
    assert listed.stdout.strip() == "[('root', True)]", listed.stderr
