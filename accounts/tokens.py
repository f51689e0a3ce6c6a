"""simplejwt tokens that carry their session's id in a ``sid`` claim.

A refresh token is built from its session row (jti, iat and exp are the row's), so the session's
current refresh token can be issued again without ever being stored.
"""

import re
import uuid
from datetime import datetime, timedelta

import jwt

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.utils import datetime_from_epoch, datetime_to_epoch

from . import keys
from .conf import app_settings, jwt_settings
from .errors import TokenExpired, TokenInvalid, TokenMissing
from .origin import NOWHERE

SESSION_ID_CLAIM = "sid"
# Recent authentication (OpenID Connect's claims): when the user last proved who they are in this
# session, and how (RFC 8176 method names). Access tokens carry them; the session keeps them.
AUTH_TIME_CLAIM = "auth_time"
AMR_CLAIM = "amr"
MAX_AMR_VALUES = 8

# The claims a token of ours may carry, each of one JSON type: a signed token whose claim has
# another (a string ``exp``, a float ``iat``, a list ``sid``, a ``jti`` no session could hold) is
# invalid, checked before any of them is used, so that no claim reaches date arithmetic or a query
# in a shape it cannot take.
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf", "auth_time")  # whole seconds; iat and exp required
JTI_PATTERN = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as simplejwt and services.new_jti make them
MAX_USER_ID_LENGTH = 255


def _is_numeric_date(value) -> bool:
    return type(value) is int and 0 <= value <= MAX_EPOCH  # bool is an int subclass: refused


def token_claims_check(payload) -> None:
    """TokenError unless every claim this app reads has the one type it may have (the token's
    signature is checked already; its expiry and type are simplejwt's checks, after this one)."""
    if not isinstance(payload, dict):
        raise TokenError("Token has no claims.")
    settings = jwt_settings()
    dates = {name: payload[name] for name in NUMERIC_DATE_CLAIMS if name in payload}
    if "exp" not in dates or "iat" not in dates or not all(map(_is_numeric_date, dates.values())):
        raise TokenError("Token has a date claim that is not whole seconds since 1970.")
    if settings.JTI_CLAIM and not (
        type(payload.get(settings.JTI_CLAIM)) is str and JTI_PATTERN.fullmatch(payload[settings.JTI_CLAIM])
    ):
        raise TokenError("Token has no valid id.")
    if not isinstance(payload.get(settings.TOKEN_TYPE_CLAIM), str):
        raise TokenError("Token has no type.")
    sid = payload.get(SESSION_ID_CLAIM, "")  # required where sessions are checked (session_id)
    if type(sid) is not str:
        raise TokenError("Token has no session.")
    user_id = payload.get(settings.USER_ID_CLAIM)
    if not ((type(user_id) is str and len(user_id) <= MAX_USER_ID_LENGTH) or type(user_id) is int):
        raise TokenError("Token has no valid user.")
    amr = payload.get(AMR_CLAIM, [])
    if not (type(amr) is list and len(amr) <= MAX_AMR_VALUES and all(type(value) is str for value in amr)):
        raise TokenError("Token has no valid authentication methods.")


class KeySetMixin:
    """Signed and verified by this app's key set (accounts.keys), not simplejwt's module-level backend,
    which is built once at import from the settings of that moment and knows no ``kid``."""

    @property
    def token_backend(self) -> keys.KeySetTokenBackend:
        return keys.token_backend()


class SessionClaimsMixin:
    """Typed access to the claims this project relies on."""

    def verify(self) -> None:
        """The claims' types (token_claims_check), then simplejwt's checks (expiry, jti, type)."""
        token_claims_check(self.payload)
        super().verify()

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

    @property
    def auth_time(self) -> datetime | None:
        """When the user last proved who they are in this token's session (``auth_time``)."""
        value = self.get(AUTH_TIME_CLAIM)
        return None if value is None else datetime_from_epoch(value)

    @property
    def amr(self) -> list[str]:
        """How they proved it (``amr``: RFC 8176 values such as "pwd", "otp", "hwk")."""
        return list(self.get(AMR_CLAIM, []))


class AccessToken(KeySetMixin, SessionClaimsMixin, tokens.AccessToken):
    """Short-lived bearer token; its lifetime is read when it is made, not at import."""

    @property
    def lifetime(self) -> timedelta:
        return app_settings.ACCESS_TOKEN_LIFETIME

    def authenticated_as(self, session) -> "AccessToken":
        """Carry the session's recent authentication: ``auth_time`` and ``amr``."""
        self[AUTH_TIME_CLAIM] = datetime_to_epoch(session.auth_time)
        self[AMR_CLAIM] = session.amr_values
        return self


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

        Made by simplejwt's constructor, whose claims of a new token (type, ``exp``, ``iat``, a jti,
        in that order) are then set to the session's, through the token's public item assignment.
        """
        claims = jwt_settings()
        token = cls()
        token["exp"] = datetime_to_epoch(session.idle_expires_at)
        token["iat"] = datetime_to_epoch(session.refresh_issued_at)
        token[claims.JTI_CLAIM] = session.refresh_jti
        token[claims.USER_ID_CLAIM] = str(session.user_id)
        token[SESSION_ID_CLAIM] = str(session.pk)
        return token


def _verify(token_class, raw):
    if not raw:
        raise TokenMissing()
    try:
        return token_class(raw)
    except ExpiredTokenError as e:
        # PyJWT checked the signature before the expiry: these claims are signed, and an expired
        # token whose claims have the wrong types is invalid, like a live one.
        try:
            token_claims_check(jwt.decode(raw, options={"verify_signature": False}))
        except (TokenError, jwt.InvalidTokenError) as invalid:
            raise TokenInvalid() from invalid
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
