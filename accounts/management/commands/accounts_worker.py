"""manage.py accounts_worker: django-tasks-db's db_worker (what sends the queued mail), serving its
metrics on a port of its own (what `make worker` runs).

The worker sends every mail, so only its process holds ``authproject_mails_total``'s counts, and it
serves no HTTP: without this, Prometheus could never read them. A command of its own, rather than
db_worker itself with a thread started from ``AppConfig.ready`` on seeing its name in ``sys.argv``:
the thread starts when the worker starts and stops when it stops, in the one process that runs the
tasks, and every other command (migrate, shell, the tests) opens no port.
"""

import logging
import os

from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker

from accounts.conf import app_settings
from accounts.metrics import METRICS_PATH, metrics_serve

from ._common import AccountsCommand

logger = logging.getLogger("accounts.worker")

# prometheus-client's multiprocess mode, which it enters on import when either is in the
# environment (even empty): the worker's counts would go to files that gunicorn's /metrics sums (and
# empties when it starts), so they would be counted twice, or lost.
MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class Command(AccountsCommand, db_worker.Command):
    help = (
        "django-tasks-db's db_worker (the same options), which sends the mail the app servers queue, "
        "serving its metrics (authproject_mails_total) at GET /metrics on WORKER_METRICS_HOST:"
        "WORKER_METRICS_PORT (127.0.0.1:9108), to Authorization: Bearer <METRICS_TOKEN> only, as the app's "
        "/metrics does. Without METRICS_TOKEN no port is opened. Refused with PROMETHEUS_MULTIPROC_DIR "
        "in the environment (gunicorn's; `make worker` unsets it)."
    )

    def handle(self, *args, **options):
        """Start the metrics server in the process that runs the tasks, then the worker; the server
        stops when the worker does (SIGTERM ends db_worker with SystemExit, through the finally)."""
        found = [name for name in MULTIPROCESS_VARIABLES if name in os.environ]
        if found:
            raise CommandError(
                f"{found[0]} is set: the worker would write its metrics among gunicorn's. Unset it for the "
                "worker (`make worker` does); the worker serves its own on WORKER_METRICS_PORT."
            )
        server = self.metrics_server(options) if self.runs_the_tasks(options) else None
        try:
            return super().handle(*args, **options)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()

    @staticmethod
    def runs_the_tasks(options) -> bool:
        """With --reload (db_worker's default under DEBUG) this process only restarts a child that
        runs them (and serves the metrics); otherwise this one runs them."""
        reloading = options["reload"] and not options["batch"]
        return not reloading or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"

    @staticmethod
    def metrics_server(options):
        """The metrics server, started; None while METRICS_TOKEN is unset (no token, no endpoint)."""
        if not app_settings.METRICS_TOKEN:
            if options["verbosity"]:
                logger.info("METRICS_TOKEN is unset: the worker's metrics are not served.")
            return None
        host, port = app_settings.WORKER_METRICS_HOST, app_settings.WORKER_METRICS_PORT
        try:
            server = metrics_serve(host=host, port=port)
        except (OSError, OverflowError) as error:  # in use, not this machine's, or no port
            raise CommandError(
                f"The worker's metrics cannot be served on {host}:{port} ({error}). Each worker of a "
                "machine needs its own WORKER_METRICS_PORT."
            ) from error
        if options["verbosity"]:
            logger.info("Serving the worker's metrics on http://%s:%s%s", host, port, METRICS_PATH)
        return server
