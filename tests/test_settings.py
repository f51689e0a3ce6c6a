"""authproject/settings.py passes on only what the environment sets, one variable to one setting."""

import ast
import importlib.util
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from .helpers import manage_py

BASE_DIR = Path(__file__).resolve().parent.parent
SETTINGS_FILE = BASE_DIR / "authproject" / "settings.py"

# environment variable, a value other than the default, the setting it must set, that setting's value
ONE_VARIABLE_ONE_SETTING = [
    ("REFRESH_COOKIE_SECURE", "0", "ACCOUNTS_REFRESH_COOKIE_SECURE", False),
    ("REFRESH_COOKIE_SAMESITE", "Strict", "ACCOUNTS_REFRESH_COOKIE_SAMESITE", "Strict"),
    ("REFRESH_COOKIE_PARTITIONED", "1", "ACCOUNTS_REFRESH_COOKIE_PARTITIONED", True),
    ("SESSION_MAX_AGE", "3600", "ACCOUNTS_SESSION_MAX_AGE", timedelta(hours=1)),
    ("REFRESH_GRACE_SECONDS", "3", "ACCOUNTS_REFRESH_GRACE", timedelta(seconds=3)),
    ("SESSION_RETENTION_DAYS", "2", "ACCOUNTS_SESSION_RETENTION", timedelta(days=2)),
    ("AUDIT_RETENTION_DAYS", "30", "ACCOUNTS_AUDIT_RETENTION", timedelta(days=30)),
    ("LOGIN_THROTTLE_RATE", "9/hour", "ACCOUNTS_LOGIN_THROTTLE_RATE", "9/hour"),
    ("LOGIN_USERNAME_THROTTLE_RATE", "40/hour", "ACCOUNTS_LOGIN_USERNAME_THROTTLE_RATE", "40/hour"),
    ("LOGIN_IP_THROTTLE_RATE", "99/hour", "ACCOUNTS_LOGIN_IP_THROTTLE_RATE", "99/hour"),
    ("LOGIN_GLOBAL_THROTTLE_RATE", "50/s", "ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE", "50/s"),
    ("REGISTER_THROTTLE_RATE", "3/day", "ACCOUNTS_REGISTER_THROTTLE_RATE", "3/day"),
    ("PASSWORD_CHANGE_THROTTLE_RATE", "2/min", "ACCOUNTS_PASSWORD_CHANGE_THROTTLE_RATE", "2/min"),
    ("ACCESS_TOKEN_LIFETIME", "60", "SIMPLE_JWT['ACCESS_TOKEN_LIFETIME']", timedelta(minutes=1)),
    ("REFRESH_TOKEN_LIFETIME", "7200", "SIMPLE_JWT['REFRESH_TOKEN_LIFETIME']", timedelta(hours=2)),
    (
        "JWT_SIGNING_KEYS",
        "/keys/next.pem,/keys/old.pem",
        "ACCOUNTS_JWT_SIGNING_KEYS",
        ["/keys/next.pem", "/keys/old.pem"],
    ),
    ("JWT_VERIFY_KEYS", "/keys/a.pub", "ACCOUNTS_JWT_VERIFY_KEYS", ["/keys/a.pub"]),
    ("JWKS_MAX_AGE", "600", "ACCOUNTS_JWKS_MAX_AGE", timedelta(minutes=10)),
    ("JWT_ALGORITHM", "ES256", "SIMPLE_JWT['ALGORITHM']", "ES256"),
    ("JWT_ISSUER", "https://auth.example.com", "SIMPLE_JWT['ISSUER']", "https://auth.example.com"),
    ("JWT_AUDIENCE", "https://api.example.com", "SIMPLE_JWT['AUDIENCE']", "https://api.example.com"),
    ("CSRF_COOKIE_SECURE", "0", "CSRF_COOKIE_SECURE", False),
    ("SESSION_COOKIE_SECURE", "0", "SESSION_COOKIE_SECURE", False),
    ("TRUST_X_FORWARDED_PROTO", "1", "SECURE_PROXY_SSL_HEADER", ("HTTP_X_FORWARDED_PROTO", "https")),
    ("SECURE_SSL_REDIRECT", "1", "SECURE_SSL_REDIRECT", True),
    ("SECURE_HSTS_SECONDS", "600", "SECURE_HSTS_SECONDS", 600),
    ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "1", "SECURE_HSTS_INCLUDE_SUBDOMAINS", True),
    ("SECURE_HSTS_PRELOAD", "1", "SECURE_HSTS_PRELOAD", True),
    ("STATIC_ROOT", "/srv/static", "STATIC_ROOT", Path("/srv/static")),
    ("SITE_NAME", "Example", "ACCOUNTS_SITE_NAME", "Example"),
    ("MAIL_MAX_ATTEMPTS", "2", "ACCOUNTS_MAIL_MAX_ATTEMPTS", 2),
    ("PASSWORD_RESET_URL", "myapp://reset/{key}", "ACCOUNTS_PASSWORD_RESET_URL", "myapp://reset/{key}"),
    ("PASSWORD_RESET_THROTTLE_RATE", "3/hour", "ACCOUNTS_PASSWORD_RESET_THROTTLE_RATE", "3/hour"),
    (
        "PASSWORD_RESET_CONFIRM_THROTTLE_RATE",
        "9/hour",
        "ACCOUNTS_PASSWORD_RESET_CONFIRM_THROTTLE_RATE",
        "9/hour",
    ),
    ("DEFAULT_FROM_EMAIL", "Ex <no-reply@example.com>", "DEFAULT_FROM_EMAIL", "Ex <no-reply@example.com>"),
    ("EMAIL_TIMEOUT", "3", "EMAIL_TIMEOUT", 3),
    ("PASSWORD_CHECK_SLOTS", "3", "ACCOUNTS_PASSWORD_CHECK_SLOTS", 3),
    ("PASSWORD_CHECK_NICENESS", "5", "ACCOUNTS_PASSWORD_CHECK_NICENESS", 5),
    ("PASSWORD_CHECK_SLOT_DIR", "/run/authproject", "ACCOUNTS_PASSWORD_CHECK_SLOT_DIR", "/run/authproject"),
    ("WORKER_METRICS_HOST", "10.0.0.11", "ACCOUNTS_WORKER_METRICS_HOST", "10.0.0.11"),
    ("WORKER_METRICS_PORT", "9101", "ACCOUNTS_WORKER_METRICS_PORT", 9101),
]
# Read by the tests below, and cleared like the ones above.
ALSO_READ = ["EMAIL_URL", "DJANGO_DEBUG", "TASKS_BACKEND", "CACHE_KEY_PREFIX", "PASSWORD_RESET_TIMEOUT"]
IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
VARIABLES = [variable for variable, *_ in ONE_VARIABLE_ONE_SETTING]


def load_settings(monkeypatch, **environment) -> dict:
    """Run settings.py afresh (a new module, not the one Django uses) with exactly these of the
    variables above set; return its settings, SIMPLE_JWT's entries flattened to SIMPLE_JWT['KEY']."""
    for variable in VARIABLES + ALSO_READ:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    spec = importlib.util.spec_from_file_location("settings_under_test", SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = {name: getattr(module, name) for name in dir(module) if name.isupper()}  # as Django reads it
    for key, value in found.pop("SIMPLE_JWT").items():
        found[f"SIMPLE_JWT[{key!r}]"] = value
    return found


def test_without_the_variables_settings_py_sets_no_accounts_setting_and_no_token_lifetime(monkeypatch):
    found = load_settings(monkeypatch)
    assert [name for name in found if name.startswith("ACCOUNTS_")] == []
    assert "SIMPLE_JWT['ACCESS_TOKEN_LIFETIME']" not in found
    assert "SIMPLE_JWT['REFRESH_TOKEN_LIFETIME']" not in found


@pytest.mark.parametrize(
    ("variable", "value", "setting", "expected"), ONE_VARIABLE_ONE_SETTING, ids=VARIABLES
)
def test_an_environment_variable_sets_its_one_setting_and_nothing_else(
    monkeypatch, variable, value, setting, expected
):
    unset = load_settings(monkeypatch)
    found = load_settings(monkeypatch, **{variable: value})
    changed = {name: found[name] for name in found if name not in unset or found[name] != unset[name]}
    assert changed == {setting: expected}


def test_refresh_cookie_secure_off_leaves_the_csrf_and_session_cookies_secure(monkeypatch):
    found = load_settings(monkeypatch, REFRESH_COOKIE_SECURE="0")
    assert found["ACCOUNTS_REFRESH_COOKIE_SECURE"] is False
    assert found["CSRF_COOKIE_SECURE"] is True
    assert found["SESSION_COOKIE_SECURE"] is True


def test_csrf_cookie_secure_off_leaves_the_refresh_cookie_alone(monkeypatch):
    found = load_settings(monkeypatch, CSRF_COOKIE_SECURE="0")
    assert found["CSRF_COOKIE_SECURE"] is False
    assert found["SESSION_COOKIE_SECURE"] is True
    assert "ACCOUNTS_REFRESH_COOKIE_SECURE" not in found  # so conf.py's default (on) applies


def test_native_app_origins_get_cors_answers_and_no_csrf_trust(monkeypatch):
    """NATIVE_APP_ORIGINS is the app's setting, and settings.py adds it to django-cors-headers'
    origins; the CSRF check trusts the browsers' origins only."""
    monkeypatch.delenv("CSRF_TRUSTED_ORIGINS", raising=False)
    browsers, apps = ["https://app.example.com"], ["capacitor://localhost", "https://localhost"]
    found = load_settings(
        monkeypatch, CORS_ALLOWED_ORIGINS=",".join(browsers), NATIVE_APP_ORIGINS=",".join(apps)
    )
    assert found["ACCOUNTS_NATIVE_APP_ORIGINS"] == apps
    assert found["CORS_ALLOWED_ORIGINS"] == browsers + apps
    assert found["CSRF_TRUSTED_ORIGINS"] == browsers
    monkeypatch.delenv("NATIVE_APP_ORIGINS")
    assert "ACCOUNTS_NATIVE_APP_ORIGINS" not in load_settings(monkeypatch)  # conf.py's default: none


# --- through Django, in a fresh process reading the environment ------------------------------
READ_APP_SETTINGS = """
import json
from django.conf import settings
from accounts.conf import app_settings
print(json.dumps({
    "accounts_settings": sorted(n for n in dir(settings) if n.startswith("ACCOUNTS_")),
    "session_max_age": app_settings.SESSION_MAX_AGE.total_seconds(),
    "refresh_grace": app_settings.REFRESH_GRACE.total_seconds(),
    "access_token_lifetime": app_settings.ACCESS_TOKEN_LIFETIME.total_seconds(),
    "refresh_token_lifetime": app_settings.REFRESH_TOKEN_LIFETIME.total_seconds(),
}))
"""


def app_settings_in_a_fresh_process(**environment) -> dict:
    """What app_settings reads under `manage.py shell` with exactly these of the variables set."""
    result = manage_py(
        "shell",
        "--verbosity",
        "0",
        "--command",
        READ_APP_SETTINGS,
        unset=VARIABLES,
        check=True,
        **environment,
    )
    return json.loads(result.stdout)


def test_without_the_variables_the_app_reads_the_defaults_of_conf_py():
    assert app_settings_in_a_fresh_process() == {
        "accounts_settings": [],
        "session_max_age": timedelta(days=30).total_seconds(),
        "refresh_grace": 10,
        "access_token_lifetime": 15 * 60,
        "refresh_token_lifetime": timedelta(days=7).total_seconds(),
    }


def test_environment_variables_reach_the_app_settings():
    found = app_settings_in_a_fresh_process(SESSION_MAX_AGE="3600", ACCESS_TOKEN_LIFETIME="60")
    assert found == {
        "accounts_settings": ["ACCOUNTS_SESSION_MAX_AGE"],
        "session_max_age": 3600,
        "refresh_grace": 10,
        "access_token_lifetime": 60,
        "refresh_token_lifetime": timedelta(days=7).total_seconds(),
    }


def test_the_accounts_app_imports_nothing_from_the_project():
    """The app must be reusable: it reads Django's settings, never authproject's module."""
    offenders = []
    for path in sorted((BASE_DIR / "accounts").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "authproject" or name.startswith("authproject.") for name in names):
                offenders.append(f"{path.relative_to(BASE_DIR)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp+tls://mailer%40example.com:p%2Fss@mail.example.com:587",
            {
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "mail.example.com",
                "EMAIL_PORT": 587,
                "EMAIL_HOST_USER": "mailer@example.com",
                "EMAIL_HOST_PASSWORD": "p/ss",
                "EMAIL_USE_TLS": True,
            },
        ),
        ("smtp+ssl://mail.example.com:465", {"EMAIL_PORT": 465, "EMAIL_USE_SSL": True}),
        ("consolemail://", {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}),
    ],
    ids=["smtp+tls", "smtp+ssl", "consolemail"],
)
def test_email_url_sets_djangos_email_settings(monkeypatch, url, expected):
    found = load_settings(monkeypatch, EMAIL_URL=url)
    assert {name: found[name] for name in expected} == expected
    assert found["EMAIL_TIMEOUT"] == 10  # a hung server is given up, never waited on for ever


def test_without_email_url_mail_goes_to_the_console_with_debug_on_and_nowhere_chosen_with_it_off(monkeypatch):
    assert load_settings(monkeypatch, DJANGO_DEBUG="1")["EMAIL_BACKEND"].endswith("console.EmailBackend")
    assert "EMAIL_BACKEND" not in load_settings(monkeypatch, DJANGO_DEBUG="0")  # accounts.E018 refuses it


def test_a_bad_email_url_stops_startup_naming_the_variable(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
        load_settings(monkeypatch, EMAIL_URL="mailto://nobody")


@pytest.mark.parametrize(
    ("environment", "backend"),
    [
        ({"DJANGO_DEBUG": "1"}, IMMEDIATE),
        ({"DJANGO_DEBUG": "0"}, "django_tasks_db.DatabaseBackend"),
        ({"DJANGO_DEBUG": "0", "TASKS_BACKEND": "immediate"}, IMMEDIATE),
        ({"DJANGO_DEBUG": "1", "TASKS_BACKEND": "database"}, "django_tasks_db.DatabaseBackend"),
    ],
    ids=["debug-on", "debug-off", "immediate", "database"],
)
def test_tasks_backend_follows_debug_unless_named(monkeypatch, environment, backend):
    assert load_settings(monkeypatch, **environment)["TASKS"] == {"default": {"BACKEND": backend}}


def test_an_unknown_tasks_backend_stops_startup_naming_the_variable(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="TASKS_BACKEND"):
        load_settings(monkeypatch, TASKS_BACKEND="celery")


def test_the_global_login_budget_is_turned_off_by_off(monkeypatch):
    found = load_settings(monkeypatch, LOGIN_GLOBAL_THROTTLE_RATE="off")
    assert "ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE" in found
    assert found["ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE"] is None


def test_cache_key_prefix_starts_every_cache_key(monkeypatch):
    assert load_settings(monkeypatch)["CACHES"]["default"]["KEY_PREFIX"] == "authproject"
    found = load_settings(monkeypatch, CACHE_URL="redis://127.0.0.1:6379/3", CACHE_KEY_PREFIX="shop")
    assert found["CACHES"]["default"]["KEY_PREFIX"] == "shop"


def test_the_password_reset_timeout_sets_the_apps_and_djangos_own_which_bounds_the_same_keys(monkeypatch):
    unset = load_settings(monkeypatch)
    found = load_settings(monkeypatch, PASSWORD_RESET_TIMEOUT="604800")
    changed = {name: found[name] for name in found if name not in unset or found[name] != unset[name]}
    assert changed == {"ACCOUNTS_PASSWORD_RESET_TIMEOUT": timedelta(days=7), "PASSWORD_RESET_TIMEOUT": 604800}
