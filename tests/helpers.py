"""Helpers shared by the tests: the browser-like client, token and response checks, SQL counting.

Fixtures live in conftest.py; these are plain functions and classes, imported where used.
"""

import asyncio
import collections
import email
import email.policy
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import psycopg
import redis
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from rest_framework.test import APIClient

BASE_DIR = Path(__file__).resolve().parent.parent
# Every cache key of a test run starts with this prefix, of the run's own: conftest.py sets it for
# Django here and, through CACHE_KEY_PREFIX, for every server or command the tests start. Clearing
# the tests' keys (cache_clear_own_keys) then leaves the rest of a Redis database alone.
TEST_CACHE_KEY_PREFIX = f"authproject-test-{os.getpid()}"
# The run's own password-check slots (accounts.password_checks: files locked across the processes of
# a machine), so that no other run's logins on this machine take them: conftest.py sets it as
# above, here and for every server the tests start.
TEST_PASSWORD_CHECK_SLOT_DIR = os.path.join(tempfile.gettempdir(), f"{TEST_CACHE_KEY_PREFIX}-password-checks")
PASSWORD = "correct horse battery staple"
# Real user agents, for the device names made of them.
MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1"
)
TRANSACTION_CONTROL = (
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE SAVEPOINT",
    "ROLLBACK TO SAVEPOINT",
)


class BrowserClient(APIClient):
    """A test client that behaves like the SPA: real CSRF checks, the CSRF token from the API,
    the refresh token only ever in its cookie jar."""

    def __init__(self, **defaults):
        super().__init__(enforce_csrf_checks=True, **defaults)
        self.csrf_token = None

    def fetch_csrf(self) -> str:
        self.csrf_token = self.get("/api/auth/csrf/").json()["csrf_token"]
        return self.csrf_token

    def sign_in(self, username="alice", password=PASSWORD, **extra):
        return self.post(
            "/api/auth/login/", {"username": username, "password": password}, format="json", **extra
        )

    def refresh(self, **extra):
        headers = {"HTTP_X_CSRFTOKEN": self.csrf_token or self.fetch_csrf(), **extra}
        return self.post("/api/auth/refresh/", {}, format="json", **headers)

    def sign_out(self, **extra):
        headers = {"HTTP_X_CSRFTOKEN": self.csrf_token or self.fetch_csrf(), **extra}
        return self.post("/api/auth/logout/", {}, format="json", **headers)

    def bearer(self, access: str):
        self.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        return self

    @property
    def refresh_cookie(self) -> str | None:
        morsel = self.cookies.get("refresh_token")
        return morsel.value if morsel and morsel.value else None

    def set_refresh_cookie(self, value: str):
        self.cookies["refresh_token"] = value


class NativeClient(APIClient):
    """A client that is not a browser (a mobile app, a CLI, a server): no Origin, no Referer, no
    CSRF token, and the refresh token in the JSON body. Over HTTPS unless ``secure=False``."""

    def __init__(self, secure: bool = True, **defaults):
        super().__init__(enforce_csrf_checks=True, **defaults)
        self.secure = secure

    def sign_in(self, username="alice", password=PASSWORD, **extra):
        body = {"username": username, "password": password, "transport": "body"}
        return self.post("/api/auth/login/", body, format="json", secure=self.secure, **extra)

    def refresh(self, token: str, **extra):
        return self.post("/api/auth/refresh/", {"refresh": token}, format="json", secure=self.secure, **extra)

    def sign_out(self, token: str, **extra):
        return self.post("/api/auth/logout/", {"refresh": token}, format="json", secure=self.secure, **extra)


def claims(raw: str) -> dict:
    """A token's payload, read without checking anything (its signature is the server's business)."""
    return jwt.decode(raw, options={"verify_signature": False})


def jti(raw: str) -> str:
    """A token's ``jti`` claim."""
    return claims(raw)["jti"]


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    """The response is ``status`` with the one JSON error shape (and ``code`` when given)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert isinstance(body, dict)
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert isinstance(body.get("code"), str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body


def data_queries(captured) -> list[str]:
    """The SQL statements run, without transaction control (BEGIN, COMMIT, savepoints)."""
    return [
        q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(TRANSACTION_CONTROL)
    ]


def set_cookie_attributes(response, name="refresh_token") -> dict[str, str | bool]:
    """The attributes of the Set-Cookie header for ``name``, parsed from its text."""
    header = response.cookies[name].output(header="").strip()
    first, *rest = [part.strip() for part in header.split(";")]
    key, _, value = first.partition("=")
    attributes = {"name": key, "value": value}
    for part in rest:
        attr, sep, attr_value = part.partition("=")
        attributes[attr.lower()] = attr_value if sep else True
    return attributes


def public_half(private_pem: str) -> str:
    """The path of a PEM file holding the public half of the private key in ``private_pem``."""
    key = serialization.load_pem_private_key(Path(private_pem).read_bytes(), password=None)
    path = Path(private_pem).with_suffix(".pub.pem")
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(path)


def sign_with(private_pem: str, payload: dict, *, algorithm: str, headers: dict | None = None) -> str:
    """A token signed with the key in ``private_pem``, as someone holding that key could make it."""
    key = serialization.load_pem_private_key(Path(private_pem).read_bytes(), password=None)
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage_py(*args: str, unset=(), check: bool = False, **environment: str) -> subprocess.CompletedProcess:
    """``manage.py *args`` in a fresh process, so that settings.py reads the environment anew: this
    process's environment without the ``unset`` variables, plus ``environment``. Never the checkout's
    development .env, even with every DJANGO_* variable unset."""
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env["DJANGO_ENV_FILE"] = ""
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        check=check,
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _own_redis_keys() -> Iterator[tuple[redis.Redis, list[bytes]]]:
    """For each Redis server of the default cache (Django's RedisCache), a client and the keys there
    under the cache's KEY_PREFIX; nothing if the cache is not Redis."""
    from django.conf import settings
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    if not isinstance(caches["default"], RedisCache):
        return
    config = settings.CACHES["default"]
    prefix = config.get("KEY_PREFIX")
    assert prefix, "the cache has no KEY_PREFIX: the tests cannot tell their keys from others'"
    location = config["LOCATION"]
    # Django's RedisCache takes one URL, a list, or URLs separated by ',' or ';' (the first writes).
    for url in re.split("[;,]", location) if isinstance(location, str) else location:
        with redis.Redis.from_url(url) as client:
            # Django's keys are "<KEY_PREFIX>:<version>:<key>": the colon keeps "p1" from matching "p12".
            yield client, list(client.scan_iter(match=f"{prefix}:*", count=1000))


def cache_clear_own_keys() -> None:
    """Empty the tests' part of the default cache, as every test does before and after it runs: on
    Redis, only the keys under the tests' prefix (never FLUSHDB: the database may hold others' keys);
    a local-memory cache is this process's own, so all of it."""
    from django.core.cache import caches
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.locmem import LocMemCache
    from django.core.cache.backends.redis import RedisCache

    backend = caches["default"]
    if isinstance(backend, RedisCache):
        for client, keys in _own_redis_keys():
            if keys:
                client.delete(*keys)
    elif isinstance(backend, LocMemCache | DummyCache):
        backend.clear()
    else:
        raise NotImplementedError(
            f"The tests know how to clear only their own keys in Redis or local memory, not in {backend!r}."
        )


def cache_own_entries() -> list[tuple[object, object]]:
    """The tests' keys in the default cache with their values, raw: the local-memory cache's dict, or
    each Redis key under the tests' prefix with its value as Redis stores it."""
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    if isinstance(caches["default"], RedisCache):
        return [(key, client.dump(key)) for client, keys in _own_redis_keys() for key in keys]
    return list(caches["default"]._cache.items())  # LocMemCache's own dict


@contextmanager
def fresh_postgres_database(suffix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database ``<DATABASE_URL's name>_<suffix>`` on DATABASE_URL's
    server, dropped afterwards. Every database the tests make is named so: never a fixed name that
    another project on the server could be using."""
    configured = urlsplit(os.environ["DATABASE_URL"])
    name = f"{configured.path.lstrip('/')}_{suffix}"
    # The maintenance database: the configured one need not exist (pytest-django makes test_<name>).
    maintenance = configured._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield configured._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def served_database_url() -> str:
    """The URL of the database this test run uses (the test database, not the configured one)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def gunicorn_serving(
    *,
    workers: int = 2,
    threads: int = 1,
    config: bool = False,
    output: Path | None = None,
    **environment: str,
) -> Iterator[str]:
    """gunicorn serving the test database (the test needs ``transaction=True``) on a free loopback
    port, DEBUG off, with a fresh secret key, mail printed (EMAIL_URL) and ``environment``; yields
    its base URL. ``config``: with the repository's gunicorn.conf.py, as `make serve` runs it (the
    port and workers still from here); ``output``: a file that gets its stdout and stderr."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DATABASE_URL=served_database_url(),
        DJANGO_SETTINGS_MODULE="authproject.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        CACHE_URL=os.environ.get("CACHE_URL", "locmemcache://"),
        EMAIL_URL="consolemail://",
    )
    env.update(environment)
    bind = ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)]
    configured = ["-c", "authproject/gunicorn.conf.py"] if config else []
    sink = open(output, "wb") if output is not None else None  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *configured, "authproject.wsgi", *bind],
        cwd=BASE_DIR,
        env=env,
        stdout=sink or subprocess.DEVNULL,
        stderr=sink or subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/api/health/", timeout=5).read()
            break
        except OSError:  # refused, reset, or a first answer slow on a busy machine (TimeoutError)
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                said = Path(output).read_bytes() if sink else process.stderr.read()
                raise RuntimeError("gunicorn did not start:\n" + said.decode()[-3000:]) from None
            time.sleep(0.2)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        if sink is not None:
            sink.close()


def http_json(base: str, method: str, path: str, body: dict | None = None, access: str | None = None):
    """``(status, parsed JSON body or None)`` of one request to a served app (gunicorn_serving),
    with a JSON body and a Bearer token when given."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, method=method, data=data)
    request.add_header("Content-Type", "application/json")
    if access:
        request.add_header("Authorization", f"Bearer {access}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            content = response.read()
            return response.status, json.loads(content) if content else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Examples run by the property-based tests, printed at the end of the run (tests/conftest.py).
FUZZ_COUNTS: collections.Counter = collections.Counter()


def at_once(actions: list[Callable[[], object]]) -> list:
    """Run each action in its own thread, all released together by a barrier; their results in
    order, an exception in place of a result that raised (a 5xx raises in the test client). Each
    thread closes its own database connection."""
    from django.db import connection

    barrier = threading.Barrier(len(actions))
    results: list = [None] * len(actions)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = actions[i]()
        except Exception as e:  # noqa: BLE001 - returned for the test to report
            results[i] = e
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free loopback port, in a thread of its own; every message
    it receives is kept, parsed, in ``messages``. ``delay``: seconds it takes to accept each one."""

    def __init__(self, *, delay: float = 0):
        self.port = free_port()
        self.delay = delay
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (MAIL FROM, RCPT TO) of each message
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        """aiosmtpd's hook: keep the message, then accept it."""
        if self.delay:
            await asyncio.sleep(self.delay)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def start(self) -> "SmtpServer":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 30) -> list[email.message.EmailMessage]:
        """The messages, once there are ``count`` of them (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails arrived"
            time.sleep(0.05)
        return list(self.messages)


def mail_text(message: email.message.EmailMessage) -> str:
    """The plain-text body of a received mail, with the line ends Python writes."""
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def mail_html(message: email.message.EmailMessage) -> str | None:
    """The HTML body of a received mail, or None if it has none."""
    part = message.get_body(preferencelist=("html",))
    return part.get_content() if part is not None else None


def links_in(text: str) -> list[str]:
    """The links in a mail's text body, each on a line of its own."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith(("http://", "https://"))]


@contextmanager
def silent_smtp_server() -> Iterator[int]:
    """A port where a server takes connections and never answers (a hung mail server): the kernel
    completes each handshake into the listen backlog, and nothing ever reads or writes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def metric(name: str, **labels: str) -> float:
    """A sample's value in this process's Prometheus registry (0 for a series not yet there)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


class MetricDeltas:
    """``deltas = MetricDeltas(); ...; deltas("authproject_logins_total", result="ok")``: how much a
    sample grew since the object was made (the registry is the process's, shared by every test)."""

    def __init__(self):
        from prometheus_client import REGISTRY

        self.before = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect()
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return metric(name, **labels) - self.before.get((name, tuple(sorted(labels.items()))), 0.0)


@contextmanager
def signal_handlers_kept():
    """db_worker installs its own SIGINT/SIGTERM handlers; the test process gets its own back."""
    kept = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    try:
        yield
    finally:
        for number, handler in kept.items():
            signal.signal(number, handler)


def run_worker(*, until: float) -> None:
    """``manage.py db_worker --batch`` (what `make worker`'s accounts_worker runs, without its
    metrics port) in this process, again and again until no task is left waiting or ``until`` (a
    time.monotonic()) passes."""
    from django.core.management import call_command
    from django_tasks_db.models import DBTaskResult

    while time.monotonic() < until:
        with signal_handlers_kept():
            call_command(
                "db_worker", batch=True, interval=0, startup_delay=False, reload=False, verbosity=0
            )
        if not DBTaskResult.objects.filter(status="READY").exists():
            return
        time.sleep(0.05)
    raise AssertionError("tasks still waiting")


def second_factors_give(
    user, *, totp: str = "on", recovery_codes: int = 10, used_codes: int = 0, passkeys=("Laptop",)
) -> str:
    """Give ``user`` second factors as enrolment leaves them, made directly (``totp``: "on",
    "pending" or "off"; recovery codes as digests; passkeys by name, each with a public key); the
    TOTP secret, encrypted at rest, is returned so that a test can look for it where it must not be."""
    from django.utils import timezone

    from accounts.encryption import secret_encrypt
    from accounts.models import Passkey, RecoveryCode, TotpDevice

    secret = "JBSWY3DPEHPK3PXP" + secrets.token_hex(4).upper().translate(str.maketrans("0189", "ABCD"))
    now = timezone.now()
    if totp != "off":
        TotpDevice.objects.create(
            user=user, secret=secret_encrypt(secret), confirmed_at=now if totp == "on" else None
        )
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, digest=secrets.token_hex(32), used_at=now if number < used_codes else None)
        for number in range(recovery_codes)
    )
    for name in passkeys:
        Passkey.objects.create(
            user=user,
            name=name,
            credential_id=secrets.token_urlsafe(32),
            public_key=b"\xa5\x01\x02\x03&" + secrets.token_bytes(64),
            sign_count=3,
        )
    return secret


def process_group_stop(process: subprocess.Popen) -> None:
    """SIGTERM to a process started with ``start_new_session`` and its children (``make worker``
    and the worker under it), as a supervisor stops a worker: it finishes the task in hand, then
    exits; SIGKILL after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def throttle_window_fresh(*, seconds: int = 60, needed: float = 25.0) -> None:
    """Wait, if need be, for the next window of a ``seconds``-long limit: the app's limits count in
    fixed windows (accounts.throttles.CountingThrottle), so attempts on both sides of a window's
    end are counted apart, and a test that needs N attempts counted together must not straddle one.
    Returns at once if this window has ``needed`` seconds left."""
    left = seconds - time.time() % seconds
    if left < needed:
        time.sleep(left + 0.05)
