"""Passwords are hashed with Argon2id, one lane, 2 passes over 64 MiB (accounts/hashers.py), and
hashes made with Django's default parameters keep working."""

import sys

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, make_password

from .helpers import PASSWORD, NativeClient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _the_projects_hashers(settings, _fast_hasher_and_empty_cache):
    """The project's own PASSWORD_HASHERS, not the tests' fast one."""
    settings.PASSWORD_HASHERS = sys.modules["authproject.settings"].PASSWORD_HASHERS


def test_a_new_password_is_hashed_with_argon2id_in_one_lane_over_64_mib():
    encoded = make_password(PASSWORD)
    assert encoded.startswith("argon2$argon2id$v=19$m=65536,t=2,p=1$")
    assert check_password(PASSWORD, encoded) and not check_password(PASSWORD + "!", encoded)


def test_a_hash_with_djangos_default_parameters_signs_in_and_is_rehashed_with_ours():
    user = get_user_model().objects.create(username="alice")
    user.password = Argon2PasswordHasher().encode(PASSWORD, Argon2PasswordHasher().salt())
    user.save()
    assert "$m=102400,t=2,p=8$" in user.password

    assert NativeClient().sign_in().status_code == 200

    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$v=19$m=65536,t=2,p=1$")
    assert NativeClient().sign_in().status_code == 200
