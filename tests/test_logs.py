"""Log lines: one JSON object a line (LOG_FORMAT=json), each line of a request carrying the id its
answer carries in X-Request-ID; an id from a proxy kept only behind a trusted proxy."""

import json
import logging
import re
import uuid
from datetime import datetime

import pytest
from django.http import HttpResponse

from accounts.logs import RequestContextFilter, RequestIdMiddleware, log_context_bind, request_context_end

from .helpers import manage_py

pytestmark = pytest.mark.django_db

NEW_ID = re.compile(r"[0-9a-f]{32}")


def trusted_proxies(settings, count: int) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}


def test_every_answer_carries_a_new_request_id(browser):
    first, second = browser.get("/api/auth/csrf/"), browser.get("/api/nowhere/")
    assert NEW_ID.fullmatch(first["X-Request-ID"]) and NEW_ID.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_request_logs_json_lines_carrying_the_answers_request_id(browser, user, json_log_lines):
    response = browser.sign_in(password="wrong")  # Django logs the 401 ("Unauthorized: ...")

    assert response.status_code == 401
    [line] = [line for line in json_log_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == response["X-Request-ID"]
    assert line["level"] == "WARNING" and line["message"] == "Unauthorized: /api/auth/login/"
    assert line["timestamp"].endswith("Z")  # ISO 8601, UTC
    assert datetime.fromisoformat(line["timestamp"]).utcoffset().total_seconds() == 0


def test_lines_name_the_user_and_a_session_id_prefix_where_known(api, user, json_log_lines):
    response = api.delete(f"/api/auth/sessions/{uuid.uuid4()}/")  # 404, logged by Django

    assert response.status_code == 404
    [line] = [line for line in json_log_lines() if line["logger"] == "django.request"]
    session = user.auth_sessions.get()
    assert line["request_id"] == response["X-Request-ID"]
    assert line["user_id"] == user.pk
    assert line["session"] == str(session.pk)[:8]


def test_a_refused_refresh_names_no_user(signed_in, user, json_log_lines):
    signed_in.fetch_csrf()
    signed_in.set_refresh_cookie(signed_in.refresh_cookie + "x")  # a broken signature: 401, logged
    response = signed_in.refresh()

    assert response.status_code == 401
    [line] = [line for line in json_log_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == response["X-Request-ID"]
    assert "user_id" not in line  # the token named no one the server could believe


def test_a_login_or_refresh_names_its_user_and_session_for_the_requests_later_lines(rf, json_log_lines):
    session_id = uuid.uuid4()

    def view(request):  # what TokenView does once a login or a refresh issued tokens
        log_context_bind(user_id=7, session_id=session_id)
        logging.getLogger("tests.view").warning("after the login")
        return HttpResponse()

    response = RequestIdMiddleware(view)(rf.get("/"))
    request_context_end()  # as Django's request_finished does when the answer is closed

    [line] = json_log_lines()
    assert (line["request_id"], line["user_id"], line["session"]) == (
        response["X-Request-ID"],
        7,
        str(session_id)[:8],
    )


def test_a_line_after_the_request_carries_no_request_id(browser, json_log_lines):
    browser.get("/api/nowhere/")
    logging.getLogger("tests.after").warning("between requests")

    [line] = [line for line in json_log_lines() if line["logger"] == "tests.after"]
    assert "request_id" not in line and "user_id" not in line


def test_an_exception_stays_on_one_json_line(json_log_lines):
    try:
        raise ValueError("two\nlines é")
    except ValueError:
        logging.getLogger("tests.crash").exception("failed:\n%s", "more")

    [line] = json_log_lines()
    assert line["message"] == "failed:\nmore"
    assert "ValueError: two\nlines é" in line["exception"]
    assert len(json_log_lines.text().splitlines()) == 1


def test_a_proxy_sent_request_id_is_ignored_without_a_trusted_proxy(browser, settings):
    trusted_proxies(settings, 0)
    response = browser.get("/api/auth/csrf/", HTTP_X_REQUEST_ID="chosen-by-the-client")
    assert NEW_ID.fullmatch(response["X-Request-ID"])


def test_a_proxy_sent_request_id_is_kept_behind_a_trusted_proxy(browser, settings, json_log_lines):
    trusted_proxies(settings, 1)
    response = browser.get("/api/nowhere/", HTTP_X_REQUEST_ID="nginx-4f1c0a2b.7")

    assert response["X-Request-ID"] == "nginx-4f1c0a2b.7"
    [line] = [line for line in json_log_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == "nginx-4f1c0a2b.7"


@pytest.mark.parametrize("sent", ["a" * 65, "two words", "id\r\nSet-Cookie: x=1", "<script>", "é"])
def test_an_unsafe_or_long_proxy_sent_request_id_is_replaced(browser, settings, sent):
    trusted_proxies(settings, 1)
    response = browser.get("/api/auth/csrf/", HTTP_X_REQUEST_ID=sent)
    assert NEW_ID.fullmatch(response["X-Request-ID"])


PROBE = "import logging; logging.getLogger('probe').warning('hello %s', 'world')"


def test_log_format_is_json_by_default_with_debug_off():
    result = manage_py("shell", "-c", PROBE, unset=("LOG_FORMAT",), DJANGO_DEBUG="0", check=True)
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert {k: line[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "probe",
        "message": "hello world",
    }
    assert "request_id" not in line


def test_log_format_is_text_by_default_with_debug_on():
    result = manage_py("shell", "-c", PROBE, unset=("LOG_FORMAT",), DJANGO_DEBUG="1", check=True)
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith("WARNING probe hello world") and not last.startswith("{")


def test_an_unknown_log_format_stops_startup():
    result = manage_py("check", DJANGO_DEBUG="1", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


def test_the_project_logs_through_one_handler_with_the_request_filter():
    [console] = [h for h in logging.getLogger().handlers if h.name == "console"]
    assert any(isinstance(f, RequestContextFilter) for f in console.filters)
    assert logging.getLogger("django").handlers == []  # Django's lines are not written twice
