"""Django's own error views in the API's JSON shape, for a project that wants them.

This project wires them in authproject/urls.py (handler400/403/404/500, and ``api_not_found`` last
under /api/) and CSRF_FAILURE_VIEW; the app's own endpoints answer JSON without them. The Django
admin is a site of HTML pages for people: its errors stay Django's HTML pages.
"""

import functools
import sys

from django.http import HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt

from .http_errors import INFRASTRUCTURE_ERRORS, ServiceUnavailable, error_body
from .metrics import backing_service_error_counted


def is_admin_request(request) -> bool:
    """The request is for the Django admin (when the project has one)."""
    try:
        prefix = reverse("admin:index")
    except NoReverseMatch:
        return False
    return request.path.startswith(prefix)


def html_for_the_admin(html_view):
    """Decorate a JSON error view: requests for the admin get ``html_view`` (Django's page) instead."""

    def decorate(json_view):
        @functools.wraps(json_view)
        def view(request, *args, **kwargs):
            chosen = html_view if is_admin_request(request) else json_view
            return chosen(request, *args, **kwargs)

        return view

    return decorate


def json_error(status_code: int, detail: str, code: str) -> JsonResponse:
    """A JSON error response in the service's one error shape."""
    return JsonResponse(error_body(detail, code), status=status_code)


@html_for_the_admin(defaults.bad_request)
def bad_request(request, exception=None):
    """handler400."""
    return json_error(400, "Bad request.", "bad_request")


@html_for_the_admin(defaults.permission_denied)
def permission_denied(request, exception=None):
    """handler403."""
    return json_error(403, "You do not have permission to perform this action.", "permission_denied")


@html_for_the_admin(defaults.page_not_found)
def not_found(request, exception=None):
    """handler404."""
    return json_error(404, "Not found.", "not_found")


SERVICE_UNAVAILABLE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Service unavailable</title></head>
<body><h1>Service unavailable</h1><p>A backing service is not answering; try again shortly.</p></body></html>
"""


def service_unavailable_page(request):
    """The admin's page for a database or cache that does not answer."""
    return HttpResponse(SERVICE_UNAVAILABLE_HTML, status=503, headers={"Retry-After": "5"})


@html_for_the_admin(service_unavailable_page)
def service_unavailable(request):
    """A database or cache that does not answer, outside the app's views (from handler500)."""
    return json_error(503, ServiceUnavailable.default_detail, ServiceUnavailable.default_code)


@html_for_the_admin(defaults.server_error)
def internal_error(request):
    """A crash: 500."""
    return json_error(500, "Internal server error.", "server_error")


def server_error(request):
    """handler500. A database or cache that does not answer is 503, not 500: outside the app's
    views (the admin, its session and user look-ups) nothing else maps it."""
    if isinstance(error := sys.exc_info()[1], INFRASTRUCTURE_ERRORS):
        backing_service_error_counted(error)
        return service_unavailable(request)
    return internal_error(request)


@html_for_the_admin(csrf.csrf_failure)
def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW (this app's own endpoints raise CsrfFailed instead)."""
    return json_error(403, "CSRF verification failed.", "csrf_failed")


@csrf_exempt  # it changes nothing, and a CSRF 403 would hide the real answer
def api_not_found(request, *args, **kwargs):
    """Unknown /api/ paths; a path without its trailing slash is told so."""
    if not request.path.endswith("/"):
        return json_error(404, "Not found. API paths end with a slash.", "not_found")
    return not_found(request)
