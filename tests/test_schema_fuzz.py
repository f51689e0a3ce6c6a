"""The OpenAPI document against the app: schemathesis, every check, in-process through the WSGI app.

schemathesis generates requests from /api/schema/ (valid ones, and invalid ones for the negative
checks) and checks each answer: no 5xx, a status and content type the document declares, a body
and headers that match it, invalid input refused, valid input accepted, undeclared methods
refused, and missing authentication refused. Examples per operation are bounded (FUZZ_EXAMPLES) so
that the run stays short; the case count is printed at the end of the run.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from accounts.services import session_create
from accounts.tokens import RefreshToken

from .helpers import FUZZ_COUNTS

FUZZ_EXAMPLES = 25
UNLIMITED = "1000000/min"

# A 400 to a well-formed request is right where it judges the values, not their shape: a taken
# username, a wrong old password, or Django's password validators (the project's settings, which
# no schema can state). Everywhere else a well-formed request must be accepted.
JUDGED_VALUES = {
    "operations": [
        {
            "include-path": ["/api/auth/register/", "/api/auth/password/change/"],
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


@pytest.fixture(autouse=True)
def fuzzable(db, settings):
    """Limits raised so that the fuzzer reaches the code behind them (429 is declared all the
    same), and the WSGI handler kept from closing the test's database connection after each
    request (Django's test client disconnects the same receivers)."""
    for name in ("LOGIN", "LOGIN_USERNAME", "LOGIN_IP", "REGISTER", "PASSWORD_CHANGE"):
        setattr(settings, f"ACCOUNTS_{name}_THROTTLE_RATE", UNLIMITED)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(user_factory):
    """A fresh access token for each case (a case may log out everywhere or change the password)."""
    user = user_factory()

    def make() -> str:
        session = session_create(user=user, ip=None, user_agent="schemathesis")
        return f"Bearer {RefreshToken.for_session(session).access_token}"

    return make


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_api_keeps_every_promise_of_its_openapi_document(case, bearer):
    FUZZ_COUNTS["schemathesis cases"] += 1
    headers = {"Authorization": bearer()} if case.operation.security else None
    case.call_and_validate(headers=headers)
