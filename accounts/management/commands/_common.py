"""What the session commands share: argument types, finding a session by its id's start, and the
exit statuses their --help documents."""

import argparse

from django.core.management.base import CommandError

from accounts import selectors
from accounts.models import Session

EXIT_STATUSES = (
    "Exit status: 0 when done (also when nothing matched); 1 on an error, said on stderr (an unknown "
    "user or session, an ambiguous session id, a question not confirmed); 2 on bad usage (an unknown "
    "option, a malformed value)."
)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def session_by_id_prefix(prefix: str) -> Session:
    """The one session whose id starts with ``prefix`` (8 characters or more, as the admin and
    list_sessions show them), or a CommandError saying why there is not exactly one."""
    digits = prefix.strip().replace("-", "")
    if len(digits) < selectors.SESSION_ID_MIN_PREFIX:
        raise CommandError(
            f"Give at least {selectors.SESSION_ID_MIN_PREFIX} characters of the session id, not {prefix!r}."
        )
    matches = list(selectors.sessions_with_id_prefix(prefix=prefix).select_related("user")[:2])
    if not matches and selectors.uuid_prefix_q("pk", prefix) is None:
        raise CommandError(f"Not a session id (hexadecimal digits and hyphens): {prefix!r}.")
    if not matches:
        raise CommandError(f"No session with an id starting {prefix!r}.")
    if len(matches) > 1:
        count = selectors.sessions_with_id_prefix(prefix=prefix).count()
        raise CommandError(f"{count} sessions have an id starting {prefix!r}; give more of it.")
    return matches[0]
