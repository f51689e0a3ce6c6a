from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Token authentication with revocable server-side sessions."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        """Register the system checks, signal receivers and OpenAPI extensions."""
        from . import checks, schema, signals  # noqa: F401
