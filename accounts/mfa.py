"""Second factors: the rules of TOTP, recovery codes, the login's second step (``mfa_token``) and
recent authentication. Passkeys' own rules are in ``accounts.passkeys``. No HTTP here.

The database keeps digests of what is handed out (``mfa_token``, recovery codes) and the TOTP secret
encrypted (``accounts.encryption``); every single-use thing is used in one conditional statement,
so that concurrent uses of it give exactly one success on PostgreSQL and on SQLite.
"""

import hashlib
from datetime import datetime

from django.utils import timezone

from .conf import app_settings
from .errors import ReauthenticationRequired
from .models import MfaToken

# A pending second step dies after this many wrong codes.
MAX_FAILURES = 5


def handed_out_digest(value: str) -> str:
    """The SHA-256 digest kept of a random value handed out (an ``mfa_token``, a WebAuthn challenge):
    each has 256 random bits, so an unkeyed digest cannot be reversed, and the value itself is
    never stored."""
    return hashlib.sha256(value.encode()).hexdigest()


def mfa_token_pending(*, token: str, now: datetime | None = None) -> MfaToken | None:
    """The pending second step an ``mfa_token`` names, while it works (unused, unexpired, fewer than
    MAX_FAILURES wrong codes); else None."""
    if not isinstance(token, str) or not token:
        return None
    return (
        MfaToken.objects.select_related("user")
        .filter(
            digest=handed_out_digest(token),
            used_at__isnull=True,
            expires_at__gt=now or timezone.now(),
            failures__lt=MAX_FAILURES,
            user__is_active=True,
        )
        .first()
    )


def recent_authentication_require(*, auth_time: datetime | None, now: datetime | None = None) -> None:
    """ReauthenticationRequired unless ``auth_time`` (an access token's) is within
    REAUTHENTICATION_TIMEOUT: adding or removing a factor, new recovery codes, an address change."""
    if auth_time is None or (now or timezone.now()) - auth_time > app_settings.REAUTHENTICATION_TIMEOUT:
        raise ReauthenticationRequired()
