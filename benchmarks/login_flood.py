"""A login flood from many addresses beside wrk on `me` (issue 25): what the global password-check
budget (LOGIN_GLOBAL_THROTTLE_RATE) keeps for signed-in users.

Two app servers, each `make serve` in this checkout (DEBUG off, PostgreSQL and Redis, NUM_PROXIES=1
as behind nginx, the login limits at their defaults, ``--workers`` sync workers), on databases of
their own: "budget" with LOGIN_GLOBAL_THROTTLE_RATE at ``--budget-rate`` (default 10/s) and
PASSWORD_CHECK_SLOTS at ``--slots`` (default: half the cores) and its hashes niced by
PASSWORD_CHECK_NICENESS ``--niceness`` (default 10; all three the settings' defaults), "no budget"
with none of them.
Each round, for each server in turn:

- quiet: wrk GET /api/users/me/ with a Bearer token for ``--duration`` seconds;
- flood: the same wrk run on `me`, while a second wrk POSTs logins with wrong passwords for ever new
  usernames, each request from the next of ``--addresses`` client addresses in X-Forwarded-For
  (benchmarks/wrk/login_flood.lua), over ``--flood-connections`` connections that pause between
  requests so as to send about ``--flood-rate`` a second (at most: a connection waiting for its
  answer sends nothing); it starts a second before the `me` run and ends after it.

The target: me's p99 during the flood within 2x of its quiet p99 on the same server in the same
round. The report gives medians over the rounds, and what the flood's attempts were answered (401:
the password was checked; 429: shed, or refused by a per-address limit).

    .venv/bin/python benchmarks/login_flood.py [--duration 15] [--rounds 3] [--workers 5]
        [--output benchmarks/RESULTS.md]

The databases named by --database-url (with "_budget" and "_nobudget" added) are dropped and created
afresh, and the two Redis databases emptied.
"""

import argparse
from dataclasses import dataclass
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import _common
from _common import PAGE_ORIGIN, PASSWORD, ROOT
from servers import NGINX as NGINX_BINARY
from servers import Client, Nginx, free_ports, make_certificate

SECTION = "## A login flood beside `me` (issue 25)"
USERNAME = "bench"
TARGET = 2.0  # me's p99 in the flood, over its quiet p99

CREATE_USER = f"""
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username={USERNAME!r})
user.set_password({PASSWORD!r})
user.save()
"""

# The login limits as a deployment has them (app_environment raises them for the other benchmarks).
DEFAULT_LIMITS = {
    "LOGIN_THROTTLE_RATE": "5/min",
    "LOGIN_USERNAME_THROTTLE_RATE": "30/min",
    "LOGIN_IP_THROTTLE_RATE": "60/min",
}


def start(
    name: str, options, secret: str, logs: Path, static: Path, database_url: str, cache_url: str, **env
):
    """`make serve` on fresh databases, behind one proxy (pretended, or with --behind-nginx nginx,
    whose own hop is then the second trusted one), with the benchmark's user."""
    _common.database_reset(database_url)
    _common.cache_flush(cache_url)
    environment = _common.app_environment(
        database_url=database_url,
        cache_url=cache_url,
        secret=secret,
        NUM_PROXIES="2" if options.behind_nginx else "1",
        STATIC_ROOT=str(static / name),
        **DEFAULT_LIMITS,
        **env,
    )
    server = _common.make_serve(
        name, cwd=ROOT, environment=environment, log_dir=logs, workers=options.workers
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", CREATE_USER],
        cwd=ROOT,
        env=environment,
        check=True,
    )
    return server


@dataclass(frozen=True)
class Front:
    """nginx in front of one app server (--behind-nginx): what the runs send their requests to."""

    name: str
    base: str
    nginx: Nginx


def nginx_in_front(name: str, server, scratch: Path) -> Front:
    """nginx as the README's example has it (HTTP/1.1 and keep-alive to the upstream; it reads a
    whole request before it passes it on), on plain http: a deployment's TLS is not measured."""
    certificate, key = make_certificate(scratch)
    http_port, https_port, demo_port, demo_backend_port = free_ports(4)
    (scratch / f"nginx_{name}").mkdir()
    nginx = Nginx(
        scratch / f"nginx_{name}",
        https_port=https_port,
        http_port=http_port,
        demo_port=demo_port,
        demo_backend_port=demo_backend_port,
        certificate=certificate,
        key=key,
    ).start([server])
    return Front(name, f"http://127.0.0.1:{http_port}", nginx)


def access_token(server) -> str:
    client = Client(server.base, page_origin=PAGE_ORIGIN)
    answer = client.request(
        "POST",
        "/api/auth/login/",
        {"username": USERNAME, "password": PASSWORD},
        {"X-Forwarded-For": "192.0.2.10"},
    )
    if answer.status != 200:
        sys.exit(f"{server.name}: login answered {answer.status}: {answer.body[:300]!r}")
    return answer.json()["access"]


def me_run(options, server, access: str) -> dict:
    result = _common.wrk(
        server.base + "/api/users/me/",
        duration=options.duration,
        connections=options.connections,
        headers=[f"Authorization: Bearer {access}"],
    )
    if result["non_2xx"] or result["socket_errors"]:
        sys.exit(f"{server.name}: me answered {result['non_2xx']} non-2xx, {result['socket_errors']} errors")
    return result


def flood_run(options, server, access: str) -> tuple[dict, dict]:
    """me under wrk while the flood runs: (me's run, the flood's run with its answers by status)."""
    flood: dict = {}
    # Each connection pauses so that together they send about --flood-rate a second.
    pause = round(1000 * options.flood_connections / options.flood_rate)

    def send_flood() -> None:
        flood.update(
            _common.wrk(
                server.base + "/api/auth/login/",
                duration=options.duration + 2,
                connections=options.flood_connections,
                script="login_flood.lua",
                script_args=[str(options.addresses), str(pause)],
            )
        )

    thread = threading.Thread(target=send_flood)
    thread.start()
    time.sleep(1)  # the flood is under way before `me` is measured
    me = me_run(options, server, access)
    thread.join()
    answered = re.findall(r"^status (\d+): (\d+)$", flood["output"], re.MULTILINE)
    flood["statuses"] = {int(status): int(count) for status, count in answered}
    return me, flood


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(options, results: dict, started: str, load: list[float]) -> tuple[str, bool]:
    lines = [
        SECTION,
        "",
        f"Run {started} on {_common.machine()}; load average {load[0]:.2f} before, {load[1]:.2f} after.",
        f"Commit {_common.checkout()}. Python {sys.version.split()[0]}, Django {version('django')}, "
        f"gunicorn {version('gunicorn')} ({options.workers} sync workers"
        + (f", behind {_common.version_line([NGINX_BINARY, '-v'])}" if options.behind_nginx else "")
        + "), "
        f"{_common.postgresql_version(options.database_url + '_budget')}, "
        f"{_common.redis_version(options.cache_url)}, {_common.wrk_version()}.",
        "",
        "    " + " ".join(["benchmarks/login_flood.py", *sys.argv[1:]]),
        "",
        f"`me`: {options.connections} connections; the flood: {options.flood_connections} connections "
        f"from {options.addresses} addresses aiming at {options.flood_rate:g} attempts/s; "
        f"{options.duration:g} s runs, {options.rounds} rounds, medians.",
        "",
        "| server | me p99 quiet (ms) | me p99 in the flood (ms) | ratio | me req/s quiet / flood "
        "| flood attempts/s | hashed (401) | shed or limited (429) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    met = True
    budget = f"budget {options.budget_rate}, {options.slots} slot(s), niceness {options.niceness}"
    for name, label in (("budget", budget), ("nobudget", "no budget, no slots, niceness 0")):
        runs = results[name]
        ratios = [f["p99"] / q["p99"] for q, f in zip(runs["quiet"], runs["flood_me"], strict=True)]
        ratio = statistics.median(ratios)
        if name == "budget":
            met = ratio <= TARGET
        statuses = [run["statuses"] for run in runs["flood"]]
        hashed = statistics.median(s.get(401, 0) for s in statuses)
        shed = statistics.median(s.get(429, 0) for s in statuses)
        lines.append(
            f"| {label} | {median(runs['quiet'], 'p99'):.1f} | {median(runs['flood_me'], 'p99'):.1f} "
            f"| {ratio:.2f}x | {median(runs['quiet'], 'rps'):.0f} / {median(runs['flood_me'], 'rps'):.0f} "
            f"| {median(runs['flood'], 'rps'):.0f} | {hashed:.0f} | {shed:.0f} |"
        )
    lines += [
        "",
        f"Target (me's p99 in the flood within {TARGET:g}x of quiet, with the budget): "
        + ("met." if met else "**not met**."),
    ]
    return "\n".join(lines) + "\n", met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per `me` run (default 15)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); medians are reported")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() * 2 + 1, help="sync workers (default: make serve's)"
    )
    parser.add_argument("--connections", type=int, default=2, help="wrk connections on `me` (default 2)")
    parser.add_argument("--flood-connections", type=int, default=16, help="the flood's (default 16)")
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=50,
        help="login attempts a second the flood aims at (default 50: five times the 234 in 25 s seen in "
        "the attack of issue 25, and five times the budget)",
    )
    parser.add_argument("--addresses", type=int, default=1000, help="the flood's addresses (default 1000)")
    parser.add_argument(
        "--budget-rate", default="10/s", help="the budget server's LOGIN_GLOBAL_THROTTLE_RATE (default 10/s)"
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=max(1, (os.cpu_count() or 1) // 2),
        help="the budget server's PASSWORD_CHECK_SLOTS (default: the setting's, half the cores)",
    )
    parser.add_argument(
        "--niceness", type=int, default=10, help="the budget server's PASSWORD_CHECK_NICENESS (default 10)"
    )
    parser.add_argument(
        "--behind-nginx",
        action="store_true",
        help="send `me` and the flood through nginx in front of each server, as deployed",
    )
    parser.add_argument("--output", type=Path, help="write the section into this Markdown file")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/bench_flood",
        help="'_budget' and '_nobudget' are added (both dropped first)",
    )
    parser.add_argument(
        "--cache-url", default="redis://127.0.0.1:6379/8", help="the budget server's (emptied first)"
    )
    parser.add_argument("--nobudget-cache-url", default="redis://127.0.0.1:6379/9", help="(emptied)")
    options = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="login_flood_"))
    logs = scratch / "logs"
    logs.mkdir()
    secret = secrets.token_urlsafe(50)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    servers, targets = {}, {}
    results = {name: {"quiet": [], "flood_me": [], "flood": []} for name in ("budget", "nobudget")}
    try:
        servers["budget"] = start(
            "budget",
            options,
            secret,
            logs,
            scratch / "static",
            options.database_url + "_budget",
            options.cache_url,
            LOGIN_GLOBAL_THROTTLE_RATE=options.budget_rate,
            PASSWORD_CHECK_SLOTS=str(options.slots),
            PASSWORD_CHECK_SLOT_DIR=str(scratch / "slots"),
            PASSWORD_CHECK_NICENESS=str(options.niceness),
        )
        servers["nobudget"] = start(
            "nobudget",
            options,
            secret,
            logs,
            scratch / "static",
            options.database_url + "_nobudget",
            options.nobudget_cache_url,
            LOGIN_GLOBAL_THROTTLE_RATE="off",
            PASSWORD_CHECK_SLOTS="0",
            PASSWORD_CHECK_NICENESS="0",
        )
        targets = dict(servers)
        if options.behind_nginx:
            targets = {name: nginx_in_front(name, server, scratch) for name, server in servers.items()}
        print(f"serving; logs in {logs}", flush=True)
        for target in targets.values():  # warm-up, not counted: connections, caches, compiled SQL
            _common.wrk(
                target.base + "/api/users/me/",
                duration=3,
                connections=options.connections,
                headers=[f"Authorization: Bearer {access_token(target)}"],
            )
        load = [os.getloadavg()[0]]
        for round_number in range(options.rounds):
            order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
            for name in order:
                server = targets[name]
                access = access_token(server)
                quiet = me_run(options, server, access)
                me, flood = flood_run(options, server, access)
                time.sleep(2)  # the last hashes finish before the next quiet run
                for key, run in (("quiet", quiet), ("flood_me", me), ("flood", flood)):
                    run.pop("output", None)
                    results[name][key].append(run)
                print(
                    f"round {round_number + 1} {name}: me p99 {quiet['p99']:.1f} ms quiet, "
                    f"{me['p99']:.1f} ms in the flood; flood {flood['rps']:.0f}/s {flood['statuses']}",
                    flush=True,
                )
        load.append(os.getloadavg()[0])
    finally:
        for target in targets.values():
            if isinstance(target, Front):
                target.nginx.stop()
        for server in servers.values():
            server.stop()
        shutil.rmtree(scratch / "static", ignore_errors=True)
    section, met = report(options, results, started, load)
    print("\n" + section)
    if options.output:
        _common.write_section(options.output, section)
        print(f"written to {options.output}")


if __name__ == "__main__":
    main()
