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


def refresh_cookie_set(response: HttpResponse, token: RefreshToken) -> None:
    """Put the refresh token in its cookie; Max-Age follows the token's own ``exp``."""
    max_age = max(0, int((token.expires_at - timezone.now()).total_seconds()))
    response.set_cookie(app_settings.REFRESH_COOKIE_NAME, str(token), max_age=max_age, **_attributes())


def refresh_cookie_get(request: HttpRequest) -> str | None:
    """The raw refresh token from the request's cookie, or None."""
    return request.COOKIES.get(app_settings.REFRESH_COOKIE_NAME) or None


def refresh_cookie_delete(response: HttpResponse) -> None:
    """Expire the cookie with the same name, path, domain and SameSite it was set with."""
    response.set_cookie(
        app_settings.REFRESH_COOKIE_NAME,
        "",
        max_age=0,
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        **_attributes(),
    )
