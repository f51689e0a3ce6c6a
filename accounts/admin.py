"""The admin: a window on the services, fast with a million sessions.

Sessions and audit events are read-only here. Revoking goes through ``accounts.services``, the
same functions the API uses, so access tokens stop at once and the audit trail names the admin.
Changelists never count a whole table: the paginator counts at most ``COUNT_CAP`` + 1 rows,
facet counts are off, and each default page is one range of an index (see ``Session.Meta``).
"""

import math
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import display_for_value, unquote
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections, router, transaction
from django.db.models import Q, QuerySet
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.functional import cached_property
from django.utils.html import conditional_escape, format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.text import get_text_list

from . import selectors, services
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
    search and filters narrow it further. The count drops the list's ordering: any 10,001 rows
    will do, so PostgreSQL may stop at the first ones it finds, and never sorts the matching rows
    first (which it did, 240 ms at a million rows, while its statistics were stale).
    """

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.cap + 1].count()

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


# PostgreSQL planner switches that, off, leave it one way to answer an ordered, limited list that
# has an index in its order: reading that index.
INDEX_WALK_SETTINGS = ("enable_sort", "enable_bitmapscan")


@contextmanager
def planned_as_an_index_walk(using: str) -> Iterator[None]:
    """Queries inside are planned without sorts or bitmap scans (PostgreSQL; elsewhere a no-op).

    Without statistics (a table filled in bulk and not analyzed yet) PostgreSQL guesses that 0.5 %
    of the rows have ``revoked_at IS NULL``, so it reads every active session through a bitmap and
    sorts them for a page of 100: 1.4 s at a million sessions, against 0.4 ms for reading the
    first 100 entries of ``session_unrevoked_newest_idx``. The settings are local to a transaction
    of their own, and put back (a surrounding transaction goes on without them).
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    off = ", ".join(f"set_config('{name}', 'off', true)" for name in INDEX_WALK_SETTINGS)
    current = ", ".join(f"current_setting('{name}')" for name in INDEX_WALK_SETTINGS)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"SELECT {current}, {off}")  # left to right: read, then switch off
        before = cursor.fetchone()[: len(INDEX_WALK_SETTINGS)]
        try:
            yield
        finally:
            cursor.execute(
                "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in INDEX_WALK_SETTINGS),
                before,
            )


class FastChangeListMixin:
    """Settings that keep a changelist's cost independent of the table's size."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100


def short_datetime(value) -> str:
    """A moment in the admin's time zone, compact enough for a table cell: "Nov 28, 14:07" (with
    the year when it is not this year's: "Dec 30 2025, 09:12")."""
    if value is None:
        return "-"
    value = timezone.localtime(value)
    this_year = value.year == timezone.localtime().year
    return format_date(value, "M j, H:i" if this_year else "M j Y, H:i")


def admin_change_url(site: admin.AdminSite, model, pk) -> str | None:
    """The admin page of one object of ``model`` on ``site``, or None if the site has none."""
    try:
        return reverse(f"{site.name}:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    except NoReverseMatch:
        return None


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


def id_prefix_q(field: str, search_term: str) -> Q | None:
    """The search term as the start of a UUID field, if it is one (8 hex characters or more)."""
    term = search_term.strip()
    if len(term.replace("-", "")) < selectors.SESSION_ID_MIN_PREFIX:
        return None
    return selectors.uuid_prefix_q(field, term)


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


@admin.register(Session)
class SessionAdmin(RevokeViewMixin, FastChangeListMixin, admin.ModelAdmin):
    # Short cells, so that the table fits a 1400-pixel window with the admin's sidebar open.
    list_display = ("short_id", "user", "device_name", "ip_address", "created", "last_used", "ends", "status")
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
        if session is None:
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


class ActiveSessionInline(admin.TabularInline):
    """The user's active sessions, newest first, each with a Revoke button; shown near the top of
    the user's page (see admin/accounts/user_change_form.html)."""

    model = Session
    fields = ("device_name", "ip", "created", "last_used", "ends")
    readonly_fields = (*fields, "revoke")
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "active sessions"
    sessions_inline = True  # the template places this inline by this mark

    def get_queryset(self, request):
        return super().get_queryset(request).active().order_by("-created_at")

    def get_fields(self, request, obj=None):
        """The Revoke column only for admins who may revoke."""
        revoke = ("revoke",) if may_revoke(request) else ()
        return (*self.fields, *revoke)

    device_name = SessionAdmin.device_name
    created = SessionAdmin.created
    last_used = SessionAdmin.last_used

    @admin.display(description="expires")
    def ends(self, session: Session) -> str:
        return short_datetime(session.ends_at)

    @admin.display(description="")
    def revoke(self, session: Session) -> str:
        """A button that posts the page's form (and its CSRF token) to the session's revoke view,
        then comes back here."""
        if session.pk is None:
            return ""
        url = reverse(f"{self.admin_site.name}:accounts_session_revoke", args=[session.pk])
        back = admin_change_url(self.admin_site, get_user_model(), session.user_id)
        return format_html(
            '<button type="submit" class="button revoke-session" formaction="{}" formmethod="post" '
            "formnovalidate onclick=\"return confirm('Sign this device out?');\">Revoke</button>",
            f"{url}?{urlencode({'next': back})}" if back else url,
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class UserSessionsAdminMixin(RevokeViewMixin):
    """Sessions on the project's user admin: the user's active sessions (each with a Revoke
    button), a "Revoke all sessions" button on their page, and the same as a list action.

    ``AccountsConfig.ready`` mixes it into whatever admin the project registered for its user
    model (Django's own ``UserAdmin`` here); a project whose user admin is registered later, or on
    another site, adds it to its admin's bases itself.
    """

    change_form_template = "admin/accounts/user_change_form.html"

    def get_inlines(self, request, obj):
        inlines = super().get_inlines(request, obj)
        return inlines if obj is None else [*inlines, ActiveSessionInline]

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

    def revoke_users_sessions(self, request, user_ids) -> None:
        """Revoke every session of these users, with a LogEntry on each user that had some."""
        ended = revoke_sessions(request, Session.objects.filter(user_id__in=user_ids))
        by_user: dict = {}
        for _, user_id in ended:
            by_user[user_id] = by_user.get(user_id, 0) + 1
        for user in self.model._default_manager.filter(pk__in=list(by_user)):
            count = by_user[user.pk]
            self.log_change(request, user, f"Revoked {count} session{pluralize(count)}.")
        self.report_revoked(request, ended)

    @admin.action(description="Revoke all sessions of selected users")
    def revoke_all_sessions(self, request, queryset):
        self.revoke_users_sessions(request, queryset.order_by().values("pk"))

    def revoke_sessions_view(self, request, object_id):
        """POST from the "Revoke all sessions" button on a user's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        user = get_object_or_404(self.model, pk=unquote(object_id))
        self.revoke_users_sessions(request, [user.pk])
        return HttpResponseRedirect(admin_change_url(self.admin_site, self.model, user.pk))


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

    list_display = ("created_at", "type", "user_link", "username", "actor", "ip", "session", "detail")
    list_filter = ("type", ("created_at", admin.DateFieldListFilter))
    list_select_related = ("user", "actor")
    search_help_text = (
        "Username (also an attempted one), IP address, or the start of a session id (8 characters or more)."
    )
    ordering = ("-created_at", "-id")

    def get_search_fields(self, request):
        """The user's name, the name typed at a failed login, and the IP (and, in
        ``get_search_results``, the session id)."""
        return (*user_search_fields(through="user", email=False), "username", "ip")

    def get_search_results(self, request, queryset, search_term):
        """Also the events of the sessions whose id starts with the term (auditevent_session_idx)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_session = id_prefix_q("session_id", search_term)
        return (results | queryset.filter(by_session) if by_session else results), may_have_duplicates

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
