"""What the HTTP benchmarks share: their databases, the app server's environment, app servers run as
`make serve` runs them, wrk runs and their figures, and the machine they ran on.

The scripts import it as ``_common`` (benchmarks/ is on their path when run as a script); app servers
start, and HTTP set-up (sign in, CSRF) goes, through servers.py (shared with tests/deploy).
"""

import os
import platform
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from servers import Serve, free_ports

ROOT = Path(__file__).resolve().parent.parent

WRK = os.environ.get("WRK", "/usr/bin/wrk")
WRK_SCRIPTS = ROOT / "benchmarks" / "wrk"
PASSWORD = "benchmark passphrase 1"
PAGE_ORIGIN = "http://localhost:5173"  # a trusted origin by default (CORS list = CSRF trusted origins)

# One client address sends every request: at the default rates the throttles would measure themselves.
THROTTLES_RAISED = {
    "LOGIN_THROTTLE_RATE": "100000000/min",
    "LOGIN_USERNAME_THROTTLE_RATE": "100000000/min",
    "LOGIN_IP_THROTTLE_RATE": "100000000/min",
    "REGISTER_THROTTLE_RATE": "100000000/hour",
    "LOGIN_GLOBAL_THROTTLE_RATE": "off",
    "PASSWORD_CHECK_SLOTS": "0",
}


# --- databases ------------------------------------------------------------------------------------
def _server_url(url: str) -> tuple[str, str]:
    """The maintenance database's URL on the same server, and the database's name."""
    parts = urlsplit(url)
    return parts._replace(path="/postgres").geturl(), parts.path.lstrip("/")


def database_create(url: str) -> None:
    """Create the PostgreSQL database if it does not exist (SQLite files create themselves)."""
    if not url.startswith("postgres"):
        return
    import psycopg

    server, name = _server_url(url)
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def database_reset(url: str) -> None:
    """Drop and create the PostgreSQL database: a run starts from empty tables."""
    import psycopg

    server, name = _server_url(url)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def cache_flush(url: str) -> None:
    """Empty the benchmark's Redis database."""
    import redis

    redis.Redis.from_url(url).flushdb()


# --- app servers ----------------------------------------------------------------------------------
def app_environment(*, database_url: str, cache_url: str, secret: str, **variables: str) -> dict[str, str]:
    """A production app server's environment (DEBUG off, the throttles raised) on these services; the
    caller's DJANGO_*, JWT_* and make variables are left out, ``variables`` added."""
    inherited = ("DJANGO_", "JWT_", "MAKE", "MFLAGS")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    environment.update(
        DJANGO_SETTINGS_MODULE="authproject.settings",
        DATABASE_URL=database_url,
        CACHE_URL=cache_url,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secret,
        EMAIL_URL="consolemail://",  # DEBUG off needs one (accounts.E018); no benchmark sends mail
        LOG_LEVEL="WARNING",
        **THROTTLES_RAISED,
    )
    environment.update(variables)
    return environment


def descendants_cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of every process below ``pid`` (gunicorn's workers under its
    master; under `make serve`, the master and its workers), from /proc."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread (a gthread worker's) that ended since the listing
            continue
        for child in children:
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # gone since the listing
                continue
            total += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)
            total += round(descendants_cpu_seconds(int(child)) * os.sysconf("SC_CLK_TCK"))
    return total / os.sysconf("SC_CLK_TCK")


def make_serve(name: str, *, cwd: Path, environment: dict, log_dir: Path, workers: int) -> Serve:
    """`make serve` in a checkout (migrate, collectstatic, gunicorn with authproject/gunicorn.conf.py),
    with ``workers`` sync workers, on a free port; started."""
    environment = {**environment, "WEB_CONCURRENCY": str(workers)}
    return Serve(name, free_ports(1)[0], environment, log_dir, cwd=cwd).start()


# --- wrk ------------------------------------------------------------------------------------------
def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}[unit]


def wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    script: str | None = None,
    script_args: tuple[str, ...] | list[str] = (),
    headers: tuple[str, ...] | list[str] = (),
    timeout: str = "30s",
) -> dict:
    """One wrk run, bounded in time, with one thread per connection: requests per second, latency
    percentiles (ms), requests, answers other than 2xx/3xx (``non_2xx``), socket errors (connect,
    read, write, timeout: requests that got no answer), and what wrk printed (``output``)."""
    command = [WRK, "-t", str(connections), "-c", str(connections), "-d", f"{duration:g}s", "--latency"]
    command += ["--timeout", timeout]  # a login waits for Argon2 behind the others: slow is not lost
    command += [part for header in headers for part in ("-H", header)]
    if script:
        command += ["-s", str(WRK_SCRIPTS / script)]
    command += [url, *(["--", *script_args] if script_args else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s*([\d.]+)", output).group(1)),
        "p50": _milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1)),
        "p99": _milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "output": output,
    }


# --- RESULTS.md -----------------------------------------------------------------------------------
def write_section(path: Path, section: str) -> None:
    """Put the section into the file: in place of the section with the same heading (the section's
    first line) if there is one (up to the next "## " heading), else at the end; the rest is kept."""
    heading = section.splitlines()[0].rstrip()
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        text = text.rstrip("\n") + ("\n\n\n" if text.strip() else "") + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        following = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n\n" + following if following else "")
    path.write_text(text)


# --- the machine ----------------------------------------------------------------------------------
def checkout() -> str:
    """The commit measured, "-dirty" when the working tree has changes."""
    describe = ["git", "describe", "--always", "--dirty", "--abbrev=7"]
    return subprocess.run(describe, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def version_line(command: list[str]) -> str:
    """The first line a command prints about its version."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def wrk_version() -> str:
    """e.g. "wrk debian/4.1.0-3+b2"."""
    return version_line([WRK, "-v"]).split(" [")[0]


def machine() -> str:
    """CPU model, cores, memory and kernel."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = m.group(1) if (m := re.search(r"model name\s*:\s*(.*)", cpuinfo)) else platform.processor()
    memory_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return f"{model}, {os.cpu_count()} cores, {memory_kb / 2**20:.0f} GiB RAM; Linux {platform.release()}"


def postgresql_version(url: str) -> str:
    """The server's version, e.g. "PostgreSQL 15.20 (Debian 15.20-0+deb12u1)"."""
    import psycopg

    with psycopg.connect(url) as connection:
        return "PostgreSQL " + connection.execute("SHOW server_version").fetchone()[0]


def redis_version(url: str) -> str:
    """The server's version, e.g. "Redis 7.0.15"."""
    import redis

    return "Redis " + redis.Redis.from_url(url).info("server")["redis_version"]


@contextmanager
def fresh_server(
    name: str, *, database_url: str, cache_url: str, workers: int, **variables: str
) -> Iterator[Serve]:
    """`make serve` of this checkout on a PostgreSQL database dropped and created first and a Redis
    database emptied first, with app_environment's settings and ``variables``; stopped afterwards."""
    database_reset(database_url)
    cache_flush(cache_url)
    environment = app_environment(
        database_url=database_url, cache_url=cache_url, secret=secrets.token_urlsafe(50), **variables
    )
    with tempfile.TemporaryDirectory() as logs:
        server = make_serve(name, cwd=ROOT, environment=environment, log_dir=Path(logs), workers=workers)
        try:
            yield server
        finally:
            server.stop()
