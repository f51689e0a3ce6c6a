"""Prometheus metrics: the counters move where the events happen, requests are timed by route name,
and GET /metrics answers only its token."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from .helpers import BrowserClient, MetricDeltas, NativeClient, free_port

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
REDIS = "django.core.cache.backends.redis.RedisCache"


def test_a_login_refresh_reuse_and_revoke_flow_moves_the_counters(user, settings):
    deltas = MetricDeltas()
    browser = BrowserClient()
    assert browser.sign_in().status_code == 200
    first = browser.refresh_cookie
    assert browser.refresh().status_code == 200  # rotated
    replay = BrowserClient()
    replay.set_refresh_cookie(first)
    assert replay.refresh().status_code == 200  # the previous token, within the grace window
    settings.ACCOUNTS_REFRESH_GRACE = timedelta(0)
    replay.set_refresh_cookie(first)  # (the grace answer gave it the current token)
    assert replay.refresh().status_code == 401  # after the window: reuse, the session revoked
    assert browser.refresh().status_code == 401  # the revoked session's current token: refused
    junk = BrowserClient()
    junk.set_refresh_cookie("not.a.token")
    assert junk.refresh().status_code == 401  # refused before any session rule
    assert BrowserClient().sign_in(password="wrong").status_code == 401
    native = NativeClient()
    assert native.sign_out(native.sign_in().json()["refresh"]).status_code == 200

    logins = {r: deltas("authproject_logins_total", result=r, method="password") for r in ("ok", "failed")}
    assert logins == {"ok": 2, "failed": 1}
    results = ("rotated", "grace", "reuse_detected", "refused")
    refreshes = {r: deltas("authproject_refreshes_total", result=r) for r in results}
    assert refreshes == {"rotated": 1, "grace": 1, "reuse_detected": 1, "refused": 2}
    reasons = ("reuse_detected", "logout")
    revoked = {r: deltas("authproject_sessions_revoked_total", reason=r) for r in reasons}
    assert revoked == {"reuse_detected": 1, "logout": 1}


def test_a_throttled_login_counts_once_however_many_limits_refuse_it(user, settings):
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "2/min"
    settings.ACCOUNTS_LOGIN_IP_THROTTLE_RATE = "2/min"  # both refuse the third attempt
    deltas = MetricDeltas()
    answers = [BrowserClient().sign_in(password="wrong").status_code for _ in range(3)]

    assert answers == [401, 401, 429]
    assert deltas("authproject_logins_total", result="failed", method="password") == 2
    assert deltas("authproject_logins_total", result="throttled", method="password") == 1


def test_the_admins_login_form_counts_as_a_login(user):
    user.is_staff = True
    user.save()
    deltas = MetricDeltas()
    Client().post(reverse("admin:login"), {"username": "alice", "password": "wrong"})
    Client().post(reverse("admin:login"), {"username": "alice", "password": "correct horse battery staple"})

    assert deltas("authproject_logins_total", result="failed", method="password") == 1
    assert deltas("authproject_logins_total", result="ok", method="password") == 1


def test_revocations_count_each_session_by_its_reason(api, user, make_session):
    for _ in range(2):
        make_session(user)
    deltas = MetricDeltas()
    assert api.post("/api/auth/logout-all/", {}, format="json").json() == {"revoked": 3}
    assert deltas("authproject_sessions_revoked_total", reason="logout_all") == 3


def test_requests_are_timed_by_route_name_never_by_path(api):
    deltas = MetricDeltas()
    session_id = uuid.uuid4()
    assert api.get("/api/users/me/").status_code == 200
    assert api.delete(f"/api/auth/sessions/{session_id}/").status_code == 404
    assert api.get("/no/such/path/").status_code == 404
    api.generic("BREW", "/api/users/me/")

    count = "authproject_request_duration_seconds_count"
    assert deltas(count, route="accounts:me", method="GET", status="200") == 1
    assert deltas(count, route="accounts:session-detail", method="DELETE", status="404") == 1
    assert deltas(count, route="unmatched", method="GET", status="404") == 1
    assert deltas(count, route="accounts:me", method="other", status="405") == 1
    from prometheus_client import REGISTRY

    labels = {v for f in REGISTRY.collect() for s in f.samples for v in s.labels.values()}
    assert not [v for v in labels if str(session_id) in v or "/" in v or v == "BREW"]


def test_a_cache_that_does_not_answer_is_counted(client):
    deltas = MetricDeltas()
    nowhere = {"default": {"BACKEND": REDIS, "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with override_settings(CACHES=nowhere):
        response = client.get("/api/health/")  # (restored before the suite's fixtures clear the cache)
    assert response.status_code == 503 and response.json()["cache"] == "error"
    assert deltas("authproject_cache_errors_total") == 1
    assert deltas("authproject_database_errors_total") == 0


# --- GET /metrics --------------------------------------------------------------------------------
def test_metrics_is_404_while_no_token_is_set(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong", f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}", "Bearer ünïcode"],
)
def test_metrics_is_401_without_the_right_token(client, settings, authorization):
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert b"authproject_" not in response.content


def test_metrics_answers_the_prometheus_text_format_with_the_token(client, settings, user):
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    BrowserClient().sign_in()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert 'authproject_logins_total{method="password",result="ok"}' in text
    assert "# TYPE authproject_request_duration_seconds histogram" in text
    assert "no-store" in response["Cache-Control"]


def test_metrics_answers_get_only(client, settings):
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 405


def test_metrics_is_not_redirected_to_https_for_a_scraper_on_the_private_network(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ACCOUNTS_METRICS_TOKEN = METRICS_TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    assert client.get("/api/health/").status_code == 301  # everything else still is
