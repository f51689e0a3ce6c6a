"""Django's own error views in the API's JSON shape, for a project that wants them.

This project wires them in authproject/urls.py (handler400/403/404/500, and ``api_not_found`` last
under /api/) and CSRF_FAILURE_VIEW; the app's own endpoints answer JSON without them.
"""

import sys

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .http_errors import INFRASTRUCTURE_ERRORS, ServiceUnavailable, error_body


def json_error(status_code: int, detail: str, code: str) -> JsonResponse:
    """A JSON error response in the service's one error shape."""
    return JsonResponse(error_body(detail, code), status=status_code)


def bad_request(request, exception=None):
    """handler400."""
    return json_error(400, "Bad request.", "bad_request")


def permission_denied(request, exception=None):
    """handler403."""
    return json_error(403, "You do not have permission to perform this action.", "permission_denied")


def not_found(request, exception=None):
    """handler404."""
    return json_error(404, "Not found.", "not_found")


SERVICE_UNAVAILABLE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Service unavailable</title></head>
<body><h1>Service unavailable</h1><p>A backing service is not answering; try again shortly.</p></body></html>
"""


def _is_admin(request) -> bool:
    """Whether the failing request was for the Django admin (which answers HTML, not JSON)."""
    match = getattr(request, "resolver_match", None)
    return bool(match and "admin" in match.namespaces)


def server_error(request):
    """handler500. A database or cache that does not answer is 503, not 500: outside the app's
    views (the admin, its session and user look-ups) nothing else maps it; the admin gets HTML."""
    if isinstance(sys.exc_info()[1], INFRASTRUCTURE_ERRORS):
        if _is_admin(request):
            return HttpResponse(SERVICE_UNAVAILABLE_HTML, status=503, headers={"Retry-After": "5"})
        return json_error(503, ServiceUnavailable.default_detail, ServiceUnavailable.default_code)
    return json_error(500, "Internal server error.", "server_error")


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW (this app's own endpoints raise CsrfFailed instead)."""
    return json_error(403, "CSRF verification failed.", "csrf_failed")


@csrf_exempt  # it changes nothing, and a CSRF 403 would hide the real answer
def api_not_found(request, *args, **kwargs):
    """Unknown /api/ paths; a path without its trailing slash is told so."""
    if not request.path.endswith("/"):
        return json_error(404, "Not found. API paths end with a slash.", "not_found")
    return not_found(request)
