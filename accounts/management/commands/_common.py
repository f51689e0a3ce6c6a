"""What the app's commands share: the exit statuses their --help documents, a quiet end when the
reader of their output stops early, argument types, and finding a session by its id's start."""

import argparse
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts import selectors
from accounts.models import Session

# 128 + SIGPIPE, what a shell reports for a Unix tool whose reader went away (`seq 100000 | head`).
EXIT_BROKEN_PIPE = 141

EXIT_STATUSES = (
    "Exit status: 0 when done (also when nothing matched); 1 on an error, said on stderr (an unknown "
    "user or session, an ambiguous session id, a question not confirmed, a file that exists or cannot "
    "be written); 2 on bad usage (an unknown option, a malformed value); 141 when the reader of the "
    "output stopped early (as in `| head`), with nothing on stderr."
)


class AccountsCommand(BaseCommand):
    """A command of the app: --help ends with EXIT_STATUSES, and a closed stdout ends it quietly."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        """Django's parser, with the exit statuses below the options."""
        return super().create_parser(prog_name, subcommand, epilog=EXIT_STATUSES, **kwargs)

    def execute(self, *args, **options):
        """Run the command; if stdout's reader has gone (a pipe into head), stop without a traceback."""
        try:
            output = super().execute(*args, **options)
            # Written out now, so that a reader gone by then is noticed here, not at interpreter exit
            # (which would print "Exception ignored ... BrokenPipeError" and exit 120).
            self.stdout.flush()
        except BrokenPipeError:
            # Python's recommended handling (the signal module's "Note on SIGPIPE"): stdout pointed at
            # devnull, so that the flush at exit does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_BROKEN_PIPE)
        return output


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
