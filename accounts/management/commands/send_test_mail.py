"""manage.py send_test_mail: queue a mail as the app queues every mail, to check the set-up end to end."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.mail import mail_send_later

from ._common import AccountsCommand


class Command(AccountsCommand):
    help = (
        "Queue a test mail to ADDRESS the way every mail of the app goes: through the task queue "
        "(TASKS_BACKEND), so that with the database backend a worker (`make worker`) sends it. Its "
        "arrival proves EMAIL_URL, DEFAULT_FROM_EMAIL and the workers at once; a failure is retried, "
        "then logged and audited (mail_failed). Django's own sendtestemail sends at once, without "
        "the queue."
    )

    def add_arguments(self, parser):
        parser.add_argument("address", help="Where the test mail goes.")

    def handle(self, *, address, verbosity, **options):
        try:
            validate_email(address)
        except ValidationError as e:
            raise CommandError(f"{address!r} is not an e-mail address.") from e
        with transaction.atomic():
            mail_send_later(to=address, template="test_mail")
        if verbosity:
            self.stdout.write("Test mail queued.")
