"""manage.py generate_signing_key: a new private key for JWT_SIGNING_KEYS, readable by its owner only."""

import os

from django.core.management.base import CommandError

from accounts import keys

from ._common import AccountsCommand


class Command(AccountsCommand):
    help = (
        "Write a new PEM private key (unencrypted PKCS#8) for ACCOUNTS_JWT_SIGNING_KEYS "
        "(JWT_SIGNING_KEYS): ES256 makes an EC P-256 key, RS256 a 3072-bit RSA key. The file gets "
        "mode 600. An existing file is never overwritten unless --force is given. Prints the key's "
        "kid (its RFC 7638 thumbprint, as published in /.well-known/jwks.json)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--algorithm", required=True, choices=keys.ASYMMETRIC_ALGORITHMS)
        parser.add_argument("--out", required=True, metavar="FILE", help="Where to write the key.")
        parser.add_argument(
            "--force", action="store_true", help="Overwrite FILE if it exists (the key in it is lost)."
        )

    def handle(self, *args, algorithm, out, force, **options):
        pem = keys.signing_key_generate(algorithm=algorithm)
        # Created with mode 600 in one step (no moment when another user could open it); O_EXCL
        # refuses an existing file, so a key in use is never replaced by accident.
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        try:
            fd = os.open(out, flags, 0o600)
        except FileExistsError as e:
            raise CommandError(f"{out} exists; pass --force to overwrite it.") from e
        except OSError as e:
            raise CommandError(f"Cannot write {out}: {e.strerror}.") from e
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # an overwritten file keeps its old mode otherwise
            f.write(pem)
        self.stdout.write(
            f"Wrote a new {algorithm} signing key to {out} (kid {keys.kid_of(pem, algorithm)})."
        )
