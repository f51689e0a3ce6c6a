"""Configuration errors stop startup with the variable named (API.md, Operations): a throttle rate
that does not parse (accounts.E045), an empty or unknown DATABASE_URL or CACHE_URL; and a variable
one edit away from one the settings read is pointed out (authproject.W001)."""

import pytest

from accounts import checks
from accounts.throttles import RATE_UNITS, InvalidRate, LoginUsernameIPThrottle, rate_parse
from authproject.checks import near_misses, one_edit_apart

from .helpers import manage_py

# DJANGO_DEBUG=1: the development configuration, which passes every check; each test adds one thing.
DEVELOPMENT = {"DJANGO_DEBUG": "1"}
RATE_VARIABLES = [
    "LOGIN_THROTTLE_RATE",
    "LOGIN_USERNAME_THROTTLE_RATE",
    "LOGIN_IP_THROTTLE_RATE",
    "LOGIN_GLOBAL_THROTTLE_RATE",
    "REGISTER_THROTTLE_RATE",
    "PASSWORD_CHANGE_THROTTLE_RATE",
]


def check(**environment: str):
    """``manage.py check`` in a fresh process with the development configuration and these variables."""
    return manage_py("check", **DEVELOPMENT, **environment)


# --- throttle rates -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rate, expected",
    [("5/s", (5, 1)), ("5/sec", (5, 1)), ("5/second", (5, 1)), ("5/m", (5, 60)), ("5/min", (5, 60))]
    + [("5/minute", (5, 60)), ("9/h", (9, 3600)), ("9/hour", (9, 3600)), ("3/d", (3, 86400))]
    + [("3/day", (3, 86400)), ("0/min", (0, 60))],
)
def test_drfs_units_spelled_exactly_parse(rate, expected):
    assert rate_parse(rate) == expected


@pytest.mark.parametrize(
    "rate",
    ["five", "five/min", "5/month", "5/minn", "5/mins", "5/MIN", "5", "5/", "/min", "-1/min", "5.5/min"]
    + [" 5/min", "5/min ", "5 /min", "٥/min", "off", "", "5/min/s"],
)
def test_anything_else_is_refused(rate):
    with pytest.raises(InvalidRate):
        rate_parse(rate)


def test_the_throttles_parse_with_the_same_rule(settings):
    """DRF's own parse reads only the unit's first letter: 5/month would be 5 a minute."""
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "5/hour"
    assert (LoginUsernameIPThrottle().num_requests, LoginUsernameIPThrottle().duration) == (5, 3600)
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = "5/month"
    with pytest.raises(InvalidRate):
        LoginUsernameIPThrottle()
    assert set(RATE_UNITS) == {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def test_the_default_rates_pass():
    assert checks.check_throttle_rates() == []


def test_a_rate_that_does_not_parse_is_e042_naming_the_setting(settings):
    settings.ACCOUNTS_REGISTER_THROTTLE_RATE = "10/fortnight"
    [error] = checks.check_throttle_rates()
    assert error.id == "accounts.E045"
    assert "ACCOUNTS_REGISTER_THROTTLE_RATE" in error.msg and "'10/fortnight'" in error.msg


def test_only_the_global_budget_may_be_off(settings):
    settings.ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE = None
    assert checks.check_throttle_rates() == []
    settings.ACCOUNTS_LOGIN_THROTTLE_RATE = None
    [error] = checks.check_throttle_rates()
    assert "ACCOUNTS_LOGIN_THROTTLE_RATE" in error.msg


@pytest.mark.parametrize("rate", ["five", "5/month", "5/minn"])
def test_manage_py_check_fails_naming_the_variable(rate):
    result = check(LOGIN_THROTTLE_RATE=rate)
    assert result.returncode == 1, result.stderr
    assert "accounts.E045" in result.stderr and "LOGIN_THROTTLE_RATE" in result.stderr
    assert repr(rate) in result.stderr


@pytest.mark.parametrize("variable", RATE_VARIABLES)
def test_every_rate_variable_is_checked(variable):
    result = check(**{variable: "5/fortnight"})
    assert result.returncode == 1 and variable in result.stderr, result.stderr


def test_off_turns_the_global_budget_off_and_no_other_rate():
    assert check(LOGIN_GLOBAL_THROTTLE_RATE="off").returncode == 0
    refused = check(LOGIN_IP_THROTTLE_RATE="off")
    assert refused.returncode == 1 and "LOGIN_IP_THROTTLE_RATE" in refused.stderr


# --- DATABASE_URL and CACHE_URL ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "variable, url, said",
    [
        ("DATABASE_URL", "", "DATABASE_URL is set but empty"),
        ("DATABASE_URL", "localhost:5432/app", "DATABASE_URL names no scheme"),
        ("DATABASE_URL", "postgres//db.internal/app", "DATABASE_URL names no scheme"),
        ("DATABASE_URL", "postgress://app:s3cret-pw@db/app", "DATABASE_URL has the scheme 'postgress'"),
        ("DATABASE_URL", "prometheus_postgresql://app:s3cret-pw@h/app", "DATABASE_URL is not a"),
        ("CACHE_URL", "", "CACHE_URL is set but empty"),
        ("CACHE_URL", "127.0.0.1:6379/0", "CACHE_URL names no scheme"),
        ("CACHE_URL", "rediss+tls://:s3cret-pw@cache:6379/0", "CACHE_URL has the scheme 'rediss+tls'"),
    ],
)
def test_an_unusable_url_stops_startup_naming_the_variable_and_not_the_url(variable, url, said):
    result = check(**{variable: url})
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Configuration error: {said}"), result.stderr
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr


@pytest.mark.parametrize(
    "variable, url",
    [
        ("DATABASE_URL", "sqlite:///db.sqlite3"),
        ("CACHE_URL", "locmemcache://"),
        ("CACHE_URL", "dummycache://"),
    ],
)
def test_a_usable_url_passes(variable, url):
    result = check(**{variable: url})
    assert result.returncode == 0, result.stderr


# --- a misspelled variable -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed, meant",
    [
        ("LOGIN_THROTLE_RATE", "LOGIN_THROTTLE_RATE"),  # a letter dropped
        ("DATABASE_URLL", "DATABASE_URL"),  # one added
        ("DJANGO_DEBIG", "DJANGO_DEBUG"),  # one changed
        ("DJANGO_SECERT_KEY", "DJANGO_SECRET_KEY"),  # two neighbours swapped
    ],
)
def test_one_edit_apart(typed, meant):
    assert one_edit_apart(typed, meant) and one_edit_apart(meant, typed)


@pytest.mark.parametrize(
    "a, b",
    [("LOGIN_THROTTLE_RATE",) * 2, ("DJANGO_DEBUG", "DJANGO_DEBGU_"), ("CACHE_URL", "CACHE_URI_X")],
)
def test_more_than_one_edit_is_not(a, b):
    assert not one_edit_apart(a, b)


def test_only_names_that_look_like_ours_are_compared():
    known = ["HOST", "PORT", "DATABASE_URL", "LOGIN_THROTTLE_RATE"]
    environment = {"HOME": "", "POST": "", "PATH": "", "LOGIN_THROTLE_RATE": "5/min", "DATABASE_URL": "x"}
    assert near_misses(environment, known) == {"LOGIN_THROTLE_RATE": "LOGIN_THROTTLE_RATE"}


def test_manage_py_check_warns_of_a_misspelled_variable_and_still_passes():
    result = check(LOGIN_THROTLE_RATE="5/min")
    assert result.returncode == 0, result.stderr
    assert "authproject.W001" in result.stderr
    assert "LOGIN_THROTLE_RATE is not read; did you mean LOGIN_THROTTLE_RATE?" in result.stderr


def test_every_variable_the_readme_documents_is_known_to_the_check(settings):
    documented = {"DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FALLBACKS", "DATABASE_URL", "CACHE_URL", "HOST"}
    assert documented | set(RATE_VARIABLES) <= set(settings.ENVIRONMENT_VARIABLES_READ)


def test_a_clean_environment_has_no_warning():
    result = check()
    assert result.returncode == 0 and "W001" not in result.stderr, result.stderr
