"""The benchmarks' floor view (authproject/bench.py) is mounted only when BENCHMARK_ENDPOINTS is on."""

import importlib

import pytest
from django.conf import settings as django_settings
from django.urls import clear_url_caches

import authproject.urls

from .test_settings import load_settings

FLOOR = "/api/bench/floor/"


@pytest.fixture
def urlconf_with(settings):
    """Set BENCHMARK_ENDPOINTS and load authproject.urls afresh under it, as a new process would;
    afterwards the URLconf is loaded again under the suite's own value."""
    original = django_settings.BENCHMARK_ENDPOINTS

    def load(on: bool) -> None:
        settings.BENCHMARK_ENDPOINTS = on
        importlib.reload(authproject.urls)
        clear_url_caches()

    yield load
    load(original)


def test_the_setting_is_off_unless_the_environment_turns_it_on(monkeypatch):
    monkeypatch.delenv("BENCHMARK_ENDPOINTS", raising=False)
    assert load_settings(monkeypatch)["BENCHMARK_ENDPOINTS"] is False
    assert load_settings(monkeypatch, BENCHMARK_ENDPOINTS="1")["BENCHMARK_ENDPOINTS"] is True
    assert load_settings(monkeypatch, BENCHMARK_ENDPOINTS="0")["BENCHMARK_ENDPOINTS"] is False


@pytest.mark.django_db
def test_without_benchmark_endpoints_the_floor_is_not_found(client, urlconf_with):
    urlconf_with(False)
    response = client.get(FLOOR)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_with_benchmark_endpoints_the_floor_answers_anyone_through_the_middleware(client, urlconf_with):
    urlconf_with(True)
    response = client.get(FLOOR)  # no credentials, no database
    assert response.status_code == 200
    assert response.json() == {}
    assert response["X-Frame-Options"] == "DENY"  # the project's middleware ran
    assert response["X-Content-Type-Options"] == "nosniff"
