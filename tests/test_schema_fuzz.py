"""The OpenAPI document against the app: schemathesis, every check, in-process through the WSGI app.

schemathesis generates requests from /api/schema/ (valid ones, and invalid ones for the negative
checks) and checks each answer: no 5xx, a status and content type the document declares, a body
and headers that match it, invalid input refused, valid input accepted, undeclared methods
refused, and missing or invalid authentication refused. A second test chains calls through the links
schemathesis infers (the sessions list feeds session ids to DELETE). Examples are bounded
(FUZZ_EXAMPLES) and derandomized, so that the run is short and repeatable; the counts are printed
at the end of the run.
"""

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from accounts.models import AuditEvent, Session
from accounts.services import session_create, tokens_issue

from .helpers import FUZZ_COUNTS, PASSWORD, cache_clear_own_keys

FUZZ_EXAMPLES = 25
UNLIMITED = "1000000/min"

# A 400 to a well-formed request is right where it judges the values, not their shape: a taken
# username, a wrong old password (or a wrong password for an e-mail change), Django's password
# validators (the project's settings, which no schema can state), Django's e-mail validator
# (stricter than the "email" format: no quoted local parts), a password reset key or a verification
# key that is no key; and where exactly one of two optional fields must be given (a code or a
# passkey at the second step, the password or a code at re-authentication), which the schema states
# in words. A 409 is the account's state (an authenticator app on already, none pending, no factor
# for recovery codes). Everywhere else a well-formed request must be accepted.
JUDGED_VALUES = {
    "operations": [
        {
            "include-path": [
                "/api/auth/register/",
                "/api/auth/password/change/",
                "/api/auth/password/reset/",
                "/api/auth/password/reset/confirm/",
                "/api/auth/email/change/",
                "/api/auth/email/verify/",
                "/api/auth/mfa/verify/",
                "/api/auth/reauthenticate/",
                "/api/auth/mfa/totp/",
                "/api/auth/mfa/totp/confirm/",
                "/api/auth/mfa/recovery-codes/",
            ],
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]
                }
            },
        }
    ]
}

# Loaded once, at collection, through the WSGI app (no database needed to build the document).
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/", get_wsgi_application(), config=SchemathesisConfig.from_dict(JUDGED_VALUES)
)


# The user whose fresh access token each case carries (set per test by ``fuzzable``).
_fuzzing_user = {}


@schema.auth(refresh_interval=None, retry_on=[])
class FreshBearer:
    """A fresh access token for every case, as schemathesis's own authentication (so its auth
    checks can take it away and try invalid ones): a case may log out everywhere or change the
    password, which must not leave the next case with a dead token."""

    def get(self, case, context):
        if "user" not in _fuzzing_user:  # collection builds examples before any test runs
            return "collecting"
        session = session_create(user=_fuzzing_user["user"], ip=None, user_agent="schemathesis")
        return str(tokens_issue(session=session).access)  # recently authenticated: the guarded changes run

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(autouse=True)
def fuzzable(db, settings, user_factory):
    """Limits raised so that the fuzzer reaches the code behind them (429 is declared all the
    same), a user for the tokens, and the WSGI handler kept from closing the test's database
    connection after each request (Django's test client disconnects the same receivers)."""
    limits = ("LOGIN", "LOGIN_USERNAME", "LOGIN_IP", "REGISTER", "PASSWORD_CHANGE", "MFA")
    for name in (*limits, "PASSWORD_RESET", "PASSWORD_RESET_CONFIRM", "EMAIL_VERIFY", "EMAIL_VERIFY_KEY"):
        setattr(settings, f"ACCOUNTS_{name}_THROTTLE_RATE", UNLIMITED)
    _fuzzing_user["user"] = user_factory()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@SETTINGS
def test_the_api_keeps_every_promise_of_its_openapi_document(case):
    FUZZ_COUNTS["schemathesis cases"] += 1
    case.call_and_validate()


class Workflow(schema.as_state_machine()):
    """Calls chained by the links schemathesis infers from the document (the sessions list feeds
    session ids to DELETE)."""

    def validate_response(self, response, case, **kwargs):
        FUZZ_COUNTS["schemathesis stateful calls"] += 1
        super().validate_response(response, case, **kwargs)

    def teardown(self):
        """Each sequence starts from the same database, so that hypothesis can replay one."""
        user = _fuzzing_user["user"]
        Session.objects.all().delete()
        AuditEvent.objects.all().delete()
        get_user_model().objects.exclude(pk=user.pk).delete()
        user.set_password(PASSWORD)
        user.save()
        cache_clear_own_keys()


def test_sequences_of_calls_keep_the_promises_too():
    Workflow.run(settings=settings(SETTINGS, stateful_step_count=6))
