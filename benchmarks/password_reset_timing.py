"""Does a password reset request take as long for an address no account uses as for one that an
account does? POST /api/auth/password/reset/ against a real app server, `make serve` as in
production (DEBUG off, TASKS_BACKEND=database, PostgreSQL, Redis), 200 requests for each address.

The request's work is the same whatever the address (two throttle counts in the cache, one task
queued in the database); the look-up and the mail happen in the task, which no worker runs here:
what is measured is what a client can time. The requests alternate between the two addresses (the
first of each pair alternates too), one at a time on one kept-alive connection, so that whatever
else the machine does falls on both alike. The throttle is raised (PASSWORD_RESET_THROTTLE_RATE)
so that every request is counted and admitted.

    .venv/bin/python benchmarks/password_reset_timing.py \\
        --database-url postgres://postgres@127.0.0.1:5432/authproject_bench_reset \\
        --cache-url redis://127.0.0.1:6379/12 [--requests 200] [--output /tmp/r.md]

The database is dropped and created anew, and the Redis database flushed: give it ones of its own.
Exit status 1 if the medians are more than 10% apart.
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
from _common import PASSWORD

KNOWN, UNKNOWN = "reset-bench@example.com", "nobody-here@example.com"
TOLERANCE = 0.10


def post(connection: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, float]:
    """(status, seconds) of one POST on a kept-alive connection."""
    payload = json.dumps(body)
    started = time.perf_counter()
    connection.request("POST", path, payload, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - started


def measure(base: str, *, requests: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds of each reset request, per address, alternating."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    status, _ = post(
        connection, "/api/auth/register/", {"username": "resetbench", "email": KNOWN, "password": PASSWORD}
    )
    assert status == 201, status
    times: dict[str, list[float]] = {KNOWN: [], UNKNOWN: []}
    for i in range(warmup + requests):
        pair = (KNOWN, UNKNOWN) if i % 2 == 0 else (UNKNOWN, KNOWN)
        for address in pair:
            status, seconds = post(connection, "/api/auth/password/reset/", {"email": address})
            assert status == 202, status
            if i >= warmup:
                times[address].append(seconds * 1000)
    connection.close()
    return times


def queued_tasks(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as connection:
        return connection.execute("SELECT count(*) FROM django_tasks_database_dbtaskresult").fetchone()[0]


def versions(args) -> list[str]:
    import django
    import gunicorn

    return [
        f"Python {platform.python_version()}",
        f"Django {django.__version__}",
        f"gunicorn {gunicorn.__version__}",
        _common.postgresql_version(args.database_url),
        _common.redis_version(args.cache_url),
    ]


def report(args, times: dict[str, list[float]], queued: int) -> tuple[str, bool]:
    def row(name: str, values: list[float]) -> str:
        cuts = statistics.quantiles(values, n=10)
        return (
            f"| {name} | {len(values)} | {statistics.median(values):.2f} | {cuts[0]:.2f} | {cuts[-1]:.2f} "
            f"| {statistics.fmean(values):.2f} |"
        )

    known, unknown = statistics.median(times[KNOWN]), statistics.median(times[UNKNOWN])
    difference = abs(known - unknown) / min(known, unknown)
    within = difference <= TOLERANCE
    lines = [
        f"- Machine: {_common.machine()}",
        f"- Versions: {', '.join(versions(args))}",
        f"- Command: `.venv/bin/python benchmarks/password_reset_timing.py {' '.join(sys.argv[1:])}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; `make serve`, {args.workers} gunicorn workers, "
        "DEBUG off, TASKS_BACKEND=database (no worker running)",
        "",
        "| address | requests | median ms | p10 ms | p90 ms | mean ms |",
        "|---|---|---|---|---|---|",
        row("known (an active account uses it)", times[KNOWN]),
        row("unknown (no account)", times[UNKNOWN]),
        "",
        f"Medians {difference:.1%} apart ({'within' if within else 'NOT within'} {TOLERANCE:.0%}); "
        f"{queued} tasks queued, one per request.",
    ]
    return "\n".join(lines), within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/authproject_bench_reset"
    )
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--requests", type=int, default=200, help="per address")
    parser.add_argument("--warmup", type=int, default=20, help="per address, not counted")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        sys.exit("--database-url must name a PostgreSQL database (it is dropped and created)")

    with _common.fresh_server(
        "reset",
        database_url=args.database_url,
        cache_url=args.cache_url,
        workers=args.workers,
        PASSWORD_RESET_THROTTLE_RATE="100000000/hour",
        TASKS_BACKEND="database",
    ) as server:
        times = measure(server.base, requests=args.requests, warmup=args.warmup)
    text, within = report(args, times, queued_tasks(args.database_url))
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()
