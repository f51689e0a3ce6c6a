"""The key ring that encrypts second-factor secrets at rest (accounts.encryption), and its rotation."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from accounts.encryption import SecretUnreadable, key_derive, secret_decrypt, secret_encrypt
from accounts.models import TotpDevice

SECRET = "JBSWY3DPEHPK3PXP"


def test_a_secret_is_stored_encrypted_and_reads_back():
    stored = secret_encrypt(SECRET)
    assert SECRET not in stored
    assert secret_decrypt(stored) == SECRET


def test_the_derived_key_is_not_the_secret_key_and_differs_per_secret_key(settings):
    derived = key_derive(settings.SECRET_KEY)
    assert settings.SECRET_KEY.encode() not in derived
    assert derived != key_derive(settings.SECRET_KEY + "x")
    Fernet(derived)  # a valid Fernet key


def test_rotating_the_secret_key_with_the_old_one_as_a_fallback_keeps_secrets_readable(settings):
    stored = secret_encrypt(SECRET)
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret-key-" + "n" * 50, [old]
    assert secret_decrypt(stored) == SECRET
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(SecretUnreadable):
        secret_decrypt(stored)


def test_configured_keys_replace_the_derived_ones_and_the_first_encrypts(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [second]
    by_second = secret_encrypt(SECRET)
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [first, second]
    assert secret_decrypt(by_second) == SECRET  # every key decrypts
    by_first = secret_encrypt(SECRET)
    assert Fernet(first.encode()).decrypt(by_first.encode()).decode() == SECRET
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [second]
    with pytest.raises(SecretUnreadable):
        secret_decrypt(by_first)


def test_secrets_encrypted_before_keys_were_configured_still_read(settings):
    by_derived_key = secret_encrypt(SECRET)
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert secret_decrypt(by_derived_key) == SECRET
    settings.SECRET_KEY = "another-secret-key-" + "o" * 50  # the key they were derived from gone
    with pytest.raises(SecretUnreadable):
        secret_decrypt(by_derived_key)


def test_an_altered_secret_is_unreadable_not_a_crash():
    stored = secret_encrypt(SECRET)
    with pytest.raises(SecretUnreadable):
        secret_decrypt(stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB"))


@pytest.mark.django_db
def test_rotate_mfa_keys_moves_every_secret_to_the_first_key_so_the_old_one_can_go(settings, user_factory):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [old]
    users = [user_factory(username=f"rotating{n}") for n in range(3)]
    for user in users:
        TotpDevice.objects.create(user=user, secret=secret_encrypt(SECRET))
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_mfa_keys", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "3 secrets would be encrypted with the first key."
    assert all(secret_decrypt(device.secret) for device in TotpDevice.objects.all())
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [new]
    assert not any(_readable(device.secret) for device in TotpDevice.objects.all())  # dry run: unchanged
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_mfa_keys", "--batch-size", "2", stdout=out)
    assert out.getvalue().strip() == "3 secrets encrypted with the first key."
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [new]  # the old key dropped
    assert [secret_decrypt(device.secret) for device in TotpDevice.objects.all()] == [SECRET] * 3


@pytest.mark.django_db
def test_rotate_mfa_keys_moves_secrets_off_the_derived_key_once_keys_are_configured(settings, user_factory):
    TotpDevice.objects.create(user=user_factory(username="derived"), secret=secret_encrypt(SECRET))
    new = Fernet.generate_key()
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [new.decode()]
    call_command("rotate_mfa_keys", stdout=io.StringIO())
    assert Fernet(new).decrypt(TotpDevice.objects.get().secret.encode()).decode() == SECRET


@pytest.mark.django_db
def test_rotate_mfa_keys_counts_a_secret_no_key_reads_and_leaves_it(settings, user_factory):
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    TotpDevice.objects.create(user=user_factory(username="lost"), secret=secret_encrypt(SECRET))
    settings.ACCOUNTS_MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # its key dropped
    before = TotpDevice.objects.get().secret
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_mfa_keys", stdout=out, stderr=err)
    assert out.getvalue().strip() == "0 secrets encrypted with the first key."
    assert "1 secret no key of the ring decrypts, left as it is" in err.getvalue()
    assert TotpDevice.objects.get().secret == before


def _readable(stored: str) -> bool:
    try:
        secret_decrypt(stored)
    except SecretUnreadable:
        return False
    return True
