"""CSRF for the endpoints that read the ambient refresh cookie, through Django's own check."""

import re
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.middleware.csrf import CsrfViewMiddleware

from .http_errors import CsrfFailed
from .origin import native_app_origin


class CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check (Origin, then token against the ``csrftoken`` cookie) for one view.

    Trusted origins are CSRF_TRUSTED_ORIGINS (settings make it the browsers' CORS allowlist) plus,
    so that the two stay one list, the CORS origin regexes (only set with DEBUG on). An app's
    origin (NATIVE_APP_ORIGINS) is never trusted, whatever list or host it matches: apps use body
    transport, which needs no CSRF check, and their web views are no browser page.

    It overrides two private methods of Django's middleware, ``_reject`` (to get the reason back
    instead of a 403 page) and ``_origin_verified``; canary: tests/test_canaries.py::
    test_django_csrf_middleware_rejects_through_reject_and_asks_origin_verified.
    """

    def _reject(self, request, reason):
        return reason

    def _origin_verified(self, request):
        origin = request.META.get("HTTP_ORIGIN", "")
        if native_app_origin(origin):
            return False
        if super()._origin_verified(request):
            return True
        return any(
            re.match(pattern, origin) for pattern in getattr(settings, "CORS_ALLOWED_ORIGIN_REGEXES", [])
        )


@cache
def _csrf_check() -> CsrfCheck:
    """One check for the process, as Django keeps one middleware instance (it works out the trusted
    origins once); made anew when the settings change (``setting_changed``, as tests send it)."""
    return CsrfCheck(lambda request: None)


@receiver(setting_changed)
def _forget_csrf_check(**kwargs) -> None:
    _csrf_check.cache_clear()


def csrf_enforce(request) -> None:
    """Raise CsrfFailed unless the request passes Django's CSRF check (DRF's request will do, as
    DRF's own SessionAuthentication passes it: it reads through to Django's)."""
    check = _csrf_check()
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise CsrfFailed()
