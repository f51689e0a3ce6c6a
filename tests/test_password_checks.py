"""Password checks at once on this machine (accounts/password_checks.py): a slot is a file another
process can hold; with every slot taken, a login is answered 429 at once, its password unchecked."""

import multiprocessing
import os
import subprocess
import sys
import threading
from contextlib import contextmanager

import pytest
from django.contrib.auth.hashers import check_password, make_password
from django.test import Client

from accounts import hashers, password_checks
from accounts.models import AuditEvent, AuditEventType

from .helpers import PASSWORD, BrowserClient, MetricDeltas

pytestmark = pytest.mark.django_db

# Another process (another worker, another app server on this machine) holding slot 0 until told.
HOLDER = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def one_slot(settings, tmp_path):
    settings.ACCOUNTS_PASSWORD_CHECK_SLOTS = 1
    settings.ACCOUNTS_PASSWORD_CHECK_SLOT_DIR = str(tmp_path)
    return tmp_path / "slot-0"


@contextmanager
def held_by_another_process(slot):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(slot)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.stdin.write("\n")
            holder.stdin.flush()
        holder.wait(timeout=10)


def test_with_every_slot_taken_a_login_is_429_at_once_and_its_password_unchecked(
    user, one_slot, password_tries
):
    deltas = MetricDeltas()
    with held_by_another_process(one_slot):
        response = BrowserClient().sign_in(password="not the password")

    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled" and response["Retry-After"] == "1"
    assert password_tries == []
    assert not AuditEvent.objects.filter(type=AuditEventType.LOGIN_FAILED).exists()
    assert deltas("authproject_logins_total", result="throttled", method="password") == 1
    assert BrowserClient().sign_in().status_code == 200  # the slot is free again


def test_a_slot_is_given_back_after_each_check_whatever_its_outcome(user, one_slot):
    passwords = ("wrong", PASSWORD, "wrong", PASSWORD)
    assert [BrowserClient().sign_in(password=p).status_code for p in passwords] == [401, 200, 401, 200]


def test_a_process_killed_while_holding_a_slot_gives_it_back(user, one_slot):
    with held_by_another_process(one_slot) as holder:
        assert BrowserClient().sign_in().status_code == 429
        holder.kill()
        holder.wait(timeout=10)
        assert BrowserClient().sign_in().status_code == 200


def test_no_slots_configured_means_no_cap(user, one_slot, settings):
    settings.ACCOUNTS_PASSWORD_CHECK_SLOTS = 0
    with held_by_another_process(one_slot):
        assert BrowserClient().sign_in().status_code == 200


def test_the_admin_form_waits_for_a_slot_too(user_factory, one_slot, password_tries):
    user_factory(username="root", is_staff=True, is_superuser=True)
    form = {"username": "root", "password": PASSWORD, "next": "/admin/"}
    with held_by_another_process(one_slot):
        response = Client().post("/admin/login/", form)

    assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
    assert "Too many login attempts. Try again in 1 seconds." in response.content.decode()
    assert password_tries == []
    assert Client().post("/admin/login/", form).status_code == 302


# --- hashing below the requests' priority ------------------------------------------------------
def hashing_thread() -> tuple[int, int]:
    """The native id and niceness of the thread this runs in."""
    thread = threading.get_native_id()
    return thread, os.getpriority(os.PRIO_PROCESS, thread)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_a_password_is_hashed_in_a_thread_niced_below_the_requests(settings):
    settings.ACCOUNTS_PASSWORD_CHECK_NICENESS = 7
    own = hashing_thread()

    thread, niceness = password_checks.password_hash_run(hashing_thread)

    assert thread != own[0]
    assert niceness == min(19, own[1] + 7)
    assert hashing_thread() == own  # the request's thread keeps its priority


def test_niceness_0_hashes_in_the_requests_own_thread(settings):
    settings.ACCOUNTS_PASSWORD_CHECK_NICENESS = 0
    assert password_checks.password_hash_run(hashing_thread) == hashing_thread()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_a_forked_worker_hashes_in_threads_of_its_own(settings):
    """gunicorn forks its workers: a parent's hashing threads do not follow into the child, whose
    first hash must not wait for them for ever."""
    settings.ACCOUNTS_PASSWORD_CHECK_NICENESS = 7
    password_checks.password_hash_run(hashing_thread)  # the parent's threads exist
    child = multiprocessing.get_context("fork").Process(
        target=lambda: os._exit(0 if password_checks.password_hash_run(pow, 2, 10) == 1024 else 1)
    )
    child.start()
    child.join(timeout=20)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_a_refused_niceness_still_hashes_at_the_requests_priority(settings, monkeypatch, caplog):
    """A sandbox may refuse setpriority: logins go on, unniced, and the log says so."""

    def refused(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refused)
    settings.ACCOUNTS_PASSWORD_CHECK_NICENESS = 3  # a niceness no other test uses: new threads

    thread, niceness = password_checks.password_hash_run(hashing_thread)

    assert niceness == hashing_thread()[1]
    assert thread != hashing_thread()[0]
    assert "its niceness could not be raised (Operation not permitted)" in caplog.text


def test_the_argon2_hasher_hashes_and_verifies_through_the_niced_thread(settings, monkeypatch):
    settings.PASSWORD_HASHERS = ["accounts.hashers.Argon2idHasher"]
    settings.ACCOUNTS_PASSWORD_CHECK_NICENESS = 7
    ran = []

    def recorded(function, *args):
        ran.append(function.__name__)
        return password_checks.password_hash_run(function, *args)

    monkeypatch.setattr(hashers, "password_hash_run", recorded)
    encoded = make_password(PASSWORD)

    assert encoded.startswith("argon2$argon2id$v=19$m=65536,t=2,p=1$")
    assert check_password(PASSWORD, encoded) and not check_password("not the password", encoded)
    assert ran == ["encode", "verify", "verify"]
