"""Deployment fixtures: the production set-up, started once for the whole package.

- two app servers, each a `make serve` process of its own (migrate, collectstatic, gunicorn with
  authproject/gunicorn.conf.py, WhiteNoise), DEBUG off, with the production variables of the README;
- nginx (Debian's, `make test` installs it) terminating TLS with a certificate made here, in front of
  both (upstream round robin), plus plain http that the app redirects, plus the demo SPA on another
  https origin of the same site;
- one database and one cache for both: PostgreSQL and Redis when DATABASE_URL and CACHE_URL name
  them (a database ``<name>_deploy_<pid>`` beside the configured one, dropped afterwards). Otherwise
  the two instances share a temporary SQLite file but each has its own local-memory cache, and the
  tests that need a shared cache and database skip, saying so.

Everything listens on free loopback ports. Chromium is the e2e tests' (Debian's, via Playwright).
"""

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchmarks.servers import BASE_DIR, Client, Nginx, Serve, free_ports, make_certificate, wait_for_port

from ..e2e.conftest import chromium  # noqa: F401 - the e2e tests' Chromium fixture
from ..helpers import PASSWORD, fresh_postgres_database

DATABASE_URL = os.environ.get("DATABASE_URL", "")
CACHE_URL = os.environ.get("CACHE_URL", "")
POSTGRES = DATABASE_URL.startswith(("postgres://", "postgresql://"))
SHARED = POSTGRES and CACHE_URL.startswith("redis://")
HSTS_SECONDS = 31536000
METRICS_TOKEN = secrets.token_urlsafe(32)

needs_shared_services = pytest.mark.skipif(
    not SHARED,
    reason="needs a database and a cache shared by both instances: "
    "DATABASE_URL=postgres://... and CACHE_URL=redis://...",
)
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="needs PostgreSQL: DATABASE_URL=postgres://...")


def pytest_collection_modifyitems(items):
    """Mark everything here ``deploy``: ``pytest -m "not deploy"`` runs the rest without nginx."""
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.deploy)


@pytest.fixture(autouse=True)
def _fast_hasher_and_empty_cache():
    """Replaces the suite's autouse fixture: these tests must not clear a cache the servers share."""


def server_environment(**values: str) -> dict[str, str]:
    """This process's environment without Django's, pytest's or make's own variables, plus ``values``
    (mail printed: EMAIL_URL is consolemail:// unless given)."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "PYTEST_", "MAKE", "MFLAGS"))
    }
    return {
        **inherited,
        "DJANGO_ENV_FILE": "",  # never the checkout's development .env
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "LOG_LEVEL": "WARNING",
        "EMAIL_URL": "consolemail://",
        **values,
    }


@pytest.fixture(scope="package")
def static_root(tmp_path_factory) -> Path:
    """One STATIC_ROOT for every instance here: collectstatic copies the files once."""
    return tmp_path_factory.mktemp("static")


@pytest.fixture(scope="package")
def database_url(tmp_path_factory):
    """A fresh database for the deployment: never the one pytest-django tests in."""
    if POSTGRES:
        with fresh_postgres_database(f"deploy_{os.getpid()}") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('deploy') / 'db.sqlite3'}"


@dataclass
class Deployment:
    """The running set-up: its origins, certificate, instances, and the servers' environment."""

    origin: str  # https, through nginx
    http_origin: str  # plain http, through nginx
    demo_origin: str  # the demo SPA, https, through nginx
    certificate: Path
    instances: list[Serve]
    environment: dict[str, str]
    database_url: str
    nginx_error_log: Path
    users: list[str] = field(default_factory=list)

    def client(self, *, page: bool = False) -> Client:
        """A new https client (a new device); ``page``: it sends the demo's Origin, as the SPA does."""
        return Client(self.origin, self.certificate, self.demo_origin if page else None)

    def manage(self, *args: str, **extra: str) -> str:
        """A manage.py command against the deployment's database, with the servers' environment."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env={**self.environment, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def new_user(self) -> str:
        """A user registered through the API; its username (the password is PASSWORD)."""
        username = f"user{len(self.users)}_{secrets.token_hex(3)}"
        answer = self.client().request(
            "POST",
            "/api/auth/register/",
            {"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert answer.status == 201, answer.body
        self.users.append(username)
        return username

    def ensure_running(self) -> None:
        """Start again any instance that a test stopped."""
        for instance in self.instances:
            if not instance.running:
                instance.start()


@pytest.fixture(scope="package")
def deployment(tmp_path_factory, database_url, static_root):
    """nginx with TLS before two `make serve` instances and the demo page; see the module docstring."""
    root = tmp_path_factory.mktemp("deployment")
    certificate, key = make_certificate(root)
    names = ("https", "http", "demo", "demo_backend", "a", "b")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    origin, demo_origin = f"https://localhost:{ports['https']}", f"https://localhost:{ports['demo']}"
    environment = server_environment(
        # The README's production environment (Deployment), for these hosts and ports.
        DJANGO_ALLOWED_HOSTS="localhost",
        DATABASE_URL=database_url,
        CACHE_URL=CACHE_URL or "locmemcache://",
        CORS_ALLOWED_ORIGINS=demo_origin,
        CSRF_TRUSTED_ORIGINS=origin,
        NUM_PROXIES="1",
        TRUST_X_FORWARDED_PROTO="1",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS=str(HSTS_SECONDS),
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        WEB_CONCURRENCY="2",
        METRICS_TOKEN=METRICS_TOKEN,
        STATIC_ROOT=str(static_root),
        # Every test client is 127.0.0.1: the per-IP limits would count the whole suite as one client.
        LOGIN_IP_THROTTLE_RATE="10000/min",
        REGISTER_THROTTLE_RATE="10000/hour",
        PASSWORD_RESET_THROTTLE_RATE="10000/hour",
        # The deployment's own password-check slots, shared by its two instances as on one machine:
        # the default directory is every process's on this machine (other checkouts' servers and
        # tests), whose checks would take the slot and make a login here a 429 by chance.
        PASSWORD_CHECK_SLOT_DIR=str(root / "password-checks"),
    )
    logs = root / "logs"
    logs.mkdir()
    # One after the other: the second one's migrate finds nothing left to do.
    instances = [Serve(name, ports[name], environment, logs).start() for name in ("a", "b")]
    demo_log = logs / "demo.log"
    with demo_log.open("w") as output:
        demo = subprocess.Popen(
            [sys.executable, "demo/serve.py", "--port", str(ports["demo_backend"]), "--api", f"{origin}/api"],
            cwd=BASE_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(ports["demo_backend"], demo, demo_log)
    (root / "nginx").mkdir()
    nginx = Nginx(
        root / "nginx",
        https_port=ports["https"],
        http_port=ports["http"],
        demo_port=ports["demo"],
        demo_backend_port=ports["demo_backend"],
        certificate=certificate,
        key=key,
    ).start(instances)
    try:
        yield Deployment(
            origin=origin,
            http_origin=f"http://localhost:{ports['http']}",
            demo_origin=demo_origin,
            certificate=certificate,
            instances=instances,
            environment=environment,
            database_url=database_url,
            nginx_error_log=root / "nginx" / "error.log",
        )
    finally:
        nginx.stop()
        demo.terminate()
        demo.wait(timeout=10)
        for instance in instances:
            instance.stop()


@pytest.fixture
def stack(deployment) -> Deployment:
    """The deployment with both instances running."""
    deployment.ensure_running()
    return deployment


@pytest.fixture(scope="package")
def admin_account(deployment) -> tuple[str, str]:
    """A superuser made the README's production way: createsuperuser --noinput with the password in
    DJANGO_SUPERUSER_PASSWORD; its username and password."""
    username, password = f"admin_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    deployment.manage(
        "createsuperuser",
        "--noinput",
        f"--username={username}",
        f"--email={username}@example.com",
        DJANGO_SUPERUSER_PASSWORD=password,
    )
    return username, password


@pytest.fixture
def browser_context(chromium):  # noqa: F811 - the fixture imported above
    """A fresh browser profile that accepts the tests' self-signed certificate."""
    context = chromium.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 720})
    yield context
    context.close()
