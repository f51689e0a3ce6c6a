from django.apps import AppConfig


class MembersConfig(AppConfig):
    """The second project's own users."""

    name = "tests.second_project.members"
    label = "members"
    default_auto_field = "django.db.models.BigAutoField"
