"""At most PASSWORD_CHECK_SLOTS password checks at once on this machine, all its app servers' worker
processes together: a login that finds every slot taken is answered at once (429, Retry-After: 1)
and its password is not checked.

Why a count of checks in progress and not only a rate (LOGIN_GLOBAL_THROTTLE_RATE): a sync worker
that hashes (Argon2, about 0.1 s of a core alone, longer when hashes share the cores) is a worker
that ``me`` and refresh cannot have. Under a login flood, ten hashes a second at half a second each
(two cores shared five ways) hold every worker, and signed-in users wait in gunicorn's queue for
seconds (measured: benchmarks/login_flood.py). A cap on the hashes in progress bounds both the cores
and the workers that password checks can take, whatever the machine's speed.

A slot is a file in PASSWORD_CHECK_SLOT_DIR locked with ``flock(LOCK_EX | LOCK_NB)``: the kernel
holds the lock for the open file, shared by no other process or thread (each check opens its own),
and drops it when the process dies, so a worker killed mid-hash never keeps a slot. Where ``fcntl``
does not exist (Windows), there are no slots.

The hash itself runs below the requests' priority (``password_hash_run``): in a thread of this
process whose niceness is raised by PASSWORD_CHECK_NICENESS, so that when a core is wanted by both
a hash and a request, the request has it, and a hash on a busy machine takes longer instead of
making ``me`` and refresh wait (measured: benchmarks/login_flood.py). On an idle core a niced
thread runs at full speed. The thread only computes: Django, the database and the request stay in
the worker's own thread (Argon2 releases the GIL while it hashes).
"""

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .conf import app_settings
from .errors import PasswordChecksBusy

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None


def _slot_paths() -> list[Path]:
    directory = Path(app_settings.PASSWORD_CHECK_SLOT_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return [directory / f"slot-{number}" for number in range(app_settings.PASSWORD_CHECK_SLOTS)]


def _slot_take() -> int | None:
    """An open, locked slot file's descriptor, or None if every slot is taken."""
    for path in _slot_paths():
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        return descriptor
    return None


@contextmanager
def password_check_slot() -> Iterator[None]:
    """Hold a slot for one password check; PasswordChecksBusy if none is free. No slots
    configured (0), or no flock: nothing is held."""
    if not app_settings.PASSWORD_CHECK_SLOTS or fcntl is None:
        yield
        return
    descriptor = _slot_take()
    if descriptor is None:
        raise PasswordChecksBusy()
    try:
        yield
    finally:
        os.close(descriptor)  # closing the only descriptor of the open file drops its lock


# --- hashing below the requests' priority ----------------------------------------------------------
T = TypeVar("T")
logger = logging.getLogger(__name__)
_hashing: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, niceness, executor)
_hashing_lock = threading.Lock()


def _thread_niceness_raise(niceness: int) -> None:
    """Raise the calling thread's niceness by ``niceness`` (Linux: a thread's own; 19 at most).
    Lowering a priority needs no privilege; it cannot be raised back, so the thread is kept for
    hashes only. Where the system refuses (a sandbox's filter), the thread hashes at the requests'
    priority, with a warning: a failing initializer would break the executor and every login."""
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + niceness))
    except OSError as error:
        logger.warning(
            "A password-hashing thread keeps the requests' priority: its niceness could not be raised (%s)",
            error.strerror,
        )


def _hashing_executor(niceness: int) -> ThreadPoolExecutor:
    """This process's hashing threads (made on first use, again in a forked child, whose parent's
    threads did not follow it), each niced as it starts."""
    global _hashing
    with _hashing_lock:
        pid = os.getpid()
        if _hashing is None or _hashing[:2] != (pid, niceness):
            _hashing = (
                pid,
                niceness,
                ThreadPoolExecutor(
                    max_workers=os.cpu_count() or 1,
                    thread_name_prefix="password-hash",
                    initializer=_thread_niceness_raise,
                    initargs=(niceness,),
                ),
            )
        return _hashing[2]


def password_hash_run(function: Callable[..., T], *args) -> T:
    """``function(*args)``, a password hash, computed in a thread niced by PASSWORD_CHECK_NICENESS
    while this one waits; here, at the caller's priority, if that is 0 or the platform cannot
    nice a thread (not Linux)."""
    niceness = app_settings.PASSWORD_CHECK_NICENESS
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return function(*args)
    return _hashing_executor(niceness).submit(function, *args).result()
