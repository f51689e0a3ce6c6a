"""The one place where errors become HTTP responses.

``to_api_exception`` maps the domain errors of accounts.errors to DRF exceptions;
``api_exception_handler`` (DRF) and the Django error views at the bottom give every error the one
body shape ``{"detail": ..., "code": ...}``.
"""

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status

from .errors import (
    AuthError,
    InvalidCredentials,
    SessionNotFound,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    WrongPassword,
)


# --- HTTP errors -----------------------------------------------------------------------------
class Unauthorized(exceptions.APIException):
    """401 that stays a 401 on views without authenticators (DRF turns AuthenticationFailed into
    403 there); the handler adds WWW-Authenticate."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Authentication failed."
    default_code = "not_authenticated"


class CsrfFailed(exceptions.PermissionDenied):
    default_detail = "CSRF verification failed."
    default_code = "csrf_failed"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; try again shortly."
    default_code = "service_unavailable"


_API_EXCEPTIONS: dict[type[AuthError], type[exceptions.APIException]] = {
    InvalidCredentials: Unauthorized,
    TokenMissing: Unauthorized,
    TokenInvalid: Unauthorized,
    TokenExpired: Unauthorized,
    TokenRevoked: Unauthorized,
    WrongPassword: exceptions.ValidationError,
    SessionNotFound: exceptions.NotFound,
}


def _infrastructure_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [OperationalError, InterfaceError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # redis is only needed when CACHE_URL points at it
        pass
    else:
        errors += [RedisConnectionError, RedisTimeoutError]
    return tuple(errors)


INFRASTRUCTURE_ERRORS = _infrastructure_errors()


def to_api_exception(exc: AuthError) -> exceptions.APIException:
    """The HTTP error for a domain error, keeping its code."""
    if isinstance(exc, WrongPassword):
        return exceptions.ValidationError({"old_password": [exc.message]}, code=exc.code)
    api_exc = _API_EXCEPTIONS[type(exc)](detail=exc.message, code=exc.code)
    api_exc.__cause__ = exc
    return api_exc


def _error_body(exc: exceptions.APIException, data) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        return {"detail": "Invalid input.", "code": "invalid", "errors": data}
    if isinstance(exc.detail, dict):  # simplejwt's errors carry {"detail": ..., "code": ...}
        return {"detail": str(exc.detail.get("detail", "")), "code": str(exc.detail.get("code", "error"))}
    return {"detail": str(exc.detail), "code": exc.detail.code or "error"}


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: domain and infrastructure errors to HTTP, every body one shape."""
    # Imported here: rest_framework.views imports the authentication classes, which import this.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, AuthError):
        exc = to_api_exception(exc)
    elif isinstance(exc, INFRASTRUCTURE_ERRORS):
        exc = ServiceUnavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's handler500 below answers
    response.data = _error_body(exc, response.data)
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


# --- Django's own error views (set in authproject/urls.py and CSRF_FAILURE_VIEW) ---------------
def json_error(status_code: int, detail: str, code: str) -> JsonResponse:
    """A JSON error response in the service's one error shape."""
    return JsonResponse({"detail": detail, "code": code}, status=status_code)


def bad_request(request, exception=None):
    return json_error(400, "Bad request.", "bad_request")


def permission_denied(request, exception=None):
    return json_error(403, "You do not have permission to perform this action.", "permission_denied")


def not_found(request, exception=None):
    return json_error(404, "Not found.", "not_found")


@csrf_exempt  # it changes nothing, and a CSRF 403 would hide the real answer
def api_not_found(request, *args, **kwargs):
    """Unknown /api/ paths; a path without its trailing slash is told so."""
    if not request.path.endswith("/"):
        return json_error(404, "Not found. API paths end with a slash.", "not_found")
    return not_found(request)


def server_error(request):
    return json_error(500, "Internal server error.", "server_error")


def csrf_failure(request, reason=""):
    return json_error(403, "CSRF verification failed.", "csrf_failed")
