"""manage.py rotate_mfa_keys: encrypt every TOTP secret again with the key ring's first key."""

from django.template.defaultfilters import pluralize

from accounts.encryption import SecretUnreadable, secret_reencrypt
from accounts.models import TotpDevice

from ._common import AccountsCommand, positive_int


class Command(AccountsCommand):
    help = (
        "Encrypt every authenticator app's secret again with the first key of the key ring "
        "(MFA_ENCRYPTION_KEYS, or the keys derived from DJANGO_SECRET_KEY and its fallbacks), so that "
        "an older key can then be dropped from the ring. Run it after deploying a new first key; a "
        "secret no key decrypts is counted and left as it is. --dry-run counts and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count the secrets; change none.")
        parser.add_argument(
            "--batch-size", type=positive_int, default=1_000, metavar="N", help="Rows read at a time."
        )

    def handle(self, *args, dry_run, batch_size, **options):
        done = unreadable = 0
        rows = TotpDevice.objects.order_by("pk").values_list("pk", "secret")
        for user_id, secret in rows.iterator(chunk_size=batch_size):
            try:
                rotated = secret_reencrypt(secret)
            except SecretUnreadable:
                unreadable += 1
                continue
            # Only if the secret is still the one read: an enrolment meanwhile is kept as it is.
            if dry_run or TotpDevice.objects.filter(pk=user_id, secret=secret).update(secret=rotated):
                done += 1
        verb = "would be encrypted" if dry_run else "encrypted"
        self.stdout.write(f"{done} secret{pluralize(done)} {verb} with the first key.")
        if unreadable:
            self.stderr.write(
                f"{unreadable} secret{pluralize(unreadable)} no key of the ring decrypts, left as "
                f"{'it is' if unreadable == 1 else 'they are'}: put the key that encrypted "
                f"{'it' if unreadable == 1 else 'them'} back in MFA_ENCRYPTION_KEYS."
            )
