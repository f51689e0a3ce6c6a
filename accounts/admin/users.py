"""Sessions on the user admin: the user's active sessions on their page, each with a Revoke button,
a "Revoke all sessions" button and list action, the user's e-mail verification (read-only), their
second factors (``factors``), and the mixing of these into whatever admin the project registered
for its user model."""

from django.contrib import admin
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from .. import services
from ..email_verification import email_state_summary
from ..models import Session
from ..origin import request_origin
from .factors import UserSecondFactorsAdminMixin
from .sessions import RevokeViewMixin, SessionAdmin, may_revoke, revoke_sessions, short_datetime
from .shared import admin_change_url


class ActiveSessionInline(admin.TabularInline):
    """The user's active sessions, newest first, each with a Revoke button; shown near the top of
    the user's page (see admin/accounts/user_change_form.html)."""

    model = Session
    fields = ("device_name", "signed_in_with", "ip", "created", "last_used", "ends")
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
    signed_in_with = SessionAdmin.signed_in_with
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


class UserSessionsAdminMixin(UserSecondFactorsAdminMixin, RevokeViewMixin):
    """Sessions on the project's user admin: the user's active sessions (each with a Revoke
    button), a "Revoke all sessions" button on their page, and the same as a list action; and the
    user's second factors, with a "Remove second factors" button and list action.

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
        user = self.get_object(request, unquote(object_id))
        if user is not None:  # the e-mail verification and the factors, below the first fieldset
            context["email_verification"] = email_state_summary(user=user)
            context.update(self.second_factors_context(request, user))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def user_change_password(self, request, id, form_url=""):
        """Django's UserAdmin password form: the password set there ends the user's sessions
        (accounts.password_validation), recorded as this admin's doing. Disabling password-based
        authentication ("unset-password") sets no password, so it ends them here."""
        origin = request_origin(request, actor_id=request.user.pk)
        with services.password_set_as(origin=origin, detail="set in the admin"):
            response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and "unset-password" in request.POST and response.status_code == 302:
            user = self.get_object(request, unquote(id))
            if user is not None and not user.has_usable_password():
                with services.password_set_as(origin=origin, detail="password sign-in disabled in the admin"):
                    services.sessions_end_for_password_set(user=user)
        return response

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
