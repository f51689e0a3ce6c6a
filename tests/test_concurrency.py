"""Refresh races inside one process: threads, each with its own client and database connection.

Tabs of one browser refresh the same token at the same moment. The session row lock (PostgreSQL
``SELECT ... FOR UPDATE``; on SQLite ``BEGIN IMMEDIATE`` with WAL and a busy timeout) lets exactly
one of them rotate; the grace window answers the others with the winner's token.
"""

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import RevokeReason, Session
from accounts.services import session_create
from accounts.tokens import RefreshToken

from .helpers import BrowserClient, NativeClient, at_once, claims

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 16


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict
    refresh_cookie: str | None


def browser_with(cookies: dict[str, str], csrf_token: str) -> BrowserClient:
    """A client holding copies of ``cookies`` and sending ``csrf_token`` as X-CSRFToken."""
    client = BrowserClient()
    for name, value in cookies.items():
        client.cookies[name] = value
    client.csrf_token = csrf_token
    return client


def cookies_of(client: BrowserClient) -> dict[str, str]:
    return {name: morsel.value for name, morsel in client.cookies.items() if morsel.value}


def refresh_all_at_once(clients: list, send=BrowserClient.refresh) -> list[Outcome | Exception]:
    """Each client refreshes (``send(client)``) in its own thread, all released together."""

    def refresh(client) -> Outcome:
        response = send(client)
        morsel = response.cookies.get("refresh_token")
        return Outcome(
            status=response.status_code, body=response.json(), refresh_cookie=morsel.value if morsel else None
        )

    return at_once([partial(refresh, client) for client in clients])


def assert_no_errors(outcomes) -> list[Outcome]:
    """No exception, no 5xx, no 'database is locked' anywhere."""
    errors = [o for o in outcomes if not isinstance(o, Outcome)]
    assert not errors, errors
    assert all(o.status < 500 for o in outcomes), [(o.status, o.body) for o in outcomes]
    assert not any("locked" in str(o.body).lower() for o in outcomes)
    return outcomes


def test_sixteen_tabs_refreshing_the_same_token_leave_exactly_one_usable_chain(signed_in, user):
    csrf_token = signed_in.fetch_csrf()
    original = signed_in.refresh_cookie
    session_id = claims(original)["sid"]
    clients = [browser_with(cookies_of(signed_in), csrf_token) for _ in range(THREADS)]
    assert all(c.refresh_cookie == original and c.cookies.get("csrftoken") for c in clients)

    outcomes = assert_no_errors(refresh_all_at_once(clients))

    assert [o.status for o in outcomes] == [200] * THREADS, [o.body for o in outcomes]
    session = Session.objects.get(pk=session_id)
    assert session.revoked_at is None
    assert session.previous_jti == claims(original)["jti"]  # rotated exactly once
    returned = {o.refresh_cookie for o in outcomes}
    assert len(returned) == 1
    (current,) = returned
    assert current and current != original
    assert claims(current)["jti"] == session.refresh_jti
    assert current == str(RefreshToken.for_session(session))
    assert all(claims(o.body["access"])["sid"] == session_id for o in outcomes)

    follow_up = browser_with({**cookies_of(signed_in), "refresh_token": current}, csrf_token).refresh()

    assert follow_up.status_code == 200, follow_up.content
    session.refresh_from_db()
    assert session.previous_jti == claims(current)["jti"]
    assert session.refresh_jti == claims(follow_up.cookies["refresh_token"].value)["jti"]
    assert Session.objects.filter(user=user).count() == 1


def test_without_a_grace_window_one_racer_wins_and_the_rest_is_reuse(signed_in, settings):
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)
    csrf_token = signed_in.fetch_csrf()
    original = signed_in.refresh_cookie
    clients = [browser_with(cookies_of(signed_in), csrf_token) for _ in range(THREADS)]

    outcomes = assert_no_errors(refresh_all_at_once(clients))

    winners = [o for o in outcomes if o.status == 200]
    losers = [o for o in outcomes if o.status != 200]
    assert len(winners) == 1, [(o.status, o.body) for o in outcomes]
    assert {(o.status, o.body["code"]) for o in losers} == {(401, "token_revoked")}
    session = Session.objects.get(pk=claims(original)["sid"])
    assert session.revoke_reason == RevokeReason.REUSE_DETECTED
    assert session.previous_jti == claims(original)["jti"]  # still rotated only once
    assert session.refresh_jti == claims(winners[0].refresh_cookie)["jti"]
    late = browser_with({**cookies_of(signed_in), "refresh_token": winners[0].refresh_cookie}, csrf_token)
    assert late.refresh().status_code == 401


def test_sixteen_sessions_refreshing_at_once_all_rotate(user, browser):
    csrf_token = browser.fetch_csrf()
    sessions = [session_create(user=user, ip=None, user_agent=f"tab {i}") for i in range(THREADS)]
    tokens = [str(RefreshToken.for_session(s)) for s in sessions]
    clients = [browser_with({**cookies_of(browser), "refresh_token": token}, csrf_token) for token in tokens]

    outcomes = assert_no_errors(refresh_all_at_once(clients))

    assert [o.status for o in outcomes] == [200] * THREADS, [o.body for o in outcomes]
    for session, token, outcome in zip(sessions, tokens, outcomes, strict=True):
        session.refresh_from_db()
        assert session.previous_jti == claims(token)["jti"]
        assert session.refresh_jti == claims(outcome.refresh_cookie)["jti"]
        assert claims(outcome.body["access"])["sid"] == str(session.pk)


def test_sixteen_threads_refreshing_one_body_token_leave_exactly_one_live_token(user, settings):
    """A native client whose requests race (retries, several workers sharing one stored token)."""
    tokens = NativeClient().sign_in().json()
    original = tokens["refresh"]
    session_id = claims(original)["sid"]
    clients = [NativeClient() for _ in range(THREADS)]

    outcomes = assert_no_errors(refresh_all_at_once(clients, send=lambda client: client.refresh(original)))

    assert [o.status for o in outcomes] == [200] * THREADS, [o.body for o in outcomes]
    assert all(o.refresh_cookie is None for o in outcomes)  # never a cookie on body transport
    returned = {o.body["refresh"] for o in outcomes}
    assert len(returned) == 1  # one rotation; the grace window gave the others the same token
    (current,) = returned
    session = Session.objects.get(pk=session_id)
    assert session.revoked_at is None
    assert session.previous_jti == claims(original)["jti"]
    assert session.refresh_jti == claims(current)["jti"]

    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)  # the grace window is over
    follow_up = NativeClient().refresh(current)
    assert follow_up.status_code == 200, follow_up.content  # the one live token
    replay = NativeClient().refresh(original)
    assert (replay.status_code, replay.json()["code"]) == (401, "token_revoked")  # the other is reuse
    assert Session.objects.get(pk=session_id).revoke_reason == RevokeReason.REUSE_DETECTED


def test_sixteen_concurrent_wrong_logins_admit_at_most_the_limit(user, settings):
    """The throttle counts with the cache's atomic increment: no two attempts read the same count."""
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "5/min"
    settings.ACCOUNTS_PASSWORD_CHECK_SLOTS = 0  # the count under test, not the checks at once
    clients = [BrowserClient() for _ in range(THREADS)]

    results = at_once([partial(client.sign_in, password="not the password") for client in clients])
    statuses = [getattr(result, "status_code", result) for result in results]

    assert sorted(statuses) == [401] * 5 + [429] * (THREADS - 5), statuses


def test_a_replay_that_waited_on_the_row_lock_past_the_grace_window_is_reuse(signed_in, settings):
    """The grace rule reads the clock after the row lock, never before: a replay of the previous
    token that was inside the window when it arrived, but waited on the lock (another refresh of
    the session holding it) until the window had closed, is reuse. PostgreSQL only: there the
    one-statement rotation passes a row it does not match without waiting, so the replay waits
    in the locked path; SQLite's lock is the whole database's, taken before either."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks that a non-matching UPDATE does not wait on are PostgreSQL's")
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(seconds=1.5)
    csrf_token = signed_in.fetch_csrf()
    replayed = signed_in.refresh_cookie
    assert signed_in.refresh().status_code == 200
    session_id = claims(replayed)["sid"]
    Session.objects.filter(pk=session_id).update(rotated_at=timezone.now() - timedelta(seconds=0.5))
    locked = threading.Event()

    def hold_the_row() -> None:
        with transaction.atomic():
            Session.objects.select_for_update().get(pk=session_id)
            locked.set()
            time.sleep(2)  # the window (0.5 s used of 1.5 s) closes while the replay waits

    def replay():
        assert locked.wait(timeout=10)
        return browser_with({**cookies_of(signed_in), "refresh_token": replayed}, csrf_token).refresh()

    held, response = at_once([hold_the_row, replay])

    assert held is None and not isinstance(response, Exception), (held, response)
    assert response.status_code == 401, response.content
    session = Session.objects.get(pk=session_id)
    assert session.revoke_reason == RevokeReason.REUSE_DETECTED
