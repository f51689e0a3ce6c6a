"""Canaries: one test per private API of a dependency that the code still leans on.

Each fails, after an upgrade changed what the code relies on, with a message naming the code to
revisit; the README's "What we lean on" lists them. (The SQL that Django's query internals compile
to is pinned in tests/test_statements.py.) No server is needed: these run in the default suite.
"""

import inspect
import socket
import time
import uuid

import jwt
import psycopg
import pytest
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.db import connection
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from jwt.algorithms import HMACAlgorithm
from psycopg import pq
from psycopg.waiting import Wait
from rest_framework import serializers

from accounts.csrf import CsrfCheck
from accounts.models import Session
from authproject.postgresql.base import DeadlineConnection, DeadlineExceeded

BASE = "authproject/postgresql/base.py"


# --- psycopg: Connection.wait(timeout=...) and errors._WaitTimeout ------------------------------
@pytest.fixture
def silent_server():
    """A psycopg connection to a server that never answers: a loopback socket whose connections
    the kernel accepts but nobody reads or writes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    pgconn = pq.PGconn.connect_start(f"host=127.0.0.1 port={listener.getsockname()[1]}".encode())
    connection = psycopg.Connection(pgconn)
    yield connection
    pgconn.finish()
    listener.close()


def waits_for_the_server(seconds: float):
    """A psycopg generator that waits to read, giving up by itself after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        yield Wait.R
    return "gave up"


def test_psycopg_connection_wait_takes_a_timeout_for_the_whole_wait():
    parameters = inspect.signature(psycopg.Connection.wait).parameters
    assert "timeout" in parameters and parameters["timeout"].default is None, (
        f"psycopg changed Connection.wait's signature ({list(parameters)}): revisit {BASE} "
        "(DeadlineConnection.wait, DATABASE_TIMEOUT)"
    )


def test_psycopg_wait_timeout_ends_a_silent_wait_with_wait_timeout(silent_server):
    # A psycopg.Connection becomes a DeadlineConnection as the backend makes it one.
    silent_server.__class__ = DeadlineConnection
    silent_server.deadline = 0.3
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        silent_server.wait(waits_for_the_server(5))
    waited = time.monotonic() - started
    assert isinstance(raised.value.__cause__, psycopg.errors._WaitTimeout), (
        f"psycopg no longer signals a wait past its timeout with errors._WaitTimeout: revisit {BASE} "
        "(DeadlineConnection.wait, DATABASE_TIMEOUT)"
    )
    assert 0.25 < waited < 2, (
        f"psycopg changed Connection.wait(timeout=...) semantics (waited {waited:.2f} s for a 0.3 s "
        f"timeout): revisit {BASE} (DATABASE_TIMEOUT)"
    )
    assert silent_server.pgconn.status == pq.ConnStatus.BAD  # closed: never reused


def test_psycopg_wait_without_a_timeout_waits_for_the_generator(silent_server):
    silent_server.__class__ = DeadlineConnection  # deadline None: DATABASE_TIMEOUT unset
    assert silent_server.wait(waits_for_the_server(0.3)) == "gave up", (
        f"psycopg's Connection.wait(timeout=None) no longer waits without a deadline: revisit {BASE}"
    )


# --- Django: the health check hook of the database backend ---------------------------------------
@pytest.mark.django_db
def test_django_asks_close_if_health_check_failed_before_each_cursor(monkeypatch):
    asked = []
    monkeypatch.setattr(connection, "close_if_health_check_failed", lambda: asked.append(True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    flags = hasattr(connection, "health_check_enabled") and hasattr(connection, "health_check_done")
    assert asked and flags, (
        "Django no longer asks DatabaseWrapper.close_if_health_check_failed() before a query (or renamed "
        f"health_check_enabled / health_check_done): revisit {BASE} (close_if_health_check_failed)"
    )


# --- Django: the admin's ChangeList and ModelAdmin ----------------------------------------------
@pytest.mark.django_db
def test_django_changelist_counts_when_made_and_leaves_its_page_to_be_fetched(admin_user, make_session):
    make_session()
    request = RequestFactory().get("/admin/accounts/session/")
    request.user = admin_user
    model_admin = admin.site.get_model_admin(Session)
    with CaptureQueriesContext(connection) as made:
        changelist = ModelAdmin.get_changelist_instance(model_admin, request)  # Django's own
    with CaptureQueriesContext(connection) as fetched:
        rows = list(changelist.result_list)
    message = (
        "Django's ChangeList no longer counts its rows when it is made and leaves its page to be "
        "fetched: revisit SessionAdmin.get_changelist_instance in accounts/admin/sessions.py, which makes it "
        "and fetches the page inside planned_as_an_index_walk"
    )
    assert any("COUNT" in query["sql"] for query in made.captured_queries), message
    assert len(rows) == 1 and len(fetched.captured_queries) == 1, message


@pytest.mark.django_db
def test_django_model_admin_redirects_for_a_missing_object(admin_client):
    missing = uuid.uuid4()
    response = admin_client.post(reverse("admin:accounts_session_revoke", args=[missing]))
    assert response.status_code == 302 and response["Location"] == reverse("admin:index"), (
        "Django's ModelAdmin._get_obj_does_not_exist_redirect(request, opts, object_id) changed: "
        "revisit SessionAdmin.revoke_view in accounts/admin/sessions.py"
    )


# --- Django: the CSRF middleware's privates ------------------------------------------------------
def csrf_request(origin: str):
    """A POST with a valid CSRF cookie and token, from ``origin``."""
    first = RequestFactory().get("/")
    token = get_token(first)
    request = RequestFactory().post("/", HTTP_ORIGIN=origin, HTTP_X_CSRFTOKEN=token)
    request.COOKIES["csrftoken"] = first.META["CSRF_COOKIE"]
    return request


def test_django_csrf_middleware_rejects_through_reject_and_asks_origin_verified(settings):
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [r"^https://[a-z]+\.example\.test$"]
    check = CsrfCheck(lambda request: None)
    message = (
        "Django's CsrfViewMiddleware changed its privates (_reject(request, reason) returning what "
        "process_view returns, _origin_verified(request) deciding the Origin): revisit CsrfCheck in "
        "accounts/csrf.py"
    )
    refused = csrf_request("https://evil.example")
    check.process_request(refused)
    reason = check.process_view(refused, None, (), {})
    assert isinstance(reason, str) and "evil.example" in reason, message
    trusted = csrf_request("https://spa.example.test")  # trusted only through CsrfCheck's override
    check.process_request(trusted)
    assert check.process_view(trusted, None, (), {}) is None, message


# --- DRF: the declared fields that ShallowFieldCopiesMixin copies ----------------------------------
def test_drf_serializers_keep_their_declared_fields_in_declared_fields():
    class Declared(serializers.Serializer):
        name = serializers.CharField()
        count = serializers.IntegerField()

    fields = serializers.Serializer.get_fields(Declared())  # DRF's own: deep copies of the declared
    declared = getattr(Declared, "_declared_fields", {})
    assert list(fields) == list(declared) == ["name", "count"], (
        "DRF no longer keeps a serializer's declared fields in _declared_fields (which its get_fields "
        "copies): revisit ShallowFieldCopiesMixin in accounts/serializers.py"
    )
    assert all(type(fields[name]) is type(declared[name]) for name in fields)
    assert all(vars(declared[name]) for name in declared), (
        "DRF fields no longer keep their state in their __dict__, which a shallow copy takes: "
        "revisit _shallow_copy in accounts/serializers.py"
    )


# --- drf-spectacular: AutoSchema's response bodies ------------------------------------------------
def test_drf_spectacular_builds_responses_through_get_response_bodies():
    message = (
        "drf-spectacular changed AutoSchema._get_response_bodies(direction) or "
        "_get_response_for_code(serializer, status_code, direction=...): revisit AppAutoSchema in "
        "accounts/schema.py (the error statuses of every operation)"
    )
    assert list(inspect.signature(AutoSchema._get_response_bodies).parameters)[:2] == ["self", "direction"], (
        message
    )
    assert {"serializer", "status_code", "direction"} <= set(
        inspect.signature(AutoSchema._get_response_for_code).parameters
    ), message
    schema = SchemaGenerator().get_schema(request=None, public=True)
    me = schema["paths"]["/api/users/me/"]["get"]["responses"]
    assert {"401", "503"} <= set(me), message


# --- PyJWT: each PyJWT instance's PyJWS in _jws ----------------------------------------------------
def test_pyjwt_instances_sign_and_verify_through_their_own_jws():
    message = (
        "PyJWT no longer signs and verifies a PyJWT instance's tokens through its own PyJWS in _jws: "
        "revisit _app_jwt in accounts/keys.py (the HMAC key checked once, on the app's PyJWT only)"
    )
    instance = jwt.PyJWT()
    assert isinstance(getattr(instance, "_jws", None), jwt.PyJWS), message
    assert instance._jws is not jwt.api_jws._jws_global_obj, message

    class Counted(HMACAlgorithm):
        used = 0

        def sign(self, msg, key):
            Counted.used += 1
            return super().sign(msg, key)

    instance._jws.unregister_algorithm("HS256")
    instance._jws.register_algorithm("HS256", Counted(HMACAlgorithm.SHA256))
    secret = "a secret for this canary only, long enough for HS256"
    token = instance.encode({"sub": "1"}, secret, algorithm="HS256")
    assert Counted.used == 1, message
    assert instance.decode(token, secret, algorithms=["HS256"]) == {"sub": "1"}
    assert Counted.used == 2, message
    assert type(jwt.get_algorithm_by_name("HS256")) is HMACAlgorithm, message


# --- Django: PasswordResetTokenGenerator's tokens start with the time they were made -------------
def test_django_reset_tokens_start_with_their_time_in_seconds(user_factory):
    """accounts.password_reset.PasswordResetKeys.age reads a token's age from its first part (the
    time it was made, in base 36, in seconds), against a token made now."""
    from datetime import datetime

    from django.contrib.auth.tokens import PasswordResetTokenGenerator
    from django.utils.http import base36_to_int

    user = user_factory()
    token = PasswordResetTokenGenerator().make_token(user)
    made, separator, _ = token.partition("-")
    seconds = (datetime.now() - datetime(2001, 1, 1)).total_seconds()  # Django's epoch for them
    assert separator and abs(base36_to_int(made) - seconds) < 5, (
        f"Django's reset token {token!r} no longer starts with its time in seconds: revisit "
        "accounts/password_reset.py (PasswordResetKeys.age)"
    )
