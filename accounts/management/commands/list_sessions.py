"""manage.py list_sessions: a table (or JSON) of sign-in sessions, streamed in constant memory."""

import json
from contextlib import closing

from django.core.management.base import CommandError
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.text import Truncator

from accounts import selectors
from accounts.models import AMR_NAMES, SESSION_STATUSES

from ._common import AccountsCommand, positive_int

COLUMNS = (  # header, width (0: the rest of the line); about 160 characters in all
    ("SESSION", 8),
    ("USER", 14),
    ("STATUS", 26),
    ("CREATED", 16),
    ("LAST USED", 16),
    ("ENDS", 16),
    ("AMR", 12),  # how they signed in: RFC 8176 values joined by "+" ("pwd+otp", "hwk+user")
    ("IP", 15),
    ("DEVICE", 0),
)


def session_row(session, now) -> dict:
    """One session as plain values (no jti: it names a token)."""
    return {
        "id": str(session.pk),
        "user": session.user.get_username(),
        "status": session.status(now=now),
        "device": session.device,
        "amr": session.amr_values,
        "auth_time": session.auth_time.isoformat(),
        "created_at": session.created_at.isoformat(),
        "last_used_at": session.last_used_at.isoformat(),
        "expires_at": session.expires_at.isoformat(),
        "ends_at": session.ends_at.isoformat(),
        "revoked_at": session.revoked_at.isoformat() if session.revoked_at else None,
        "revoke_reason": session.revoke_reason or None,
        "ip": session.ip,
        "user_agent": session.user_agent,
    }


def table_line(values) -> str:
    return "  ".join(
        f"{Truncator(value).chars(width):<{width}}" if width else value
        for value, (_, width) in zip(values, COLUMNS, strict=True)
    ).rstrip()


def moment(value) -> str:
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M}"


class Command(AccountsCommand):
    help = (
        "List sign-in sessions, newest first: active ones unless --status says otherwise. The table "
        "shows each session's id by its first 8 characters (enough for revoke_sessions --session), "
        "its status with the revoke reason, when it ends or ended, how the user signed in (AMR, RFC 8176 "
        f"values: {', '.join(f'{value} {name}' for value, name in AMR_NAMES.items())}) and the device; "
        "--json gives every field in full. Rows stream from the database in chunks, so memory stays flat however many "
        "there are. Token ids are never shown. -v 0 prints the rows alone (no header, no count)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", metavar="USERNAME", help="Only this user's sessions.")
        parser.add_argument(
            "--status",
            choices=SESSION_STATUSES,
            default="active",
            help="Sessions in this state (default active; all: those not yet flushed, whatever their state).",
        )
        parser.add_argument(
            "--all", action="store_const", const="all", dest="status", help="The same as --status all."
        )
        parser.add_argument("--limit", type=positive_int, metavar="N", help="At most N sessions, the newest.")
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print a JSON array of objects instead of a table (the count goes to stderr).",
        )

    def handle(self, *args, user=None, status="active", limit=None, as_json=False, **options):
        self.verbosity = options["verbosity"]
        owner = None
        if user is not None:
            owner = selectors.user_get_by_username(username=user)
            if owner is None:
                raise CommandError(f"No user with username {user!r}.")
        sessions = selectors.sessions_list(user=owner, status=status)
        if limit is not None:
            sessions = sessions[:limit]
        # Closed however the writing ends (a reader that stopped early, as in `| head`), so that the
        # cursor is closed while its connection is still open.
        with closing(sessions.iterator(chunk_size=2000)) as rows:
            count = self.write_json(rows) if as_json else self.write_table(rows)
        if self.verbosity >= 1:
            described = "" if status == "all" else f"{status} "
            more = f" (--limit {limit}: there may be more)" if limit is not None and count == limit else ""
            # With --json, stdout stays pure JSON.
            (self.stderr if as_json else self.stdout).write(
                f"{count} {described}session{pluralize(count)}{more}"
            )

    def write_json(self, sessions) -> int:
        now, count = timezone.now(), 0
        self.stdout.write("[", ending="")
        for count, session in enumerate(sessions, start=1):
            separator = "\n  " if count == 1 else ",\n  "
            self.stdout.write(
                separator + json.dumps(session_row(session, now), ensure_ascii=False), ending=""
            )
        self.stdout.write("\n]" if count else "]")
        return count

    def write_table(self, sessions) -> int:
        now, count = timezone.now(), 0
        if self.verbosity >= 1:
            self.stdout.write(table_line([header for header, _ in COLUMNS]))
        for session in sessions:
            count += 1
            self.stdout.write(
                table_line(
                    [
                        str(session.pk)[:8],
                        session.user.get_username(),
                        session.status_display(now=now),
                        moment(session.created_at),
                        moment(session.last_used_at),
                        moment(session.ends_at),
                        "+".join(session.amr_values) or "-",
                        session.ip or "-",
                        session.device or "-",
                    ]
                )
            )
        return count
