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
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import _common
from _common import PASSWORD
from servers import NGINX, Client, Nginx, Serve, free_ports, make_certificate

ENDPOINTS = ("login", "refresh", "me")
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/authproject_bench_nginx"


def machine() -> str:
    """CPU model, cores, memory, OS, and the versions that matter here."""
    import django
    import gunicorn

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    cache_url = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/8")
    return (
        f"{_common.machine()}; Python {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {gunicorn.__version__}, {_common.version_line([NGINX, '-v'])}, {_common.wrk_version()}, "
        f"{_common.postgresql_version(database_url)}, {_common.redis_version(cache_url)}"
    )


def wrk(url: str, *, duration: int, connections: int, script: str | None, args=(), headers=()) -> dict:
    """One bounded wrk run (benchmarks/_common.py); ``failed`` counts answers other than 2xx/3xx and
    requests that got none (socket errors and timeouts)."""
    result = _common.wrk(
        url, duration=duration, connections=connections, script=script, script_args=args, headers=headers
    )
    result["failed"] = result["non_2xx"] + result["socket_errors"]
    return result


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
    _common.database_reset(database_url)
    _common.cache_flush(cache_url)
    root = Path(tempfile.mkdtemp(prefix="behind_nginx_"))
    certificate, key = make_certificate(root)
    ports = iter(free_ports(10))
    https = {"two": next(ports), "one": next(ports)}
    page_origin = "https://localhost:5173"
    environment = _common.app_environment(
        database_url=database_url,
        cache_url=cache_url,
        secret=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="localhost",
        CORS_ALLOWED_ORIGINS=page_origin,
        NUM_PROXIES="1",
        TRUST_X_FORWARDED_PROTO="1",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        WEB_CONCURRENCY=str(options.workers),
        STATIC_ROOT=str(root / "static"),
    )
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
            f"| {runs['one'][-1]['p50']:.2f} / {runs['two'][-1]['p50']:.2f} ms "
            f"| {runs['one'][-1]['p99']:.2f} / {runs['two'][-1]['p99']:.2f} ms | {failed} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if options.output:
        options.output.write_text(text)


if __name__ == "__main__":
    main()
