"""Where a change comes from: the client's address and user agent, and the admin acting, if any.

Services take an ``Origin`` (plain values, no request) to record sessions and audit events; the
views, the admin and the throttles build one from their request with ``request_origin``.
"""

import ipaddress
from dataclasses import dataclass

from django.utils.functional import SimpleLazyObject
from rest_framework.throttling import BaseThrottle


@dataclass(frozen=True)
class Origin:
    """The client's IP and user agent, and the admin who acts on someone else's sessions (None: the
    user themselves, or a command)."""

    ip: str | None = None
    user_agent: str = ""
    actor_id: int | None = None


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
    """Where a request comes from, for session records and the audit trail."""
    return Origin(
        ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""), actor_id=actor_id
    )


def request_origin_lazy(request) -> Origin:
    """``request_origin``, worked out when something first reads it: for a service that records
    its origin only sometimes (a refresh, when it detects reuse)."""
    return SimpleLazyObject(lambda: request_origin(request))
