from django.apps import AppConfig, apps


class AccountsConfig(AppConfig):
    """Token authentication with revocable server-side sessions."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        """Register the system checks, signal receivers and OpenAPI extensions, show sessions on
        the admin's user pages (after django.contrib.admin's own ready() registered them), and
        put the admin's login form under the login limits. Nothing outside this app is changed:
        PyJWT, Django and DRF are left as the project configured them."""
        from . import checks, schema, signals  # noqa: F401

        if apps.is_installed("django.contrib.admin"):
            from django.contrib import admin

            from .admin import ThrottledAdminAuthenticationForm, user_admin_add_sessions
            from .admin.login import ADMIN_LOGIN_TEMPLATE

            user_admin_add_sessions(admin.site)
            if admin.site.login_form is None:  # the project chose no form of its own
                admin.site.login_form = ThrottledAdminAuthenticationForm
                if admin.site.login_template is None:  # Django's page, plus the form's code field
                    admin.site.login_template = ADMIN_LOGIN_TEMPLATE
