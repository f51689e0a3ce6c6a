"""A password set by any path ends the user's sessions, as Django's session auth hash ends their
Django sessions.

Django has one public hook that every path setting a password goes through: after a user whose
``set_password()`` was called is saved, ``AbstractBaseUser.save`` calls ``password_changed()`` on
each of ``AUTH_PASSWORD_VALIDATORS``. The admin's password form, ``manage.py changepassword``,
password reset forms and ``user.set_password(); user.save()`` in code all reach it; a hash upgraded
at login (``check_password``) does not, since it is no new password. So the app listens there, as
a validator that refuses nothing: listed in ``AUTH_PASSWORD_VALIDATORS`` (accounts.E044 refuses a
configuration without it).
"""

from . import services


class PasswordSetEndsSessions:
    """Not a rule for passwords: ends the user's sessions when their password is set.

    How they end (the reason, the admin acting, a session kept) is the innermost
    ``services.password_set_as`` block's say; without one, reason ``password_set``.
    """

    def validate(self, password, user=None) -> None:
        """Every password passes: this validator only listens."""

    def password_changed(self, password, user=None) -> None:
        """End the sessions of ``user`` (a saved one; a new user has none)."""
        if user is not None and user.pk is not None:
            services.sessions_end_for_password_set(user=user)

    def get_help_text(self) -> str:
        """Shown in the list of password rules (Django's forms list every validator's text)."""
        return "Setting a new password signs the account out of its other sessions."
