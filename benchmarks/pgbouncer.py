"""me and refresh through PgBouncer (transaction pooling) against PostgreSQL directly, under wrk.

Three `make serve` instances (gunicorn with authproject/gunicorn.conf.py, DEBUG off) on one
PostgreSQL database and one Redis, each with its own workers:

- direct: DATABASE_URL names PostgreSQL, prepared statements on (the default);
- direct, unprepared: the same with DATABASE_PREPARED_STATEMENTS=0;
- pgbouncer: DATABASE_URL names a pgbouncer started here (benchmarks/servers.py's PgBouncer:
  pool_mode = transaction, Debian's package) with DATABASE_PREPARED_STATEMENTS=0, which a
  PgBouncer before 1.21 needs (README, Deployment).

So "pgbouncer / direct, unprepared" is what the pooler's hop costs, and "pgbouncer / direct" what a
deployment behind it costs altogether. Rounds alternate the three, so that whatever else the machine
does falls on all alike; figures are medians over the rounds.

    .venv/bin/python benchmarks/pgbouncer.py --output benchmarks/RESULTS.md
    .venv/bin/python benchmarks/pgbouncer.py --duration 3 --rounds 1     # a quick look

Needs wrk and pgbouncer from Debian's packages (`make test` installs both), PostgreSQL and Redis:
``--database-url`` (dropped and created afresh) and ``--cache-url`` (emptied first).

- me: GET /api/users/me/ with a Bearer access token (one statement: the session check);
- refresh: POST /api/auth/refresh/ along one rotating cookie chain per wrk thread
  (benchmarks/wrk/refresh_chain.lua), as benchmarks/hot_paths.py drives it.
"""

import argparse
import os
import platform
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import _common
from _common import PAGE_ORIGIN, PASSWORD
from servers import Client, PgBouncer, Serve, free_ports, pgbouncer_version

SECTION = "## PgBouncer vs direct (issue 26): me and refresh"
WORKLOADS = ("me", "refresh")
SUBJECTS = ("direct", "direct, unprepared", "pgbouncer")
USERNAME = "bench"


def sign_in(server: Serve) -> tuple[Client, str]:
    """A new session on ``server``: the client (holding its cookies) and the access token."""
    client = Client(server.base, page_origin=PAGE_ORIGIN)
    answer = client.sign_in(USERNAME, PASSWORD)
    if answer.status != 200:
        sys.exit(f"{server.name}: login answered {answer.status}: {answer.body[:300]!r}")
    return client, answer.json()["access"]


def measure(options, server: Serve, workload: str, scratch: Path) -> dict:
    """One wrk run of the workload against the server, and its processes' CPU ms per request."""
    url, extra = server.base + "/api/users/me/", {}
    if workload == "me":
        extra = {"headers": [f"Authorization: Bearer {sign_in(server)[1]}"]}
    else:
        tokens = [sign_in(server)[0].cookies["refresh_token"] for _ in range(options.connections)]
        token_file = scratch / "refresh_tokens.txt"
        token_file.write_text("\n".join(tokens) + "\n")
        csrf = secrets.token_hex(16)  # one CSRF secret, as cookie and header, serves every chain
        url = server.base + "/api/auth/refresh/"
        extra = {"script": "refresh_chain.lua", "script_args": [str(token_file), csrf, csrf, PAGE_ORIGIN]}
    cpu_before = _common.descendants_cpu_seconds(server.process.pid)
    result = _common.wrk(url, duration=options.duration, connections=options.connections, **extra)
    cpu = _common.descendants_cpu_seconds(server.process.pid) - cpu_before
    result["cpu_ms"] = cpu * 1000 / max(result["requests"], 1)
    result["failed"] = result["non_2xx"] + result["socket_errors"]
    return result


def versions(database_url: str, cache_url: str) -> str:
    import django
    import gunicorn
    import psycopg

    return (
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {gunicorn.__version__}, "
        f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}), {pgbouncer_version()}, "
        f"{_common.postgresql_version(database_url)}, {_common.redis_version(cache_url)}, "
        f"{_common.wrk_version()}"
    )


def report(options, runs: dict, started: str, load: list[float], software: str) -> tuple[str, int]:
    """The Markdown section, and how many measured requests failed."""
    failed = sum(r["failed"] for by_subject in runs.values() for rs in by_subject.values() for r in rs)
    command = shlex.join(["python", "benchmarks/pgbouncer.py", *sys.argv[1:]])
    lines = [
        SECTION,
        "",
        f"- Machine: {_common.machine()}",
        f"- Software: {software}",
        f"- Command: `{command}`",
        f"- Date: {started}; the machine's 1-minute load average was {load[0]:.1f} before the run and "
        f"{load[1]:.1f} after it",
        "",
        f"Three `make serve` instances ({options.workers} sync workers each, DEBUG off) on one "
        "PostgreSQL database and one Redis: direct (prepared statements on, the default), direct with "
        "`DATABASE_PREPARED_STATEMENTS=0`, and through a pgbouncer in transaction mode (pool size "
        f"{options.pool_size}) with `DATABASE_PREPARED_STATEMENTS=0`; wrk with {options.connections} "
        f"connections (one per thread), {options.duration:g} s per run, {options.rounds} rounds "
        "alternating the three; medians over the rounds. Ratio = the median over the rounds of the "
        "subject's req/s over direct's in the same round (neighbours in time, so the machine's other "
        "load moves both alike). CPU = the instance's gunicorn processes' user + system time per request (not "
        "PostgreSQL's or pgbouncer's).",
        "",
        "| workload | subject | req/s (rounds) | ratio to direct | p50 ms | p99 ms | CPU ms/request "
        "| failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        direct = runs[workload]["direct"]
        for subject in SUBJECTS:
            rs = runs[workload][subject]
            rps = statistics.median(r["rps"] for r in rs)
            ratio = statistics.median(r["rps"] / d["rps"] for r, d in zip(rs, direct, strict=True))
            rounds = ", ".join(f"{r['rps']:.0f}" for r in rs)
            median = {k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "cpu_ms")}
            lines.append(
                f"| {workload} | {subject} | {rps:.0f} ({rounds}) | {ratio:.2f}x "
                f"| {median['p50']:.2f} "
                f"| {median['p99']:.2f} | {median['cpu_ms']:.2f} | {sum(r['failed'] for r in rs)} |"
            )
    if failed:
        lines += ["", f"**{failed} MEASURED REQUESTS FAILED (non-2xx or no answer): these do not count.**"]
    return "\n".join(lines) + "\n", failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); medians are reported")
    parser.add_argument("--workers", type=int, default=2, help="sync workers per instance (default 2)")
    parser.add_argument("--connections", type=int, default=2, help="wrk connections = threads (default 2)")
    parser.add_argument("--pool-size", type=int, default=4, help="pgbouncer's default_pool_size (default 4)")
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/bench_pgbouncer", help="dropped first"
    )
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/8", help="emptied first")
    parser.add_argument("--output", type=Path, help="write the section into this file")
    options = parser.parse_args()

    _common.database_reset(options.database_url)
    _common.cache_flush(options.cache_url)
    scratch = Path(tempfile.mkdtemp(prefix="pgbouncer_bench_"))
    logs = scratch / "logs"
    logs.mkdir()
    environment = _common.app_environment(
        database_url=options.database_url,
        cache_url=options.cache_url,
        secret=secrets.token_urlsafe(50),
        CORS_ALLOWED_ORIGINS=PAGE_ORIGIN,
        STATIC_ROOT=str(scratch / "static"),
        WEB_CONCURRENCY=str(options.workers),
    )
    ports = iter(free_ports(4))
    bouncer = PgBouncer(scratch, options.database_url, next(ports), pool_size=options.pool_size)
    servers: dict[str, Serve] = {}
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        bouncer.start()
        # The first one migrates PostgreSQL directly; the others find nothing left to do.
        servers["direct"] = Serve("direct", next(ports), environment, logs).start()
        unprepared = {**environment, "DATABASE_PREPARED_STATEMENTS": "0"}
        servers["direct, unprepared"] = Serve("unprepared", next(ports), unprepared, logs).start()
        bounced = {**unprepared, "DATABASE_URL": bouncer.url}
        servers["pgbouncer"] = Serve("pgbouncer", next(ports), bounced, logs).start()
        account = {"username": USERNAME, "email": "bench@example.com", "password": PASSWORD}
        answer = Client(servers["direct"].base).request("POST", "/api/auth/register/", account)
        assert answer.status == 201, answer.body
        print(f"serving; logs in {logs}", flush=True)
        load = [os.getloadavg()[0]]
        runs = {w: {s: [] for s in SUBJECTS} for w in WORKLOADS}
        for workload in WORKLOADS:
            for _ in range(options.rounds):
                for subject in SUBJECTS:
                    run = measure(options, servers[subject], workload, scratch)
                    runs[workload][subject].append(run)
                    print(workload, subject, {k: v for k, v in run.items() if k != "output"}, flush=True)
                    time.sleep(1)
        load.append(os.getloadavg()[0])
        software = versions(options.database_url, options.cache_url)
    finally:
        for server in servers.values():
            server.stop()
        bouncer.stop()
        subprocess.run(["rm", "-rf", str(scratch / "static")], check=False)
    section, failed = report(options, runs, started, load, software)
    print("\n" + section)
    if options.output:
        _common.write_section(options.output, section)
        print(f"written to {options.output}")
    if failed:
        sys.exit(f"!!! {failed} measured requests failed (non-2xx or no answer): see the table above")


if __name__ == "__main__":
    main()
