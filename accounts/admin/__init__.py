"""The admin: a window on the services, fast with a million sessions.

Sessions and audit events are read-only here; revoking goes through ``accounts.services``, removing
second factors through ``accounts.mfa``. One module per job: ``login`` (the login form under the
login limits), ``scale`` (what keeps changelists fast with a million rows), ``sessions`` (the
session admin and revoking), ``users`` (sessions on the user admin), ``factors`` (second factors on
the user admin), ``audit`` (the audit trail's admin) and ``shared`` (what they share). This module
registers the admins, and every name below stays importable from ``accounts.admin``.
"""

from django.contrib import admin

from ..models import AuditEvent, Session
from .audit import AuditEventAdmin
from .factors import UserSecondFactorsAdminMixin
from .login import ADMIN_LOGIN, ThrottledAdminAuthenticationForm
from .scale import (
    COUNT_CAP,
    INDEX_WALK_SETTINGS,
    CappedCountPaginator,
    FastChangeListMixin,
    planned_as_an_index_walk,
)
from .sessions import (
    RevokeViewMixin,
    SessionAdmin,
    SessionStatusFilter,
    may_revoke,
    revoke_sessions,
    revoked_message,
    short_datetime,
)
from .shared import admin_change_url, id_prefix_q, user_search_fields
from .users import (
    ActiveSessionInline,
    UserSessionsAdminMixin,
    user_admin_add_sessions,
)

__all__ = [
    "ADMIN_LOGIN",
    "COUNT_CAP",
    "INDEX_WALK_SETTINGS",
    "ActiveSessionInline",
    "AuditEventAdmin",
    "CappedCountPaginator",
    "FastChangeListMixin",
    "RevokeViewMixin",
    "SessionAdmin",
    "SessionStatusFilter",
    "ThrottledAdminAuthenticationForm",
    "UserSecondFactorsAdminMixin",
    "UserSessionsAdminMixin",
    "admin_change_url",
    "id_prefix_q",
    "may_revoke",
    "planned_as_an_index_walk",
    "revoke_sessions",
    "revoked_message",
    "short_datetime",
    "user_admin_add_sessions",
    "user_search_fields",
]

admin.site.register(Session, SessionAdmin)
admin.site.register(AuditEvent, AuditEventAdmin)
