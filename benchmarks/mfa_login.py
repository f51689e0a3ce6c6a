"""What a second factor adds to a sign-in: the password login of a user with an authenticator app
(which answers an mfa_token) and its second step (POST /api/auth/mfa/verify/ with a TOTP code),
against the plain login of a user without one. Against a real app server, `make serve` as in
production (DEBUG off, Argon2, PostgreSQL, Redis), one request at a time on one kept-alive
connection from loopback, so that a request's time is the server's time plus a loopback round trip.

Each round signs in the plain user once and one TOTP user once (the order alternating), so that
whatever else the machine does falls on both alike. A TOTP code works once per 30-second step and
user, so there is one TOTP user per round, each set up through the API beforehand (register, sign
in, POST /api/auth/mfa/totp/, confirm); each second step sends the code of the step after the one
its set-up used. Both flows use body transport (no cookie jar needed); the limits are raised.

    .venv/bin/python benchmarks/mfa_login.py \\
        --database-url postgres://postgres@127.0.0.1:5432/authproject_bench_mfa \\
        --cache-url redis://127.0.0.1:6379/12 [--rounds 100] [--output /tmp/r.md]

The database is dropped and created anew, and the Redis database flushed: give it ones of its own.
It writes its section of benchmarks/RESULTS.md.
"""

import argparse
import http.client
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import _common
import pyotp
from _common import PASSWORD, ROOT

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Second factor at sign-in (issue 24): login and its second step against a plain login"
STEP_SECONDS = 30


class Client:
    """JSON requests on one kept-alive connection, each timed."""

    def __init__(self, base: str):
        host, port = base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)

    def call(self, method: str, path: str, body: dict | None = None, access: str | None = None):
        """(status, parsed body or None, milliseconds)."""
        headers = {"Content-Type": "application/json"}
        if access:
            headers["Authorization"] = f"Bearer {access}"
        started = time.perf_counter()
        self.connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = self.connection.getresponse()
        content = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, (json.loads(content) if content else None), elapsed

    def login(self, username: str):
        body = {"username": username, "password": PASSWORD, "transport": "body"}
        return self.call("POST", "/api/auth/login/", body)


def code_after(secret: str, seconds: float) -> str:
    """The code of the time step after the one ``seconds`` (a Unix time) falls in."""
    return pyotp.TOTP(secret).generate_otp(int(seconds) // STEP_SECONDS + 1)


def register(client: Client, username: str) -> None:
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    status, answer, _ = client.call("POST", "/api/auth/register/", body)
    assert status == 201, (status, answer)


def set_up(client: Client, rounds: int) -> list[str]:
    """The plain user, and one user per round with an authenticator app on; their secrets."""
    register(client, "plain")
    secrets_by_round = []
    for i in range(rounds):
        username = f"totp{i}"
        register(client, username)
        status, answer, _ = client.login(username)
        assert status == 200, (status, answer)
        access = answer["access"]
        status, enrolment, _ = client.call("POST", "/api/auth/mfa/totp/", access=access)
        assert status == 200, (status, enrolment)
        confirm = {"code": pyotp.TOTP(enrolment["secret"]).now()}
        status, answer, _ = client.call("POST", "/api/auth/mfa/totp/confirm/", confirm, access=access)
        assert status == 200, (status, answer)
        secrets_by_round.append(enrolment["secret"])
    return secrets_by_round


def measure(base: str, *, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds of each plain login, each first step, each second step, and each first plus
    second step, rounds after the warm-up."""
    client = Client(base)
    totp_secrets = set_up(client, warmup + rounds)
    times: dict[str, list[float]] = {"plain": [], "first": [], "second": [], "both": []}
    for i, secret in enumerate(totp_secrets):
        order = ("plain", "mfa") if i % 2 == 0 else ("mfa", "plain")
        for flow in order:
            if flow == "plain":
                status, answer, plain = client.login("plain")
                assert status == 200 and "refresh" in answer, (status, answer)
                continue
            status, answer, first = client.login(f"totp{i}")
            assert status == 200 and answer.get("mfa_required"), (status, answer)
            verify = {"mfa_token": answer["mfa_token"], "code": code_after(secret, time.time())}
            status, tokens, second = client.call("POST", "/api/auth/mfa/verify/", verify)
            assert status == 200 and "refresh" in tokens, (status, tokens)
        if i >= warmup:
            times["plain"].append(plain)
            times["first"].append(first)
            times["second"].append(second)
            times["both"].append(first + second)
    client.connection.close()
    return times


def versions(args) -> list[str]:
    import django
    import gunicorn

    return [
        f"Python {platform.python_version()}",
        f"Django {django.__version__}",
        f"gunicorn {gunicorn.__version__}",
        f"pyotp {pyotp.__version__ if hasattr(pyotp, '__version__') else _installed('pyotp')}",
        _common.postgresql_version(args.database_url),
        _common.redis_version(args.cache_url),
    ]


def _installed(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def report(args, times: dict[str, list[float]]) -> str:
    def row(name: str, values: list[float]) -> str:
        cuts = statistics.quantiles(values, n=10)
        return (
            f"| {name} | {len(values)} | {statistics.median(values):.1f} | {cuts[0]:.1f} | {cuts[-1]:.1f} "
            f"| {statistics.fmean(values):.1f} |"
        )

    plain, both = statistics.median(times["plain"]), statistics.median(times["both"])
    second = statistics.median(times["second"])
    lines = [
        HEADING,
        "",
        f"- Machine: {_common.machine()}",
        f"- Versions: {', '.join(versions(args))}",
        f"- Command: `.venv/bin/python benchmarks/mfa_login.py {' '.join(sys.argv[1:])}`",
        f"- Checkout: {_common.checkout()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; `make serve`, {args.workers} gunicorn workers, "
        "DEBUG off, Argon2, body transport, one request at a time on one kept-alive loopback connection",
        "",
        "| request | rounds | median ms | p10 ms | p90 ms | mean ms |",
        "|---|---|---|---|---|---|",
        row("plain login (no second factor)", times["plain"]),
        row("login of a user with an authenticator app (answers mfa_token)", times["first"]),
        row("POST /api/auth/mfa/verify/ with a TOTP code", times["second"]),
        row("both steps together", times["both"]),
        "",
        f"A sign-in with a second factor takes {both / plain:.2f}x a plain one (medians); the second step "
        f"alone is {second:.1f} ms ({second / plain:.0%} of a plain login, which is mostly the Argon2 "
        "hash that both first steps pay). Single rounds move with the machine's other tenants: compare "
        "medians within one run.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/authproject_bench_mfa")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10, help="rounds not counted")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, help="also write the markdown section here")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        sys.exit("--database-url must name a PostgreSQL database (it is dropped and created)")

    with _common.fresh_server(
        "mfa",
        database_url=args.database_url,
        cache_url=args.cache_url,
        workers=args.workers,
        MFA_THROTTLE_RATE="100000000/min",
        REFRESH_COOKIE_SECURE="0",
    ) as server:
        times = measure(server.base, rounds=args.rounds, warmup=args.warmup)
    text = report(args, times)
    print(text)
    _common.write_section(RESULTS, text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
