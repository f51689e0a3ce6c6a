"""The admin: a window on the services, fast with a million sessions.

Sessions and audit events are read-only here. Revoking goes through ``accounts.services``, the
same functions the API uses, so access tokens stop at once and the audit trail names the admin.
Changelists never count a whole table: the paginator counts at most ``COUNT_CAP`` + 1 rows,
facet counts are off, and each default page is one range of an index (see ``Session.Meta``).
"""

import math

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import display_for_value
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.text import Truncator

from . import services
from .audit import audit_event_record
from .models import AuditEvent, AuditEventType, RevokeReason, Session
from .origin import request_origin
from .throttles import login_attempt_wait

COUNT_CAP = 10_000
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
            cleaned = super().clean()
        except ValidationError:  # wrong password, unknown user, or not staff
            audit_event_record(
                type=AuditEventType.LOGIN_FAILED, username=username, origin=origin, detail=ADMIN_LOGIN
            )
            raise
        audit_event_record(
            type=AuditEventType.LOGIN_SUCCEEDED, user_id=self.user_cache.pk, origin=origin, detail=ADMIN_LOGIN
        )
        return cleaned


class CappedCountPaginator(Paginator):
    """Counts at most ``COUNT_CAP`` + 1 rows (``SELECT COUNT(*) FROM (... LIMIT n)``).

    The admin asks for a count on every page load; a full COUNT(*) reads every matching row.
    Past the cap the list says "more than 10,000" and offers the first 10,000 rows' pages;
    search and filters narrow it further.
    """

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        """True when there are more rows than were counted."""
        return self.count > self.cap


def user_search_fields(*, through: str, email: bool = True) -> tuple[str, ...]:
    """The user model's name field (and email field, if it has one), reached ``through`` a
    relation, for admin search."""
    user_model = get_user_model()
    names = [user_model.USERNAME_FIELD]
    if email and user_model.get_email_field_name() != user_model.USERNAME_FIELD:
        names.append(user_model.get_email_field_name())
    fields = {field.name for field in user_model._meta.get_fields()}
    return tuple(f"{through}__{name}" for name in names if name in fields)


class FastChangeListMixin:
    """Settings that keep a changelist's cost independent of the table's size."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100


def revoke_sessions_of_users(request, user_ids) -> int:
    """Revoke every unrevoked session of these users (one statement), recording the admin."""
    return services.sessions_revoke_for_users(
        user_ids=user_ids,
        reason=RevokeReason.REVOKED_BY_ADMIN,
        origin=request_origin(request, actor_id=request.user.pk),
    )


class SessionStatusFilter(admin.SimpleListFilter):
    """Active by default: the sessions an admin may want to end."""

    title = "status"
    parameter_name = "status"
    default = "active"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked"), ("all", "All")]

    def value(self) -> str:
        """The chosen status; no (or an unknown) value means the default."""
        value = super().value()
        return value if value in {key for key, _ in self.lookup_choices} else self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        match self.value():
            case "active":
                return queryset.active()
            case "expired":
                return queryset.expired()
            case "revoked":
                return queryset.revoked()
        return queryset


@admin.register(Session)
class SessionAdmin(FastChangeListMixin, admin.ModelAdmin):
    list_display = ("user", "created_at", "last_used_at", "expires_at", "ip", "short_user_agent", "status")
    list_filter = (SessionStatusFilter,)
    list_select_related = ("user",)
    search_help_text = "Username, email or IP address."
    ordering = ("-created_at", "-id")  # matches the indexes session_unrevoked_newest_idx / session_newest_idx
    actions = ("revoke_selected_sessions", "revoke_all_sessions_of_these_users")
    # No jti, ever: they name tokens, and nothing here needs them.
    fields = (
        "user",
        "status",
        "created_at",
        "last_used_at",
        "rotated_at",
        "idle_expires_at",
        "absolute_expires_at",
        "revoked_at",
        "revoke_reason",
        "ip",
        "user_agent",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def get_search_fields(self, request):
        """The user model's name and email fields, and the IP."""
        return (*user_search_fields(through="user"), "ip")

    @admin.display(description="user agent")
    def short_user_agent(self, session: Session) -> str:
        return Truncator(session.user_agent).chars(60)

    @admin.display(description="status")
    def status(self, session: Session) -> str:
        """Active, expired, or revoked with the reason."""
        status = session.status()
        return f"{status} ({session.get_revoke_reason_display()})" if status == "revoked" else status

    # Sessions are made by logging in and ended by revoking; nobody adds, edits or deletes one here
    # (deleting would also erase what the admin needs to see). Revoking needs "change" permission.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected sessions", permissions=("change",))
    def revoke_selected_sessions(self, request, queryset):
        revoked = services.sessions_revoke(
            sessions=Session.objects.filter(pk__in=queryset.values("pk")),
            reason=RevokeReason.REVOKED_BY_ADMIN,
            origin=request_origin(request, actor_id=request.user.pk),
        )
        self.message_user(request, f"Revoked {revoked} session{pluralize(revoked)}.", messages.SUCCESS)

    @admin.action(description="Revoke all sessions of these users", permissions=("change",))
    def revoke_all_sessions_of_these_users(self, request, queryset):
        revoked = revoke_sessions_of_users(request, queryset.order_by().values("user_id"))
        self.message_user(request, f"Revoked {revoked} session{pluralize(revoked)}.", messages.SUCCESS)


class ActiveSessionInline(admin.TabularInline):
    """The user's active sessions, newest first, read-only (revoke from the sessions page or with
    the "Revoke all sessions" button)."""

    model = Session
    fields = ("created_at", "last_used_at", "expires", "ip", "user_agent")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "active sessions"

    def get_queryset(self, request):
        return super().get_queryset(request).active().order_by("-created_at")

    @admin.display(description="expires")
    def expires(self, session: Session) -> str:
        """Formatted like the dates beside it (a property would print raw)."""
        return display_for_value(session.expires_at, "")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class UserSessionsAdminMixin:
    """Sessions on the project's user admin: the user's active sessions, a "Revoke all sessions"
    button on their page, and the same as a list action.

    ``AccountsConfig.ready`` mixes it into whatever admin the project registered for its user
    model (Django's own ``UserAdmin`` here); a project whose user admin is registered later, or on
    another site, adds it to its admin's bases itself.
    """

    change_form_template = "admin/accounts/user_change_form.html"

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), ActiveSessionInline]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if actions is not None and self.has_revoke_permission(request) and IS_POPUP_VAR not in request.GET:
            func, name, description = self.get_action("revoke_all_sessions")
            actions[name] = (func, name, description)
        return actions

    def _url_name(self, view: str) -> str:
        """This admin's URL name for ``view`` ("change", "revoke_sessions")."""
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def get_urls(self):
        revoke = path(
            "<path:object_id>/revoke-sessions/",
            self.admin_site.admin_view(self.revoke_sessions_view),
            name=self._url_name("revoke_sessions"),
        )
        return [revoke, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        url = reverse(f"{self.admin_site.name}:{self._url_name('revoke_sessions')}", args=[object_id])
        context = {**(extra_context or {}), "revoke_sessions_url": url}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def has_revoke_permission(self, request) -> bool:
        """Revoking sessions is changing sessions."""
        return request.user.has_perm("accounts.change_session")

    @admin.action(description="Revoke all sessions of selected users")
    def revoke_all_sessions(self, request, queryset):
        revoked = revoke_sessions_of_users(request, queryset.order_by().values("pk"))
        self.message_user(request, f"Revoked {revoked} session{pluralize(revoked)}.", messages.SUCCESS)

    def revoke_sessions_view(self, request, object_id):
        """POST from the "Revoke all sessions" button on a user's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        user = get_object_or_404(self.model, pk=object_id)
        revoked = revoke_sessions_of_users(request, [user.pk])
        self.message_user(
            request, f"Revoked {revoked} session{pluralize(revoked)} of {user}.", messages.SUCCESS
        )
        change = f"{self.admin_site.name}:{self._url_name('change')}"
        return HttpResponseRedirect(reverse(change, args=[user.pk]))


def user_admin_add_sessions(site: admin.AdminSite) -> None:
    """Mix ``UserSessionsAdminMixin`` into the admin ``site`` has for the user model, if any."""
    user_model = get_user_model()
    if not site.is_registered(user_model):
        return
    registered = type(site.get_model_admin(user_model))
    if issubclass(registered, UserSessionsAdminMixin):
        return
    site.unregister(user_model)
    site.register(user_model, type(registered.__name__, (UserSessionsAdminMixin, registered), {}))


@admin.register(AuditEvent)
class AuditEventAdmin(FastChangeListMixin, admin.ModelAdmin):
    """Read-only: the trail is written by the services and pruned by flush_expired_sessions."""

    list_display = ("created_at", "type", "user", "username", "actor", "ip", "session", "detail")
    list_filter = ("type", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("user", "actor")
    search_help_text = "Username (also an attempted one) or IP address."
    ordering = ("-created_at", "-id")

    def get_search_fields(self, request):
        """The user's name, the name typed at a failed login, and the IP."""
        return (*user_search_fields(through="user", email=False), "username", "ip")

    @admin.display(description="session", ordering="session_id")
    def session(self, event: AuditEvent) -> str:
        """The first 8 characters of the session id, enough to find it (the full id is on the event)."""
        return str(event.session_id)[:8] if event.session_id else "-"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
