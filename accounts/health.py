"""Liveness of the parts the service cannot work without."""

import logging
import uuid

from django.core.cache import cache
from django.db import connection

from .metrics import backing_service_error_counted

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    """The default database answers a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("health: database check failed")
        backing_service_error_counted(part="database")
        return False


def cache_ok() -> bool:
    """The shared cache stores and returns a value."""
    key, value = "health:" + uuid.uuid4().hex, "ok"
    try:
        cache.set(key, value, timeout=5)
        ok = cache.get(key) == value
        cache.delete(key)
        return ok
    except Exception:
        logger.exception("health: cache check failed")
        backing_service_error_counted(part="cache")
        return False


def health_report() -> dict[str, str]:
    """``{"status", "database", "cache"}``, each "ok" or "error"."""
    parts = {"database": database_ok(), "cache": cache_ok()}
    report = {name: "ok" if ok else "error" for name, ok in parts.items()}
    return {"status": "ok" if all(parts.values()) else "error", **report}
