"""Where a change comes from: the client's address and user agent, and the admin acting, if any;
and whose page or app a request's ``Origin`` header names.

Services take an ``Origin`` (plain values) to record sessions and audit events; the views, the
admin and the throttles build one from their request with ``request_origin``. The request itself
rides along, unread by the rules, for Django's ``authenticate()`` and auth signals alone.
"""

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.utils.functional import SimpleLazyObject
from rest_framework.throttling import BaseThrottle

from .conf import app_settings


@dataclass(frozen=True)
class Origin:
    """The client's IP and user agent, and the admin who acts on someone else's sessions (None: the
    user themselves, or a command)."""

    ip: str | None = None
    user_agent: str = ""
    actor_id: int | None = None
    # The HttpRequest behind the change (None: a command, or code). No session rule reads it: the
    # services only hand it on to Django's authenticate() and its auth signals (user_logged_in,
    # user_logged_out, user_login_failed), whose receivers (django-axes, audit apps) expect the
    # request itself. It rides here, rather than the views sending the signals, so that login and
    # logout, and what they tell the rest of the project, stay defined once, in accounts.services.
    request: Any = field(default=None, compare=False, repr=False)


NOWHERE = Origin()


def client_ip(request) -> str | None:
    """The client's IP: the socket's address, or X-Forwarded-For behind ``NUM_PROXIES`` proxies.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, from a dual-stack socket) is its IPv4
    address: one client, one address, in throttles and records alike."""
    ident = BaseThrottle().get_ident(request)  # DRF's rule; reads REST_FRAMEWORK["NUM_PROXIES"]
    try:
        address = ipaddress.ip_address((ident or "").strip())
    except ValueError:  # a proxy sent something that is not an address
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def request_origin(request, *, actor_id=None) -> Origin:
    """Where a request comes from, for session records and the audit trail (Django's request, also
    when DRF's wraps it, for Django's auth signals)."""
    return Origin(
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        actor_id=actor_id,
        request=getattr(request, "_request", request),
    )


def request_origin_lazy(request) -> Origin:
    """``request_origin``, worked out when something first reads it: for a service that records
    its origin only sometimes (a refresh, when it detects reuse)."""
    return SimpleLazyObject(lambda: request_origin(request))


def origin_normalized(origin: str) -> str | None:
    """An origin as django-cors-headers compares it: ``scheme://host[:port]``, the scheme in lower
    case, no path or trailing slash; None for what names no origin (``null``, ``*``, a bare word)."""
    url = urlsplit(origin.strip())
    return f"{url.scheme}://{url.netloc}" if url.scheme and url.netloc else None


def native_app_origin(origin: str) -> bool:
    """True if an ``Origin`` header names a hybrid app's web view: one of NATIVE_APP_ORIGINS."""
    listed = app_settings.NATIVE_APP_ORIGINS
    if not listed:  # the common case, and every cookie refresh asks: nothing to parse
        return False
    normalized = origin_normalized(origin)
    return normalized is not None and normalized in {origin_normalized(each) for each in listed}
