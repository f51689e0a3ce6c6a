"""OpenAPI descriptions drf-spectacular cannot infer on its own."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class SessionJWTScheme(SimpleJWTScheme):
    """SessionJWTAuthentication is simplejwt's bearer scheme with a session check on top."""

    target_class = "accounts.authentication.SessionJWTAuthentication"
