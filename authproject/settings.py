"""Settings, read from the environment (see the configuration table in README.md).

Every variable is optional: the defaults run the service on SQLite and a local-memory cache.
Production sets DATABASE_URL (PostgreSQL) and CACHE_URL (Redis) shared by all app servers.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# A fixed key so that `make run` works on a bare machine. Its "django-insecure-" prefix marks it as a
# development key (Django's convention): accounts.checks refuses such a key when DEBUG is off.
DEVELOPMENT_SECRET_KEY = "django-insecure-development-key-do-not-use-in-production-0123456789"
DEFAULT_CORS_ORIGINS = ["http://localhost:5173", "http://localhost:3000"]



class _Environment(environ.Env):
    """django-environ's Env, noting every variable the settings ask for, set or not: the names a
    misspelled variable is compared with (authproject.checks warns of one an edit away)."""

    def __init__(self, **scheme):
        super().__init__(**scheme)
        self.asked: set[str] = set()

    def get_value(self, var, *args, **kwargs):
        self.asked.add(var)
        return super().get_value(var, *args, **kwargs)

    def __contains__(self, var) -> bool:
        self.asked.add(var)
        return super().__contains__(var)


env = _Environment()
# Development only: manage.py names the checkout's .env (which `make run` writes: DJANGO_DEBUG=1) in
# DJANGO_ENV_FILE, so that its commands run as the README prints them. gunicorn (authproject.wsgi),
# `make serve` and the tests name none, so no server reads a stray .env. A variable set in the
# environment wins over the file (read_env only fills in what is unset).
if env.str("DJANGO_ENV_FILE", default=""):
    environ.Env.read_env(os.environ["DJANGO_ENV_FILE"])


def _seconds(variable: str) -> timedelta:
    """An environment variable that counts seconds, as a timedelta."""
    return timedelta(seconds=env.int(variable))


def _rate_or_off(variable: str) -> str | None:
    """A throttle rate ("10/s"), or None for "off" (no limit)."""
    value = env.str(variable).strip()
    return None if value.lower() in ("off", "none", "") else value


def _url_config(variable: str, parse, schemes, default: str, required: str) -> dict:
    """DATABASE_URL or CACHE_URL as Django's setting (django-environ's ``parse``), or
    ImproperlyConfigured naming the variable when it is empty, has no ``scheme://`` or a scheme
    django-environ does not know or cannot read (no ``required`` key in the configuration it makes).
    The message never repeats the URL, which may hold a password."""
    url = env.str(variable, default=default)
    example = f"unset it for the default, {default}"
    if not url.strip():
        raise ImproperlyConfigured(f"{variable} is set but empty: name a URL, or {example}.")
    scheme = url.partition("://")[0] if "://" in url else ""
    if not scheme:
        raise ImproperlyConfigured(f"{variable} names no scheme (scheme://...): write a URL, or {example}.")
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{variable} has the scheme {scheme!r}; django-environ knows {', '.join(sorted(schemes))}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # django-environ's own warnings quote the URL
        try:
            config = parse(url)
        except (ImproperlyConfigured, KeyError, ValueError):
            config = {}
    if not config.get(required):
        raise ImproperlyConfigured(f"{variable} is not a {scheme} URL that django-environ can read.")
    return config


def _days(variable: str) -> timedelta:
    """An environment variable that counts days, as a timedelta."""
    return timedelta(days=env.int(variable))


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
# Earlier secret keys, newest first: they still verify what they signed (Django's signing, password
# reset links, HS256 tokens) but sign nothing, so the secret key rotates without signing anyone out.
SECRET_KEY_FALLBACKS = [
    key.strip() for key in env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[]) if key.strip()
]
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # The task queue's table (django_tasks_db), migrated whichever backend TASKS_BACKEND names, so
    # that switching backends needs no migration.
    "django_tasks",
    "django_tasks_db",
    "accounts",
    "authproject",  # the project's own startup checks (authproject/checks.py); no models
]

MIDDLEWARE = [
    # First, so that every answer carries X-Request-ID and every log line of a request its id.
    "accounts.logs.RequestIdMiddleware",
    # Times every request by its URL pattern's name (authproject_request_duration_seconds).
    "accounts.metrics.RequestMetricsMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, Swagger UI) from the app servers themselves, with DEBUG off too; after
    # SecurityMiddleware so that they get its headers (HSTS) as well.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "authproject.urls"
WSGI_APPLICATION = "authproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": _url_config(
        "DATABASE_URL",
        environ.Env.db_url_config,
        environ.Env.DB_SCHEMES,
        default="sqlite:///db.sqlite3",
        required="ENGINE",
    )
}
# PostgreSQL's (below), read whichever database is named, so that each is a variable the settings read.
_conn_max_age = env.int("DATABASE_CONN_MAX_AGE", default=60)
_prepared_statements = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
# Seconds the database gets to answer before a request fails with 503 service_unavailable instead of
# holding its worker (0: wait for ever; a long migration on a big table may want that).
DATABASE_TIMEOUT = env.float("DATABASE_TIMEOUT", default=5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _name = Path(DATABASES["default"]["NAME"] or "db.sqlite3")
    DATABASES["default"]["NAME"] = _name if _name.is_absolute() else BASE_DIR / _name
    # Writers queue instead of failing: BEGIN IMMEDIATE takes the write lock when a transaction
    # starts (no deadlocking lock upgrade), WAL lets readers run beside the writer, and the busy
    # timeout makes a waiting writer retry instead of answering "database is locked" (until
    # DATABASE_TIMEOUT: then it does, and the request answers 503).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": DATABASE_TIMEOUT or 24 * 3600,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not Django's shared in-memory database, so that tests see real locking between threads.
    DATABASES["default"]["TEST"] = {"NAME": BASE_DIR / "test_db.sqlite3"}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", _conn_max_age)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _prepared_statements:
        # Values bound on the server, and a statement run 5 times on a connection prepared there
        # (psycopg's prepared statements): the hot paths' statements (accounts/statements.py) are
        # then neither parsed nor planned again. Off behind a PgBouncer in transaction mode older
        # than 1.21 (or without its max_prepared_statements).
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_TIMEOUT:
        # Django's backend, plus a client-side deadline on every round trip (authproject/postgresql):
        # the server's statement_timeout stops a slow query, but only the client notices a server
        # that stopped answering altogether (paused, or cut off by the network).
        DATABASES["default"]["ENGINE"] = "authproject.postgresql"
        DATABASES["default"].setdefault("OPTIONS", {})
        DATABASES["default"]["OPTIONS"].update(
            connect_timeout=max(2, round(DATABASE_TIMEOUT)),  # libpq counts whole seconds, 2 at least
            options=f"-c statement_timeout={round(DATABASE_TIMEOUT * 1000)}",
            deadline=DATABASE_TIMEOUT,
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# AUTH_USER_MODEL is Django's own auth.User: accounts works with whichever user model a project has.

# --- Cache (throttling; shared by every app server in production) ---------------------------
CACHES = {
    "default": _url_config(
        "CACHE_URL",
        environ.Env.cache_url_config,
        environ.Env.CACHE_SCHEMES,
        default="locmemcache://",
        required="BACKEND",
    )
}
# Every key starts with it: deployments (and test runs) that share one Redis database keep apart.
CACHES["default"]["KEY_PREFIX"] = env.str("CACHE_KEY_PREFIX", default="authproject")

# --- Passwords --------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idHasher",  # Argon2id, parameters explained there
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Refuses nothing: a password set by any path (admin, changepassword, code) ends the user's sessions.
    {"NAME": "accounts.password_validation.PasswordSetEndsSessions"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# collectstatic writes a compressed copy beside each file, and WhiteNoise serves them (`make serve`).
# No hashed names: a page that names a file works whether collectstatic ran or not.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Mail (accounts/mail.py: every mail leaves through one task) --------------------------------
# EMAIL_URL in django-environ's form: smtp://user:password@host:25, smtp+tls://...:587,
# smtp+ssl://...:465, consolemail://. Unset, mail goes to the console with DEBUG on, and with DEBUG off
# nothing sets EMAIL_BACKEND, which accounts.checks refuses (accounts.E018).
# Seconds an SMTP server gets for each step (connecting, each answer) before the send fails and is
# retried: a server that hangs must not hold a worker for ever.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10)
if "EMAIL_URL" in env:
    try:
        _email = env.email_url("EMAIL_URL")
    except ImproperlyConfigured as e:
        raise ImproperlyConfigured(f"EMAIL_URL: {e}") from None
    # Only Django's EMAIL_* settings (the parser also returns keys for other backends' options).
    globals().update(
        {name: value for name, value in _email.items() if name.startswith("EMAIL_") and value is not None}
    )
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")

# Django's Tasks API (the django-tasks backport on Django 5.2). "immediate" runs a task when it is
# enqueued, i.e. right after the request's transaction commits (development, tests); "database"
# queues it for `make worker` (manage.py db_worker), any number of them on any machine.
_task_backends = {
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
TASKS_BACKEND = env.str("TASKS_BACKEND", default="immediate" if DEBUG else "database")
if TASKS_BACKEND not in _task_backends:
    raise ImproperlyConfigured(f"TASKS_BACKEND is {TASKS_BACKEND!r}: use immediate or database.")
TASKS = {"default": {"BACKEND": _task_backends[TASKS_BACKEND]}}

# --- Browser security -------------------------------------------------------------------------
# The browser pages' origins (the SPAs), and the origins of hybrid apps' web views (Capacitor, Ionic:
# capacitor://localhost, ...), which may use body transport (ACCOUNTS_NATIVE_APP_ORIGINS, below). Both
# get CORS answers; only the browsers' are trusted for CSRF (apps use body transport, which has no
# CSRF check), and accounts.E016 refuses an origin in both.
_browser_origins = env.list("CORS_ALLOWED_ORIGINS", default=DEFAULT_CORS_ORIGINS)
CORS_ALLOWED_ORIGINS = [*_browser_origins, *env.list("NATIVE_APP_ORIGINS", default=[])]
# Development convenience: any localhost port. Never in production (DEBUG off).
CORS_ALLOWED_ORIGIN_REGEXES = [r"^http://(localhost|127\.0\.0\.1)(:\d+)?$"] if DEBUG else []
CORS_ALLOW_CREDENTIALS = True
CORS_ALLOW_METHODS = ["DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"]
CORS_PREFLIGHT_MAX_AGE = 86400
CORS_URLS_REGEX = r"^/api/.*$"
# CORS_ALLOW_HEADERS keeps django-cors-headers' default: authorization, content-type, x-csrftoken, ...
# Two of its defaults, stated: django-cors-headers reads them on every cross-origin request, and a
# setting left out costs Django's settings an exception per read. (CORS_ALLOW_ALL_ORIGINS stays
# unset, so that its older name, CORS_ORIGIN_ALLOW_ALL, still counts: accounts.E001 refuses both.)
CORS_EXPOSE_HEADERS: list[str] = []  # a page reads what it needs from the JSON body
CORS_ALLOW_PRIVATE_NETWORK = False

# The CSRF origin check trusts the browser origins CORS allows (accounts.csrf adds the DEBUG regex),
# and the ones named here besides: e.g. the admin's own https origin behind a proxy that rewrites Host.
CSRF_TRUSTED_ORIGINS = [*_browser_origins, *env.list("CSRF_TRUSTED_ORIGINS", default=[])]
# Browsers treat http://localhost as secure, so these stay on in development too.
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "accounts.error_views.csrf_failure"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)  # the admin's login session

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Behind a TLS-terminating proxy -------------------------------------------------------------
# Only a proxy that sets X-Forwarded-Proto itself (overwriting the client's) may be trusted for it;
# then request.is_secure() is true for https, which the CSRF origin check and the redirect need.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Prometheus scrapes each app server's own port over the private network, plain http as the proxy
# speaks to it, and sends no X-Forwarded-Proto: /metrics answers it rather than redirecting.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# --- accounts (read lazily through accounts.conf.app_settings) ---------------------------------
# The defaults live in accounts/conf.py. An ACCOUNTS_* setting is set here only when its environment
# variable is, so an unset variable leaves the app's default in force.
_accounts_from_environment = {  # environment variable: (setting, cast)
    "REFRESH_COOKIE_SECURE": ("ACCOUNTS_REFRESH_COOKIE_SECURE", env.bool),
    "REFRESH_COOKIE_SAMESITE": ("ACCOUNTS_REFRESH_COOKIE_SAMESITE", env.str),
    "REFRESH_COOKIE_PARTITIONED": ("ACCOUNTS_REFRESH_COOKIE_PARTITIONED", env.bool),
    "REFRESH_COOKIE_HOST_PREFIX": ("ACCOUNTS_REFRESH_COOKIE_HOST_PREFIX", env.bool),
    "SESSION_MAX_AGE": ("ACCOUNTS_SESSION_MAX_AGE", _seconds),
    "REFRESH_GRACE_SECONDS": ("ACCOUNTS_REFRESH_GRACE", _seconds),
    "REFRESH_BODY_TRANSPORT": ("ACCOUNTS_REFRESH_BODY_TRANSPORT", env.bool),
    "NATIVE_APP_ORIGINS": ("ACCOUNTS_NATIVE_APP_ORIGINS", env.list),
    "SESSION_RETENTION_DAYS": ("ACCOUNTS_SESSION_RETENTION", _days),
    "AUDIT_RETENTION_DAYS": ("ACCOUNTS_AUDIT_RETENTION", _days),
    "LOGIN_THROTTLE_RATE": ("ACCOUNTS_LOGIN_THROTTLE_RATE", env.str),
    "LOGIN_USERNAME_THROTTLE_RATE": ("ACCOUNTS_LOGIN_USERNAME_THROTTLE_RATE", env.str),
    "LOGIN_IP_THROTTLE_RATE": ("ACCOUNTS_LOGIN_IP_THROTTLE_RATE", env.str),
    "LOGIN_GLOBAL_THROTTLE_RATE": ("ACCOUNTS_LOGIN_GLOBAL_THROTTLE_RATE", _rate_or_off),
    "PASSWORD_CHECK_SLOTS": ("ACCOUNTS_PASSWORD_CHECK_SLOTS", env.int),
    "PASSWORD_CHECK_SLOT_DIR": ("ACCOUNTS_PASSWORD_CHECK_SLOT_DIR", env.str),
    "PASSWORD_CHECK_NICENESS": ("ACCOUNTS_PASSWORD_CHECK_NICENESS", env.int),
    "REGISTER_THROTTLE_RATE": ("ACCOUNTS_REGISTER_THROTTLE_RATE", env.str),
    "PASSWORD_CHANGE_THROTTLE_RATE": ("ACCOUNTS_PASSWORD_CHANGE_THROTTLE_RATE", env.str),
    "JWT_SIGNING_KEYS": ("ACCOUNTS_JWT_SIGNING_KEYS", env.list),
    "JWT_VERIFY_KEYS": ("ACCOUNTS_JWT_VERIFY_KEYS", env.list),
    "JWKS_MAX_AGE": ("ACCOUNTS_JWKS_MAX_AGE", _seconds),
    "SITE_NAME": ("ACCOUNTS_SITE_NAME", env.str),
    "PASSWORD_RESET_URL": ("ACCOUNTS_PASSWORD_RESET_URL", env.str),
    "PASSWORD_RESET_TIMEOUT": ("ACCOUNTS_PASSWORD_RESET_TIMEOUT", _seconds),
    "PASSWORD_RESET_THROTTLE_RATE": ("ACCOUNTS_PASSWORD_RESET_THROTTLE_RATE", env.str),
    "PASSWORD_RESET_CONFIRM_THROTTLE_RATE": ("ACCOUNTS_PASSWORD_RESET_CONFIRM_THROTTLE_RATE", env.str),
    "MAIL_MAX_ATTEMPTS": ("ACCOUNTS_MAIL_MAX_ATTEMPTS", env.int),
    "SECURITY_NOTICES": ("ACCOUNTS_SECURITY_NOTICES", env.bool),
    "METRICS_TOKEN": ("ACCOUNTS_METRICS_TOKEN", env.str),
    "WORKER_METRICS_HOST": ("ACCOUNTS_WORKER_METRICS_HOST", env.str),
    "WORKER_METRICS_PORT": ("ACCOUNTS_WORKER_METRICS_PORT", env.int),
    "EMAIL_VERIFICATION": ("ACCOUNTS_EMAIL_VERIFICATION", env.str),
    "EMAIL_VERIFY_URL": ("ACCOUNTS_EMAIL_VERIFY_URL", env.str),
    "EMAIL_VERIFY_TIMEOUT": ("ACCOUNTS_EMAIL_VERIFY_TIMEOUT", _seconds),
    "EMAIL_VERIFY_THROTTLE_RATE": ("ACCOUNTS_EMAIL_VERIFY_THROTTLE_RATE", env.str),
    "EMAIL_VERIFY_KEY_THROTTLE_RATE": ("ACCOUNTS_EMAIL_VERIFY_KEY_THROTTLE_RATE", env.str),
    "MFA_TOKEN_TIMEOUT": ("ACCOUNTS_MFA_TOKEN_TIMEOUT", _seconds),
    "MFA_THROTTLE_RATE": ("ACCOUNTS_MFA_THROTTLE_RATE", env.str),
    "MFA_ENCRYPTION_KEYS": ("ACCOUNTS_MFA_ENCRYPTION_KEYS", env.list),
    "REAUTHENTICATION_TIMEOUT": ("ACCOUNTS_REAUTHENTICATION_TIMEOUT", _seconds),
    "WEBAUTHN_RP_ID": ("ACCOUNTS_WEBAUTHN_RP_ID", env.str),
    "WEBAUTHN_RP_NAME": ("ACCOUNTS_WEBAUTHN_RP_NAME", env.str),
    "WEBAUTHN_ORIGINS": ("ACCOUNTS_WEBAUTHN_ORIGINS", env.list),
}
for _variable, (_setting, _cast) in _accounts_from_environment.items():
    if _variable in env:
        globals()[_setting] = _cast(_variable)
# Django's own PASSWORD_RESET_TIMEOUT (3 days by default) also bounds the app's reset keys: set to the
# same value, so that the variable alone decides.
if "PASSWORD_RESET_TIMEOUT" in os.environ:
    PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT")

# --- Django REST framework, simplejwt, drf-spectacular ----------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.SessionJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "accounts.http_errors.api_exception_handler",
    # Client IP for throttling and session records: X-Forwarded-For is believed only behind this
    # many trusted proxies (0: the socket's address).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "SIGNING_KEY": SECRET_KEY,  # under HS256 (the default) only
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_TOKEN_CLASSES": ("accounts.tokens.AccessToken",),
    # Django's update_last_login records it, on the user_logged_in that accounts.services sends.
    "UPDATE_LAST_LOGIN": False,
}
# simplejwt's own settings, only when set; accounts/conf.py holds the defaults (15 min, 7 days, HS256,
# no issuer or audience).
_simple_jwt_from_environment = {  # environment variable: (SIMPLE_JWT key, cast)
    "ACCESS_TOKEN_LIFETIME": ("ACCESS_TOKEN_LIFETIME", _seconds),
    "REFRESH_TOKEN_LIFETIME": ("REFRESH_TOKEN_LIFETIME", _seconds),
    "JWT_ALGORITHM": ("ALGORITHM", env.str),
    "JWT_ISSUER": ("ISSUER", env.str),
    "JWT_AUDIENCE": ("AUDIENCE", env.str),
}
for _variable, (_key, _cast) in _simple_jwt_from_environment.items():
    if _variable in env:
        SIMPLE_JWT[_key] = _cast(_variable)

SPECTACULAR_SETTINGS = {
    "TITLE": "authproject API",
    "DESCRIPTION": "Short-lived JWT access tokens in the body, a rotating refresh token in an "
    "httpOnly cookie, one revocable server-side session per login.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# LOG_FORMAT: "json" (one JSON object a line, for a log collector; the default with DEBUG off) or
# "text" (for people; the default with DEBUG on). Either way every line of a request carries its id
# (accounts.logs), and everything goes to stderr through one handler.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT is {LOG_FORMAT!r}: use json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "accounts.logs.RequestContextFilter"}},
    "formatters": {
        "json": {"()": "accounts.logs.JsonFormatter"},
        "text": {"()": "accounts.logs.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_context"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own lines reach the root's handler only (its default "django" handlers would print
    # them a second time with DEBUG on, unformatted); runserver's keep their own.
    "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
}

# The environment variables this project reads: the ones the settings asked for above, and the app
# server's (gunicorn.conf.py). authproject.checks warns of a variable set in the environment an edit
# away from one of these: a misspelling, which would silently not apply.
ENVIRONMENT_VARIABLES_READ = sorted(env.asked | {"HOST", "PORT", "WEB_CONCURRENCY"})
