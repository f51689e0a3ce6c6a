"""Domain errors: what the session rules can refuse, with a stable code. No HTTP here.

Services, tokens and selectors raise these; accounts.exceptions turns them into responses.
"""


class AuthError(Exception):
    """Base of the domain errors; ``code`` is the stable machine-readable name."""

    code = "auth_error"
    message = "Authentication failed."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class InvalidCredentials(AuthError):
    code = "invalid_credentials"
    message = "Unable to log in with the provided credentials."


class TokenMissing(AuthError):
    code = "not_authenticated"
    message = "No refresh token cookie was sent."


class TokenInvalid(AuthError):
    code = "token_not_valid"
    message = "Token is invalid."


class TokenExpired(AuthError):
    code = "token_expired"
    message = "Token has expired."


class TokenRevoked(AuthError):
    code = "token_revoked"
    message = "Token has been revoked."


class WrongPassword(AuthError):
    code = "wrong_password"
    message = "The current password is not correct."


class SessionNotFound(AuthError):
    code = "not_found"
    message = "Session not found."
