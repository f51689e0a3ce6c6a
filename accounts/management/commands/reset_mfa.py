"""manage.py reset_mfa: remove every second factor of a user who lost theirs, through the same service
as the admin's Remove second factors button."""

from django.core.management.base import CommandError

from accounts import mfa, selectors

from ._common import AccountsCommand


class Command(AccountsCommand):
    help = (
        "Remove every second factor of one user (--user), for someone who lost theirs: the "
        "authenticator app (confirmed or pending), the recovery codes and the passkeys, and any login "
        "waiting for a code. Says what the user has and asks first unless --noinput. The audit trail "
        "records it (mfa_reset, detail 'manage.py reset_mfa') and the user is mailed a notice; a user "
        "with no factor is left alone and nothing is recorded. Their sessions stay (revoke_sessions "
        "--user ends them). -v 0 prints nothing but errors."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--user", required=True, metavar="USERNAME", help="The user whose second factors to remove."
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask before removing.",
        )

    def handle(self, *args, user, interactive, **options):
        self.verbosity = options["verbosity"]
        owner = selectors.user_get_by_username(username=user)
        if owner is None:
            raise CommandError(f"No user with username {user!r}.")
        name = owner.get_username()
        if interactive:
            factors = selectors.second_factors_summary(user=owner)
            if not factors:
                self.say(f"{name} has no second factor: nothing removed.")
                return
            self.confirm(f"Remove {factors.described()} of {name}?")
        removed = mfa.second_factors_remove(user=owner, detail="manage.py reset_mfa")
        if removed:
            self.say(f"Removed {removed.described()} of {name}. Their sessions stay.")
        else:
            self.say(f"{name} has no second factor: nothing removed.")

    def say(self, text: str) -> None:
        """Write unless -v 0."""
        if self.verbosity >= 1:
            self.stdout.write(text)

    def confirm(self, question: str) -> None:
        """Ask on the terminal; without an answer (cron, a pipe) remove nothing."""
        try:
            answer = input(f"{question} Type 'yes' to go on: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing removed: not confirmed (pass --noinput to skip the question).")
