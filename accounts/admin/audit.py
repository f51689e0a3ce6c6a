"""The audit trail's admin: a read-only list of events, searchable by user, IP and session, with
links to the user's and the session's pages."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils.html import format_html

from ..audit import typed_name_hashed
from ..models import AuditEvent, Session
from .scale import FastChangeListMixin
from .shared import admin_change_url, id_prefix_q, user_search_fields


class AuditEventAdmin(FastChangeListMixin, admin.ModelAdmin):
    """Read-only: the trail is written by the services and pruned by flush_expired_sessions."""

    list_display = ("created_at", "type", "user_link", "username", "actor", "ip", "session", "detail")
    list_filter = ("type", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("user", "actor")
    search_help_text = (
        "Username (also an attempted one: a name that is no account's is kept as its keyed hash, which"
        " the whole name finds), IP address, or the start of a session id (8 characters or more)."
    )
    ordering = ("-created_at", "-id")

    def get_search_fields(self, request):
        """The user's name, the name typed at a failed login, and the IP (and, in
        ``get_search_results``, the session id)."""
        return (*user_search_fields(through="user", email=False), "username", "ip")

    def get_search_results(self, request, queryset, search_term):
        """Also the events of the sessions whose id starts with the term (auditevent_session_idx),
        and those of a typed name that names no account (kept as its keyed hash)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_session = id_prefix_q("session_id", search_term)
        if by_session:
            results = results | queryset.filter(by_session)
        if search_term.strip():
            results = results | queryset.filter(username=typed_name_hashed(search_term))
        return results, may_have_duplicates

    @admin.display(description="user", ordering="user")
    def user_link(self, event: AuditEvent) -> str:
        """The user, linked to their admin page."""
        if event.user is None:
            return "-"
        url = admin_change_url(self.admin_site, get_user_model(), event.user_id)
        return format_html('<a href="{}">{}</a>', url, event.user) if url else str(event.user)

    @admin.display(description="session", ordering="session_id")
    def session(self, event: AuditEvent) -> str:
        """The first 8 characters of the session id, linked to the session's page (if it has not
        been flushed since); searching for them finds the session's other events."""
        if event.session_id is None:
            return "-"
        url = admin_change_url(self.admin_site, Session, event.session_id)
        return format_html('<a href="{}" title="{}">{}</a>', url, event.session_id, str(event.session_id)[:8])

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
