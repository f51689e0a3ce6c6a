"""The development checkout: the .env that `make run` writes is read by manage.py alone (never by
gunicorn, `make serve` or the tests), the environment wins over it, and HOST and PORT mean an
address and a port for every make target that serves."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from .helpers import BASE_DIR, free_port, manage_py

PRINT_SETTINGS = "from django.conf import settings; print(settings.DEBUG, settings.LOGGING['root']['level'])"


def fresh_environment(**variables: str) -> dict[str, str]:
    """This process's environment without Django's and make's variables (a developer's shell), plus
    ``variables``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "MAKE", "MFLAGS", "LOG_LEVEL", "HOST", "PORT"))
    }
    return {**inherited, **variables}


def settings_under_manage_py(**variables: str) -> str:
    """``DEBUG LOG_LEVEL`` as `manage.py shell` sees them, from a developer's shell plus ``variables``."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env=fresh_environment(**variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_manage_py_reads_the_file_django_env_file_names_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "development.env"
    env_file.write_text("# a comment\nDJANGO_DEBUG=1\nLOG_LEVEL=ERROR\n")

    assert settings_under_manage_py(DJANGO_ENV_FILE=str(env_file)) == "True ERROR"
    assert settings_under_manage_py(DJANGO_ENV_FILE=str(env_file), DJANGO_DEBUG="0") == "False ERROR"
    assert settings_under_manage_py(DJANGO_ENV_FILE="") == "False INFO"


def test_manage_py_reads_the_checkouts_env_so_commands_run_as_printed(checkout_env_file):
    assert settings_under_manage_py() == "True INFO"
    result = subprocess.run(
        [sys.executable, "manage.py", "list_sessions", "--help"],
        cwd=BASE_DIR,
        env=fresh_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # not accounts.E004: DEBUG is on


def test_the_tests_and_gunicorns_import_of_the_settings_ignore_the_checkouts_env(checkout_env_file):
    # manage.py as the tests start it, also with every DJANGO_* variable of this process unset.
    unset = [name for name in os.environ if name.startswith("DJANGO_")] + ["LOG_LEVEL"]
    tests = manage_py("shell", "-v", "0", "-c", PRINT_SETTINGS, unset=unset)
    assert tests.stdout.strip() == "False INFO", tests.stderr
    # The settings imported without manage.py, as pytest-django and gunicorn (authproject.wsgi) do.
    imported = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {PRINT_SETTINGS}"],
        cwd=BASE_DIR,
        env=fresh_environment(DJANGO_SETTINGS_MODULE="authproject.settings"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert imported.stdout.strip() == "False INFO"


def test_make_serve_ignores_the_checkouts_env_and_refuses_the_development_key(checkout_env_file, tmp_path):
    result = subprocess.run(
        ["make", "--no-print-directory", "serve", f"PORT={free_port()}"],
        cwd=BASE_DIR,
        env=fresh_environment(
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", STATIC_ROOT=str(tmp_path / "static")
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "accounts.E004" in result.stderr  # DEBUG stayed off: the .env's DJANGO_DEBUG=1 was not read
    assert "Applying" not in result.stdout  # refused before migrating


def test_make_run_serves_on_host_and_port_with_the_env_it_wrote(checkout_env_file, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=BASE_DIR,
        env=fresh_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: runserver's reloader child stops with it
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "make run did not answer within 60 s"
                time.sleep(0.3)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("run", ["manage.py runserver 0.0.0.0:9001"]),
        ("demo", ["--api http://localhost:9001/api", "manage.py runserver 0.0.0.0:9001"]),
        ("serve", ["HOST=0.0.0.0 PORT=9001 exec"]),
    ],
)
def test_host_is_the_address_and_port_the_port_for_every_target_that_serves(target, expected):
    result = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", target],
        cwd=BASE_DIR,
        env=fresh_environment(HOST="0.0.0.0", PORT="9001"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for text in expected:
        assert text in result.stdout


def test_make_serve_binds_loopback_unless_told_otherwise():
    """gunicorn never faces clients by default: without HOST, `make serve` binds 127.0.0.1."""
    result = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "serve"],
        cwd=BASE_DIR,
        env=fresh_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "HOST=127.0.0.1 PORT=8000 exec" in result.stdout
