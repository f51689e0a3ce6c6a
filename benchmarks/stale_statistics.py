"""Is the admin's sessions list flat before PostgreSQL has analyzed a table that just grew by a million rows?

Three fresh databases; autovacuum is switched off for their sessions tables so that nothing
analyzes them behind our back (sessions 80 % active):
- "baseline": 1,000 sessions, ANALYZEd, as a small deployment has;
- "grown": the same, then 1,000,000 more in one bulk insert: the planner's statistics describe
  1,000 rows while the table holds 1,001,000;
- "never analyzed": 1,000,000 sessions inserted into the new table: no statistics at all.
Then, alternating round by round between the databases (so other load on the machine falls on all
alike):

(a) the default changelist (active sessions) through Django's test client, as a superuser: time
    and SQL queries;
(b) the paginator's capped count as it is (no ORDER BY), and as it was (with the list's ORDER BY),
    each as SQL alone, with the plan PostgreSQL chose for it;
(c) the page's own query (100 rows in index order), with its plan.

Then the big tables are ANALYZEd and (a)-(c) are measured again: stale and fresh statistics, against
the same baseline.

    .venv/bin/python benchmarks/stale_statistics.py --rounds 15 --output /tmp/stale.md

Databases: ``BENCH_DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432/authproject_bench)
plus ``_stale_base``, ``_stale_grown`` and ``_stale_never``, dropped and created anew.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sessions_at_scale as scale

ROOT = scale.ROOT
BASE_ROWS = 1_000


def database_recreate(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def count_sql(*, ordered: bool) -> str:
    """The capped count of the default changelist, as the paginator runs it now or ran it before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.admin.scale import COUNT_CAP
    from accounts.models import Session

    listed = Session.objects.select_related("user").active().order_by("-created_at", "-id")
    with CaptureQueriesContext(connection) as captured:
        (listed if ordered else listed.order_by())[: COUNT_CAP + 1].count()
    return captured.captured_queries[-1]["sql"]


def page_sql() -> str:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Session

    listed = Session.objects.select_related("user").active().order_by("-created_at", "-id")
    with CaptureQueriesContext(connection) as captured:
        list(listed[:100])
    return captured.captured_queries[-1]["sql"]


def sql_ms(sql: str) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        start = time.perf_counter()
        cursor.execute(sql)
        cursor.fetchall()
        return (time.perf_counter() - start) * 1000


def switched(function, sql: str):
    """``function(sql)`` with the planner switched as the admin's sessions list switches it."""
    from accounts.admin.scale import planned_as_an_index_walk

    with planned_as_an_index_walk("default"):
        return function(sql)


def forget_statistics() -> None:
    """Put the sessions table back to "never analyzed": no column statistics, no row count."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = 'accounts_session'::regclass")
        cursor.execute(
            "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = 'accounts_session'::regclass"
        )


def plan(sql: str) -> str:
    """The plan's node types, outermost first ("Aggregate > Limit > Index Scan ...")."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        root = cursor.fetchone()[0][0]["Plan"]
    nodes, stack = [], [root]
    while stack:
        node = stack.pop(0)
        index = f" on {node['Index Name']}" if "Index Name" in node else ""
        nodes.append(node["Node Type"] + index)
        stack[:0] = node.get("Plans", [])
    return " > ".join(nodes)


class Database:
    """One database: ``first`` analyzed sessions (maybe none), then ``grow_by`` more without an ANALYZE."""

    def __init__(self, url: str, *, first: int, grow_by: int, reuse: bool = False):
        from django.contrib.auth import get_user_model
        from django.test import Client

        self.url, self.grow_seconds = url, 0.0
        if reuse:  # seeded by an earlier run: only its planner statistics are wiped, if it had none
            scale.database_use(url)
            admin_user = get_user_model().objects.get(username="benchadmin")
            if not first:
                forget_statistics()
        else:
            admin_user = self.seed(url, first=first, grow_by=grow_by)
        self.admin = Client()
        self.admin.force_login(admin_user)
        self.count_now, self.count_before = count_sql(ordered=False), count_sql(ordered=True)
        self.page = page_sql()
        self.samples: dict[str, list[float]] = {}

    def seed(self, url: str, *, first: int, grow_by: int):
        """A new database with ``first`` sessions, analyzed, and ``grow_by`` more, not; its admin."""
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        database_recreate(url)
        scale.database_use(url)
        call_command("migrate", verbosity=0)
        admin_user = get_user_model().objects.create_superuser("benchadmin", "admin@example.com", "x" * 20)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE accounts_session SET (autovacuum_enabled = false)")
            first_user, _ = scale.seed_users(cursor)
            if first:
                scale.seed_sessions(cursor, count=first, first_user=first_user, kind="mixed")  # analyzed
            cursor.execute("ANALYZE auth_user")
            self.grow_seconds = 0.0
            if grow_by:
                started = time.perf_counter()
                scale.seed_sessions(cursor, count=grow_by, first_user=first_user, kind="mixed", analyze=False)
                self.grow_seconds = time.perf_counter() - started
        return admin_user

    def rows(self) -> int:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), (SELECT reltuples FROM pg_class WHERE relname = 'accounts_session')"
                " FROM accounts_session"
            )
            return cursor.fetchone()

    def measure(self, phase: str) -> None:
        """One round: the changelist once, each SQL once."""

        def changelist():
            response = self.admin.get("/admin/accounts/session/")
            assert response.status_code == 200, response.status_code

        for name, call in (
            ("changelist", changelist),
            ("count now", lambda: switched(sql_ms, self.count_now)),
            ("count before", lambda: sql_ms(self.count_before)),
            ("page now", lambda: switched(sql_ms, self.page)),
            ("page before", lambda: sql_ms(self.page)),
        ):
            start = time.perf_counter()
            result = call()
            elapsed = (time.perf_counter() - start) * 1000 if name == "changelist" else result
            self.samples.setdefault(f"{phase}: {name}", []).append(elapsed)

    def queries(self) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            self.admin.get("/admin/accounts/session/")
        control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
        return sum(1 for query in captured.captured_queries if not query["sql"].upper().startswith(control))

    def plans(self) -> dict[str, str]:
        return {
            "count now": switched(plan, self.count_now),
            "count before": plan(self.count_before),
            "page now": switched(plan, self.page),
            "page before": plan(self.page),
        }


DATABASES = ("baseline", "grown", "never analyzed")


def run(base_url: str, *, grow_by: int, rounds: int, reuse: bool) -> dict:
    from django.db import connection

    databases = {"baseline": Database(f"{base_url}_stale_base", first=BASE_ROWS, grow_by=0, reuse=reuse)}
    if not reuse:  # its "statistics of 1,000 rows" cannot be made again without seeding anew
        databases["grown"] = Database(f"{base_url}_stale_grown", first=BASE_ROWS, grow_by=grow_by)
    databases["never analyzed"] = Database(f"{base_url}_stale_never", first=0, grow_by=grow_by, reuse=reuse)
    result = {
        "grow_seconds": databases["never analyzed"].grow_seconds,
        "plans": {},
        "queries": {},
        "rows": {},
        "databases": list(databases),
    }
    for phase in ("stale", "analyzed"):
        for label, database in databases.items():
            scale.database_use(database.url)
            if phase == "analyzed":
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE accounts_session")
            result["plans"][f"{label}, {phase}"] = database.plans()
            result["queries"][f"{label}, {phase}"] = database.queries()
            result["rows"][f"{label}, {phase}"] = database.rows()
        for number in range(rounds + 2):  # two warm-up rounds
            for database in databases.values():
                scale.database_use(database.url)
                database.measure(phase if number >= 2 else "warm-up")
    for label, database in databases.items():
        result[label] = {
            k: statistics.median(v) for k, v in database.samples.items() if not k.startswith("warm")
        }
    return result


def report(result: dict, *, command: str, grow_by: int, rounds: int) -> str:
    base, others = result["baseline"], [name for name in result["databases"] if name != "baseline"]
    sizes = {"grown": BASE_ROWS + grow_by, "never analyzed": grow_by}
    seeded = (
        f"- Seeded {grow_by:,} sessions in one INSERT ... SELECT ({result['grow_seconds']:.1f} s)"
        if result["grow_seconds"]
        else "- Databases seeded by an earlier run (--reuse); the never-analyzed one's statistics wiped"
    )
    lines = [
        f"- Machine: {scale.machine()}",
        f"- Command: `{command}`",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"{seeded}; medians of {rounds} rounds",
        "",
        f"| median ms | baseline: {BASE_ROWS:,} sessions | "
        + " | ".join(f"{name}: {sizes[name]:,} | ratio" for name in others)
        + " |",
        "|---|---|" + "---|---|" * len(others),
    ]
    for phase, title in (("stale", "before any ANALYZE of the new rows"), ("analyzed", "after ANALYZE")):
        for name, label in (
            ("changelist", "admin changelist, default (active), HTTP in-process"),
            ("count now", "capped count as now (no ORDER BY, planner switched), SQL"),
            ("count before", "capped count as before (the list's ORDER BY), SQL"),
            ("page now", "the page's 100 rows as now (planner switched), SQL"),
            ("page before", "the page's 100 rows as before, SQL"),
        ):
            key = f"{phase}: {name}"
            cells = " | ".join(
                f"{result[other][key]:.1f} | {result[other][key] / base[key]:.2f}x" for other in others
            )
            lines.append(f"| {label}; {title} | {base[key]:.1f} | {cells} |")
    lines += [
        "",
        "SQL statements per changelist (BEGIN, COMMIT and savepoints not counted; two of them switch the "
        "planner and back): " + ", ".join(f"{k}: {v}" for k, v in result["queries"].items()),
    ]
    lines += [
        "",
        "Rows (actual / as pg_class.reltuples believed): "
        + ", ".join(f"{k}: {v[0]:,} / {v[1]:,.0f}" for k, v in result["rows"].items()),
    ]
    lines += ["", "Plans PostgreSQL chose:", ""]
    for where, plans in result["plans"].items():
        for name, text in plans.items():
            lines.append(f"- {where}, {name}: `{text}`")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grow-by", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the databases an earlier run seeded (the baseline and the never-analyzed one, "
        "its statistics wiped) instead of seeding anew",
    )
    args = parser.parse_args()

    base_url = os.environ.get("BENCH_DATABASE_URL", scale.DEFAULT_URL)
    env = scale.environment(base_url)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)

    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    result = run(base_url, grow_by=args.grow_by, rounds=args.rounds, reuse=args.reuse)
    text = report(result, command=" ".join(["python", *sys.argv]), grow_by=args.grow_by, rounds=args.rounds)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
