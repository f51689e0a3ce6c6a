"""The password hasher: Argon2id with parameters chosen for app servers of a few cores.

Django's default Argon2 (t=2, m=100 MiB, p=8) runs 8 lanes on 8 threads; an app server with 2
cores and a sync worker per core has 2 of them, so two logins at once share both cores and each
takes twice as long. One lane per hash uses the worker's own core. Memory and passes are then set
well above OWASP's minimum for Argon2id (m=19 MiB, t=2, p=1, or its equivalent m=46 MiB, t=1): 64
MiB over 2 passes, about 3.4 times the minimum's work, measured in benchmarks/RESULTS.md.

Stored hashes keep their own parameters and still verify; Django rehashes one with these at its
owner's next successful login (``must_update``).

Each hash is computed below the requests' priority (``password_checks.password_hash_run``,
PASSWORD_CHECK_NICENESS): on a busy machine, signed-in users' requests come first.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher

from .password_checks import password_hash_run


class Argon2idHasher(Argon2PasswordHasher):
    """Argon2id (the "argon2" algorithm of Django's hashes): 2 passes over 64 MiB in one lane."""

    time_cost = 2
    memory_cost = 65536  # KiB
    parallelism = 1

    def encode(self, password: str, salt: str) -> str:
        return password_hash_run(super().encode, password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        return password_hash_run(super().verify, password, encoded)
