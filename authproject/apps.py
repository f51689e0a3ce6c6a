from django.apps import AppConfig


class AuthprojectConfig(AppConfig):
    """The project itself, installed only for its startup checks on the environment it reads."""

    name = "authproject"
    label = "authproject"

    def ready(self):
        """Register the checks (authproject/checks.py)."""
        from . import checks  # noqa: F401
