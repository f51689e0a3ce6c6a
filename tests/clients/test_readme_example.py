"""The README's Python client examples ("### The Python client") run as printed, with the standard
library and authclient alone (no keyring), against the service in gunicorn: only the server's
address is replaced. They fail when the README's blocks stop working."""

import os
import re
import stat
import subprocess
import sys
import time

import pyotp
import pytest
from authclient import AuthClient

from accounts.models import Session

from ..helpers import BASE_DIR, PASSWORD, gunicorn_serving, http_json

pytestmark = pytest.mark.django_db(transaction=True)

PRINTED_ADDRESS = "https://auth.example.com"


def readme_example(number: int = 0) -> str:
    """The Python block ``number`` (0: the first) under the README's "### The Python client"."""
    text = (BASE_DIR / "README.md").read_text()
    section = text[text.index("### The Python client") : text.index("\n## Endpoints")]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)[number]


@pytest.fixture
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), gunicorn_serving(workers=1) as base:
        yield base


def run_example(code: str, *, base: str, home, typed: str = "") -> subprocess.CompletedProcess:
    """``code`` in a new interpreter that finds authclient as an installed copy would be found, with
    ``home`` as the home directory, the test server's address for the printed one, and ``typed``
    as what the person types."""
    assert PRINTED_ADDRESS in code
    return subprocess.run(
        [sys.executable, "-c", code.replace(PRINTED_ADDRESS, base)],
        input=typed,
        cwd=home,
        env={**os.environ, "HOME": str(home), "PYTHONPATH": str(BASE_DIR / "clients" / "python")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_readme_example_signs_in_keeps_the_token_in_a_600_file_resumes_and_signs_out(server, tmp_path):
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert http_json(server, "POST", "/api/auth/register/", body)[0] == 201
    example = readme_example()
    token_file = tmp_path / ".myapp-refresh-token"

    # First run, stopped before its logout: it signs in and leaves the refresh token in the file.
    assert example.rstrip().endswith("client.logout()")
    first = run_example(example.rstrip().removesuffix("client.logout()"), base=server, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "'username': 'alice'" in first.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    session = Session.objects.get(user__username="alice")
    assert session.revoked_at is None

    # Second run, as printed: it resumes the stored session (no second login) and signs out.
    second = run_example(example, base=server, home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "logged_out"  # on_logout=print
    assert "'username': 'alice'" in second.stdout
    assert not token_file.exists()
    [resumed] = Session.objects.filter(user__username="alice")  # no second login...
    assert resumed.pk == session.pk and resumed.revoked_at is not None  # ...and the logout ended it
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_the_readme_second_factor_example_asks_for_the_code_and_signs_in(server, tmp_path):
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert http_json(server, "POST", "/api/auth/register/", body)[0] == 201
    with AuthClient(server) as client:
        client.login("alice", PASSWORD)
        app = pyotp.TOTP(client.start_totp()["secret"])
        client.confirm_totp(app.now())

    # The next step's code: the server took the current one, and allows one step of drift.
    run = run_example(readme_example(1), base=server, home=tmp_path, typed=app.at(time.time() + 30) + "\n")

    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("Signed in as alice\n")
    assert Session.objects.filter(user__username="alice").latest("created_at").amr_values == ["pwd", "otp"]
