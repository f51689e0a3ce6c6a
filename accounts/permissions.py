"""DRF permissions of this app's views."""

from rest_framework.permissions import IsAuthenticated

from . import mfa
from .errors import AuthError
from .http_errors import to_http_error


class RecentlyAuthenticated(IsAuthenticated):
    """Signed in, and recently authenticated (the access token's ``auth_time`` within
    REAUTHENTICATION_TIMEOUT); else 401 reauthentication_required."""

    # What a guarded view's OpenAPI document says of its 401.
    described = (
        "No valid Bearer access token, or its session was revoked or expired; or an access token "
        "older than REAUTHENTICATION_TIMEOUT (`reauthentication_required`): POST "
        "/api/auth/reauthenticate/ first."
    )

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        try:
            mfa.recent_authentication_require(auth_time=request.auth.auth_time)
        except AuthError as e:
            raise to_http_error(e) from e
        return True
