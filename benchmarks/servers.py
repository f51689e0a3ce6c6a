"""The pieces of a production deployment, run for real on loopback: `make serve` instances, nginx
terminating TLS in front of them, a certificate, and an https client.

Shared by the benchmarks (which import it as ``servers``: benchmarks/ is on their path when run as
scripts) and by the deployment tests in tests/deploy (as ``benchmarks.servers``). It imports nothing
from the project or the tests.
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parents[1]
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
PGBOUNCER = os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer")
STARTUP_TIMEOUT = 120  # `make serve` migrates and collects static files first; CI's machine is busy


def free_ports(count: int) -> list[int]:
    """``count`` different free loopback ports (all held open at once while they are chosen, so that
    the kernel cannot hand out one of them twice)."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = STARTUP_TIMEOUT) -> None:
    """Return once something accepts connections on ``port``; fail with the log if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as error:
            if process.poll() is not None or time.monotonic() > deadline:
                message = f"nothing listens on {port}; the log ({log}):\n{log.read_text()[-4000:]}"
                raise RuntimeError(message) from error
            time.sleep(0.1)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (and 127.0.0.1), made with the openssl command."""
    certificate, key = directory / "localhost.crt", directory / "localhost.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return certificate, key


MAKE_SERVE = ("make", "--no-print-directory", "serve")


class Serve:
    """One app server as `make serve` runs it (migrate, collectstatic, gunicorn), on its own port;
    ``command`` and ``cwd`` run another (benchmarks: an earlier checkout, another project)."""

    def __init__(
        self,
        name: str,
        port: int,
        environment: dict[str, str],
        log_dir: Path,
        *,
        command: tuple[str, ...] | list[str] = MAKE_SERVE,
        cwd: Path = BASE_DIR,
    ):
        self.name, self.port, self.log = name, port, log_dir / f"{name}.log"
        self.command, self.cwd = list(command), cwd
        self.environment = {**environment, "HOST": "127.0.0.1", "PORT": str(port)}
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://{self.address}"

    def start(self) -> "Serve":
        """Run the command in a process group of its own, and wait until gunicorn listens."""
        return self.launch().wait()

    def launch(self) -> "Serve":
        """Run the command in a process group of its own, without waiting (several start at once)."""
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that stop() reaches gunicorn and its workers, not only make
            )
        return self

    def wait(self) -> "Serve":
        """Return once gunicorn listens; fail with the log if the command ended first."""
        wait_for_port(self.port, self.process, self.log)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a server: gunicorn finishes the requests in flight."""
        if not self.running:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;  # one round-robin counter: requests alternate between the instances
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream app {{
        {servers}
        # As the README's example: idle HTTP/1.1 connections kept for reuse, each closed by nginx
        # before gunicorn's keepalive (5 s) would close it under a request in flight (a 502).
        keepalive 8;
        keepalive_timeout 4s;
    }}
    # What the README's nginx example sets, for both servers below.
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    # Which instance answered (the tests check it).
    add_header X-Upstream $upstream_addr always;

    server {{  # the API and the admin
        listen 127.0.0.1:{https_port} ssl;
        server_name localhost;
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        location / {{ proxy_pass http://app; }}
    }}
    server {{  # the same over plain http: the app redirects to https
        listen 127.0.0.1:{http_port};
        server_name localhost;
        # On the standard ports Host is the same for http and https; here the port differs, so the
        # app is told the https one to redirect to.
        location / {{
            proxy_pass http://app;
            proxy_set_header Connection "";  # a location's own proxy_set_header drops the inherited ones
            proxy_set_header Host $host:{https_port};
        }}
    }}
    server {{  # the demo SPA: another https origin on the same site
        listen 127.0.0.1:{demo_port} ssl;
        server_name localhost;
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        location / {{ proxy_pass http://127.0.0.1:{demo_backend_port}; }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground with its own prefix and configuration: never the system's."""

    def __init__(self, prefix: Path, **ports_and_paths):
        self.prefix, self.values = prefix, ports_and_paths
        self.process: subprocess.Popen | None = None

    def start(self, instances: list[Serve]) -> "Nginx":
        """Write the configuration for these upstream instances and start nginx."""
        servers = "\n        ".join(f"server {i.address} max_fails=0;" for i in instances)
        conf = self.prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=self.prefix, servers=servers, **self.values))
        log = self.prefix / "error.log"
        log.touch()
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(conf), "-e", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.values["https_port"], self.process, log)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


PGBOUNCER_INI = """
[databases]
; PgBouncer 1.18 refuses the startup parameter "options", in which the app sends its
; statement_timeout (DATABASE_TIMEOUT): it is ignored below and set on each server connection here.
{name} = host={host} port={server_port} dbname={name} connect_query='SET statement_timeout = {timeout_ms}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {prefix}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
ignore_startup_parameters = options
{extra}
"""


class PgBouncer:
    """PgBouncer in the foreground, transaction pooling, with its own configuration and port, in front
    of one PostgreSQL database: never the system's service. ``url`` is the database's URL through it."""

    def __init__(self, prefix: Path, database_url: str, port: int, *, pool_size: int = 10, extra: str = ""):
        self.prefix, self.port, self.pool_size, self.extra = prefix, port, pool_size, extra
        self.server = urlsplit(database_url)
        self.url = self.server._replace(netloc=f"{self.server.username}@127.0.0.1:{port}").geturl()
        self.log = prefix / "pgbouncer.log"
        self.process: subprocess.Popen | None = None

    def start(self, *, statement_timeout_ms: int = 5000) -> "PgBouncer":
        """Write the configuration and start pgbouncer; return once it listens."""
        user = self.server.username
        (self.prefix / "userlist.txt").write_text(f'"{user}" ""\n')  # auth_type trust: the name only
        ini = self.prefix / "pgbouncer.ini"
        ini.write_text(
            PGBOUNCER_INI.format(
                name=self.server.path.lstrip("/"),
                host=self.server.hostname,
                server_port=self.server.port or 5432,
                port=self.port,
                prefix=self.prefix,
                pool_size=self.pool_size,
                timeout_ms=statement_timeout_ms,
                extra=self.extra,
            )
        )
        # pgbouncer refuses to run as root: it then reads its files and becomes nobody.
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with self.log.open("w") as output:
            command = [PGBOUNCER, *as_user, str(ini)]
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, self.log)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def pgbouncer_version() -> str:
    """e.g. "PgBouncer 1.18.0"."""
    result = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True, check=True, timeout=30)
    return result.stdout.splitlines()[0]


class Answer:
    """An HTTP answer: status, headers (all values of each), the JSON body if any."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def upstream(self) -> str | None:
        """The instance that answered (nginx's X-Upstream)."""
        return self.headers.get("X-Upstream")

    def json(self):
        return json.loads(self.body)


class Client:
    """A browser-like https client with a cookie jar, trusting the tests' certificate."""

    def __init__(self, origin: str, certificate: Path | None = None, page_origin: str | None = None):
        self.origin, self.page_origin = origin, page_origin
        self.context = ssl.create_default_context(cafile=str(certificate)) if certificate else None
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> Answer:
        host, port = self.origin.split("://")[1].split(":")
        if self.origin.startswith("https"):
            connection = http.client.HTTPSConnection(host, int(port), context=self.context, timeout=60)
        else:
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.page_origin:
            all_headers["Origin"] = self.page_origin
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        try:
            connection.request(method, path, None if body is None else json.dumps(body), all_headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            connection.close()
        for header in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def fetch_csrf(self) -> str:
        self.csrf = self.request("GET", "/api/auth/csrf/").json()["csrf_token"]
        return self.csrf

    def sign_in(self, username: str, password: str) -> Answer:
        return self.request("POST", "/api/auth/login/", {"username": username, "password": password})

    def refresh(self) -> Answer:
        return self.request("POST", "/api/auth/refresh/", {}, {"X-CSRFToken": self.csrf or self.fetch_csrf()})

    def me(self, access: str) -> Answer:
        return self.request("GET", "/api/users/me/", headers={"Authorization": f"Bearer {access}"})
