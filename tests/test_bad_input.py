"""No input reaches a 500: each case found by probing the service has its regression test here.

Every answer is a 4xx in the one JSON error shape (tests/helpers.assert_json_error).
"""

from datetime import timedelta
from functools import partial

import pytest
from django.contrib.auth import base_user, get_user_model
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.test.utils import CaptureQueriesContext
from django.utils.http import parse_http_date
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import keys, services
from accounts.errors import UsernameTaken
from accounts.models import Session
from accounts.tokens import RefreshToken
from accounts.views import NoStoreMixin

from .helpers import PASSWORD, BrowserClient, NativeClient, assert_json_error, at_once, claims

pytestmark = pytest.mark.django_db

LOGIN, REGISTER = "/api/auth/login/", "/api/auth/register/"


def post_raw(client, path: str, body: str | bytes, **extra):
    return client.post(path, body, content_type="application/json", **extra)


def signed(payload: dict) -> str:
    """A token with the server's own signature (as if the key had signed odd claims)."""
    return keys.token_backend().encode(payload)


# --- the body -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [LOGIN, REGISTER])
def test_json_nested_a_thousand_deep_is_a_400(browser, path):
    body = '{"username": ' + "[" * 1000 + "]" * 1000 + ', "password": "x"}'
    assert_json_error(post_raw(browser, path, body), 400, "parse_error")


@pytest.mark.parametrize("path", [LOGIN, REGISTER])
def test_a_lone_surrogate_in_a_string_is_a_400(browser, path):
    body = '{"username": "\\ud800", "email": "a@example.com", "password": "x"}'
    response = post_raw(browser, path, body)
    assert_json_error(response, 400, "parse_error")
    assert "surrogate" in response.json()["detail"]


def test_a_body_over_the_upload_limit_is_a_413(browser, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"username": "alice", "password": "' + "x" * 2000 + '"}'
    assert_json_error(post_raw(browser, LOGIN, body), 413, "request_too_large")


def test_a_body_that_is_not_json_is_a_400(browser):
    assert_json_error(post_raw(browser, LOGIN, b"\xff\xfe not json"), 400, "parse_error")


# --- usernames ------------------------------------------------------------------------------
def register(client, username: str):
    body = {"username": username, "email": "k@example.com", "password": PASSWORD}
    return client.post(REGISTER, body, format="json")


def test_a_username_equal_to_a_taken_one_after_nfkc_normalization_is_a_400(
    browser, user_factory, monkeypatch
):
    """Refused by the check, which normalizes as create_user will: no password hashed, no INSERT
    tried (the unique index would refuse it too, after the costly hash)."""
    user_factory(username="Kelvin123")
    hashed, make_password = [], base_user.make_password
    monkeypatch.setattr(base_user, "make_password", lambda *a, **k: hashed.append(a) or make_password(*a, **k))

    with CaptureQueriesContext(connection) as queries:
        response = register(browser, "\u212aelvin123")  # KELVIN SIGN: NFKC makes it "K"

    body = assert_json_error(response, 400, "invalid")
    assert body["errors"] == {"username": ["That username is taken."]}
    assert get_user_model().objects.filter(username="Kelvin123").count() == 1
    assert not hashed
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]


def test_a_registered_username_is_stored_normalized(browser):
    assert register(browser, "\u212aelvin99").status_code == 201
    assert get_user_model().objects.filter(username="Kelvin99").exists()


def test_the_unique_index_catching_a_taken_name_is_username_taken_not_a_database_error(user_factory):
    """What a registration that lost a race meets after its check passed."""
    user_factory(username="Kelvin7")
    with pytest.raises(UsernameTaken):
        services.user_create(username="Kelvin7", email="k@example.com", password=PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_of_one_username_make_one_user_and_no_500():
    threads_count = 8
    clients = [BrowserClient(REMOTE_ADDR=f"203.0.113.{i + 1}") for i in range(threads_count)]

    results = at_once([partial(register, client, "racer") for client in clients])
    statuses = [getattr(result, "status_code", result) for result in results]

    assert sorted(statuses, key=str) == [201] + [400] * (threads_count - 1), statuses
    assert get_user_model().objects.filter(username="racer").count() == 1


# --- tokens with a good signature and odd claims ---------------------------------------------
def odd_claims(session: Session, **changes) -> dict:
    payload = claims(str(RefreshToken.for_session(session)))
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


ODD = {
    "user_id not a number": {"user_id": "alice"},
    "user_id a list": {"user_id": [1]},
    "user_id past the column's range": {"user_id": 2**70},
    "sid not a uuid": {"sid": "nope"},
    "sid missing": {"sid": None},
    "exp beyond any date": {"exp": 10**20},
    "jti missing": {"jti": None},
    "wrong token_type": {"token_type": "banana"},
}


@pytest.mark.parametrize("changes", ODD.values(), ids=ODD)
def test_a_signed_refresh_cookie_with_odd_claims_is_a_401(browser, make_session, changes):
    session = make_session()
    browser.set_refresh_cookie(signed(odd_claims(session, **changes)))
    assert_json_error(browser.refresh(), 401)


@pytest.mark.parametrize("changes", ODD.values(), ids=ODD)
def test_logout_with_a_signed_cookie_with_odd_claims_is_still_200(browser, make_session, changes):
    browser.set_refresh_cookie(signed(odd_claims(make_session(), **changes)))
    assert browser.sign_out().status_code == 200


SESSION_CLAIMS = {"sid not a uuid", "sid missing"}  # only checked when access tokens check sessions


@pytest.mark.parametrize("stateless", [False, True], ids=["session-checked", "stateless"])
@pytest.mark.parametrize("case", ODD)
def test_a_signed_bearer_token_with_odd_claims_is_a_401(browser, make_session, settings, case, stateless):
    settings.ACCOUNTS_ACCESS_TOKEN_CHECKS_SESSION = not stateless
    exp = int((timezone.now() + timedelta(minutes=5)).timestamp())
    payload = odd_claims(make_session(), **{"token_type": "access", "exp": exp, **ODD[case]})
    response = browser.bearer(signed(payload)).get("/api/users/me/")
    if stateless and case in SESSION_CLAIMS:
        assert response.status_code == 200
    else:
        assert_json_error(response, 401)


# --- Cache-Control --------------------------------------------------------------------------
def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_answers_carrying_tokens_or_the_csrf_token_are_no_store(browser, user):
    assert no_store(browser.get("/api/auth/csrf/"))
    assert no_store(browser.sign_in())
    assert no_store(browser.refresh())
    assert no_store(browser.sign_out())


def test_body_transport_answers_carrying_tokens_are_no_store(user):
    native = NativeClient()
    login = native.sign_in()
    assert no_store(login)
    refreshed = native.refresh(login.json()["refresh"])
    assert refreshed.status_code == 200 and no_store(refreshed)
    assert no_store(native.sign_out(refreshed.json()["refresh"]))


def test_the_no_store_headers_are_the_ones_django_writes(browser, user):
    """views.NoStoreMixin writes what django.utils.cache.add_never_cache_headers would."""
    expected = HttpResponse()
    add_never_cache_headers(expected)
    browser.sign_in()
    refreshed = browser.refresh()
    assert refreshed["Cache-Control"] == expected["Cache-Control"]
    assert abs(parse_http_date(refreshed["Expires"]) - parse_http_date(expected["Expires"])) <= 2


def test_caching_headers_a_view_already_set_are_kept_beside_no_store(rf):
    """A project's view (or a middleware before it) that set its own Cache-Control keeps it:
    Django's add_never_cache_headers merges no-store into it rather than writing over it."""
    class PrivateAnswer(NoStoreMixin, APIView):
        authentication_classes = permission_classes = ()

        def get(self, request):
            return Response({}, headers={"Cache-Control": "private, no-transform"})

    response = PrivateAnswer.as_view()(rf.get("/"))
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-transform", "no-store", "no-cache", "must-revalidate"} <= directives, directives


def test_a_refused_login_is_no_store_too(browser, user):
    assert no_store(browser.sign_in(password="wrong"))
