from django.apps import AppConfig, apps


class AccountsConfig(AppConfig):
    """Token authentication with revocable server-side sessions."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        """Register the system checks, signal receivers and OpenAPI extensions, show sessions on
        the admin's user pages (after django.contrib.admin's own ready() registered them), and
        put the admin's login form under the login limits; have PyJWT check the HMAC key once."""
        from . import checks, keys, schema, signals  # noqa: F401

        keys.hmac_keys_checked_once()

        if apps.is_installed("django.contrib.admin"):
            from django.contrib import admin

            from .admin import ThrottledAdminAuthenticationForm, user_admin_add_sessions

            user_admin_add_sessions(admin.site)
            if admin.site.login_form is None:  # the project chose no form of its own
                admin.site.login_form = ThrottledAdminAuthenticationForm
