"""The benchmarks' floor (benchmarks/floor/): the project's settings and URLs with a bare view at
/api/bench/floor/, which the project's own URLconf never has."""

import pytest
from django.urls import get_resolver

import authproject.settings
import benchmarks.floor.settings

FLOOR = "/api/bench/floor/"


@pytest.fixture
def floor_urls(settings):
    """The floor's URLconf, as DJANGO_SETTINGS_MODULE=benchmarks.floor.settings selects it."""
    settings.ROOT_URLCONF = benchmarks.floor.settings.ROOT_URLCONF


@pytest.mark.django_db
def test_the_projects_own_urls_have_no_floor(client):
    response = client.get(FLOOR)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_floor_settings_are_the_projects_but_for_the_urlconf():
    def upper(module) -> dict:
        return {name: getattr(module, name) for name in dir(module) if name.isupper()}

    floor, project = upper(benchmarks.floor.settings), upper(authproject.settings)
    assert floor.pop("ROOT_URLCONF") == "benchmarks.floor.urls" != project.pop("ROOT_URLCONF")
    assert floor == project


def test_the_floor_answers_anyone_through_the_projects_middleware(client, floor_urls):
    response = client.get(FLOOR)  # no credentials, no database
    assert response.status_code == 200
    assert response.json() == {}
    assert response["X-Frame-Options"] == "DENY"  # the project's middleware ran
    assert response["X-Content-Type-Options"] == "nosniff"


def test_beside_the_floor_the_projects_urls_and_error_views_stay(client, floor_urls):
    response = client.get("/api/no-such-endpoint/")  # the /api/ catch-all, after the floor
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    for status in (400, 403, 404, 500):
        assert get_resolver().resolve_error_handler(status) == get_resolver(
            "authproject.urls"
        ).resolve_error_handler(status)
