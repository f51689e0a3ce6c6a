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
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
