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

from accounts import keys
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


@given(data=st.data(), path=st.sampled_from(["/api/users/me/", "/api/auth/sessions/"]))
@FUZZ
def test_bearer_tokens_of_any_shape_get_a_401_never_a_500(victim, data, path):
    session, _ = victim()
    access = str(RefreshToken.for_session(session).access_token)
    _, raw = data.draw(tokens_from(access, text=HEADER_TEXT))
    scheme = data.draw(st.sampled_from(["Bearer ", "Bearer  ", "bearer ", "", "Bearer x "]))
    response = BrowserClient().get(path, HTTP_AUTHORIZATION=scheme + raw)
    assert_answered_safely(response)
