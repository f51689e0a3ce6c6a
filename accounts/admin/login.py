"""The admin's login form, under the API's login limits and in the audit trail."""

import math

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .. import metrics
from ..audit import audit_event_record
from ..models import AuditEventType
from ..origin import request_origin
from ..errors import PasswordChecksBusy
from ..password_checks import password_check_slot
from ..throttles import login_attempt_wait

ADMIN_LOGIN = "Django admin"


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
    }

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
        metrics.login_counted(result="ok")
        audit_event_record(
            type=AuditEventType.LOGIN_SUCCEEDED, user_id=self.user_cache.pk, origin=origin, detail=ADMIN_LOGIN
        )
        return cleaned
