"""Where the refresh token travels: in its cookie (browsers) or in the JSON body (everything else).

A transport is a detail of the view layer: it says where a refresh token comes from and where the
issued one goes. The session rules (rotation, grace window, reuse detection) never know which one
was used; both transports hand the same token to the same services.

Why browsers never get the body: a refresh token in a body is a token JavaScript can read, so one
XSS would carry the whole session away. In the httpOnly cookie a script can at most use the session
while the page is open, never take it elsewhere. Clients that are not browsers have no ambient
cookie for another site to ride on, so the body needs no CSRF check; and a browser always sends an
``Origin`` header on the cross-origin and fetch POSTs a script can make, which is how it is told
apart and refused. The web views of hybrid apps (Capacitor, Ionic) send an ``Origin`` of their own,
which no web page can send: NATIVE_APP_ORIGINS names those, and they are admitted as apps.
"""

from django.http import HttpResponse
from rest_framework import serializers

from . import cookies
from .conf import app_settings
from .csrf import csrf_enforce
from .errors import BodyTransportForbidden
from .origin import native_app_origin

COOKIE = "cookie"
BODY = "body"
CHOICES = (COOKIE, BODY)


class RefreshTokenFields(serializers.Serializer):
    """The refresh token as the body transport answers it (``services.IssuedTokens.refresh``)."""

    refresh = serializers.SerializerMethodField()
    refresh_expires_at = serializers.DateTimeField(source="refresh.expires_at", read_only=True)

    def get_refresh(self, issued) -> str:
        return str(issued.refresh)


class CookieTransport:
    """The browser's: the token comes from the ambient cookie (so Django's CSRF check guards the
    read) and goes back into it; it is never written into a body."""

    name = COOKIE

    def admit(self, request) -> None:
        """Anyone may use the cookie."""

    def check(self, request) -> None:
        """Django's CSRF check, which reading an ambient cookie needs (CsrfFailed, 403)."""
        csrf_enforce(request)

    def read(self, request, validated_data: dict) -> str | None:
        """The cookie's token, after the CSRF check."""
        self.check(request)
        return cookies.refresh_cookie_get(request)

    def hand_out(self, response: HttpResponse, issued) -> None:
        """The issued refresh token into its cookie."""
        cookies.refresh_cookie_set(response, issued.refresh)

    def discard(self, response: HttpResponse) -> None:
        """Delete the cookie (logout, a dead session)."""
        cookies.refresh_cookie_delete(response)


class BodyTransport:
    """Native and REST clients': the token comes in the JSON body and goes back in it. No cookie is
    read, set or deleted, and no CSRF check applies: nothing ambient is involved."""

    name = BODY

    def admit(self, request) -> None:
        """Refuse browsers (an Origin header that is not one of NATIVE_APP_ORIGINS), and everyone
        when body transport is turned off."""
        if not app_settings.REFRESH_BODY_TRANSPORT:
            raise BodyTransportForbidden(
                "Body transport is turned off; the refresh token travels in its cookie."
            )
        origin = request.META.get("HTTP_ORIGIN")
        if origin is not None and not native_app_origin(origin):
            raise BodyTransportForbidden(
                "Browsers get the refresh token in an httpOnly cookie, never in a body."
            )

    def read(self, request, validated_data: dict) -> str | None:
        """The body's ``refresh``."""
        return validated_data.get("refresh")

    def hand_out(self, response: HttpResponse, issued) -> None:
        """The issued refresh token and its expiry into the answer's body."""
        response.data.update(RefreshTokenFields(issued).data)

    def discard(self, response: HttpResponse) -> None:
        """Nothing to delete: the client drops its copy."""


def transport_for(name: str) -> CookieTransport | BodyTransport:
    """The transport called ``name``, after nothing: admission is the caller's next step."""
    return BodyTransport() if name == BODY else CookieTransport()
