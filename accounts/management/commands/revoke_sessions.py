"""manage.py revoke_sessions: end sessions from the command line, through the same services as the API."""

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from accounts import selectors, services
from accounts.models import RevokeReason, Session

from ._common import positive_int


class Command(BaseCommand):
    help = (
        "Revoke sign-in sessions: one (--session), all of one user's (--user), or every user's "
        "(--all-users, which asks first unless --yes). Refresh and access tokens of a revoked "
        "session stop working at once; the audit trail records the command and the reason."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--user", metavar="USERNAME", help="Revoke every active session of this user.")
        which.add_argument("--session", metavar="ID", help="Revoke this one session (its id, a UUID).")
        which.add_argument(
            "--all-users", action="store_true", help="Revoke every active session of every user."
        )
        parser.add_argument(
            "--reason", default="", metavar="TEXT", help="Why, for the audit trail (e.g. a ticket number)."
        )
        parser.add_argument(
            "--yes", action="store_true", help="Do not ask before revoking every user's sessions."
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=10_000,
            metavar="N",
            help="With --all-users: sessions per UPDATE, so no lock is held for long (default 10000).",
        )

    def handle(self, *args, user, session, all_users, reason, yes, batch_size, **options):
        detail = "manage.py revoke_sessions" + (f"; {reason}" if reason else "")
        by_command = {"reason": RevokeReason.REVOKED_BY_COMMAND, "detail": detail}
        if session is not None:
            revoked = self.revoke_one(session, by_command)
        elif user is not None:
            owner = selectors.user_get_by_username(username=user)
            if owner is None:
                raise CommandError(f"No user with username {user!r}.")
            revoked = services.sessions_revoke_for_users(user_ids=[owner.pk], **by_command)
        else:
            self.confirm_all(yes)
            revoked = services.sessions_revoke_all(
                **by_command,
                batch_size=batch_size,
                progress=lambda done: self.stderr.write(f"... {done} revoked"),
            )
        self.stdout.write(f"Revoked {revoked} session{pluralize(revoked)}.")

    def revoke_one(self, session_id: str, by_command: dict) -> int:
        try:
            pk = uuid.UUID(session_id)
        except ValueError:
            raise CommandError(f"Not a session id (a UUID): {session_id!r}.") from None
        if not Session.objects.filter(pk=pk).exists():
            raise CommandError(f"No session with id {pk}.")
        return services.sessions_revoke(sessions=Session.objects.filter(pk=pk), **by_command)

    def confirm_all(self, yes: bool) -> None:
        """Ask on the terminal; without --yes and without an answer (cron, a pipe) do nothing."""
        if yes:
            return
        active = Session.objects.active().count()
        try:
            answer = input(f"Revoke all {active} active sessions of every user? Type 'yes' to go on: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing revoked: not confirmed (pass --yes to skip the question).")
