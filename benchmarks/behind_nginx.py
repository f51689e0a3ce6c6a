"""Two app servers behind nginx against one, under wrk: login, refresh and me over https.

The deployment of tests/deploy, for load: `make serve` instances (gunicorn with
authproject/gunicorn.conf.py, WhiteNoise, DEBUG off) sharing one PostgreSQL and one Redis, and nginx
terminating TLS before them. Two nginx processes run side by side, one with both instances
upstream and one with the first instance only, so that each round measures both set-ups back to
back; rounds alternate (one, two, one, two, ...) so that whatever else the machine does falls on
both alike. The figure is the ratio of requests per second, two instances to one.

    .venv/bin/python benchmarks/behind_nginx.py --output /tmp/nginx.md
    .venv/bin/python benchmarks/behind_nginx.py --duration 3 --rounds 1     # a quick look

Needs wrk and nginx from Debian's packages (`make test` installs both), PostgreSQL and Redis:
``BENCH_DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432/authproject_bench_nginx, created
afresh) and ``BENCH_CACHE_URL`` (default redis://127.0.0.1:6379/8, emptied first).

- login: POST /api/auth/login/ (Argon2 hashes the password each time; the throttles are raised
  for the benchmark, as every request comes from one address);
- refresh: POST /api/auth/refresh/ with the cookie and CSRF header, each wrk thread following its own
  rotating cookie chain (benchmarks/wrk/refresh_chain.lua);
- me: GET /api/users/me/ with a Bearer access token (the session check, from the Redis cache).
"""

import argparse
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.deploy.servers import NGINX, Client, Nginx, Serve, free_ports, make_certificate  # noqa: E402

WRK = os.environ.get("WRK", "/usr/bin/wrk")
WRK_SCRIPTS = ROOT / "benchmarks" / "wrk"
PASSWORD = "benchmark passphrase 1"
ENDPOINTS = ("login", "refresh", "me")


def reset_database(url: str) -> None:
    """Drop and create the benchmark database."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(urlsplit(url)._replace(path="/postgres").geturl(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def flush_cache(url: str) -> None:
    """Empty the benchmark's Redis database."""
    import redis

    redis.Redis.from_url(url).flushdb()


def version(command: list[str]) -> str:
    """The first line a command prints about its version."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def machine() -> str:
    """CPU model, cores, memory, OS, and the versions that matter here."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo).group(1)
    memory_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    import django
    import gunicorn
    import psycopg

    with psycopg.connect(os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)) as connection:
        postgres = connection.execute("SHOW server_version").fetchone()[0]
    return (
        f"{model}, {os.cpu_count()} cores, {memory_kb / 2**20:.0f} GiB RAM; Linux {platform.release()}; "
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {gunicorn.__version__}, "
        f"{version([NGINX, '-v'])}, {version([WRK, '--version']).split(' [')[0]}, PostgreSQL {postgres}, "
        f"{version(['redis-server', '--version']).split(' sha=')[0]}"
    )


DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/authproject_bench_nginx"


def wrk(url: str, *, duration: int, connections: int, script: str | None, args=(), headers=()) -> dict:
    """One bounded wrk run: requests per second, latency percentiles, and the count of errors."""
    command = [WRK, "-t", str(connections), "-c", str(connections), "-d", f"{duration}s", "--latency"]
    command += ["--timeout", "30s"]  # a login waits for Argon2 behind the others: slow is not lost
    command += [part for header in headers for part in ("-H", header)]
    if script:
        command += ["-s", str(WRK_SCRIPTS / script)]
    command += [url, *(["--", *args] if args else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s*([\d.]+)", output).group(1)),
        "p50": re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1),
        "p99": re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1),
        # Answers other than 2xx, and requests that got none (socket errors and timeouts).
        "failed": (int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(int(n) for n in errors.groups()) if errors else 0),
    }


def main() -> None:
    """Start the set-up, run the rounds, print the table (and write it to --output)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per endpoint and set-up (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections = threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY per instance (default 2)")
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    options = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    cache_url = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/8")
    reset_database(database_url)
    flush_cache(cache_url)
    root = Path(tempfile.mkdtemp(prefix="behind_nginx_"))
    certificate, key = make_certificate(root)
    ports = iter(free_ports(10))
    https = {"two": next(ports), "one": next(ports)}
    page_origin = "https://localhost:5173"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MAKE", "MFLAGS"))},
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": database_url,
        "CACHE_URL": cache_url,
        "CORS_ALLOWED_ORIGINS": page_origin,
        "NUM_PROXIES": "1",
        "TRUST_X_FORWARDED_PROTO": "1",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "WEB_CONCURRENCY": str(options.workers),
        "STATIC_ROOT": str(root / "static"),
        "LOG_LEVEL": "WARNING",
        # One client address sends everything: the throttles would measure themselves.
        "LOGIN_THROTTLE_RATE": "100000000/min",
        "LOGIN_IP_THROTTLE_RATE": "100000000/min",
        "REGISTER_THROTTLE_RATE": "100000000/hour",
    }
    (root / "logs").mkdir()
    instances = [Serve(name, next(ports), environment, root / "logs").start() for name in ("a", "b")]
    proxies = {}
    for name, upstream in (("two", instances), ("one", instances[:1])):
        (root / name).mkdir()
        proxies[name] = Nginx(
            root / name,
            https_port=https[name],
            http_port=next(ports),
            demo_port=next(ports),
            demo_backend_port=next(ports),
            certificate=certificate,
            key=key,
        ).start(upstream)
    try:
        results = measure(options, https, certificate, page_origin, root)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for instance in instances:
            instance.stop()
    report(options, results)


def measure(options, https: dict[str, int], certificate: Path, page_origin: str, root: Path) -> dict:
    """The wrk rounds; returns {endpoint: {set-up: [run, ...]}}."""
    origin = f"https://localhost:{https['two']}"
    client = Client(origin, certificate, page_origin)
    username = "bench"
    account = {"username": username, "email": "bench@example.com", "password": PASSWORD}
    assert client.request("POST", "/api/auth/register/", account).status == 201
    login_body = json.dumps({"username": username, "password": PASSWORD})
    results = {endpoint: {"one": [], "two": []} for endpoint in ENDPOINTS}
    for endpoint in ENDPOINTS:
        for _ in range(options.rounds):
            for setup in ("one", "two"):
                base = f"https://localhost:{https[setup]}"
                if endpoint == "login":
                    run = wrk(
                        f"{base}/api/auth/login/",
                        duration=options.duration,
                        connections=options.connections,
                        script="post_json.lua",
                        args=[login_body],
                    )
                elif endpoint == "me":
                    access = client.sign_in(username, PASSWORD).json()["access"]
                    run = wrk(
                        f"{base}/api/users/me/",
                        duration=options.duration,
                        connections=options.connections,
                        script=None,
                        headers=[f"Authorization: Bearer {access}"],
                    )
                else:
                    run = refresh_run(
                        options,
                        base=base,
                        origin=origin,
                        certificate=certificate,
                        page_origin=page_origin,
                        root=root,
                        username=username,
                    )
                results[endpoint][setup].append(run)
                print(endpoint, setup, run, flush=True)
                time.sleep(1)
    return results


def refresh_run(options, *, base, origin, certificate, page_origin, root, username) -> dict:
    """A wrk run of refresh chains: one new session per wrk thread, its first token in a file."""
    tokens = []
    for _ in range(options.connections):
        signer = Client(origin, certificate, page_origin)
        assert signer.sign_in(username, PASSWORD).status == 200
        tokens.append(signer.cookies["refresh_token"])
    csrf = signer.fetch_csrf()  # one CSRF token and cookie serve every chain
    csrf_cookie = signer.cookies["csrftoken"]
    token_file = root / "refresh_tokens.txt"
    token_file.write_text("\n".join(tokens) + "\n")
    return wrk(
        f"{base}/api/auth/refresh/",
        duration=options.duration,
        connections=options.connections,
        script="refresh_chain.lua",
        args=[str(token_file), csrf_cookie, csrf, page_origin],
    )


def report(options, results: dict) -> None:
    """The markdown section for benchmarks/RESULTS.md."""
    lines = [
        f"- Machine: {machine()}",
        f"- Command: `python benchmarks/behind_nginx.py --duration {options.duration} "
        f"--rounds {options.rounds} --connections {options.connections} --workers {options.workers}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "| endpoint | one instance, req/s (rounds) | two instances, req/s (rounds) | ratio two/one "
        "| p50 one / two (last round) | p99 one / two (last round) | failed requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for endpoint, runs in results.items():
        one = sum(r["rps"] for r in runs["one"]) / len(runs["one"])
        two = sum(r["rps"] for r in runs["two"]) / len(runs["two"])
        failed = sum(r["failed"] for setup in runs.values() for r in setup)
        rounds = {
            setup: ", ".join(f"{r['rps']:.1f}" for r in setup_runs) for setup, setup_runs in runs.items()
        }
        lines.append(
            f"| {endpoint} | {one:.1f} ({rounds['one']}) | {two:.1f} ({rounds['two']}) | {two / one:.2f}x "
            f"| {runs['one'][-1]['p50']} / {runs['two'][-1]['p50']} "
            f"| {runs['one'][-1]['p99']} / {runs['two'][-1]['p99']} | {failed} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if options.output:
        options.output.write_text(text)


if __name__ == "__main__":
    main()
