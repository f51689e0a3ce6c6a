"""Login throttling per username and per client IP, counted in the shared cache."""

import hashlib

from django.contrib.auth import get_user_model
from rest_framework.throttling import SimpleRateThrottle

from .audit import audit_event_record
from .conf import app_settings
from .models import AuditEventType
from .origin import client_ip, request_origin


def login_name(request) -> str:
    """What the login body gives for the user model's USERNAME_FIELD (the login serializer's
    field: "username" for Django's User, "email" for a model that signs in by email), or ""."""
    data = request.data if isinstance(request.data, dict) else {}
    name = data.get(get_user_model().USERNAME_FIELD)
    return name if isinstance(name, str) else ""


class LoginThrottle(SimpleRateThrottle):
    """Base for the login throttles: the rate is read from app_settings when used."""

    rate_setting = ""

    def get_rate(self) -> str:
        """The configured rate, looked up per request (DRF binds THROTTLE_RATES at import)."""
        return getattr(app_settings, self.rate_setting)

    def allow_request(self, request, view) -> bool:
        """DRF's sliding window, plus an audit event when a key is first refused."""
        allowed = super().allow_request(request, view)
        if not allowed:
            self.record_throttled(request)
        return allowed

    def record_throttled(self, request) -> None:
        """One event per key and window, not one per refused request: a flood of attempts must not
        turn into a flood of inserts. ``cache.add`` is atomic on the shared cache."""
        if not self.cache.add(f"{self.key}:audited", True, timeout=int(self.duration) or 1):
            return
        audit_event_record(
            type=AuditEventType.THROTTLED,
            username=login_name(request),
            origin=request_origin(request),
            detail=f"{self.scope} {self.rate}",
        )


class LoginIPThrottle(LoginThrottle):
    """Attempts per client IP."""

    scope = "login_ip"
    rate_setting = "LOGIN_IP_THROTTLE_RATE"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}


class LoginUsernameThrottle(LoginThrottle):
    """Attempts per username, whoever sends them (slows guessing one account from many IPs)."""

    scope = "login_username"
    rate_setting = "LOGIN_THROTTLE_RATE"

    def get_cache_key(self, request, view) -> str | None:
        username = login_name(request)
        if not username:
            return None  # nothing to count; the serializer answers 400
        digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}
