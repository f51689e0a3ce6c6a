"""manage.py migrate_once: Django's migrate, one instance at a time (what `make serve` runs)."""

import time
from contextlib import contextmanager

from django.core.management.commands import migrate
from django.db import DatabaseError, connections

from ._common import AccountsCommand

# pg_advisory_lock's key: any fixed 64-bit number, the same for every instance. Advisory locks belong
# to one database, so instances of other projects on the same server never wait for these.
MIGRATION_LOCK_KEY = int.from_bytes(b"migrate_", "big", signed=True)
POLL_INTERVAL = 0.5  # seconds between tries while another instance migrates


class Command(AccountsCommand, migrate.Command):
    help = (
        "Django's migrate (the same arguments), run by one instance at a time: on PostgreSQL it first "
        "takes a session advisory lock on the database, so that any number of app servers may start at "
        "once. One migrates; the others wait, then find nothing left to do. The lock goes with the "
        "connection, so an instance that dies while migrating never leaves it held. On other "
        "databases (SQLite) it is a plain migrate."
    )

    def handle(self, *args, **options):
        """Run migrate while holding the database's migration lock."""
        with self.migration_lock(connections[options["database"]], verbosity=options["verbosity"]):
            return super().handle(*args, **options)

    @contextmanager
    def migration_lock(self, connection, *, verbosity: int):
        """Hold PostgreSQL's advisory lock MIGRATION_LOCK_KEY on ``connection`` (the one migrate uses)."""
        if connection.vendor != "postgresql":
            yield
            return
        # Tried again and again rather than waited for in one pg_advisory_lock call: each try answers
        # at once, so DATABASE_TIMEOUT (statement_timeout and the client's deadline) cannot end a wait
        # that lasts as long as the other instance's migrations.
        said = False
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
                if cursor.fetchone()[0]:
                    break
                if not said and verbosity:
                    self.stdout.write("Another instance is migrating this database: waiting for it.")
                    said = True
                time.sleep(POLL_INTERVAL)
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
            except DatabaseError:
                pass  # the connection is gone (a failed migration), and its lock went with it
