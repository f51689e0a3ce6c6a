"""Prometheus metrics: what happened, counted where it is decided, and ``GET /metrics`` to read them.

The counters are bumped by the code that decides each event (``services`` for logins and refreshes,
``models.SessionQuerySet.revoke`` for every revocation, ``throttles`` for refused logins, ``mail``
for sends, ``http_errors`` and ``health`` for a database or cache that failed) through the small
functions below; ``RequestMetricsMiddleware`` times every request by its URL pattern's name (never
the raw path, which would make a series per session id). An increment is a dictionary look-up and
an addition under a lock (or a write to a memory-mapped file in multiprocess mode): no I/O, no SQL.

Under gunicorn, each worker process counts for itself; with ``PROMETHEUS_MULTIPROC_DIR`` set (as
authproject/gunicorn.conf.py does) each writes its counts to files there, and ``/metrics`` sums
every worker's (prometheus-client's multiprocess mode). Without it (runserver, tests) the counts
are this process's.

``/metrics`` answers only ``Authorization: Bearer <METRICS_TOKEN>``: 404 while no token is set (the
endpoint does not exist), 401 for a missing or wrong one, compared in constant time.

A process that serves no HTTP of its own counts too: the mail worker (``manage.py accounts_worker``,
what ``make worker`` runs) sends the mails, so only it holds ``authproject_mails_total``'s counts.
``metrics_serve`` serves them on a port of its own, the way prometheus-client intends for such a
process (its ``start_http_server``), but through ``metrics_view`` itself: the same token rule, the
same answers.
"""

import os
import socket
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from .conf import app_settings

LOGINS = Counter(
    "authproject_logins_total",
    "Sign-in attempts by their result: ok, failed (wrong password, unknown or inactive user) or "
    "throttled (refused by a login limit before the password was tried).",
    ["result", "method"],
)
REFRESHES = Counter(
    "authproject_refreshes_total",
    "Refreshes by their result: rotated, grace (the previous token within the grace window), "
    "reuse_detected (the session revoked) or refused (a bad, expired or revoked token).",
    ["result"],
)
SESSIONS_REVOKED = Counter(
    "authproject_sessions_revoked_total", "Sessions ended early, by the reason.", ["reason"]
)
MAILS = Counter(
    "authproject_mails_total", "Mails handed to the mail server (sent) or given up (failed).", ["result"]
)
DATABASE_ERRORS = Counter(
    "authproject_database_errors_total", "Requests and health checks that found the database not answering."
)
CACHE_ERRORS = Counter(
    "authproject_cache_errors_total", "Requests and health checks that found the shared cache not answering."
)
REQUEST_DURATION = Histogram(
    "authproject_request_duration_seconds",
    "Time from the request reaching Django to its answer, by URL pattern name, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

LOGIN_RESULTS = ("ok", "failed", "throttled", "mfa_required")
LOGIN_METHODS = ("password", "passkey")
REFRESH_RESULTS = ("rotated", "grace", "reuse_detected", "refused")
MAIL_RESULTS = ("sent", "failed")
# Methods outside this set are counted as "other": a client chooses the method, and a label value
# per invented method would grow the series without bound.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
UNMATCHED = "unmatched"  # no URL pattern: a 404, or a static file WhiteNoise served

# Every known series exists from the start at 0, so that rate() and alerts see the first event.
for _result in LOGIN_RESULTS:
    for _method in LOGIN_METHODS:
        LOGINS.labels(result=_result, method=_method)
for _result in REFRESH_RESULTS:
    REFRESHES.labels(result=_result)
for _result in MAIL_RESULTS:
    MAILS.labels(result=_result)


def login_counted(*, result: str, method: str = "password") -> None:
    """One sign-in attempt: ``ok``, ``failed``, ``throttled`` or ``mfa_required`` (the password
    right, a second factor asked for; the second step then counts ``ok`` or ``failed``), by
    ``method`` (LOGIN_METHODS)."""
    LOGINS.labels(result=result, method=method).inc()


def refresh_counted(*, result: str) -> None:
    """One refresh: ``rotated``, ``grace``, ``reuse_detected`` or ``refused``."""
    REFRESHES.labels(result=result).inc()


def sessions_revoked_counted(*, reason: str, count: int) -> None:
    """``count`` sessions ended for ``reason`` (a RevokeReason value)."""
    if count:
        SESSIONS_REVOKED.labels(reason=reason).inc(count)


def mail_counted(*, result: str) -> None:
    """One mail: ``sent`` or ``failed`` (given up)."""
    MAILS.labels(result=result).inc()


def backing_service_error_counted(error: BaseException | None = None, *, part: str | None = None) -> None:
    """The database or the cache did not answer: named by ``part`` ("database", "cache"), or told by
    the error (Django's database errors are the database's; anything else here is the cache's)."""
    from django.db import Error as DatabaseError

    if part is None:
        part = "database" if isinstance(error, DatabaseError) else "cache"
    (DATABASE_ERRORS if part == "database" else CACHE_ERRORS).inc()


def route_name(request) -> str:
    """The URL pattern's name (``accounts:login``), or its view's dotted path if it has none; never
    the path itself."""
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else UNMATCHED


class RequestMetricsMiddleware:
    """Times every request into ``authproject_request_duration_seconds``. Near the top of
    MIDDLEWARE, so that the time includes the other middleware's."""

    def __init__(self, get_response):
        self.get_response = get_response
        # Each series' histogram, once looked up: ``labels()`` checks and converts its arguments and
        # takes a lock, half the cost of timing a request. Bounded, as the label values are.
        self.series: dict[tuple[str, str, int], Any] = {}

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        key = (route_name(request), method, response.status_code)
        series = self.series.get(key)
        if series is None:
            route, method, status = key
            series = self.series[key] = REQUEST_DURATION.labels(route=route, method=method, status=str(status))
        series.observe(time.perf_counter() - started)
        return response


def registry() -> CollectorRegistry:
    """What ``/metrics`` reads: every worker's files in multiprocess mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def bearer_token(request) -> str:
    """The token of an ``Authorization: Bearer ...`` header, or ""."""
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@never_cache
@require_GET
def metrics_view(request):
    """GET /metrics: the Prometheus text format, for a scraper holding METRICS_TOKEN."""
    from .error_views import json_error  # which imports http_errors, which counts here

    expected = app_settings.METRICS_TOKEN
    if not expected:
        raise Http404  # no token, no endpoint: answered as any unknown path
    given = bearer_token(request)
    if not given or not constant_time_compare(given, expected):
        response = json_error(401, "A valid metrics token is required.", "not_authenticated")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


# --- a port of its own, for a process that serves no HTTP (the mail worker) ------------------------
METRICS_PATH = "/metrics"


def metrics_request(environ) -> HttpRequest:
    """What ``metrics_view`` reads of a request (its method and headers), from a WSGI environ."""
    request = HttpRequest()
    request.method, request.META = environ["REQUEST_METHOD"].upper(), environ
    request.path = request.path_info = environ.get("PATH_INFO", "")
    return request


def metrics_wsgi_app(environ, start_response):
    """A WSGI application that answers ``GET /metrics`` with ``metrics_view`` (the token checked as
    the app's own /metrics checks it) and every other path with the app's 404."""
    from .error_views import not_found

    request = metrics_request(environ)
    try:
        if request.path != METRICS_PATH:
            raise Http404
        response = metrics_view(request)
    except Http404:  # another path, or no METRICS_TOKEN (the worker then serves nothing at all)
        response = not_found(request)
    start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
    return [response.content]


class _QuietHandler(WSGIRequestHandler):
    """No line on stderr per scrape (wsgiref's default), every 15 s for ever."""

    def log_message(self, format, *args):  # noqa: A002 - the name of the method it overrides
        pass


def metrics_serve(*, host: str, port: int) -> WSGIServer:
    """Serve ``metrics_wsgi_app`` on host:port from a daemon thread (one more thread per scrape, so
    that a slow client holds up no other); the server, for ``shutdown()``. OSError when the address
    cannot be bound (in use, or not this machine's)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]  # an IPv6 address works too
    server_class = type(
        "MetricsServer", (ThreadingMixIn, WSGIServer), {"address_family": family, "daemon_threads": True}
    )
    server = make_server(host, port, metrics_wsgi_app, server_class=server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
