"""The only module that knows the refresh cookie's attributes: it sets, reads and deletes it."""

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .conf import app_settings
from .tokens import RefreshToken


def _attributes() -> dict:
    return {
        "path": app_settings.REFRESH_COOKIE_PATH,
        "domain": app_settings.REFRESH_COOKIE_DOMAIN,
        "secure": app_settings.REFRESH_COOKIE_SECURE,
        "httponly": True,
        "samesite": app_settings.REFRESH_COOKIE_SAMESITE,
    }


def _set(response: HttpResponse, value: str, **kwargs) -> None:
    name = app_settings.REFRESH_COOKIE_NAME
    response.set_cookie(name, value, **kwargs, **_attributes())
    if app_settings.REFRESH_COOKIE_PARTITIONED:
        # Django 5.2 and Python 3.11's http.cookies know no Partitioned flag (Python 3.14 adds it),
        # so it rides on the SameSite attribute, which the Morsel writes out verbatim:
        # "SameSite=None; Partitioned". Deleting a partitioned cookie needs the flag as well.
        response.cookies[name]["samesite"] = f"{app_settings.REFRESH_COOKIE_SAMESITE}; Partitioned"


def refresh_cookie_set(response: HttpResponse, token: RefreshToken) -> None:
    """Put the refresh token in its cookie; Max-Age follows the token's own ``exp``."""
    max_age = max(0, int((token.expires_at - timezone.now()).total_seconds()))
    _set(response, str(token), max_age=max_age)


def refresh_cookie_get(request: HttpRequest) -> str | None:
    """The raw refresh token from the request's cookie, or None."""
    return request.COOKIES.get(app_settings.REFRESH_COOKIE_NAME) or None


def refresh_cookie_delete(response: HttpResponse) -> None:
    """Expire the cookie with the same name, path, domain, SameSite (and Partitioned) it was set with."""
    _set(response, "", max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT")
