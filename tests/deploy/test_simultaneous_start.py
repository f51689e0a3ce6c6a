"""Instances started at the same moment on a fresh PostgreSQL database, as an orchestrator rolls out a
new deployment: each `make serve` migrates under one advisory lock (manage.py migrate_once), so the
migrations run once and the other instances wait, then every instance serves.

Without the lock, the migrates raced, and all but one died with an IntegrityError: a table both
created (PostgreSQL's pg_type), or the content types both inserted (django_content_type).
"""

import os
import time

import psycopg

from benchmarks.servers import Client, Serve, free_ports

from ..helpers import fresh_postgres_database
from .conftest import needs_postgres, server_environment

INSTANCES = 3


@needs_postgres
def test_instances_started_at_once_on_a_fresh_database_migrate_once_and_all_serve(tmp_path):
    with fresh_postgres_database(f"deploy_migrate_{os.getpid()}") as database_url:
        environment = server_environment(
            DATABASE_URL=database_url,
            WEB_CONCURRENCY="1",
            STATIC_ROOT=str(tmp_path / "static"),  # empty: every instance collects into it at once, too
        )
        instances = [
            Serve(f"at_once_{n}", port, environment, tmp_path)
            for n, port in enumerate(free_ports(INSTANCES))
        ]
        started = time.monotonic()
        try:
            for instance in instances:
                instance.launch()
            for instance in instances:
                instance.wait()
            health = [Client(instance.base).request("GET", "/api/health/") for instance in instances]
            elapsed = time.monotonic() - started
        finally:
            for instance in instances:
                instance.stop()
        logs = {instance.name: instance.log.read_text() for instance in instances}
        assert [answer.status for answer in health] == [200] * INSTANCES, logs
        assert not [name for name, log in logs.items() if "Error" in log or "Traceback" in log], logs
        # Each migration was applied by exactly one instance, and recorded once.
        assert sum(log.count("Applying accounts.0001_initial...") for log in logs.values()) == 1, logs
        with psycopg.connect(database_url) as connection:
            twice = connection.execute(
                "SELECT app, name FROM django_migrations GROUP BY app, name HAVING count(*) > 1"
            ).fetchall()
        assert twice == []
        print(f"\n{INSTANCES} instances started at once on a fresh database: all healthy in {elapsed:.1f} s")
