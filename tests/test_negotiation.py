"""JSON answers whatever a client that takes JSON sends, and DRF's refusals stay for the rest."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/json; indent=2", "text/*, */*"]
)
def test_a_client_that_takes_json_gets_json(api, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = api.get("/api/users/me/", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["username"]


def test_a_client_that_takes_no_json_gets_406(api):
    response = api.get("/api/users/me/", HTTP_ACCEPT="text/html")
    assert (response.status_code, response.json()["code"]) == (406, "not_acceptable")


def test_another_format_asked_in_the_query_is_a_json_404(api):
    response = api.get("/api/users/me/?format=xml")  # was a 500: DRF raises Django's Http404 there
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert api.get("/api/users/me/?format=json").status_code == 200
