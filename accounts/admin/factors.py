"""Second factors on the user admin: the user's factors on their page (never a secret, a digest or a
public key), and removing every one of them for a user who lost theirs, from a "Remove second
factors" button on the page or a list action, each behind a confirmation page like Django's delete
confirmation, through ``accounts.mfa.second_factors_remove`` (audited, naming the admin; a notice
mailed to the user)."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import get_text_list

from ..mfa import second_factors_remove
from ..selectors import second_factors_summary
from ..origin import request_origin
from .shared import admin_change_url


class UserSecondFactorsAdminMixin:
    """Second factors on the project's user admin (``UserSessionsAdminMixin`` includes it).

    Removing needs the permission to change users: it changes how the user signs in, as a password
    set in the admin does.
    """

    remove_second_factors_template = "admin/accounts/remove_second_factors_confirmation.html"

    def has_remove_second_factors_permission(self, request, obj=None) -> bool:
        """The rule of every remove control: removing a user's factors is changing the user."""
        return self.has_change_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if (
            actions is not None
            and self.has_remove_second_factors_permission(request)
            and IS_POPUP_VAR not in request.GET
        ):
            func, name, description = self.get_action("remove_second_factors")
            actions[name] = (func, name, description)
        return actions

    def _url_name(self, view: str) -> str:
        """This admin's URL name for ``view`` ("change", "revoke_sessions", "remove_second_factors")."""
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def get_urls(self):
        remove = path(
            "<path:object_id>/remove-second-factors/",
            self.admin_site.admin_view(self.remove_second_factors_view),
            name=self._url_name("remove_second_factors"),
        )
        return [remove, *super().get_urls()]

    def second_factors_context(self, request, user) -> dict:
        """What the user's page shows of their factors, and where its Remove button leads."""
        context = {"second_factors": second_factors_summary(user=user)}
        if self.has_remove_second_factors_permission(request, user):
            url = reverse(f"{self.admin_site.name}:{self._url_name('remove_second_factors')}", args=[user.pk])
            context["remove_second_factors_url"] = url
        return context

    def remove_users_second_factors(self, request, users) -> None:
        """Remove every factor of these users as the admin making ``request``: through the service
        (audit, notice), in each user's History (LogEntry), and said in a message."""
        origin = request_origin(request, actor_id=request.user.pk)
        done, untouched = [], []
        for user in users:
            removed = second_factors_remove(user=user, origin=origin, detail="Django admin")
            if removed:
                self.log_change(request, user, f"Removed second factors: {removed.described()}.")
                done.append((user, removed))
            else:
                untouched.append(user)
        if len(done) == 1:
            user, removed = done[0]
            text = f"Removed {removed.described()} of {user.get_username()}."
            self.message_user(request, text, messages.SUCCESS)
        elif done:
            names = get_text_list(sorted(user.get_username() for user, _ in done), "and")
            self.message_user(request, f"Removed the second factors of {names}.", messages.SUCCESS)
        if untouched:
            names = get_text_list(sorted(user.get_username() for user in untouched), "and")
            self.message_user(request, f"Nothing removed from {names}: no second factor.", messages.WARNING)

    def remove_second_factors_confirmation(self, request, users, *, action: bool) -> TemplateResponse:
        """The page that asks first, listing each user and what would go (like Django's delete
        confirmation); its form posts back with ``post=yes``."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Are you sure?",
            "opts": self.opts,
            "users": [(user, second_factors_summary(user=user)) for user in users],
            "action": "remove_second_factors" if action else "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "change_url": None if action else admin_change_url(self.admin_site, self.model, users[0].pk),
        }
        return TemplateResponse(request, self.remove_second_factors_template, context)

    @admin.action(description="Remove second factors of selected users")
    def remove_second_factors(self, request, queryset):
        """The list action: a confirmation page first, then the removal (Django's delete_selected
        does the same with ``post``)."""
        users = list(queryset.order_by(self.model.USERNAME_FIELD))
        if request.POST.get("post") != "yes":
            return self.remove_second_factors_confirmation(request, users, action=True)
        self.remove_users_second_factors(request, users)
        return None

    def remove_second_factors_view(self, request, object_id):
        """GET: the confirmation page for one user (from the button on their page); POST: remove,
        then back to their page."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if not self.has_remove_second_factors_permission(request):
            raise PermissionDenied
        user = self.get_object(request, unquote(object_id))
        if user is None:  # the admin's own answer (canary: tests/test_canaries.py::
            # test_django_model_admin_redirects_for_a_missing_object)
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method == "GET":
            return self.remove_second_factors_confirmation(request, [user], action=False)
        self.remove_users_second_factors(request, [user])
        return HttpResponseRedirect(admin_change_url(self.admin_site, self.model, user.pk))
