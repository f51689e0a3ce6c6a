"""manage.py list_sessions: a table (or JSON) of sign-in sessions, streamed in constant memory."""

import json

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.text import Truncator

from accounts import selectors

COLUMNS = (  # header, width
    ("SESSION", 36),
    ("USER", 16),
    ("STATUS", 8),
    ("CREATED", 20),
    ("LAST USED", 20),
    ("EXPIRES", 20),
    ("IP", 15),
    ("USER AGENT", 0),
)


def session_row(session, now) -> dict:
    """One session as plain values (no jti: it names a token)."""
    return {
        "id": str(session.pk),
        "user": session.user.get_username(),
        "status": session.status(now=now),
        "created_at": session.created_at.isoformat(),
        "last_used_at": session.last_used_at.isoformat(),
        "expires_at": session.expires_at.isoformat(),
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


class Command(BaseCommand):
    help = (
        "List sign-in sessions, newest first: active ones unless --all. Rows stream from the "
        "database in chunks, so memory stays flat however many there are. Token ids are never shown."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", metavar="USERNAME", help="Only this user's sessions.")
        parser.add_argument(
            "--all",
            action="store_true",
            dest="include_inactive",
            help="Also list expired and revoked sessions (those not yet flushed).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print a JSON array of objects instead of a table (the count goes to stderr).",
        )

    def handle(self, *args, user=None, include_inactive=False, as_json=False, **options):
        owner = None
        if user is not None:
            owner = selectors.user_get_by_username(username=user)
            if owner is None:
                raise CommandError(f"No user with username {user!r}.")
        sessions = selectors.sessions_list(user=owner, include_inactive=include_inactive)
        rows = sessions.iterator(chunk_size=2000)
        count = self.write_json(rows) if as_json else self.write_table(rows)
        # With --json, stdout stays pure JSON.
        (self.stderr if as_json else self.stdout).write(
            f"{count} {'' if include_inactive else 'active '}session{pluralize(count)}"
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
        self.stdout.write(table_line([header for header, _ in COLUMNS]))
        for session in sessions:
            count += 1
            row = session_row(session, now)
            self.stdout.write(
                table_line(
                    [
                        row["id"],
                        row["user"],
                        row["status"],
                        f"{session.created_at:%Y-%m-%d %H:%M:%S}",
                        f"{session.last_used_at:%Y-%m-%d %H:%M:%S}",
                        f"{session.expires_at:%Y-%m-%d %H:%M:%S}",
                        row["ip"] or "-",
                        row["user_agent"] or "-",
                    ]
                )
            )
        return count
