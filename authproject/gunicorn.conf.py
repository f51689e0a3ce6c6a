"""gunicorn's configuration for `make serve`: ``gunicorn -c authproject/gunicorn.conf.py authproject.wsgi``.

HOST, PORT and WEB_CONCURRENCY (worker processes) come from the environment, as is usual for
gunicorn deployments; the rest is fixed here.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))

# A worker silent this long is killed and replaced; DATABASE_TIMEOUT (5 s) ends a wait on the
# database well before, with a 503 the client can act on.
timeout = 30
graceful_timeout = 30  # on SIGTERM, requests in flight get this long to finish
keepalive = 5  # seconds an idle proxy connection stays open

# Whether a request came over https is Django's decision alone (TRUST_X_FORWARDED_PROTO), the same
# whatever address the proxy has: gunicorn trusts X-Forwarded-Proto from loopback by default.
secure_scheme_headers = {}

# Access log on stdout: the time, the client, method, path without the query string, status, size,
# duration, user agent, and the request's id (the answer's X-Request-ID, which the app's own log
# lines of that request carry too). Never the query string, the Referer, cookies or the
# Authorization header, any of which could carry a token.
accesslog = "-"
access_log_format = (
    '%(t)s %({x-forwarded-for}i)s %(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s" %({x-request-id}o)s'
)
errorlog = "-"

# Metrics (accounts/metrics.py): prometheus-client's multiprocess mode, so that /metrics, whichever
# worker answers it, sums every worker's counts. Each worker writes its own to files in
# PROMETHEUS_MULTIPROC_DIR: a directory of the operator's, or a fresh temporary one made here (and
# removed when gunicorn stops). Set here, in the master before it forks any worker, and before
# anything imports prometheus_client, which reads it on import.
_made_metrics_directory = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _made_metrics_directory:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authproject-metrics-")
_METRICS_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def on_starting(server):
    """Empty the metrics directory of an earlier run's files (its counts would add to this one's):
    only prometheus-client's own files, whatever else the directory holds."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for pattern in _METRICS_FILES:
        for path in glob.glob(os.path.join(directory, pattern)):
            os.remove(path)


def child_exit(server, worker):
    """A worker exited: its counts stay summed in, and its live gauges (if any) are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """gunicorn stops: the temporary metrics directory made above goes with it."""
    if _made_metrics_directory:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
