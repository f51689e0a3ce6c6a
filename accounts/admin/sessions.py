"""The session admin: the list of sessions (active by default), each session's page, and revoking,
from a Revoke button or a list action, through ``accounts.services`` (the same functions the API
uses, so access tokens stop at once and the audit trail names the admin). Sessions are read-only
here; the user admin's revoke controls (``users``) share the revoking pieces below.
"""

import uuid
from collections.abc import Iterable

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import display_for_value, unquote
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import QuerySet
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.urls import path
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.html import conditional_escape, format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.text import get_text_list

from .. import services
from ..models import RevokeReason, Session
from ..origin import request_origin
from .scale import FastChangeListMixin, planned_as_an_index_walk
from .shared import admin_change_url, id_prefix_q, user_search_fields


def short_datetime(value) -> str:
    """A moment in the admin's time zone, compact enough for a table cell: "Nov 28, 14:07" (with
    the year when it is not this year's: "Dec 30 2025, 09:12")."""
    if value is None:
        return "-"
    value = timezone.localtime(value)
    this_year = value.year == timezone.localtime().year
    return format_date(value, "M j, H:i" if this_year else "M j Y, H:i")


def revoke_sessions(request, sessions: QuerySet[Session]) -> list[tuple[uuid.UUID, object]]:
    """Revoke these sessions as the admin making ``request``: through the services (tokens stop,
    the audit trail names the admin), and in each session's History (Django's LogEntry)."""
    ended = services.sessions_revoke_each(
        sessions=sessions,
        reason=RevokeReason.REVOKED_BY_ADMIN,
        origin=request_origin(request, actor_id=request.user.pk),
    )
    if ended:
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=Session.objects.filter(pk__in=[session_id for session_id, _ in ended]),
            action_flag=CHANGE,
            change_message="Revoked.",
        )
    return ended


def revoked_message(ended: Iterable[tuple[uuid.UUID, object]]) -> tuple[str, int]:
    """What a revocation did, in words and with the message level: "Revoked 1 session of alice.",
    "Revoked 5 sessions of alice and bob.", "Revoked 40 sessions of 12 users."."""
    ended = list(ended)
    if not ended:
        return "No session revoked: they had all been revoked already.", messages.WARNING
    user_ids = list(dict.fromkeys(user_id for _, user_id in ended))
    counted = f"Revoked {len(ended)} session{pluralize(len(ended))}"
    if len(user_ids) > 3:
        return f"{counted} of {len(user_ids)} users.", messages.SUCCESS
    users = get_user_model().objects.in_bulk(user_ids)
    names = sorted(users[pk].get_username() if pk in users else str(pk) for pk in user_ids)
    return f"{counted} of {get_text_list(names, 'and')}.", messages.SUCCESS


def may_revoke(request) -> bool:
    """The rule of every revoke control in the admin: revoking sessions is changing sessions."""
    return request.user.has_perm(f"{Session._meta.app_label}.change_{Session._meta.model_name}")


class RevokeViewMixin:
    """Revoke controls: who may use them, and what they say afterwards."""

    def has_revoke_permission(self, request) -> bool:
        """Whether ``request.user`` may revoke sessions."""
        return may_revoke(request)

    def report_revoked(self, request, ended) -> None:
        """Tell the admin what happened."""
        text, level = revoked_message(ended)
        self.message_user(request, text, level)


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
        return queryset.in_status(self.value())


class SessionAdmin(RevokeViewMixin, FastChangeListMixin, admin.ModelAdmin):
    # Short cells, so that the table fits a 1400-pixel window with the admin's sidebar open.
    list_display = (
        "short_id",
        "user",
        "device_name",
        "signed_in_with",
        "ip_address",
        "created",
        "last_used",
        "ends",
        "status",
    )
    list_display_links = ("short_id",)
    list_filter = (SessionStatusFilter,)
    list_select_related = ("user",)
    search_help_text = "Username, email, IP address, or the start of a session id (8 characters or more)."
    ordering = ("-created_at", "-id")  # matches the indexes session_unrevoked_newest_idx / session_newest_idx
    actions = ("revoke_selected_sessions", "revoke_all_sessions_of_these_users")
    # No jti, ever: they name tokens, and nothing here needs them.
    fields = (
        "id",
        "user",
        "status",
        "device",
        "user_agent",
        "ip",
        "signed_in_with",
        "authenticated_at",
        "created_at",
        "last_used_at",
        "rotated_at",
        "idle_expires_at",
        "absolute_expires_at",
        "ends_at",
        "revoked_at",
        "revoke_reason",
    )
    readonly_fields = fields
    change_form_template = "admin/accounts/session/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def get_changelist_instance(self, request):
        """The list, with its count and its page fetched here: read from an index in the list's
        order whatever the planner's statistics say, unless a search narrows it (a search is
        better planned from statistics: it may match a few rows anywhere in the index)."""
        if request.GET.get(SEARCH_VAR):
            return super().get_changelist_instance(request)
        # ChangeList counts when it is made and leaves its page to be fetched; both must happen
        # inside the switch (canary: tests/test_canaries.py::
        # test_django_changelist_counts_when_made_and_leaves_its_page_to_be_fetched).
        with planned_as_an_index_walk(router.db_for_read(Session)):
            changelist = super().get_changelist_instance(request)
            changelist.result_list = list(changelist.result_list)
        return changelist

    def get_search_fields(self, request):
        """The user model's name and email fields, and the IP (and, in ``get_search_results``,
        the session id)."""
        return (*user_search_fields(through="user"), "ip")

    def get_search_results(self, request, queryset, search_term):
        """Also the sessions whose id starts with the term: a range of the primary key."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_id = id_prefix_q("pk", search_term)
        return (results | queryset.filter(by_id) if by_id else results), may_have_duplicates

    @admin.display(description="session")
    def short_id(self, session: Session) -> str:
        """The first 8 characters of the id: what the commands and the audit list accept and show."""
        return str(session.pk)[:8]

    @admin.display(description="device")
    def device_name(self, session: Session) -> str:
        """The device's name (the full user agent is on the session's page)."""
        return session.device or "unknown"

    @admin.display(description="signed in with")
    def signed_in_with(self, session: Session) -> str:
        """How the user signed in, in words ("password + authenticator code"); the RFC 8176 values
        in a tooltip."""
        return format_html('<span title="amr: {}">{}</span>', session.amr or "-", session.amr_display)

    @admin.display(description="last proved who they are")
    def authenticated_at(self, session: Session) -> str:
        """``auth_time``: the sign-in, or the last re-authentication in this session."""
        return display_for_value(session.auth_time, "")

    @admin.display(description="IP", ordering="ip")
    def ip_address(self, session: Session) -> str:
        """The IP; an IPv6 address may wrap after its colons rather than widen the table."""
        if not session.ip:
            return "-"
        return mark_safe(":<wbr>".join(conditional_escape(part) for part in session.ip.split(":")))

    @admin.display(description="created", ordering="created_at")
    def created(self, session: Session) -> str:
        return short_datetime(session.created_at)

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, session: Session) -> str:
        return short_datetime(session.last_used_at)

    @admin.display(description="ends / ended")
    def ends(self, session: Session) -> str:
        """When it expires; for a dead session, when it ended (revoked or expired)."""
        return short_datetime(session.ends_at)

    @admin.display(description="ends at")
    def ends_at(self, session: Session) -> str:
        """Formatted like the dates beside it on the session's page (a property would print raw)."""
        return display_for_value(session.ends_at, "")

    @admin.display(description="status")
    def status(self, session: Session) -> str:
        """Active, expired, or revoked with the reason, in one short cell."""
        return session.status_display()

    # Sessions are made by logging in and ended by revoking; nobody adds, edits or deletes one here
    # (deleting would also erase what the admin needs to see). Revoking needs "change" permission.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        revoke = path(
            "<path:object_id>/revoke/",
            self.admin_site.admin_view(self.revoke_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_revoke",
        )
        return [revoke, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The session's page, with a Revoke button while it is active and the admin may revoke."""
        context = {**(extra_context or {}), "can_revoke": self.has_revoke_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def revoke_view(self, request, object_id):
        """POST from a Revoke button (the session's page, a user's page); back to ``next`` if given."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:  # the admin's own answer (canary: tests/test_canaries.py::
            # test_django_model_admin_redirects_for_a_missing_object)
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        self.report_revoked(request, revoke_sessions(request, Session.objects.filter(pk=session.pk)))
        after = request.POST.get("next") or request.GET.get("next")
        if not (
            after
            and url_has_allowed_host_and_scheme(
                after, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            )
        ):
            after = admin_change_url(self.admin_site, Session, session.pk)
        return HttpResponseRedirect(after)

    @admin.action(description="Revoke selected sessions", permissions=("change",))
    def revoke_selected_sessions(self, request, queryset):
        self.report_revoked(
            request, revoke_sessions(request, Session.objects.filter(pk__in=queryset.values("pk")))
        )

    @admin.action(description="Revoke all sessions of these users", permissions=("change",))
    def revoke_all_sessions_of_these_users(self, request, queryset):
        user_ids = queryset.order_by().values("user_id")
        self.report_revoked(request, revoke_sessions(request, Session.objects.filter(user_id__in=user_ids)))
