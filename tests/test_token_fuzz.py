"""Property-based fuzzing of the token path (hypothesis): whatever token comes in, never a 5xx.

Random strings, mutations of real tokens (a character changed, dropped, added, the parts shuffled)
and tokens signed with the server's own key but odd claims go into every place a token is read:
the refresh cookie (refresh and logout, CSRF passed), the body's ``refresh`` (refresh and logout,
body transport), and the Bearer header. The answer is always JSON; an error is always a 4xx in the
one error shape; and a refusal changes nothing (the victim session stays as it was). Examples are
bounded (MAX_EXAMPLES per test) and derandomized, so the run is short and repeatable; the count is
printed at the end of the run.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import keys, mfa
from accounts.email_verification import verification_key_make
from accounts.models import MfaToken
from accounts.password_reset import password_reset_key
from accounts.tokens import RefreshToken

from .helpers import FUZZ_COUNTS, BrowserClient, NativeClient, claims

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 250
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What an HTTP header or cookie can carry (WSGI hands headers over as Latin-1 text).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=400)
COOKIE_TEXT = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'), max_size=400
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
CLAIMS = ("token_type", "exp", "iat", "jti", "user_id", "sid")


def sign(payload: dict) -> str:
    """A token signed with the server's own key: only its claims are odd."""
    return keys.token_backend().encode(payload)


@st.composite
def mutated(draw, token: str) -> str:
    """A real token with a few edits: changed, dropped or added characters, or shuffled parts."""
    kind = draw(st.sampled_from(["edit", "parts"]))
    if kind == "parts":
        parts = token.split(".")
        return ".".join(draw(st.lists(st.sampled_from([*parts, "", "e30"]), min_size=1, max_size=5)))
    chars = list(token)
    for _ in range(draw(st.integers(1, 4))):
        # A position drawn independently of the token's length, which differs from run to run.
        at = draw(st.integers(0, 4095)) % (len(chars) + 1)
        action = draw(st.sampled_from(["change", "drop", "add"]))
        char = draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'))
        if action == "add" or not chars:
            chars.insert(at, char)
        elif action == "drop":
            del chars[min(at, len(chars) - 1)]
        else:
            chars[min(at, len(chars) - 1)] = char
    return "".join(chars)


@st.composite
def odd_claims(draw, token: str) -> str:
    """The token's own claims with some replaced by any JSON value, dropped, or added."""
    payload = claims(token)
    for name in draw(st.lists(st.sampled_from(CLAIMS), max_size=4, unique=True)):
        if draw(st.booleans()):
            payload.pop(name, None)
        else:
            payload[name] = draw(JSON_VALUES | st.integers(min_value=2**31, max_value=2**70))
    payload.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2)))
    return sign(payload)


def tokens_from(real: str, text=COOKIE_TEXT):
    """Random text, a mutation of the real token, or the real token's claims made odd; with which
    it was, since only the first two must leave the session untouched (a token our own key signed
    with another jti is, rightly, taken for reuse)."""
    return st.one_of(
        st.tuples(st.just("forged"), text),
        st.tuples(st.just("forged"), mutated(real)),
        st.tuples(st.just("signed"), odd_claims(real)),
    )


@pytest.fixture
def victim(make_session):
    """A live session and its current refresh token, new for each example."""

    def make():
        session = make_session()
        return session, str(RefreshToken.for_session(session))

    return make


def assert_answered_safely(response, *, ok=(200,)) -> None:
    """JSON always; a 2xx only where allowed; otherwise a 4xx in the one error shape."""
    FUZZ_COUNTS["hypothesis token examples"] += 1
    assert response.status_code < 500, response.content
    body = json.loads(response.content)
    if response.status_code in ok:
        return
    assert 400 <= response.status_code < 500, response.content
    assert isinstance(body.get("detail"), str) and isinstance(body.get("code"), str), body


def assert_untouched_unless_accepted(response, kind: str, session, token: str) -> None:
    """A forged or garbled token that was refused changed nothing about the real session (an edit
    that base64 decodes to the same bytes is the real token, and may rotate it)."""
    if kind != "forged" or response.status_code == 200:
        return
    before = (session.refresh_jti, session.revoked_at)
    session.refresh_from_db()
    assert (session.refresh_jti, session.revoked_at) == before
    assert token == str(RefreshToken.for_session(session))


@given(data=st.data())
@FUZZ
def test_refresh_cookies_of_any_shape_get_a_4xx_never_a_500(victim, data):
    session, real = victim()
    kind, raw = data.draw(tokens_from(real))
    browser = BrowserClient()
    browser.set_refresh_cookie(raw)
    response = browser.refresh()
    assert_answered_safely(response)
    assert_untouched_unless_accepted(response, kind, session, real)


@given(data=st.data())
@FUZZ
def test_body_refresh_tokens_of_any_shape_get_a_4xx_never_a_500(victim, data):
    session, real = victim()
    kind, raw = data.draw(tokens_from(real, text=st.text(max_size=400)))
    response = NativeClient().refresh(raw)
    assert_answered_safely(response)
    assert "refresh_token" not in response.cookies  # body transport never sets the cookie
    assert_untouched_unless_accepted(response, kind, session, real)


@given(data=st.data(), transport=st.sampled_from(["cookie", "body"]))
@FUZZ
def test_logout_with_any_token_answers_without_a_500(victim, data, transport):
    session, real = victim()
    kind, raw = data.draw(tokens_from(real))
    if transport == "cookie":
        browser = BrowserClient()
        browser.set_refresh_cookie(raw)
        response = browser.sign_out()
    else:
        response = NativeClient().sign_out(raw)
    assert_answered_safely(response)  # logout is idempotent: 200 even for a dead token
    if kind == "forged" and raw.split(".")[:2] != real.split(".")[:2]:
        session.refresh_from_db()
        assert session.revoked_at is None  # another token's garbage logs nobody out


@given(data=st.data(), path=st.sampled_from(["/api/users/me/", "/api/auth/sessions/", "/api/auth/mfa/"]))
@FUZZ
def test_bearer_tokens_of_any_shape_get_a_401_never_a_500(victim, data, path):
    session, _ = victim()
    access = str(RefreshToken.for_session(session).access_token)
    _, raw = data.draw(tokens_from(access, text=HEADER_TEXT))
    scheme = data.draw(st.sampled_from(["Bearer ", "Bearer  ", "bearer ", "", "Bearer x "]))
    response = BrowserClient().get(path, HTTP_AUTHORIZATION=scheme + raw)
    assert_answered_safely(response)


# --- one claim of the wrong type, in a token our own key signed: 401 token_not_valid ----------
LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z: a date claim past it is no date
NOT_AN_INT = JSON_VALUES.filter(lambda v: type(v) is not int)
ANY_JSON = JSON_VALUES | st.integers(min_value=2**31, max_value=2**70) | st.integers(max_value=-1)
NOT_A_DATE = st.one_of(
    NOT_AN_INT,  # strings, floats, null, booleans, lists, objects
    st.integers(min_value=0, max_value=2**40).map(float),  # a whole number, as a float
    st.integers(min_value=0, max_value=2**40).map(str),  # a number, as a string
    st.integers(max_value=-1),  # before 1970
    st.integers(min_value=LAST_SECOND + 1),  # past any date
)
HEX32 = "0123456789abcdef"
ILL_TYPED = {
    "exp": NOT_A_DATE,
    "iat": NOT_A_DATE,
    "nbf": NOT_A_DATE,
    "auth_time": NOT_A_DATE,
    "sid": st.one_of(ANY_JSON.filter(lambda v: not isinstance(v, str)), st.text(max_size=40)),
    "jti": st.one_of(
        ANY_JSON.filter(lambda v: not (isinstance(v, str) and len(v) == 32 and set(v) <= set(HEX32))),
        st.uuids().map(str),  # with dashes: not the form this app makes
    ),
    "user_id": st.one_of(  # a number naming nobody is another matter (token_revoked)
        JSON_VALUES.filter(lambda v: not isinstance(v, (int, str)) or isinstance(v, bool)),
        st.integers(min_value=2**64, max_value=2**80),  # past any id column
        st.integers(max_value=-(2**64)),
        st.text(max_size=40).map(lambda text: f"x{text}"),  # not a number
        st.text(min_size=256, max_size=300),
    ),
    "token_type": ANY_JSON.filter(lambda v: v not in ("access", "refresh")),
}
PLACES = ("me", "body refresh", "cookie refresh")


def signed_with(session, place: str, claim: str | None = None, value=None) -> str:
    """The session's token for ``place`` (an access token for me, else its refresh token), signed
    again with the app's own key, with one claim set to ``value`` (a ``sid`` that is a string but no
    session's id is drawn as any text, and a ``sid`` of text that is a UUID could name the session:
    those are made unique below)."""
    refresh = RefreshToken.for_session(session)
    payload = claims(str(refresh.access_token if place == "me" else refresh))
    if claim is not None:
        payload[claim] = value
    return sign(payload)


def answer(place: str, raw: str):
    if place == "me":
        return BrowserClient().get("/api/users/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    if place == "body refresh":
        return NativeClient().refresh(raw)
    browser = BrowserClient()
    browser.set_refresh_cookie(raw)
    return browser.refresh()


def test_the_tokens_these_properties_change_are_accepted_unchanged(make_session):
    """The control: re-signed with nothing changed, each place's token is taken (so the 401s
    below come from the claim, not from the re-signing)."""
    for place in PLACES:
        response = answer(place, signed_with(make_session(), place))
        assert response.status_code == 200, (place, response.content)


@given(data=st.data(), claim=st.sampled_from(sorted(ILL_TYPED)), place=st.sampled_from(PLACES))
@FUZZ
def test_a_signed_token_with_any_claim_of_the_wrong_type_is_401_token_not_valid(
    make_session, data, claim, place
):
    session = make_session()
    value = data.draw(ILL_TYPED[claim], label=claim)
    if claim == "sid" and isinstance(value, str):
        value = f"{value}/{session.pk}"  # text, never the session's id nor any UUID
    before = (session.refresh_jti, session.revoked_at, session.idle_expires_at)
    response = answer(place, signed_with(session, place, claim, value))
    FUZZ_COUNTS["hypothesis ill-typed claim examples"] += 1
    assert response.status_code == 401, (claim, value, response.content)
    assert response.json()["code"] == "token_not_valid", (claim, value, response.content)
    assert "refresh_token" not in response.cookies or not response.cookies["refresh_token"].value
    session.refresh_from_db()
    assert (session.refresh_jti, session.revoked_at, session.idle_expires_at) == before


# --- the keys of mailed links -------------------------------------------------------------------
LINK_KEY_TEXT = st.text(max_size=300)  # any text a JSON body carries (hypothesis leaves out surrogates)


@pytest.fixture
def link_keys(user, settings):
    """alice's real reset key and a real verification key for her address, with the key limits
    raised (every example comes from one address)."""
    settings.ACCOUNTS_PASSWORD_RESET_CONFIRM_THROTTLE_RATE = "100000/hour"
    settings.ACCOUNTS_EMAIL_VERIFY_KEY_THROTTLE_RATE = "100000/hour"
    return {
        "/api/auth/password/reset/confirm/": password_reset_key(user),
        "/api/auth/email/verify/": verification_key_make(user_id=user.pk, address=user.email),
    }


@given(data=st.data())
@FUZZ
@pytest.mark.parametrize("path", ["/api/auth/password/reset/confirm/", "/api/auth/email/verify/"])
def test_mailed_link_keys_of_any_shape_get_a_4xx_never_a_500(user, link_keys, path, data):
    """Random text and mutations of a real key, at both places a mailed key is tried: a 4xx in the
    one error shape (the real key itself may succeed once), and alice's password unchanged unless
    the key was her real one."""
    real = link_keys[path]
    key = data.draw(st.one_of(LINK_KEY_TEXT, mutated(real)))
    password_before = type(user).objects.get(pk=user.pk).password
    body = {"key": key, "new_password": "a new passphrase for the fuzz 7"}
    response = BrowserClient().post(path, body, format="json")
    assert_answered_safely(response)
    if response.status_code != 200:
        assert type(user).objects.get(pk=user.pk).password == password_before
        assert response.json()["code"] in {"invalid_key", "invalid"}, response.content


# --- the login's second step: mfa_tokens and codes ----------------------------------------------
@pytest.fixture
def pending_step(user, settings):
    """A new mfa_token of alice's (as her right password leaves one), per example; the per-user
    limit raised (every example is hers)."""
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "100000/hour"
    return lambda: mfa.mfa_token_issue(user=user, transport="cookie")


def second_step(mfa_token, code):
    body = {"mfa_token": mfa_token, "code": code}
    return BrowserClient().post("/api/auth/mfa/verify/", body, format="json")


@given(data=st.data())
@FUZZ
def test_mfa_tokens_of_any_shape_get_a_4xx_never_a_500_and_spend_nothing(pending_step, data):
    """Random text and mutations of a real mfa_token: a 4xx in the one error shape, and the real
    token untouched (no attempt counted on it, not used) unless it was the real one."""
    real = pending_step()
    raw = data.draw(st.one_of(st.text(max_size=300), mutated(real)))
    response = second_step(raw, "000000")
    assert_answered_safely(response, ok=())
    if raw != real:
        assert response.json()["code"] in {"mfa_token_invalid", "invalid"}, response.content
        pending = MfaToken.objects.get(digest=mfa.handed_out_digest(real))
        assert (pending.failures, pending.used_at) == (0, None)


@given(code=st.one_of(st.text(max_size=80), st.from_regex(r"[0-9 -]{0,12}", fullmatch=True)))
@FUZZ
def test_codes_of_any_shape_get_a_4xx_never_a_500(pending_step, code):
    """Any text as the code at the second step (alice has no factor to match it): 401 invalid_code,
    or 400 for what no code can be (blank, too long, NUL)."""
    response = second_step(pending_step(), code)
    assert_answered_safely(response, ok=())
    assert response.json()["code"] in {"invalid_code", "invalid"}, response.content
