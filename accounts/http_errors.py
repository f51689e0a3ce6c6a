"""Errors as HTTP: the one place where failures become API responses.

The domain (accounts.errors) raises ``AuthError`` subclasses with a stable ``code``;
``to_http_error`` maps each to its DRF exception, infrastructure failures (database, cache) become
503, and ``api_exception_handler`` gives every API error the one body that ``error_body`` builds:
``{"detail": ..., "code": ...}``. The views of this app install that handler themselves
(``views.ApiView``), so a project needs no EXCEPTION_HANDLER setting for them.
"""

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status

from .errors import (
    AuthError,
    BodyTransportForbidden,
    DuplicateRefreshCookie,
    EmailUnverified,
    InvalidCode,
    InvalidCredentials,
    InvalidKey,
    MfaTokenInvalid,
    NoSecondFactor,
    PasskeyExists,
    PasskeyNotFound,
    PasswordChecksBusy,
    PasswordRejected,
    ReauthenticationRequired,
    SessionNotFound,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    TokenRevoked,
    TotpAlreadyEnabled,
    TotpNotPending,
    UsernameTaken,
    WrongPassword,
    WrongPasswordForEmailChange,
)
from .metrics import backing_service_error_counted


def error_body(detail: str, code: str, **extra) -> dict:
    """The service's one error shape; ``extra`` adds fields (validation errors, health parts)."""
    return {"detail": detail, "code": code, **extra}


# --- HTTP exceptions -------------------------------------------------------------------------
class Unauthorized(exceptions.APIException):
    """401 that stays a 401 on views without authenticators (DRF turns AuthenticationFailed into
    403 there); the handler adds WWW-Authenticate."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Authentication failed."
    default_code = "not_authenticated"


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


class Conflict(exceptions.APIException):
    """409: the request is right, but the account's state does not allow it now."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class CsrfFailed(exceptions.PermissionDenied):
    default_detail = "CSRF verification failed."
    default_code = "csrf_failed"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "request_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; try again shortly."
    default_code = "service_unavailable"


class RetryInASecond(exceptions.Throttled):
    """429 with Retry-After: 1, for a load that passes within the second."""

    def __init__(self, detail=None, code=None):
        super().__init__(wait=1, detail=detail, code=code)


# --- domain and infrastructure errors to HTTP ----------------------------------------------------
_HTTP_ERRORS: dict[type[AuthError], type[exceptions.APIException]] = {
    InvalidCredentials: Unauthorized,
    TokenMissing: Unauthorized,
    TokenInvalid: Unauthorized,
    TokenExpired: Unauthorized,
    TokenRevoked: Unauthorized,
    SessionNotFound: exceptions.NotFound,
    BodyTransportForbidden: BadRequest,
    DuplicateRefreshCookie: BadRequest,
    InvalidKey: BadRequest,
    EmailUnverified: exceptions.PermissionDenied,
    PasswordChecksBusy: RetryInASecond,
    InvalidCode: Unauthorized,
    MfaTokenInvalid: Unauthorized,
    ReauthenticationRequired: Unauthorized,
    TotpAlreadyEnabled: Conflict,
    TotpNotPending: Conflict,
    NoSecondFactor: Conflict,
    PasskeyExists: Conflict,
    PasskeyNotFound: exceptions.NotFound,
}


# Domain errors that are about one input field: 400 validation errors on that field.
_FIELD_ERRORS: dict[type[AuthError], str] = {
    WrongPassword: "old_password",
    UsernameTaken: "username",
    PasswordRejected: "new_password",
    WrongPasswordForEmailChange: "password",
}


def to_http_error(error: AuthError) -> exceptions.APIException:
    """The HTTP error for a domain error, keeping its code (and the domain error as its cause)."""
    if type(error) in _FIELD_ERRORS:  # a form error, on the field it is about
        messages = getattr(error, "messages", [error.message])  # PasswordRejected: the validators'
        http_error = exceptions.ValidationError({_FIELD_ERRORS[type(error)]: messages}, code=error.code)
    else:
        http_error = _HTTP_ERRORS[type(error)](detail=error.message, code=error.code)
    http_error.__cause__ = error
    return http_error


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


def _response_body(exc: exceptions.APIException, data) -> dict:
    """The one error shape for what DRF's handler answered (``data``)."""
    if isinstance(exc, exceptions.ValidationError):
        return error_body("Invalid input.", "invalid", errors=data)
    if isinstance(exc.detail, dict):  # simplejwt's errors carry {"detail": ..., "code": ...}
        return error_body(str(exc.detail.get("detail", "")), str(exc.detail.get("code", "error")))
    return error_body(str(exc.detail), exc.detail.code or "error")


def api_exception_handler(exc, context):
    """DRF's exception handler for this app's views: domain and infrastructure errors to HTTP,
    every body one shape. An unexpected error returns None and reaches Django's handler500."""
    # Imported here: rest_framework.views imports the authentication classes, which import this.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, AuthError):
        exc = to_http_error(exc)
    elif isinstance(exc, INFRASTRUCTURE_ERRORS):
        backing_service_error_counted(exc)
        exc = ServiceUnavailable()
    elif isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge()
    elif isinstance(exc, Http404):  # e.g. ?format= naming a renderer the view has not
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = _response_body(exc, response.data)
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
