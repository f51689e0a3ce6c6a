"""The tokens themselves: how they are built, what they carry, and which ones are refused.

Bad tokens are presented both ways a client can present a token: as a Bearer access token on an
API call and as the refresh cookie on /api/auth/refresh/. Every refusal is a 401 in the one JSON
error shape, with the code the spec names.
"""

import base64
import json
import logging
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts import services
from accounts.models import Session
from accounts.tokens import AccessToken, RefreshToken

from .helpers import BrowserClient, assert_json_error, claims

pytestmark = pytest.mark.django_db

OTHER_KEY = "a-different-signing-key-that-is-long-enough-for-hs256-0123456789"


# --- helpers ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def signed(payload: dict, key: str | None = None) -> str:
    """``payload`` signed with HS256, by default with the service's own signing key."""
    return jwt.encode(payload, key or django_settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")


def unsigned(payload: dict) -> str:
    """An ``alg: none`` token: a valid-looking header and payload and an empty signature."""
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(payload)}."


def with_claims_changed(raw: str, **changes) -> str:
    """The genuine header and signature around a payload with some claims changed."""
    header, _, signature = raw.split(".")
    return f"{header}.{b64url_json({**claims(raw), **changes})}.{signature}"


def present(client: BrowserClient, target: str, raw: str):
    """Present ``raw`` as a Bearer access token ("bearer") or as the refresh cookie ("cookie")."""
    if target == "bearer":
        return client.bearer(raw).get("/api/users/me/")
    client.set_refresh_cookie(raw)
    return client.refresh()


def genuine(client: BrowserClient, target: str) -> str:
    """The signed-in client's real token for ``target``."""
    return client.access if target == "bearer" else client.refresh_cookie


def jwts_in(value) -> list[str]:
    """Every string in a JSON value that parses as a JWT."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in jwts_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in jwts_in(v)]
    if isinstance(value, str) and value.count(".") == 2:
        try:
            claims(value)
        except jwt.InvalidTokenError:
            return []
        return [value]
    return []


# --- building tokens --------------------------------------------------------------------------
def test_for_session_rebuilds_the_identical_refresh_token_for_the_same_session_state(signed_in, user):
    session = Session.objects.get(user=user)

    first = str(RefreshToken.for_session(session))

    assert first == signed_in.refresh_cookie
    assert str(RefreshToken.for_session(session)) == first
    assert str(RefreshToken.for_session(Session.objects.get(pk=session.pk))) == first  # from the row again
    payload = claims(first)
    assert payload["jti"] == session.refresh_jti
    assert payload["sid"] == str(session.pk)
    assert payload["token_type"] == "refresh"
    assert payload["exp"] == int(session.idle_expires_at.timestamp())

    assert signed_in.refresh().status_code == 200
    session.refresh_from_db()
    rotated = str(RefreshToken.for_session(session))

    assert rotated != first
    assert rotated == signed_in.refresh_cookie
    assert str(RefreshToken.for_session(Session.objects.get(pk=session.pk))) == rotated


def test_for_session_takes_every_claim_from_the_row_not_from_the_clock(user):
    """A session written an hour ago: rebuilding its token now must still give the token issued
    then (so nothing in it may come from the current time)."""
    an_hour_ago = timezone.now() - timedelta(hours=1)
    session = services.session_create(user=user, ip=None, user_agent="", now=an_hour_ago)
    issued = services.tokens_issue(session=session).refresh

    rebuilt = RefreshToken.for_session(Session.objects.get(pk=session.pk))

    assert str(rebuilt) == str(issued)
    assert rebuilt["iat"] == int(an_hour_ago.timestamp())
    assert rebuilt["exp"] == int(session.idle_expires_at.timestamp())
    assert rebuilt.jti == session.refresh_jti and rebuilt.session_id == session.pk
    assert rebuilt.user_id == str(user.pk)
    assert RefreshToken(str(rebuilt)).session_id == session.pk  # and it verifies
    # The claims in the order they are signed: a token issued before this order changed would no
    # longer be rebuilt byte for byte (the grace window answers with the rebuilt one).
    assert list(rebuilt.payload) == ["token_type", "exp", "iat", "jti", "user_id", "sid"]


def test_the_sid_claim_is_carried_into_access_tokens(browser, user):
    first = browser.sign_in().json()["access"]
    second_browser = BrowserClient()
    second = second_browser.sign_in().json()["access"]
    refreshed = browser.refresh().json()["access"]

    first_session = Session.objects.get(pk=RefreshToken(browser.refresh_cookie).session_id)
    second_session = Session.objects.get(pk=RefreshToken(second_browser.refresh_cookie).session_id)
    assert first_session != second_session
    assert AccessToken(first).session_id == first_session.pk
    assert AccessToken(refreshed).session_id == first_session.pk
    assert AccessToken(second).session_id == second_session.pk
    assert claims(first)["sid"] == str(first_session.pk)
    assert AccessToken(first).user_id == str(user.pk)
    assert RefreshToken.for_session(first_session).access_token.session_id == first_session.pk


def test_the_refresh_token_never_appears_in_a_json_body(browser, user):
    login = browser.sign_in()
    after_login = browser.refresh_cookie
    rotation = browser.refresh()
    after_rotation = browser.refresh_cookie
    browser.set_refresh_cookie(after_login)
    replay = browser.refresh()  # inside the grace window: answered with the current refresh token

    assert [r.status_code for r in (login, rotation, replay)] == [200, 200, 200]
    assert set(rotation.json()) == set(replay.json()) == {"access", "access_expires_at"}
    refresh_tokens = {after_login, after_rotation, browser.refresh_cookie}
    for response in (login, rotation, replay):
        body = response.content.decode()
        for token in refresh_tokens:
            assert token not in body
            assert claims(token)["jti"] not in body
        tokens_in_body = jwts_in(response.json())
        assert len(tokens_in_body) == 1
        assert claims(tokens_in_body[0])["token_type"] == "access"


def test_the_refresh_token_never_appears_in_a_log_line(browser, user, caplog):
    caplog.set_level(logging.DEBUG)
    browser.sign_in()
    issued = browser.refresh_cookie
    browser.refresh()
    rotated = browser.refresh_cookie
    browser.set_refresh_cookie("garbage")
    assert browser.refresh().status_code == 401

    assert issued not in caplog.text and rotated not in caplog.text


# --- a token of the wrong type ----------------------------------------------------------------
def test_an_access_token_presented_as_the_refresh_cookie_is_refused(signed_in, user):
    session = Session.objects.get(user=user)

    response = present(signed_in, "cookie", signed_in.access)

    assert_json_error(response, 401, "token_not_valid")
    assert "access" not in response.json()
    after = Session.objects.get(pk=session.pk)
    assert after.refresh_jti == session.refresh_jti and after.revoked_at is None


def test_a_refresh_token_presented_as_a_bearer_token_is_refused(signed_in):
    response = present(signed_in, "bearer", signed_in.refresh_cookie)

    assert_json_error(response, 401, "token_not_valid")
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- forged, damaged and expired tokens -------------------------------------------------------
BAD_TOKENS = {
    "garbage": lambda raw: "garbage",
    "three garbage segments": lambda raw: "abc.def.ghi",
    "alg none": lambda raw: unsigned(claims(raw)),
    "wrong key": lambda raw: signed(claims(raw), key=OTHER_KEY),
    "claims changed under the genuine signature": lambda raw: with_claims_changed(raw, user_id="999999"),
    "truncated signature": lambda raw: raw[:-6],
    "signature cut off": lambda raw: raw.rsplit(".", 1)[0],
    "truncated in the payload": lambda raw: raw[: len(raw) // 2],
}


@pytest.mark.parametrize("target", ["bearer", "cookie"])
@pytest.mark.parametrize("defect", list(BAD_TOKENS))
def test_a_forged_or_damaged_token_is_401_token_not_valid(signed_in, user, target, defect):
    session = Session.objects.get(user=user)
    bad = BAD_TOKENS[defect](genuine(signed_in, target))

    response = present(signed_in, target, bad)

    assert_json_error(response, 401, "token_not_valid")
    after = Session.objects.get(pk=session.pk)
    assert after.refresh_jti == session.refresh_jti and after.revoked_at is None


@pytest.mark.parametrize("target", ["bearer", "cookie"])
def test_a_token_signed_with_the_service_key_is_accepted(signed_in, target):
    """The control for the tests above: the helpers build tokens the service accepts, so those
    refusals come from the defect alone."""
    resigned = signed(claims(genuine(signed_in, target)))

    response = present(signed_in, target, resigned)

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("target", ["bearer", "cookie"])
def test_an_expired_token_is_401_token_expired(signed_in, target):
    now = int(time.time())
    expired = signed({**claims(genuine(signed_in, target)), "iat": now - 3600, "exp": now - 60})

    response = present(signed_in, target, expired)

    assert_json_error(response, 401, "token_expired")


def test_simple_jwt_lifetime_overrides_apply_to_the_tokens_issued(browser, user, settings):
    """conf.py: lifetimes come "from SIMPLE_JWT, read at use so that overrides apply"."""
    settings.SIMPLE_JWT = {
        **settings.SIMPLE_JWT,
        "ACCESS_TOKEN_LIFETIME": timedelta(minutes=1),
        "REFRESH_TOKEN_LIFETIME": timedelta(hours=1),
    }

    response = browser.sign_in()

    access = claims(response.json()["access"])
    refresh = claims(browser.refresh_cookie)
    assert 59 <= access["exp"] - access["iat"] <= 60
    assert refresh["exp"] - refresh["iat"] == 3600


# --- simplejwt's own entry points ---------------------------------------------------------------
def test_simplejwt_for_user_opens_a_session_whose_tokens_work(user):
    refresh = RefreshToken.for_user(user)
    session = Session.objects.get(pk=refresh.session_id)
    assert session.is_active() and session.refresh_jti == refresh.jti
    client = BrowserClient()
    assert client.bearer(str(refresh.access_token)).get("/api/users/me/").status_code == 200
    client.set_refresh_cookie(str(refresh))
    assert client.refresh().status_code == 200


def test_simplejwt_blacklist_revokes_the_tokens_session(signed_in):
    refresh = RefreshToken(signed_in.refresh_cookie)
    assert refresh.blacklist() is True
    assert Session.objects.get().revoke_reason == "logout"
    assert signed_in.bearer(signed_in.access).get("/api/users/me/").status_code == 401
    assert signed_in.refresh().status_code == 401
    assert refresh.blacklist() is False  # already revoked
