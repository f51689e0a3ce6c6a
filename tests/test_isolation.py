"""The tests destroy nothing that is not theirs: their cache keys have a prefix of their own, and
emptying the cache between tests deletes only those (a Redis database may hold others' keys too);
the databases they make are named from DATABASE_URL's, never with a fixed name."""

import importlib.util
import os
import secrets

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from .helpers import BASE_DIR, TEST_CACHE_KEY_PREFIX, cache_clear_own_keys, fresh_postgres_database, manage_py

POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def test_the_tests_cache_keys_have_a_prefix_of_their_own_here_and_in_the_processes_they_start():
    assert settings.CACHES["default"]["KEY_PREFIX"] == TEST_CACHE_KEY_PREFIX != "authproject"
    assert cache.make_key("k").startswith(f"{TEST_CACHE_KEY_PREFIX}:")
    started = manage_py("shell", "-c", "from django.conf import settings as s; print(s.CACHES['default'])")
    assert f"'KEY_PREFIX': '{TEST_CACHE_KEY_PREFIX}'" in started.stdout, started.stdout + started.stderr


@pytest.mark.skipif(
    settings.CACHES["default"]["BACKEND"] != "django.core.cache.backends.redis.RedisCache",
    reason="local memory is the process's own: only a Redis database is shared (CACHE_URL=redis://...)",
)
def test_emptying_the_tests_cache_leaves_other_keys_in_the_same_redis_database():
    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    tag = secrets.token_hex(4)
    # Another deployment's key (the production prefix), a key of a program that uses no prefix, and one
    # of another test run whose prefix starts like this one's.
    foreign = [f"authproject:1:throttle_{tag}", f"bare_{tag}", f"{TEST_CACHE_KEY_PREFIX}0:1:k_{tag}"]
    try:
        for key in foreign:
            client.set(key, b"not the tests'")
        cache.set(f"ours_{tag}", "the tests'")
        assert client.exists(cache.make_key(f"ours_{tag}"))

        cache_clear_own_keys()

        assert cache.get(f"ours_{tag}") is None
        assert [client.get(key) for key in foreign] == [b"not the tests'"] * len(foreign)
    finally:
        client.delete(*foreign)
        client.close()


@pytest.mark.skipif(not POSTGRES, reason="databases the tests make on a server: DATABASE_URL=postgres://...")
def test_a_database_the_tests_make_is_named_from_database_urls_and_dropped_afterwards():
    server, configured = os.environ["DATABASE_URL"].rsplit("/", 1)
    with fresh_postgres_database("isolation") as url:
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT current_database()").fetchone()[0] == f"{configured}_isolation"
    with psycopg.connect(f"{server}/postgres") as connection:
        left = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [f"{configured}_isolation"])
        assert left.fetchall() == []


def test_the_second_projects_database_is_named_from_database_urls(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.internal:5432/shop")
    path = BASE_DIR / "tests" / "second_project" / "settings.py"
    spec = importlib.util.spec_from_file_location("second_project_settings_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # setup_databases makes and drops test_<NAME>: test_shop_second_project.
    assert module.DATABASES["default"]["NAME"] == "shop_second_project"
