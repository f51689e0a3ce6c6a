"""Each second-factor code is accepted once, also when it is used sixteen times at the same moment:
threads, each with its own client and database connection, on SQLite and on PostgreSQL (the
second CI pass). A TOTP code is taken by one conditional UPDATE of the app's last step, a recovery
code by one conditional UPDATE of its ``used_at``, an mfa_token by one of its row."""

from functools import partial

import pytest
from django.db import connection

from accounts import mfa
from accounts.models import MfaToken, RecoveryCode, Session, TotpDevice

from .helpers import BrowserClient, at_once
from .test_mfa import code_of, turn_on_totp

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 16


@pytest.fixture(autouse=True)
def _no_limit_on_codes(settings):
    settings.ACCOUNTS_MFA_THROTTLE_RATE = "1000000/min"  # the codes' own rule under test, not the limit


def verify_all_at_once(requests: list[tuple[str, str]]) -> list:
    """Each (mfa_token, code) sent to the second step by its own client in its own thread, all
    released together: (status, code of the error or None) of each, or the exception it raised."""

    def send(mfa_token, code):
        response = BrowserClient().post(
            "/api/auth/mfa/verify/", {"mfa_token": mfa_token, "code": code}, format="json"
        )
        return response.status_code, response.json().get("code")

    return at_once([partial(send, mfa_token, code) for mfa_token, code in requests])


def outcomes_of(results: list) -> list[tuple[int, str | None]]:
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    assert not any("locked" in str(r).lower() for r in results)
    return sorted(results, key=lambda r: (r[0], r[1] or ""))


def tokens_for(user, count: int) -> list[str]:
    """``count`` pending second steps of the user, as sixteen password logins would leave them."""
    return [mfa.mfa_token_issue(user=user, transport="cookie") for _ in range(count)]


def test_sixteen_uses_of_one_totp_code_give_exactly_one_session(user):
    totp = turn_on_totp(user)
    code = code_of(totp.secret)

    outcomes = outcomes_of(verify_all_at_once([(t, code) for t in tokens_for(user, THREADS)]))

    assert outcomes == [(200, None)] + [(401, "invalid_code")] * (THREADS - 1), (connection.vendor, outcomes)
    assert Session.objects.filter(user=user).count() == 1
    assert TotpDevice.objects.get(user=user).last_step is not None


def test_sixteen_uses_of_one_recovery_code_give_exactly_one_session(user):
    totp = turn_on_totp(user)
    code = totp.recovery_codes[0]

    outcomes = outcomes_of(verify_all_at_once([(t, code) for t in tokens_for(user, THREADS)]))

    assert outcomes == [(200, None)] + [(401, "invalid_code")] * (THREADS - 1), (connection.vendor, outcomes)
    assert Session.objects.filter(user=user).count() == 1
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=False).count() == 1


def test_sixteen_uses_of_one_mfa_token_with_sixteen_good_codes_give_exactly_one_session(user):
    """The token works once: the losers get mfa_token_invalid, and spend none of their codes."""
    totp = turn_on_totp(user)
    [mfa_token] = tokens_for(user, 1)

    codes = [*totp.recovery_codes, *[code_of(totp.secret)] * (THREADS - len(totp.recovery_codes))]

    outcomes = outcomes_of(verify_all_at_once([(mfa_token, code) for code in codes]))

    assert outcomes[0] == (200, None), outcomes
    assert set(outcomes[1:]) == {(401, "mfa_token_invalid")}, (connection.vendor, outcomes)
    assert Session.objects.filter(user=user).count() == 1
    assert MfaToken.objects.get(user=user).used_at is not None
    assert RecoveryCode.objects.filter(user=user, used_at__isnull=False).count() <= 1


def test_sixteen_wrong_codes_at_once_get_at_most_five_checks(user):
    """Each attempt is counted on the token before its code is checked: concurrent guesses get no
    more checks than sequential ones."""
    turn_on_totp(user)
    [mfa_token] = tokens_for(user, 1)

    outcomes = outcomes_of(verify_all_at_once([(mfa_token, "000000")] * THREADS))

    wrong = [o for o in outcomes if o == (401, "invalid_code")]
    assert len(wrong) == mfa.MAX_FAILURES, outcomes
    assert set(outcomes) == {(401, "invalid_code"), (401, "mfa_token_invalid")}
    assert MfaToken.objects.get(user=user).failures == mfa.MAX_FAILURES
