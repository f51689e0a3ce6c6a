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
"""

import os
import time
from typing import Any

from django.http import Http404, HttpResponse
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
