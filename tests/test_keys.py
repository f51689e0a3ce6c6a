"""Signing keys: each algorithm signs and verifies, the JWKS publishes public keys by their RFC 7638
thumbprint, verification picks the key by ``kid``, rotation signs nobody out, and issuer and
audience are required when configured. Keys are made at run time (conftest's ``key_file``)."""

import base64
import hashlib
import hmac
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from django.test import override_settings

from accounts import keys

from .helpers import assert_json_error, claims, public_half, sign_with

pytestmark = pytest.mark.django_db
ASYMMETRIC = ["ES256", "RS256"]
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def header(raw: str) -> dict:
    return jwt.get_unverified_header(raw)


def jwks(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    return response.json()


def verify_with_jwks(client, raw: str) -> dict:
    """Verify ``raw`` as another service would: with the published key its ``kid`` names."""
    published = {jwk["kid"]: jwk for jwk in jwks(client)["keys"]}
    jwk = jwt.PyJWK(published[header(raw)["kid"]])
    return jwt.decode(raw, jwk.key, algorithms=[jwk.algorithm_name])


def me(browser, access: str):
    return browser.bearer(access).get("/api/users/me/")


# --- Each algorithm signs and verifies ---------------------------------------------------------
@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_login_me_and_refresh_work_and_another_service_verifies_with_the_jwks(
    algorithm, use_keys, key_file, browser, user
):
    use_keys(algorithm, signing=[key_file(algorithm)])
    login = browser.sign_in()
    assert login.status_code == 200, login.content
    access = login.json()["access"]
    assert header(access)["alg"] == algorithm
    assert header(access)["kid"] == jwks(browser)["keys"][0]["kid"]
    assert me(browser, access).json()["username"] == "alice"
    assert verify_with_jwks(browser, access)["user_id"] == str(user.pk)
    assert header(browser.refresh_cookie)["kid"] == header(access)["kid"]

    refreshed = browser.refresh()
    assert refreshed.status_code == 200, refreshed.content
    assert verify_with_jwks(browser, refreshed.json()["access"])["token_type"] == "access"
    assert me(browser, refreshed.json()["access"]).status_code == 200


def test_hs256_tokens_name_no_kid_and_nothing_is_published(settings, browser, user):
    """Under HMAC the one secret verifies; a thumbprint of it in every token would be a hash of the
    secret, and there is no public key to publish."""
    assert keys.KeyConfig.current().algorithm == "HS256"
    access = browser.sign_in().json()["access"]
    assert header(access) == {"alg": "HS256", "typ": "JWT"}
    assert me(browser, access).status_code == 200
    response = browser.get("/.well-known/jwks.json")
    assert response.json() == {"keys": []}
    assert "max-age=3600" in response["Cache-Control"]


def test_a_token_of_another_algorithm_is_refused(use_keys, key_file, browser, user):
    use_keys("ES256", signing=[key_file("ES256")])
    es256 = browser.sign_in().json()["access"]
    use_keys("RS256", signing=[key_file("RS256")])
    assert_json_error(me(browser, es256), 401, "token_not_valid")


# --- The JWKS ------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_the_jwks_publishes_every_listed_key_once_with_public_parameters_only(
    algorithm, use_keys, key_file, client, settings
):
    signing, next_key, old = key_file(algorithm, "a"), key_file(algorithm, "b"), key_file(algorithm, "c")
    use_keys(algorithm, signing=[signing, next_key, signing], verify=[public_half(old)])
    settings.ACCOUNTS_JWKS_MAX_AGE = timedelta(minutes=2)

    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "max-age=120" in response["Cache-Control"] and "public" in response["Cache-Control"]
    published = response.json()["keys"]
    assert [jwk["kid"] for jwk in published] == [kid_of_file(p, algorithm) for p in (signing, next_key, old)]
    kty = {"ES256": "EC", "RS256": "RSA"}[algorithm]
    for jwk in published:
        assert jwk["kty"] == kty and jwk["alg"] == algorithm and jwk["use"] == "sig"
        assert not PRIVATE_JWK_MEMBERS & set(jwk), jwk
        assert jwk["kid"] == keys.thumbprint(jwk)
        assert jwt.PyJWK(jwk).key.public_numbers()  # a usable public key
    if algorithm == "ES256":
        assert {jwk["crv"] for jwk in published} == {"P-256"}


def test_the_thumbprint_is_rfc_7638s(db):
    """The example of RFC 7638 section 3.1."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPe"
        "bWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368"
        "QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd"
        "2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert keys.thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# --- Verification picks the key by kid ----------------------------------------------------------
@pytest.fixture
def es256(use_keys, key_file, browser, user):
    """Signed in under ES256 with key "a"; ``browser.access`` and the refresh cookie are real."""
    use_keys("ES256", signing=[key_file("ES256")])
    response = browser.sign_in()
    assert response.status_code == 200
    browser.access = response.json()["access"]
    return browser


def forged(raw: str, private_pem: str, **headers) -> str:
    """``raw``'s claims signed with another key, with these header fields."""
    return sign_with(private_pem, claims(raw), algorithm="ES256", headers=headers)


def kid_of_file(path: str, algorithm: str = "ES256") -> str:
    with open(path, "rb") as f:
        return keys.kid_of(f.read(), algorithm)


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("own", id="an unlisted key named by its own kid"),
        pytest.param("listed", id="an unlisted key claiming the listed key's kid"),
        pytest.param(None, id="no kid"),
        pytest.param("", id="an empty kid"),
    ],
)
def test_a_token_not_signed_by_a_listed_key_is_token_not_valid(es256, key_file, kid):
    stranger = key_file("ES256", "stranger")
    if kid == "own":
        kid = kid_of_file(stranger)
    elif kid == "listed":
        kid = header(es256.access)["kid"]
    headers = {} if kid is None else {"kid": kid}
    assert_json_error(me(es256, forged(es256.access, stranger, **headers)), 401, "token_not_valid")
    es256.set_refresh_cookie(forged(es256.refresh_cookie, stranger, **headers))
    assert_json_error(es256.refresh(), 401, "token_not_valid")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def by_hand(header: dict, payload: dict, hmac_key: bytes = b"junk") -> str:
    """A token PyJWT refuses to make, HMAC-SHA256 signed with ``hmac_key``."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())}"


def test_a_kid_that_is_not_a_string_is_token_not_valid(es256):
    token = by_hand({"alg": "ES256", "kid": ["x"]}, claims(es256.access))
    assert_json_error(me(es256, token), 401, "token_not_valid")


def test_the_listed_key_without_its_kid_is_refused(es256, key_file):
    """Under an asymmetric algorithm the kid is required, even when the signature would verify."""
    unnamed = sign_with(key_file("ES256"), claims(es256.access), algorithm="ES256")
    assert_json_error(me(es256, unnamed), 401, "token_not_valid")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda pub, kid, payload: by_hand({"alg": "HS256", "typ": "JWT", "kid": kid}, payload, pub),
            id="HS256 with the public key as the HMAC secret",
        ),
        pytest.param(
            lambda pub, kid, payload: jwt.encode(payload, None, algorithm="none", headers={"kid": kid}),
            id="alg none",
        ),
        pytest.param(lambda pub, kid, payload: "not.a.token", id="garbage"),
        pytest.param(lambda pub, kid, payload: "e30.e30.e30", id="empty header and payload"),
    ],
)
def test_an_algorithm_other_than_the_configured_one_is_token_not_valid(es256, key_file, make):
    public_pem = open(public_half(key_file("ES256")), "rb").read()
    token = make(public_pem, header(es256.access)["kid"], claims(es256.access))
    assert_json_error(me(es256, token), 401, "token_not_valid")


def test_a_listed_key_signs_a_token_that_verifies(es256, key_file):
    """The control for the refusals above: the same claims, signed right, are accepted."""
    same = forged(es256.access, key_file("ES256"), kid=header(es256.access)["kid"])
    assert me(es256, same).status_code == 200


# --- Rotation: publish next, switch, retire -----------------------------------------------------
@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_rotation_signs_nobody_out(algorithm, use_keys, key_file, browser, user):
    current, following = key_file(algorithm, "a"), key_file(algorithm, "b")
    current_kid, next_kid = kid_of_file(current, algorithm), kid_of_file(following, algorithm)
    use_keys(algorithm, signing=[current])
    old_access = browser.sign_in().json()["access"]
    old_cookie = browser.refresh_cookie

    # 1. Publish next: the next key is in the JWKS; the current one still signs.
    use_keys(algorithm, signing=[current, following])
    assert [k["kid"] for k in jwks(browser)["keys"]] == [current_kid, next_kid]
    assert header(browser.sign_in().json()["access"])["kid"] == current_kid

    # 2. Switch: the next key signs; tokens of the current one keep working, the refresh cookie too.
    use_keys(algorithm, signing=[following, current])
    browser.set_refresh_cookie(old_cookie)
    assert me(browser, old_access).status_code == 200
    refreshed = browser.refresh()
    assert refreshed.status_code == 200, refreshed.content
    assert header(refreshed.json()["access"])["kid"] == next_kid
    assert header(browser.refresh_cookie)["kid"] == next_kid
    assert me(browser, refreshed.json()["access"]).status_code == 200

    # 3. Retire: once its tokens have expired the old key goes; a token it signed is refused.
    use_keys(algorithm, signing=[following])
    assert [k["kid"] for k in jwks(browser)["keys"]] == [next_kid]
    assert_json_error(me(browser, old_access), 401, "token_not_valid")
    assert me(browser, refreshed.json()["access"]).status_code == 200
    assert browser.refresh().status_code == 200


def test_a_public_verify_key_keeps_the_previous_keys_tokens_working(use_keys, key_file, browser, user):
    """JWT_VERIFY_KEYS: the previous key's public half verifies its tokens but never signs."""
    previous, current = key_file("ES256", "a"), key_file("ES256", "b")
    use_keys("ES256", signing=[previous])
    old_access = browser.sign_in().json()["access"]
    use_keys("ES256", signing=[current], verify=[public_half(previous)])
    assert me(browser, old_access).status_code == 200
    assert browser.refresh().status_code == 200
    assert header(browser.refresh_cookie)["kid"] == kid_of_file(current)


# --- Issuer and audience ------------------------------------------------------------------------
@pytest.fixture
def issuer_and_audience(settings):
    def configure(issuer=None, audience=None):
        settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ISSUER": issuer, "AUDIENCE": audience}

    return configure


@pytest.mark.parametrize("algorithm", ["HS256", "ES256"])
def test_configured_issuer_and_audience_are_in_tokens_and_required(
    algorithm, use_keys, key_file, issuer_and_audience, browser, user
):
    use_keys(algorithm, signing=[key_file("ES256")] if algorithm == "ES256" else [])
    without = browser.sign_in().json()["access"]
    issuer_and_audience("https://auth.example.com", "https://api.example.com")
    access = browser.sign_in().json()["access"]
    assert claims(access)["iss"] == "https://auth.example.com"
    assert claims(access)["aud"] == "https://api.example.com"
    assert me(browser, access).status_code == 200
    assert_json_error(me(browser, without), 401, "token_not_valid")  # neither iss nor aud

    issuer_and_audience("https://other.example.com", "https://api.example.com")
    assert_json_error(me(browser, access), 401, "token_not_valid")
    issuer_and_audience("https://auth.example.com", "https://other-api.example.com")
    assert_json_error(me(browser, access), 401, "token_not_valid")
    assert_json_error(browser.refresh(), 401, "token_not_valid")  # the cookie's aud is the old one


# --- Read once per process ----------------------------------------------------------------------
def test_key_files_are_read_once_per_configuration(use_keys, key_file, tmp_path, browser, user):
    copy = tmp_path / "signing.pem"
    copy.write_bytes(open(key_file("ES256"), "rb").read())
    use_keys("ES256", signing=[str(copy)])
    first = keys.key_set()
    assert keys.key_set() is first
    access = browser.sign_in().json()["access"]
    os.remove(copy)  # a request that read the file now would fail
    assert me(browser, access).status_code == 200
    assert browser.refresh().status_code == 200
    assert keys.key_set() is first
    use_keys("ES256", signing=[key_file("ES256", "b")])  # another configuration: other keys
    assert keys.key_set() is not first
    assert_json_error(me(browser, access), 401, "token_not_valid")


def test_an_override_of_the_settings_takes_effect_at_once(key_file, db):
    with override_settings(SIMPLE_JWT={"ALGORITHM": "RS256"}, ACCOUNTS_JWT_SIGNING_KEYS=[key_file("RS256")]):
        assert keys.key_set().algorithm == "RS256"
    assert keys.key_set().algorithm == "HS256"


def test_a_token_expired_under_an_asymmetric_key_is_token_expired(es256, key_file):
    payload = {**claims(es256.access), "exp": int(time.time()) - 60}
    expired = sign_with(
        key_file("ES256"), payload, algorithm="ES256", headers={"kid": header(es256.access)["kid"]}
    )
    assert_json_error(me(es256, expired), 401, "token_expired")


# --- PyJWT is left as it is: the app changes nothing outside itself --------------------------------
@pytest.mark.parametrize("algorithm", keys.HMAC_ALGORITHMS)
def test_pyjwts_own_hmac_algorithms_are_registered_after_django_setup(algorithm):
    # Django is set up (conftest), so AccountsConfig.ready() has run: PyJWT's process-wide registry
    # still holds PyJWT's own class, which the host project's other code signs and verifies with.
    assert type(jwt.get_algorithm_by_name(algorithm)) is jwt.algorithms.HMACAlgorithm
    secret = f"a secret for this test only, {algorithm}, {os.urandom(32).hex()}"
    token = jwt.encode({"sub": "1"}, secret, algorithm=algorithm)
    assert jwt.decode(token, secret, algorithms=[algorithm]) == {"sub": "1"}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, secret + "x", algorithms=[algorithm])


@pytest.mark.parametrize("algorithm", keys.HMAC_ALGORITHMS)
def test_the_apps_tokens_check_each_hmac_key_once_not_on_every_token(algorithm, monkeypatch):
    assert isinstance(keys.APP_JWT._jws.get_algorithm_by_name(algorithm), keys.HMACKeyCheckedOnce)
    checks = []  # each key PyJWT's own check runs on (it still runs, counted)
    check = jwt.algorithms.HMACAlgorithm.prepare_key

    def counted_check(self, key):
        checks.append(key)
        return check(self, key)

    monkeypatch.setattr(jwt.algorithms.HMACAlgorithm, "prepare_key", counted_check)
    secret = f"a secret for this test only, {algorithm}, {os.urandom(32).hex()}"
    for _ in range(3):
        token = keys.APP_JWT.encode({"sub": "1"}, secret, algorithm=algorithm)
        assert keys.APP_JWT.decode(token, secret, algorithms=[algorithm]) == {"sub": "1"}
    assert checks == [secret]
    jwt.encode({"sub": "1"}, secret, algorithm=algorithm)  # the process's own PyJWT: checked as always
    assert checks == [secret, secret]


def test_an_asymmetric_key_as_an_hmac_secret_is_refused_by_the_apps_pyjwt_every_time(key_file):
    public_pem = Path(public_half(key_file("ES256"))).read_bytes()
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            keys.APP_JWT.encode({"sub": "1"}, public_pem, algorithm="HS256")


def test_an_asymmetric_key_as_an_hmac_secret_is_still_refused_every_time(key_file):
    public_pem = Path(public_half(key_file("ES256"))).read_bytes()
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            jwt.encode({"sub": "1"}, public_pem, algorithm="HS256")
