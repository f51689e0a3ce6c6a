"""The admin's login form, under the API's login limits, asking for the second factor of an account
that has one, and in the audit trail."""

import math

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .. import metrics, mfa
from ..audit import audit_event_record
from ..models import AuditEventType
from ..origin import request_origin
from ..errors import PasswordChecksBusy
from ..password_checks import password_check_slot
from ..throttles import login_attempt_wait, mfa_attempt_wait

ADMIN_LOGIN = "Django admin"
# The admin's login page with the form's second-factor field (Django's own page shows only the
# username and the password); AccountsConfig.ready() installs it with the form.
ADMIN_LOGIN_TEMPLATE = "admin/accounts/login.html"


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form under the API's login limits (per username and IP, per username,
    per IP), with its successes and failures in the audit trail.

    The attempt is counted before the password is checked, so past a limit the password is not
    tried at all. ``AccountsConfig.ready()`` installs it on ``admin.site`` unless the project set
    its own ``login_form``; another AdminSite sets ``login_form`` to it.
    """

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many login attempts. Try again in %(wait)d seconds.",
        "code_required": "This account has a second factor: enter a code from its authenticator app, or "
        "one of its recovery codes.",
        "passkey_only": "This account's second factor is a passkey, which this page cannot take: set up "
        "an authenticator app for it too.",
        "invalid_code": "The code is not correct.",
    }

    code = forms.CharField(
        label="Code",
        required=False,
        max_length=32,
        strip=True,
        help_text="Only for an account with a second factor: its authenticator app's code, or a recovery code.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text"}),
    )

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not (username and password):
            return super().clean()  # a field is missing: no password is tried
        wait = login_attempt_wait(self.request, username=username)
        if wait is not None:
            raise ValidationError(
                self.error_messages["throttled"], code="throttled", params={"wait": math.ceil(wait)}
            )
        origin = request_origin(self.request)
        try:
            with password_check_slot():
                cleaned = super().clean()
        except PasswordChecksBusy:
            metrics.login_counted(result="throttled")
            busy = ValidationError(self.error_messages["throttled"], code="throttled", params={"wait": 1})
            raise busy from None
        except ValidationError:  # wrong password, unknown user, or not staff
            metrics.login_counted(result="failed")
            audit_event_record(
                type=AuditEventType.LOGIN_FAILED, username=username, origin=origin, detail=ADMIN_LOGIN
            )
            raise
        self.second_factor_check(origin)
        metrics.login_counted(result="ok")
        audit_event_record(
            type=AuditEventType.LOGIN_SUCCEEDED, user_id=self.user_cache.pk, origin=origin, detail=ADMIN_LOGIN
        )
        return cleaned

    def second_factor_check(self, origin) -> None:
        """The password was right: an account with a second factor also needs a code (its
        authenticator app's, or a recovery code), tried under the API's per-user limit
        (MFA_THROTTLE_RATE) and used once, as on the API's second step. A password alone never
        signs such an account in, here or anywhere."""
        user = self.user_cache
        methods = mfa.second_factor_methods(user=user)
        if not methods:
            return
        if mfa.TOTP not in methods and mfa.RECOVERY_CODE not in methods:
            self.second_factor_refuse("passkey_only", origin, detail="a passkey only")
        code = self.cleaned_data.get("code") or ""
        if not code:
            self.second_factor_refuse("code_required", origin, detail="no code given")
        wait = mfa_attempt_wait(self.request, user_id=user.pk)
        if wait is not None:
            metrics.login_counted(result="throttled")
            self.user_cache = None
            raise ValidationError(
                self.error_messages["throttled"], code="throttled", params={"wait": math.ceil(wait)}
            )
        if not mfa.second_factor_code_use(user=user, code=code, origin=origin):
            audit_event_record(type=AuditEventType.MFA_FAILED, user_id=user.pk, origin=origin, detail=ADMIN_LOGIN)
            self.second_factor_refuse("invalid_code", origin, detail="wrong code", audit=False)

    def second_factor_refuse(self, reason: str, origin, *, detail: str, audit: bool = True) -> None:
        """Refuse the login at its second factor: nobody is signed in (the user found is dropped)."""
        metrics.login_counted(result="failed")
        if audit:
            audit_event_record(
                type=AuditEventType.LOGIN_FAILED,
                user_id=self.user_cache.pk,
                origin=origin,
                detail=f"{ADMIN_LOGIN}: second factor needed, {detail}",
            )
        self.user_cache = None
        raise ValidationError(self.error_messages[reason], code=reason)
