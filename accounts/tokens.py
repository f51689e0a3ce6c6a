"""simplejwt tokens that carry their session's id in a ``sid`` claim.

A refresh token is built from its session row (jti, iat and exp are the row's), so the session's
current refresh token can be issued again without ever being stored.
"""

import uuid
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.utils import aware_utcnow, datetime_from_epoch, datetime_to_epoch

from . import keys
from .conf import app_settings, jwt_settings
from .errors import TokenExpired, TokenInvalid, TokenMissing
from .origin import NOWHERE

SESSION_ID_CLAIM = "sid"


class KeySetMixin:
    """Signed and verified by this app's key set (accounts.keys), not simplejwt's module-level backend,
    which is built once at import from the settings of that moment and knows no ``kid``."""

    @property
    def token_backend(self) -> keys.KeySetTokenBackend:
        return keys.token_backend()


class SessionClaimsMixin:
    """Typed access to the claims this project relies on."""

    @property
    def session_id(self) -> uuid.UUID:
        """The ``sid`` claim: the session that issued this token."""
        try:
            return uuid.UUID(str(self.get(SESSION_ID_CLAIM)))
        except ValueError as e:
            raise TokenInvalid("Token has no session.") from e

    @property
    def user_id(self) -> str | None:
        """The user id claim, as a string; one the user model's id field cannot hold (a name where
        the id is a number, a number past the column's range) is an invalid token, so it never
        reaches a query."""
        value = self.get(jwt_settings().USER_ID_CLAIM)
        if value is None:
            return None
        field = get_user_model()._meta.get_field(jwt_settings().USER_ID_FIELD)
        try:
            value = field.to_python(value)
            field.run_validators(value)  # e.g. the database's integer range
            return str(value)
        except (ValidationError, TypeError, ValueError) as e:
            raise TokenInvalid("Token has no valid user.") from e

    @property
    def jti(self) -> str | None:
        """The token's unique id: the only part of a refresh token the database keeps."""
        return self.get(jwt_settings().JTI_CLAIM)

    @property
    def expires_at(self) -> datetime:
        """The ``exp`` claim as an aware datetime."""
        return datetime_from_epoch(self["exp"])


class AccessToken(KeySetMixin, SessionClaimsMixin, tokens.AccessToken):
    """Short-lived bearer token; its lifetime is read when it is made, not at import."""

    @property
    def lifetime(self) -> timedelta:
        return app_settings.ACCESS_TOKEN_LIFETIME


class RefreshToken(KeySetMixin, SessionClaimsMixin, tokens.RefreshToken):
    """Rotating refresh token; only its jti is ever stored (in the session row).

    simplejwt's own entry points keep their meaning: ``for_user`` opens a session, ``blacklist``
    ends it. (The session rules are in accounts.services, imported when these are called: the
    services issue tokens, so they import this module.)
    """

    access_token_class = AccessToken

    @property
    def lifetime(self) -> timedelta:
        return app_settings.REFRESH_TOKEN_LIFETIME

    @classmethod
    def for_user(cls, user) -> "RefreshToken":
        """simplejwt's way to mint tokens for a user: opens a session (and records the login)."""
        from .services import session_open

        return session_open(user=user, origin=NOWHERE).refresh

    def blacklist(self) -> bool:
        """simplejwt's way to end a refresh token: revokes its whole session (reason logout), so
        no token of its chain, refresh or access, works again. True if the session was active."""
        from .services import session_logout

        return session_logout(token=self)

    @classmethod
    def for_session(cls, session) -> "RefreshToken":
        """The session's current refresh token: same claims, so the same token, every time.

        Made as simplejwt's constructor makes a new token (``token``, ``current_time``, ``payload``),
        without the claims it would draw first (a jti, ``exp`` and ``iat`` of its own) only to be
        replaced by the session's: every refresh issues one.
        """
        claims = jwt_settings()
        token = cls.__new__(cls)
        token.token, token.current_time = None, aware_utcnow()
        token.payload = {
            claims.TOKEN_TYPE_CLAIM: cls.token_type,
            "exp": datetime_to_epoch(session.idle_expires_at),
            "iat": datetime_to_epoch(session.refresh_issued_at),
            claims.JTI_CLAIM: session.refresh_jti,
            claims.USER_ID_CLAIM: str(session.user_id),
            SESSION_ID_CLAIM: str(session.pk),
        }
        return token


def _verify(token_class, raw):
    if not raw:
        raise TokenMissing()
    try:
        return token_class(raw)
    except ExpiredTokenError as e:
        raise TokenExpired() from e
    except TokenError as e:  # bad signature or algorithm, garbage, wrong type, missing claims
        raise TokenInvalid() from e
    except (OverflowError, ValueError, OSError) as e:  # a signed exp no date can hold
        raise TokenInvalid() from e


def access_token_verify(raw: str | bytes | None) -> AccessToken:
    """A verified access token (signature, ``exp``, type), or a domain error."""
    return _verify(AccessToken, raw)


def refresh_token_verify(raw: str | bytes | None) -> RefreshToken:
    """A verified refresh token (signature, ``exp``, type), or a domain error."""
    return _verify(RefreshToken, raw)
