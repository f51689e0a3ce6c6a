"""Does the service hold at a million sessions? Measures, on PostgreSQL, at 1,000 and 1,000,000 rows:

(a) the admin sessions changelist, loaded as a logged-in superuser: time and SQL queries;
(b) refresh latency (and, for comparison, an access-token request, GET /api/users/me/);
(c) ``manage.py flush_expired_sessions`` over that many expired sessions: time and peak RSS.

The 1,000-row database is the baseline for the 1,000,000-row one, measured in the same run: each
size has its own database, both are seeded first, and then the measurements alternate between them
round by round, so that whatever else the machine is doing falls on both alike.

    .venv/bin/python benchmarks/sessions_at_scale.py               # 1,000 and 1,000,000
    .venv/bin/python benchmarks/sessions_at_scale.py --sizes 1000 20000 --rounds 5 --output /tmp/r.md

It uses its own databases (``BENCH_DATABASE_URL``, default
postgres://postgres@127.0.0.1:5432/authproject_bench, plus ``_<size>``), created if missing and
emptied first; rows are seeded with INSERT ... SELECT over generate_series (the bulk path), then
ANALYZEd.
"""

import argparse
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import _common

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/authproject_bench"
PASSWORD = "benchmark passphrase 1"
USERS = 10_000


def environment(database_url: str) -> dict:
    """The settings a production app server would have, but for this database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "authproject.settings",
        "DATABASE_URL": database_url,
        "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/7"),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "EMAIL_URL": "consolemail://",  # DEBUG off needs one (accounts.E018); nothing here sends mail
        "LOGIN_THROTTLE_RATE": "100000/min",
        "LOGIN_IP_THROTTLE_RATE": "100000/min",
        "LOG_LEVEL": "WARNING",
        # Seeding a million rows is one long INSERT: no statement timeout for this process.
        "DATABASE_TIMEOUT": "0",
    }


# --- seeding ------------------------------------------------------------------------------------
def seed_users(cursor) -> tuple[int, int]:
    """USERS plain users (bench1, bench2, ...) with consecutive ids; returns the first and last id."""
    cursor.execute("SELECT min(id), max(id) FROM auth_user WHERE username ~ '^bench[0-9]+$'")
    first, last = cursor.fetchone()
    if first is None:
        cursor.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                                       is_staff, is_active, date_joined)
            SELECT '!', false, 'bench' || g, '', '', 'bench' || g || '@example.com', false, true, now()
            FROM generate_series(1, %s) g ORDER BY g
            """,
            [USERS],
        )
        cursor.execute("SELECT min(id), max(id) FROM auth_user WHERE username ~ '^bench[0-9]+$'")
        first, last = cursor.fetchone()
    return first, last


def seed_sessions(cursor, *, count: int, first_user: int, kind: str, analyze: bool = True) -> None:
    """``count`` sessions spread over the bench users, then ANALYZE (unless ``analyze`` is False).

    kind "mixed": 80 % active, 10 % expired, 10 % revoked, created over the last 29 days.
    kind "expired": all expired 60 days ago (what flush_expired_sessions deletes).
    """
    if kind == "mixed":
        timing = """
            now() - (g %% 29 || ' days')::interval - (g %% 86400 || ' seconds')::interval AS created,
            CASE WHEN g %% 10 = 1 THEN now() - interval '1 day' ELSE now() + interval '7 days' END AS idle,
            CASE WHEN g %% 10 = 2 THEN now() - interval '1 day' ELSE NULL END AS revoked
        """
    else:
        timing = """
            now() - interval '90 days' - (g %% 86400 || ' seconds')::interval AS created,
            now() - interval '83 days' AS idle,
            NULL::timestamptz AS revoked
        """
    cursor.execute(
        f"""
        INSERT INTO accounts_session (id, user_id, refresh_jti, previous_jti, rotated_at, created_at,
                                      last_used_at, idle_expires_at, absolute_expires_at, revoked_at,
                                      revoke_reason, ip, user_agent, device)
        SELECT gen_random_uuid(), %(first)s + g %% %(users)s, md5(g::text), '', NULL, created,
               created, idle, created + interval '30 days', revoked,
               CASE WHEN revoked IS NULL THEN '' ELSE 'logout' END,
               ('10.' || (g %% 250) || '.' || (g / 250 %% 250) || '.1')::inet,
               'Mozilla/5.0 (X11; Linux x86_64) benchmark/' || (g %% 97), 'Unknown browser on Linux'
        FROM (SELECT g, {timing} FROM generate_series(1, %(count)s) g) AS rows
        """,
        {"first": first_user, "users": USERS, "count": count},
    )
    if analyze:
        cursor.execute("ANALYZE accounts_session")


def reset(cursor) -> None:
    cursor.execute("TRUNCATE accounts_session, accounts_auditevent, django_session")


# --- measurements -------------------------------------------------------------------------------
def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median_ms": statistics.median(ordered),
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)],
        "n": len(ordered),
    }


def milliseconds(function) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def database_use(url: str) -> None:
    """Point Django's default connection at another database (the next query reconnects)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = urlsplit(url).path.lstrip("/")


def signed_in_browser():
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.csrf = browser.get("/api/auth/csrf/").json()["csrf_token"]
    response = browser.post(
        "/api/auth/login/", {"username": "benchadmin", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    browser.access = response.json()["access"]
    return browser


class Target:
    """One seeded database and the clients that measure it."""

    def __init__(self, size: int, url: str):
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        self.size, self.url = size, url
        _common.database_create(url)
        database_use(url)
        call_command("migrate", verbosity=0)
        admin_user = get_user_model().objects.filter(username="benchadmin").first()
        if admin_user is None:
            admin_user = get_user_model().objects.create_superuser(
                "benchadmin", "admin@example.com", PASSWORD
            )
        with connection.cursor() as cursor:
            reset(cursor)
            self.first_user, _ = seed_users(cursor)
            started = time.perf_counter()
            seed_sessions(cursor, count=size, first_user=self.first_user, kind="mixed")
            self.seed_seconds = time.perf_counter() - started
        self.admin = Client()
        self.admin.force_login(admin_user)
        self.refresher = signed_in_browser()
        self.reader = signed_in_browser()
        self.reader.credentials(HTTP_AUTHORIZATION=f"Bearer {self.reader.access}")
        self.samples = {name: [] for name in MEASUREMENTS}
        self.queries = {}

    def changelist(self, params: dict):
        response = self.admin.get("/admin/accounts/session/", params)
        assert response.status_code == 200, response.status_code

    def refresh(self):
        response = self.refresher.post(
            "/api/auth/refresh/", {}, format="json", HTTP_X_CSRFTOKEN=self.refresher.csrf
        )
        assert response.status_code == 200, response.content

    def me(self):
        assert self.reader.get("/api/users/me/").status_code == 200

    def calls(self) -> dict:
        return {
            "changelist_active": lambda: self.changelist({}),
            "changelist_all": lambda: self.changelist({"status": "all"}),
            "changelist_page_5": lambda: self.changelist({"p": "5"}),
            "refresh": self.refresh,
            "me": self.me,
        }

    def count_queries(self) -> None:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        for name, call in self.calls().items():
            with CaptureQueriesContext(connection) as captured:
                call()
            self.queries[name] = len(captured.captured_queries)

    def round(self, *, record: bool, per_round: dict) -> None:
        for name, call in self.calls().items():
            for _ in range(per_round[name]):
                elapsed = milliseconds(call)
                if record:
                    self.samples[name].append(elapsed)

    def flush(self, env: dict) -> dict:
        from django.db import connection

        with connection.cursor() as cursor:
            reset(cursor)
            seed_sessions(cursor, count=self.size, first_user=self.first_user, kind="expired")
        connection.close()
        result = measure_flush({**env, "DATABASE_URL": self.url})
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM accounts_session")
            assert cursor.fetchone()[0] == 0, "flush left rows behind"
        return result

    def result(self) -> dict:
        return {
            "size": self.size,
            "seed_seconds": self.seed_seconds,
            **{
                name: {**summary(times), "queries": self.queries[name]}
                for name, times in self.samples.items()
            },
        }


MEASUREMENTS = ("changelist_active", "changelist_all", "changelist_page_5", "refresh", "me")


def measure_flush(env: dict) -> dict:
    """Run the command as an operator would, in its own process; its wall time and peak RSS.

    GNU time reports the peak RSS of the command alone. (A child forked straight from this process
    would report this process's own size, which it shares until exec.)
    """
    command = [sys.executable, "manage.py", "flush_expired_sessions", "--older-than", "0"]
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "peak_rss_kb=%M", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0])
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "output": done.stdout.strip()}


def run(sizes: list[int], *, base_url: str, env: dict, rounds: int) -> list[dict]:
    """Seed one database per size, then alternate the measurements between them round by round."""
    targets = []
    for size in sizes:
        print(f"--- seeding {size:,} sessions", file=sys.stderr, flush=True)
        targets.append(Target(size, f"{base_url}_{size}"))
    per_round = {"changelist_active": 1, "changelist_all": 1, "changelist_page_5": 1, "refresh": 5, "me": 5}
    for number in range(rounds + 2):  # the first two rounds warm up
        for target in targets:
            database_use(target.url)
            target.round(record=number >= 2, per_round=per_round)
    results = []
    for target in targets:
        database_use(target.url)
        target.count_queries()
        print(
            f"--- flush_expired_sessions over {target.size:,} expired sessions", file=sys.stderr, flush=True
        )
        results.append({**target.result(), "flush": target.flush(env)})
        print(results[-1], file=sys.stderr, flush=True)
    return results


# --- report -------------------------------------------------------------------------------------
def machine() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return (
        f"{_common.machine()}; Python {platform.python_version()}; "
        f"PostgreSQL {postgres} (local socket over TCP, default config)"
    )


def report(results: list[dict], *, command: str) -> str:
    base, top = results[0], results[-1]
    lines = [
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| measurement | " + " | ".join(f"{r['size']:,} sessions" for r in results) + " | ratio |",
        "|---|" + "---|" * (len(results) + 1),
    ]

    def row(label, pick, fmt="{:.1f}", ratio=True):
        values = [pick(r) for r in results]
        cells = " | ".join(fmt.format(v) for v in values)
        tail = f"{values[-1] / values[0]:.2f}x" if ratio and values[0] else ""
        lines.append(f"| {label} | {cells} | {tail} |")

    row("seed (INSERT ... SELECT), s", lambda r: r["seed_seconds"], ratio=False)
    for key, label in [
        ("changelist_active", "admin changelist, default (active), median ms"),
        ("changelist_all", "admin changelist, status=all, median ms"),
        ("changelist_page_5", "admin changelist, page 5, median ms"),
    ]:
        row(label, lambda r, k=key: r[k]["median_ms"])
        row(f"{label.rsplit(',', 1)[0]}, p95 ms", lambda r, k=key: r[k]["p95_ms"])
        row(f"{label.rsplit(',', 1)[0]}, SQL queries", lambda r, k=key: r[k]["queries"], "{:d}", ratio=False)
    row("refresh, median ms", lambda r: r["refresh"]["median_ms"], "{:.2f}")
    row("refresh, p95 ms", lambda r: r["refresh"]["p95_ms"], "{:.2f}")
    row(
        "GET /api/users/me/ (access token + session check), median ms",
        lambda r: r["me"]["median_ms"],
        "{:.2f}",
    )
    row("flush_expired_sessions over all rows (expired), s", lambda r: r["flush"]["seconds"], "{:.2f}")
    row("flush_expired_sessions peak RSS, MB", lambda r: r["flush"]["peak_rss_mb"], "{:.0f}")
    lines += ["", f"flush output at {top['size']:,}: `{top['flush']['output']}`"]

    def verdict(value, limit, fmt) -> str:
        return f"{'met' if value <= limit else 'MISSED'}: {fmt.format(value)}"

    changelist = top["changelist_active"]
    flush = top["flush"]
    lines += [
        "",
        "Targets at the largest size: changelist ≤ 1.5 x its time at the smallest ("
        + verdict(changelist["median_ms"] / base["changelist_active"]["median_ms"], 1.5, "{:.2f}x")
        + ") and ≤ 10 queries ("
        + verdict(changelist["queries"], 10, "{:d}")
        + "); refresh ratio ≤ 1.1 ("
        + verdict(top["refresh"]["median_ms"] / base["refresh"]["median_ms"], 1.1, "{:.2f}")
        + "); flush < 60 s ("
        + verdict(flush["seconds"], 60, "{:.1f} s")
        + ") and < 200 MB RSS ("
        + verdict(flush["peak_rss_mb"], 200, "{:.0f} MB")
        + ").",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument(
        "--rounds",
        type=int,
        default=40,
        help="rounds of measurements (each: 1 load of each admin page, 5 API calls)",
    )
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args()

    base_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    env = environment(base_url)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)

    import django

    django.setup()
    from django.conf import settings

    # Test clients talk to the app in-process: Django's test server name must be allowed.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    results = run(args.sizes, base_url=base_url, env=env, rounds=args.rounds)
    text = report(results, command=" ".join(["python", *sys.argv]))
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    print(
        f"benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
