"""The peer that benchmarks/hot_paths.py measures this project against: dj-rest-auth with simplejwt's
token blacklist and rotating refresh tokens, set up as dj-rest-auth's documentation sets up a JWT
single-page app (USE_JWT, the refresh token in an httpOnly cookie, no Django session login), on the
same PostgreSQL, Redis, gunicorn, middleware and password hasher as the project.

Run from benchmarks/ (``peer`` is the package) with benchmarks/.peer-venv's Python:
``DJANGO_SETTINGS_MODULE=peer.settings python -m django migrate`` and
``python -m gunicorn -c ../authproject/gunicorn.conf.py peer.wsgi``; DJANGO_SECRET_KEY, DATABASE_URL and
CACHE_URL from the environment.
"""

from datetime import timedelta

import environ

env = environ.Env()

SECRET_KEY = env.str("DJANGO_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "dj_rest_auth",
]

# The project's middleware less WhiteNoise (the peer serves no static files).
MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "peer.urls"
WSGI_APPLICATION = "peer.wsgi.application"

# As the project on PostgreSQL: persistent connections with health checks.
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
CACHES = {"default": env.cache("CACHE_URL")}
CACHES["default"]["KEY_PREFIX"] = "peer"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2 with Django's own parameters.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

USE_TZ = True
TIME_ZONE = "UTC"

# CORS and CSRF as the project has them.
CORS_ALLOWED_ORIGINS = ["http://localhost:5173", "http://localhost:3000"]
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/api/.*$"
CORS_EXPOSE_HEADERS: list[str] = []
CORS_ALLOW_PRIVATE_NETWORK = False
CSRF_TRUSTED_ORIGINS = CORS_ALLOWED_ORIGINS
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["dj_rest_auth.jwt_auth.JWTCookieAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

# The project's token lifetimes and algorithm; every refresh rotates and blacklists the old token.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

REST_AUTH = {
    "USE_JWT": True,
    "TOKEN_MODEL": None,  # JWTs only: no DRF authtoken table
    "SESSION_LOGIN": False,  # no Django session beside the tokens
    "JWT_AUTH_COOKIE": "peer-access",
    "JWT_AUTH_REFRESH_COOKIE": "peer-refresh",
    "JWT_AUTH_HTTPONLY": True,  # the refresh token only in its cookie, never in a body
    "JWT_AUTH_SECURE": True,
    "JWT_AUTH_SAMESITE": "Lax",
    "JWT_AUTH_COOKIE_USE_CSRF": True,  # a request authenticated by the access cookie needs CSRF
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
