"""Domain errors: what the session rules can refuse, with a stable code. No HTTP here.

Services, tokens and selectors raise these; accounts.http_errors turns them into responses. Each
error names its ``code`` (stable, machine-readable; clients branch on it) and a default message.
"""


class AuthError(Exception):
    """Base of the domain errors."""

    code = "auth_error"
    message = "Authentication failed."

    def __init_subclass__(cls, *, code: str, message: str, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.code, cls.message = code, message

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class InvalidCredentials(
    AuthError, code="invalid_credentials", message="Unable to log in with the provided credentials."
):
    """Unknown user, wrong password or inactive user: deliberately one error for all three."""


class TokenMissing(AuthError, code="not_authenticated", message="No refresh token was sent."):
    """No token where one was needed."""


class TokenInvalid(AuthError, code="token_not_valid", message="Token is invalid."):
    """Bad signature or algorithm, garbage, the wrong type of token, or a claim missing."""


class TokenExpired(AuthError, code="token_expired", message="Token has expired."):
    """A token past its ``exp``, or a session past its expiry."""


class TokenRevoked(AuthError, code="token_revoked", message="Token has been revoked."):
    """The token's session was revoked (or is gone, or its user is inactive)."""


class WrongPassword(AuthError, code="wrong_password", message="The current password is not correct."):
    """A password change with the wrong current password."""


class UsernameTaken(AuthError, code="username_taken", message="That username is taken."):
    """A registration whose username another user has (after Unicode normalization), also when
    a concurrent registration took it first."""


class SessionNotFound(AuthError, code="not_found", message="Session not found."):
    """No such session among the user's own."""


class BodyTransportForbidden(
    AuthError,
    code="body_transport_forbidden",
    message="The refresh token travels in the body only for clients that are not browsers.",
):
    """Body transport asked for by a browser (an Origin header not among NATIVE_APP_ORIGINS), or
    turned off."""


class DuplicateRefreshCookie(
    AuthError,
    code="duplicate_refresh_cookie",
    message="The request carries more than one refresh token cookie; neither is used.",
):
    """Two cookies of the refresh cookie's name in one request: another host of a shared parent
    domain (a sibling subdomain) may have set one of them, so the server cannot tell which is this
    client's. Neither is used, and neither rotates."""


class InvalidKey(
    AuthError, code="invalid_key", message="This link is not valid: it may have expired or been used already."
):
    """A key from a mailed link (password reset, address verification) that is malformed, names no
    active account, was used, has expired, or died when the password or the address changed:
    deliberately one error for all."""


class PasswordRejected(AuthError, code="invalid", message="This password is not allowed."):
    """A new password that the project's password validators refuse; ``messages`` are theirs."""

    def __init__(self, messages: list[str] | None = None):
        super().__init__(" ".join(messages or []) or None)
        self.messages = list(messages or []) or [self.message]


class EmailUnverified(
    AuthError,
    code="email_unverified",
    message="Verify your e-mail address first: follow the link we mailed you.",
):
    """EMAIL_VERIFICATION is mandatory and the right password was given for an unverified address."""


class WrongPasswordForEmailChange(AuthError, code="wrong_password", message="The password is not correct."):
    """An e-mail change with the wrong password (a field error on ``password``)."""


class PasswordChecksBusy(
    AuthError,
    code="throttled",
    message="Too many sign-ins are being checked right now.",
):
    """Every PASSWORD_CHECK_SLOTS slot of this machine is checking a password (``password_checks``):
    the attempt is not checked, and may be tried again in a second."""


class InvalidCode(AuthError, code="invalid_code", message="The code is not correct."):
    """A wrong, used or expired second-factor code (TOTP or recovery code), or a passkey assertion
    that does not verify: deliberately one error for all."""


class MfaTokenInvalid(
    AuthError,
    code="mfa_token_invalid",
    message="This sign-in has expired; sign in again with your password.",
):
    """An ``mfa_token`` that is unknown, used, expired, or dead after too many wrong codes."""


class ReauthenticationRequired(
    AuthError,
    code="reauthentication_required",
    message="Confirm it is you first: re-authenticate, then try again.",
):
    """A change that needs a recent authentication (``auth_time`` within REAUTHENTICATION_TIMEOUT)."""


class TotpAlreadyEnabled(
    AuthError,
    code="totp_already_enabled",
    message="An authenticator app is on already; turn it off first to set up another.",
):
    """An enrolment started, or confirmed, while a confirmed authenticator app is on: starting
    again would replace the secret the user's app holds."""


class TotpNotPending(
    AuthError,
    code="totp_not_pending",
    message="No authenticator app is waiting to be confirmed; start the set-up first.",
):
    """A confirmation without an enrolment pending (none started, or turned off meanwhile)."""


class NoSecondFactor(
    AuthError,
    code="no_second_factor",
    message="Recovery codes stand in for a second factor; set one up first.",
):
    """New recovery codes asked for by a user without a second factor: the codes would open
    nothing (a login without a second factor asks for none)."""


class PasskeyExists(AuthError, code="passkey_exists", message="This passkey is registered already."):
    """A registration of a credential whose id a passkey has already (credential ids are unique)."""


class PasskeyNotFound(AuthError, code="not_found", message="Passkey not found."):
    """No such passkey among the user's own."""
