"""What does signing with a private key cost? Refresh and GET /api/users/me/ under HS256 (the
baseline), ES256 and RS256, in one run, over HTTP against gunicorn.

For each algorithm, round by round (so that whatever else the machine does falls on all alike):
gunicorn starts with 2 sync workers and that algorithm's key (a fresh ES256 key, a fresh 3072-bit
RSA key from ``manage.py generate_signing_key``, or the secret key), then wrk runs for ``--duration``
seconds against each endpoint with as many connections as workers:

- me: ``GET /api/users/me/`` with one Bearer access token (one signature verification and the
  session check, one indexed query);
- refresh: ``POST /api/auth/refresh/`` with the refresh cookie and CSRF, each wrk connection on its
  own session (logged in beforehand) carrying its rotating cookie from each answer to the next
  request (benchmarks/wrk/refresh_chain.lua; one connection per wrk thread, so each session's refreshes are
  sequential and never hit the grace window or reuse detection). A refresh verifies one token and
  signs two (the new refresh and access tokens), and locks and updates the session row.

It also times the cryptography alone in this process (PyJWT, as the service calls it): one signature
and one verification per algorithm, so the HTTP figures can be read against it.

    .venv/bin/python benchmarks/signing_algorithms.py \\
        --database-url postgres://postgres@127.0.0.1:5432/authproject_bench_keys \\
        --cache-url redis://127.0.0.1:6379/7 [--duration 5] [--rounds 3] [--output /tmp/r.md]

The database is created if missing and migrated; users and sessions it adds are its own (bench_keys_*).
"""

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import _common
from _common import PAGE_ORIGIN, PASSWORD, ROOT
from servers import Client, free_ports

ALGORITHMS = ("HS256", "ES256", "RS256")


def environment(args, secret: str, algorithm: str, key: str | None) -> dict:
    """A production-like app server's environment (DEBUG off), with this algorithm's key."""
    keys = {"JWT_SIGNING_KEYS": key} if key else {}
    urls = {"database_url": args.database_url, "cache_url": args.cache_url}
    return _common.app_environment(**urls, secret=secret, JWT_ALGORITHM=algorithm, **keys)


def sign_in(base: str, username: str) -> Client:
    """A new session: the client holds its cookies, its CSRF token and its access token."""
    client = Client(base, page_origin=PAGE_ORIGIN)
    client.fetch_csrf()
    answer = client.sign_in(username, PASSWORD)
    assert answer.status == 200, answer.body
    client.access = answer.json()["access"]
    return client


def serve(env: dict, workers: int):
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "gunicorn", "authproject.wsgi", "--workers", str(workers)]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/health/", timeout=5).read()
            return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit("gunicorn did not start:\n" + process.stderr.read().decode()[-3000:])
            time.sleep(0.2)


def wrk(args, server, url: str, *, duration=None, headers=(), script=None, script_args=()) -> dict:
    """One bounded wrk run (benchmarks/_common.py), plus the workers' CPU ms per request; ``failed``
    counts answers other than 2xx/3xx and requests without an answer."""
    cpu_before = _common.descendants_cpu_seconds(server.pid)
    result = _common.wrk(
        url,
        duration=duration or args.duration,
        connections=args.connections,
        headers=headers,
        script=script,
        script_args=script_args,
        timeout="10s",
    )
    cpu = _common.descendants_cpu_seconds(server.pid) - cpu_before
    result["cpu_ms"] = cpu * 1000 / max(result["requests"], 1)
    result["failed"] = result["non_2xx"] + result["socket_errors"]
    return result


def measure(args, algorithm: str, key: str | None, secret: str, round_no: int) -> dict:
    """Serve with this algorithm; wrk on me, then on refresh."""
    process, base = serve(environment(args, secret, algorithm, key), args.workers)
    try:
        me_client = sign_in(base, "bench_keys_0")
        bearer = f"Authorization: Bearer {me_client.access}"
        # Warm-up, not recorded: both workers import what they use, connect, and load the keys.
        wrk(args, process, base + "/api/users/me/", duration=1, headers=[bearer])
        me = wrk(args, process, base + "/api/users/me/", headers=[bearer])
        sessions = [sign_in(base, f"bench_keys_{i}") for i in range(args.connections)]
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.writelines(f"{c.cookies['refresh_token']}\n" for c in sessions)
            f.flush()
            # One CSRF cookie and token serve every chain: the check does not tie them to a session.
            csrf = (sessions[0].cookies["csrftoken"], sessions[0].csrf, PAGE_ORIGIN)
            refresh = wrk(args, process, base + "/", script="refresh_chain.lua", script_args=(f.name, *csrf))
        print(
            f"  round {round_no} {algorithm}: me {me['rps']:.0f}/s {me['cpu_ms']:.2f} CPU ms, "
            f"refresh {refresh['rps']:.0f}/s {refresh['cpu_ms']:.2f} CPU ms",
            flush=True,
        )
        return {"me": me, "refresh": refresh}
    finally:
        process.terminate()
        process.wait(timeout=30)


def crypto_costs(keys: dict[str, str | None], secret: str) -> dict[str, dict[str, float]]:
    """Microseconds per signature and per verification, PyJWT as the service calls it."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    payload = {
        "token_type": "access",
        "exp": 2_000_000_000,
        "iat": 1_700_000_000,
        "jti": "x" * 32,
        "user_id": "1",
    }
    costs = {}
    for algorithm, path in keys.items():
        if path is None:
            private = public = secret
        else:
            private = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
            public = private.public_key()
        token = jwt.encode(payload, private, algorithm=algorithm)
        sign = timeit.Timer(partial(jwt.encode, payload, private, algorithm=algorithm))
        verify = timeit.Timer(partial(jwt.decode, token, public, algorithms=[algorithm]))
        n = 300
        costs[algorithm] = {
            "sign_us": min(sign.repeat(number=n, repeat=3)) / n * 1e6,
            "verify_us": min(verify.repeat(number=n, repeat=3)) / n * 1e6,
        }
    return costs


def versions() -> dict[str, str]:
    import cryptography
    import django
    import gunicorn
    import jwt
    from cryptography.hazmat.backends.openssl.backend import backend

    software = [
        f"Python {platform.python_version()}",
        f"Django {django.__version__}",
        f"PyJWT {jwt.__version__}",
        f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})",
        f"gunicorn {gunicorn.__version__}",
        _common.wrk_version(),
    ]
    return {
        "machine": _common.machine(),
        "software": ", ".join(software),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/authproject_bench_keys"
        ),
    )
    parser.add_argument("--cache-url", default=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/7"))
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument(
        "--connections", type=int, default=2, help="wrk connections, one per thread (default 2)"
    )
    parser.add_argument("--output", help="write the Markdown section here too")
    args = parser.parse_args()

    _common.database_create(args.database_url)
    secret = secrets.token_urlsafe(50)
    base_env = environment(args, secret, "HS256", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=base_env, check=True
    )
    create_users = (
        "from django.contrib.auth import get_user_model\n"
        f"for i in range({args.connections}):\n"
        "    user, _ = get_user_model().objects.get_or_create(username=f'bench_keys_{i}')\n"
        f"    user.set_password({PASSWORD!r})\n"
        "    user.save()"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", create_users],
        cwd=ROOT,
        env=base_env,
        check=True,
    )

    with tempfile.TemporaryDirectory() as keydir:
        keys = {"HS256": None}
        for algorithm in ("ES256", "RS256"):
            keys[algorithm] = f"{keydir}/{algorithm}.pem"
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "generate_signing_key",
                    "--algorithm",
                    algorithm,
                    "--out",
                    keys[algorithm],
                ],
                cwd=ROOT,
                env=base_env,
                check=True,
                capture_output=True,
            )
        costs = crypto_costs(keys, secret)
        results: dict[str, list[dict]] = {a: [] for a in ALGORITHMS}
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        load = [os.getloadavg()[0]]
        for round_no in range(1, args.rounds + 1):
            for algorithm in ALGORITHMS:
                results[algorithm].append(measure(args, algorithm, keys[algorithm], secret, round_no))
        load.append(os.getloadavg()[0])

    print(report(args, results, costs, started, load))
    if args.output:
        Path(args.output).write_text(report(args, results, costs, started, load))


def report(args, results, costs, started, load) -> str:
    def median(algorithm, endpoint, field):
        return statistics.median(r[endpoint][field] for r in results[algorithm])

    info = versions()
    lines = [
        "## Signing algorithms (issue 12): refresh and me under HS256, ES256 and RS256",
        "",
        f"- Machine: {info['machine']}",
        f"- Software: {info['software']}",
        f"- Database: {urlsplit(args.database_url).scheme}, cache: {urlsplit(args.cache_url).scheme}",
        "- Command: `python benchmarks/signing_algorithms.py --database-url ... --cache-url ... "
        f"--duration {args.duration} --rounds {args.rounds} --workers {args.workers} "
        f"--connections {args.connections}`",
        f"- Date: {started}; the machine's 1-minute load average (other work on its 2 cores) was "
        f"{load[0]:.1f} before the run and {load[1]:.1f} after it",
        "",
        f"gunicorn with {args.workers} sync workers, wrk with {args.connections} connections (one per "
        f"thread) for {args.duration} s per endpoint and algorithm after a 1 s warm-up, {args.rounds} rounds "
        "alternating HS256, ES256, RS256; medians over the rounds. The figure to read is the workers' CPU "
        "time per request (user + system, from /proc, over the requests wrk completed): it is what a "
        "signature costs the app servers, and other load on the machine barely moves it. Requests/s and "
        "latencies depend on that other load and are shown for context. Cost = the algorithm's CPU per "
        "request over HS256's, in the same run.",
        "",
        "| endpoint | algorithm | CPU ms/request | cost vs HS256 | requests/s | p50 ms | p99 ms | non-200 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for endpoint in ("me", "refresh"):
        base = median("HS256", endpoint, "cpu_ms")
        for algorithm in ALGORITHMS:
            cpu, rps = median(algorithm, endpoint, "cpu_ms"), median(algorithm, endpoint, "rps")
            p50, p99 = median(algorithm, endpoint, "p50"), median(algorithm, endpoint, "p99")
            failed = sum(r[endpoint]["failed"] for r in results[algorithm])
            lines.append(
                f"| {endpoint} | {algorithm} | {cpu:.2f} | {cpu / base:.2f}x | {rps:.0f} "
                f"| {p50:.2f} | {p99:.2f} | {failed} |"
            )
    lines += [
        "",
        "The cryptography alone (PyJWT in one process, best of 3 x 300; µs per token):",
        "",
        "| algorithm | sign µs | verify µs | refresh = 1 verify + 2 signs, µs | me = 1 verify, µs |",
        "|---|---|---|---|---|",
    ]
    for algorithm in ALGORITHMS:
        c = costs[algorithm]
        refresh = c["verify_us"] + 2 * c["sign_us"]
        lines.append(
            f"| {algorithm} | {c['sign_us']:.0f} | {c['verify_us']:.0f} | {refresh:.0f} "
            f"| {c['verify_us']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
