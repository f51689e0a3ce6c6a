"""Bearer access tokens, checked against the session that issued them."""

from rest_framework_simplejwt.authentication import JWTAuthentication

from . import selectors
from .conf import app_settings, jwt_settings
from .errors import AuthError, TokenInvalid, TokenRevoked
from .http_errors import to_http_error
from .tokens import AccessToken, access_token_verify


class SessionJWTAuthentication(JWTAuthentication):
    """simplejwt's header authentication, with one extra rule: the token's session must be active.

    Revoking a session (logout, logout-all, admin, command, password change, deactivation) thus
    stops its access tokens at once. ``ACCOUNTS_ACCESS_TOKEN_CHECKS_SESSION = False`` turns the check
    off for fully stateless tokens (then only simplejwt's own user look-up runs).
    """

    def get_raw_token(self, header: bytes) -> bytes | None:
        """The token from "Bearer <token>"; a malformed Bearer header is an invalid token."""
        parts = header.split()
        if len(parts) != 2 and parts and parts[0] in {t.encode() for t in jwt_settings().AUTH_HEADER_TYPES}:
            raise to_http_error(TokenInvalid("Authorization header must be 'Bearer <token>'."))
        return super().get_raw_token(header)

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        """A verified access token: signature, expiry and type (a refresh token is refused)."""
        try:
            return access_token_verify(raw_token)
        except AuthError as e:
            raise to_http_error(e) from e

    def get_user(self, validated_token: AccessToken):
        """The token's user, if the token's session is still active."""
        try:
            user_id = validated_token.user_id  # checked: a claim the id field cannot hold is refused
            if not app_settings.ACCESS_TOKEN_CHECKS_SESSION:
                return super().get_user(validated_token)
            user = selectors.user_get_for_access_token(user_id=user_id, session_id=validated_token.session_id)
        except AuthError as e:
            raise to_http_error(e) from e
        if user is None:
            raise to_http_error(TokenRevoked())
        return user
