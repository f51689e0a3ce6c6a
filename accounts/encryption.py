"""Secrets at rest that must be read back (TOTP secrets): encrypted with a key ring.

Pure functions over ``cryptography``'s Fernet (AES-128-CBC with HMAC-SHA256, authenticated) and
MultiFernet: the ring's first key encrypts, every key decrypts, and ``secret_reencrypt`` moves a
value to the first key. The ring is MFA_ENCRYPTION_KEYS, then one key derived (HKDF-SHA256) from
DJANGO_SECRET_KEY and one from each of its fallbacks: without MFA_ENCRYPTION_KEYS the derived key
encrypts, and rotating the secret key the way Django's SECRET_KEY_FALLBACKS allows keeps every secret
readable; with it, secrets encrypted before it was set still read, until ``manage.py rotate_mfa_keys``
moves them to its first key.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .conf import app_settings

DERIVATION_INFO = b"authproject: second-factor secrets at rest"


class SecretUnreadable(Exception):
    """A value no key of the ring decrypts (its key was dropped, or the value was altered)."""


def key_derive(secret_key: str) -> bytes:
    """A Fernet key derived from a Django secret key (never the secret key itself)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVATION_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(derived)


def ring_keys() -> tuple[bytes, ...]:
    """The ring's keys as they are configured now, the encrypting one first."""
    configured = (key.encode() if isinstance(key, str) else key for key in app_settings.MFA_ENCRYPTION_KEYS)
    derived = (key_derive(key) for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))
    return (*configured, *derived)


@lru_cache(maxsize=4)
def _ring(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def secret_encrypt(plaintext: str) -> str:
    """``plaintext`` encrypted with the ring's first key, as text for a database column."""
    return _ring(ring_keys()).encrypt(plaintext.encode()).decode()


def secret_decrypt(ciphertext: str) -> str:
    """The text ``secret_encrypt`` encrypted, with whichever key of the ring it was encrypted."""
    try:
        return _ring(ring_keys()).decrypt(ciphertext.encode()).decode()
    except InvalidToken as e:
        raise SecretUnreadable("No key of the ring decrypts this secret.") from e


def secret_reencrypt(ciphertext: str) -> str:
    """The same secret encrypted with the ring's first key (key rotation)."""
    try:
        return _ring(ring_keys()).rotate(ciphertext.encode()).decode()
    except InvalidToken as e:
        raise SecretUnreadable("No key of the ring decrypts this secret.") from e
