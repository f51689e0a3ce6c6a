"""The only module that knows the refresh cookie's attributes: it sets, reads and deletes it.

A host that shares a parent domain with this one (a sibling subdomain) can set a cookie of the same
name for the parent domain and this path, which the browser then sends beside this host's own: a
request with two refresh cookies is refused (DuplicateRefreshCookie), since which one is this
client's cannot be known. Django's request.COOKIES keeps only the last of them, so the Cookie header
itself is counted. With REFRESH_COOKIE_HOST_PREFIX the cookie is ``__Host-``-prefixed (Path=/, no
Domain, Secure), a name that browsers let only this very host set.
"""

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .conf import app_settings
from .errors import DuplicateRefreshCookie
from .tokens import RefreshToken

HOST_PREFIX = "__Host-"


def refresh_cookie_name() -> str:
    """The cookie's name: REFRESH_COOKIE_NAME, ``__Host-``-prefixed with REFRESH_COOKIE_HOST_PREFIX."""
    name = app_settings.REFRESH_COOKIE_NAME
    return HOST_PREFIX + name if app_settings.REFRESH_COOKIE_HOST_PREFIX else name


def _attributes() -> dict:
    if app_settings.REFRESH_COOKIE_HOST_PREFIX:  # what browsers require of a __Host- cookie
        path, domain = "/", None
    else:
        path, domain = app_settings.REFRESH_COOKIE_PATH, app_settings.REFRESH_COOKIE_DOMAIN
    return {
        "path": path,
        "domain": domain,
        "secure": app_settings.REFRESH_COOKIE_SECURE,
        "httponly": True,
        "samesite": app_settings.REFRESH_COOKIE_SAMESITE,
    }


def _set(response: HttpResponse, value: str, **kwargs) -> None:
    name = refresh_cookie_name()
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


def _cookie_count(header: str, name: str) -> int:
    """How many cookies named ``name`` the Cookie header holds, split as Django's parse_cookie
    splits it (on ";", each name stripped)."""
    return sum(1 for chunk in header.split(";") if "=" in chunk and chunk.split("=", 1)[0].strip() == name)


def refresh_cookie_get(request: HttpRequest) -> str | None:
    """The raw refresh token from the request's cookie, or None; DuplicateRefreshCookie if the
    request carries two cookies of its name."""
    name = refresh_cookie_name()
    value = request.COOKIES.get(name)
    if value is not None and _cookie_count(request.META.get("HTTP_COOKIE", ""), name) > 1:
        raise DuplicateRefreshCookie()
    return value or None


def refresh_cookie_delete(response: HttpResponse) -> None:
    """Expire the cookie with the same name, path, domain, SameSite (and Partitioned) it was set with."""
    _set(response, "", max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT")
