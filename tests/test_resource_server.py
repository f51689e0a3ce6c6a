"""examples/resource_server, a separate service, verifies the project's access tokens from the JWKS
alone: the project under gunicorn (ES256, issuer and audience set) and the example in its own
process, over real HTTP."""

import base64
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest

from accounts.keys import kid_of

from .helpers import PASSWORD, claims, free_port, sign_with
from .test_gunicorn import Browserless, _env

BASE_DIR = Path(__file__).resolve().parent.parent
EXAMPLE = BASE_DIR / "examples" / "resource_server" / "app.py"
ISSUER, AUDIENCE = "https://auth.example.com", "https://api.example.com"
pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def serving(command: list[str], env: dict, ready_url: str):
    """Run ``command`` until the block ends, once ``ready_url`` answers (any HTTP status)."""
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(ready_url, timeout=5).read()
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{command[:3]} did not start:\n" + process.stderr.read().decode()[-3000:])
            time.sleep(0.2)
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def whoami(base: str, token: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(base + "/whoami")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def project_and_example(key_file):
    """The project (ES256, one gunicorn worker) and the example verifying against its JWKS."""
    project_port, example_port = free_port(), free_port()
    project, example = f"http://127.0.0.1:{project_port}", f"http://127.0.0.1:{example_port}"
    env = _env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        JWT_ALGORITHM="ES256",
        JWT_SIGNING_KEYS=key_file("ES256"),
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
    )
    gunicorn = [sys.executable, "-m", "gunicorn", "authproject.wsgi", "--workers", "1"]
    with serving([*gunicorn, "--bind", f"127.0.0.1:{project_port}"], env, project + "/api/health/"):
        jwks_url = project + "/.well-known/jwks.json"
        command = [sys.executable, str(EXAMPLE), "--jwks-url", jwks_url, "--port", str(example_port)]
        command += ["--issuer", ISSUER, "--audience", AUDIENCE]
        with serving(command, _env(), example + "/"):
            yield project, example


def test_the_example_accepts_real_access_tokens_and_refuses_the_rest(project_and_example, key_file):
    project, example = project_and_example
    client = Browserless(project)
    account = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert client.request("POST", "/api/auth/register/", account)[0] == 201
    status, body = client.sign_in("alice")
    assert status == 200
    access = body["access"]

    status, body = whoami(example, access)
    assert status == 200, body
    assert body == {"user_id": claims(access)["user_id"], "session_id": claims(access)["sid"]}
    refreshed = client.refresh()[1]["access"]  # a later token, after rotation, too
    assert whoami(example, refreshed)[0] == 200

    kid = {"kid": jwt.get_unverified_header(access)["kid"]}
    stranger = key_file("ES256", "stranger")
    own_kid = {"kid": kid_of(Path(stranger).read_bytes(), "ES256")}
    expired = {**claims(access), "exp": int(time.time()) - 60}
    refused = {
        "no token": None,
        "forged with the real kid": sign_with(stranger, claims(access), algorithm="ES256", headers=kid),
        "forged with its own kid": sign_with(stranger, claims(access), algorithm="ES256", headers=own_kid),
        "forged without a kid": sign_with(stranger, claims(access), algorithm="ES256"),
        "tampered": tamper(access),
        "expired": sign_with(key_file("ES256"), expired, algorithm="ES256", headers=kid),
        "another issuer": sign_with(
            key_file("ES256"),
            {**claims(access), "iss": "https://evil.example"},
            algorithm="ES256",
            headers=kid,
        ),
        "the refresh token": client.cookies["refresh_token"],
    }
    answers = {name: whoami(example, token)[0] for name, token in refused.items()}
    assert answers == dict.fromkeys(refused, 401)


def tamper(raw: str) -> str:
    """``raw`` with another user id in its payload and the original signature."""
    head, _, rest = raw.partition(".")
    _, _, signature = rest.partition(".")
    payload = {**claims(raw), "user_id": "1" + claims(raw)["user_id"]}
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{signature}"
