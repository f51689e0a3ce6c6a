"""manage.py flush_expired_sessions: delete dead sessions and old audit events, in batches (for cron)."""

from datetime import timedelta

from django.template.defaultfilters import pluralize

from accounts import services
from accounts.conf import app_settings

from ._common import AccountsCommand, non_negative_int, positive_int


class Command(AccountsCommand):
    help = (
        "Delete sessions that expired or were revoked more than --older-than days ago, and audit "
        "events older than ACCOUNTS_AUDIT_RETENTION. Active sessions are never touched. Expired or used "
        "second-factor steps (mfa_token) and passkey challenges go too, whatever their age. Rows go in "
        "batches, each its own short DELETE, walking the primary key once: memory stays flat and "
        "no lock is held for long, so it can run from cron against millions of rows. On PostgreSQL a "
        "table that lost a large part of its rows (a fifth or more) is ANALYZEd afterwards, so that "
        "queries are planned for the rows that are left (-v 2 says so). -v 0 prints nothing but errors."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=non_negative_int,
            metavar="DAYS",
            help="Keep dead sessions this many days for the admin to see (default "
            f"ACCOUNTS_SESSION_RETENTION, now {app_settings.SESSION_RETENTION.days}); "
            "0 deletes all dead ones.",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=5_000,
            metavar="N",
            help="Rows per DELETE (default 5000): smaller holds locks more briefly, larger finishes sooner.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args, older_than, batch_size, dry_run, verbosity, **options):
        verb = "counted" if dry_run else "deleted"
        result = services.sessions_flush_expired(
            older_than=None if older_than is None else timedelta(days=older_than),
            batch_size=batch_size,
            dry_run=dry_run,
            progress=(lambda kind, done: self.stderr.write(f"... {done} {kind} {verb}"))
            if verbosity
            else None,
        )
        if not verbosity:
            return
        sessions, events = result.sessions, result.audit_events
        counts = f"{sessions} session{pluralize(sessions)} and {events} audit event{pluralize(events)}"
        if handed_out := result.handed_out:  # said only when there were some: the line above is read
            counts += f", and {handed_out} expired second-factor step{pluralize(handed_out)} or challenge"
            counts += pluralize(handed_out)
        if dry_run:
            self.stdout.write(f"Would delete {counts} (dry run: nothing deleted).")
        else:
            self.stdout.write(f"Deleted {counts}.")
        for table in result.analyzed if verbosity >= 2 else ():
            self.stdout.write(f"Analyzed {table} (it shrank by a large part).")
