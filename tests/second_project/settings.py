"""A second, minimal project that installs accounts: what `django-admin startproject` writes, its own
user model (members.Member, signing in by email), and nothing the app would need from this repo's
authproject: no REST_FRAMEWORK, SIMPLE_JWT, EXCEPTION_HANDLER, CSRF_FAILURE_VIEW or CORS.

tests/test_second_project.py runs it (see tests/second_project/flow.py).
"""

import os
import tempfile
from pathlib import Path

import environ

SECRET_KEY = "second-project-key-not-authprojects-7c1f0e9a4b2d6f8e3a5c7b9d1e2f4a6c8b0d"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "accounts",
    "tests.second_project.members",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.second_project.urls"

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

AUTH_USER_MODEL = "members.Member"
# The one validator the app needs (accounts.E044; it refuses no password): a password set by any
# path (the admin, changepassword, code) ends the member's sessions.
AUTH_PASSWORD_VALIDATORS = [{"NAME": "accounts.password_validation.PasswordSetEndsSessions"}]

# Any project's mail settings: with DEBUG off the app refuses to run without them (accounts.E018).
# No TASKS: the Tasks API's default backend (immediate) sends the app's mail after each commit.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# SQLite in a temporary file (the flow deletes it). When DATABASE_URL names a server (CI's second
# pass), that server, but a database of its own: the main suite's test database is open meanwhile.
# Named from DATABASE_URL's (the test database test_<name>_second_project), never a fixed name
# that another project on the server could be using.
if "DATABASE_URL" in os.environ:
    _server = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    DATABASES = {"default": {**_server, "NAME": f"{_server['NAME']}_second_project"}}
else:
    _sqlite = Path(tempfile.gettempdir()) / f"second_project_{os.getpid()}.sqlite3"
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _sqlite, "TEST": {"NAME": _sqlite}}
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
