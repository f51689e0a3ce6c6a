"""manage.py revoke_sessions: end sessions from the command line, through the same services as the API."""

from django.core.management.base import CommandError
from django.template.defaultfilters import pluralize

from accounts import selectors, services
from accounts.models import RevokeReason, Session

from ._common import AccountsCommand, positive_int, session_by_id_prefix


def counted(count: int, whose: str) -> str:
    return f"{count} session{pluralize(count)} of {whose}"


class Command(AccountsCommand):
    help = (
        "Revoke sign-in sessions: one (--session, by its id or the id's first 8 or more characters), "
        "all of one user's (--user), or every user's (--all-users, which asks first unless --noinput). "
        "Refresh and access tokens of a revoked session stop working at once; the audit trail records "
        "the command and the reason (nothing is recorded when nothing was revoked). --dry-run says what "
        "would be revoked and changes nothing; -v 0 prints nothing but errors."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--user", metavar="USERNAME", help="Revoke every session of this user.")
        which.add_argument(
            "--session",
            metavar="ID",
            help="Revoke this one session: its id, or the id's start (8 characters or more) if no other "
            "session's id starts the same.",
        )
        which.add_argument("--all-users", action="store_true", help="Revoke every session of every user.")
        parser.add_argument(
            "--reason", default="", metavar="TEXT", help="Why, for the audit trail (e.g. a ticket number)."
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            "--yes",
            action="store_false",
            dest="interactive",
            help="Do not ask before revoking every user's sessions (--yes is the old name).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be revoked; revoke nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=10_000,
            metavar="N",
            help="With --all-users: sessions per UPDATE, so no lock is held for long (default 10000).",
        )

    def handle(self, *args, user, session, all_users, reason, interactive, dry_run, batch_size, **options):
        self.verbosity = options["verbosity"]
        detail = "manage.py revoke_sessions" + (f"; {reason}" if reason else "")
        by_command = {"reason": RevokeReason.REVOKED_BY_COMMAND, "detail": detail}
        if session is not None:
            target = session_by_id_prefix(session)
            sessions, whose = Session.objects.filter(pk=target.pk), target.user.get_username()
        elif user is not None:
            owner = selectors.user_get_by_username(username=user)
            if owner is None:
                raise CommandError(f"No user with username {user!r}.")
            sessions, whose = Session.objects.for_user(owner), owner.get_username()
        else:
            sessions, whose = Session.objects.all(), "every user"
        if dry_run:
            would = sessions.unrevoked().count()
            self.say(f"Would revoke {counted(would, whose)} (dry run: nothing revoked).")
            return
        if all_users:
            if interactive:
                self.confirm_all()
            revoked = services.sessions_revoke_all(
                **by_command,
                batch_size=batch_size,
                progress=lambda done: self.say(f"... {done} revoked", stream=self.stderr),
            )
        else:
            revoked = services.sessions_revoke(sessions=sessions, **by_command)
        if session is not None and not revoked:
            self.say(f"Session {target.pk} of {whose} was already revoked ({target.status_display()}).")
        else:
            self.say(f"Revoked {counted(revoked, whose)}.")

    def say(self, text: str, *, stream=None) -> None:
        """Write unless -v 0."""
        if self.verbosity >= 1:
            (stream or self.stdout).write(text)

    def confirm_all(self) -> None:
        """Ask on the terminal; without an answer (cron, a pipe) revoke nothing."""
        active = Session.objects.active().count()
        try:
            answer = input(f"Revoke all {active} active sessions of every user? Type 'yes' to go on: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing revoked: not confirmed (pass --noinput to skip the question).")
